//! The controller's HTTP API under abuse, against the real process: bodies
//! too large (declared or chunked), bodies and headers sent slowly, idle and
//! excess connections (in all and per client), malformed and hostile bodies
//! (YAML bombs), floods on /v1/verify. Memory stays bounded, the rate limit
//! holds, the process never crashes, the probe port answers while the API
//! port is full, and /v1/rewrap never wraps to a recipient the caller chose.
//! And bounded work: caps on values, work charged by cost, probes answered
//! while the decrypting endpoints are flooded with the worst inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kseal_shared::binding::Binding;
use kseal_shared::envelope::{self, MAX_RECIPIENTS, SealedValue};
use kseal_shared::sealed_secret::MAX_VALUES;
use kseal_shared::x25519::KeyId;
use kseal_shared::{binding::Scope, sealed_secret::SealedSecret, x25519::Identity};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server's header and body timeouts (`ServerLimits::new`).
const SERVER_TIMEOUT: Duration = Duration::from_secs(10);
/// How much later than the timeout the server may act (a debug build on a
/// loaded machine is slow).
const SLACK: Duration = Duration::from_secs(20);
/// How long an answer may take at most: only a hang reaches it.
const ANSWER: Duration = Duration::from_secs(30);

fn vm_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Reads until the server closes the connection (or `limit` passes);
/// returns what was read and when it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&response).into_owned(),
                    Some(started.elapsed()),
                );
            }
            Ok(Ok(n)) => response.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&response).into_owned(), None),
        }
    }
}

/// A connection to `addr` from the loopback address `from` (all of
/// 127.0.0.0/8 is loopback on Linux): another client, as the server sees it.
async fn connect_from(from: [u8; 4], addr: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr.parse().unwrap()).await.unwrap()
}

/// Whether the server refused the connection: closed it without answering
/// a request sent on it (one it serves answers at once).
async fn refused(stream: &mut TcpStream) -> bool {
    // Closed already: the write may fail.
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .is_err()
    {
        return true;
    }
    let (response, closed) = read_until_closed(stream, ANSWER).await;
    response.is_empty() && closed.is_some()
}

/// A connection from `from` that the server serves: one request answered
/// on it, then left open and idle. `None` when the server closed it
/// without an answer (refused it).
async fn served_from(from: [u8; 4], addr: &str) -> Option<TcpStream> {
    let mut stream = connect_from(from, addr).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut response = Vec::new();
    let mut buffer = [0u8; 1024];
    // The answer ends with its body, "ok\n".
    while !response.ends_with(b"ok\n") {
        match tokio::time::timeout(ANSWER, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return None,
            Ok(Ok(n)) => response.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("no answer on a connection from {from:?} within {ANSWER:?}"),
        }
    }
    assert_eq!(
        status_of(&String::from_utf8_lossy(&response)),
        200,
        "{from:?}"
    );
    Some(stream)
}

/// `count` connections from `from` that the server serves (see
/// [`served_from`]), opened one after another. A refused one is tried
/// again: the server may not have let go of an earlier connection yet.
async fn hold(from: [u8; 4], addr: &str, count: usize) -> Vec<TcpStream> {
    let deadline = Instant::now() + WAIT;
    let mut held = Vec::new();
    while held.len() < count {
        match served_from(from, addr).await {
            Some(stream) => held.push(stream),
            None => {
                assert!(
                    Instant::now() < deadline,
                    "{from:?}: only {} connections were served",
                    held.len()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    held
}

/// `POST path` with a JSON body from the loopback address `from`; the
/// status (0: no answer).
async fn post_from(from: [u8; 4], addr: &str, path: &str, body: &[u8]) -> u16 {
    let exchange = async {
        let mut stream = connect_from(from, addr).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.ok()?;
        let _ = stream.write_all(body).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        Some(status_of(&String::from_utf8_lossy(&response)))
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn http_api_survives_abuse() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    let mut controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let pid = controller.process.pid().unwrap();
    let recipients = fixture.recipients().await;
    let addr = format!("127.0.0.1:{}", controller.port);
    let good = seal(
        &plain("app", "db", &[("password", "abuse-canary-1")]),
        Scope::Strict,
        &recipients,
    );
    let good_json = serde_json::to_vec(&good).unwrap();

    // Oversized, declared: refused before the body is read.
    let (status, _) = controller
        .post(
            "/v1/verify",
            "application/json",
            vec![b' '; 3 * 1024 * 1024],
        )
        .await;
    assert_eq!(status, 413);
    // Oversized, chunked (no Content-Length): refused once over the limit.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < 4 * 1024 * 1024 {
        let head = format!("{:x}\r\n", chunk.len());
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(&chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
        sent += chunk.len();
    }
    let (response, closed) = read_until_closed(&mut stream, ANSWER).await;
    // The server answers 413 and closes; a reset may beat the answer to us.
    assert!(
        status_of(&response) == 413 || (response.is_empty() && closed.is_some()),
        "{response}"
    );

    // Malformed and hostile bodies: clear 4xx, fast (seconds at most, in a
    // debug build on a loaded machine; no body makes it work for long).
    let bomb = {
        let mut text = String::from(
            "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for level in 1..10 {
            let items = [format!("*a{}", level - 1).as_str(); 8].join(",");
            text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        format!(
            "apiVersion: kseal.dev/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: x\nspec:\n  scope: strict\n  encryptedData: {{}}\n  bomb:\n{}",
            text.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        )
    };
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("application/json", b"{not json".to_vec(), 400),
        ("application/json", b"".to_vec(), 400),
        ("application/json", deep_json.into_bytes(), 400),
        (
            "application/json",
            b"{\"metadata\":{},\"spec\":{\"encryptedData\":{}}}".to_vec(),
            400,
        ),
        ("application/yaml", bomb.into_bytes(), 400),
        ("application/yaml", vec![0xff, 0xfe, 0x00], 400),
        ("text/plain", good_json.clone(), 415),
        ("application/x-www-form-urlencoded", good_json.clone(), 415),
        ("multipart/form-data; boundary=x", good_json.clone(), 415),
    ];
    for (content_type, body, expected) in cases {
        let started = Instant::now();
        // Paced under the rate limit, so 429 never hides the answer.
        tokio::time::sleep(Duration::from_millis(60)).await;
        let (status, answer) = controller.post("/v1/verify", content_type, body).await;
        assert_eq!(status, expected, "{content_type}: {answer}");
        assert!(started.elapsed() < ANSWER, "{content_type}: slow answer");
        assert!(
            !answer.contains("lol"),
            "the error quotes the body: {answer}"
        );
    }

    // A slow body: 408 once the body timeout passes, then the connection
    // closes.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"a\":",
        )
        .await
        .unwrap();
    let (response, closed) = read_until_closed(&mut stream, SERVER_TIMEOUT + SLACK).await;
    assert_eq!(status_of(&response), 408, "{response}");
    let closed = closed.expect("a slow body kept its connection open");
    assert!(
        closed >= SERVER_TIMEOUT - Duration::from_secs(1),
        "{closed:?}"
    );

    // Slow headers (slowloris) and idle connections: closed after the header
    // timeout, even while bytes keep trickling in.
    let trickle = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut stream = TcpStream::connect(&addr).await.unwrap();
            let started = Instant::now();
            let head = b"GET /healthz HTTP/1.1\r\nX-Slow: ";
            let mut buffer = [0u8; 64];
            // A byte every 500 ms (a header that never ends), watching for
            // the close meanwhile, until the server has had all its slack.
            for sent in 0.. {
                if started.elapsed() >= SERVER_TIMEOUT + SLACK {
                    break;
                }
                let byte = head.get(sent).copied().unwrap_or(b'a');
                if stream.write_all(&[byte]).await.is_err() {
                    return Some(started.elapsed());
                }
                let wait = Duration::from_millis(500);
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(wait, stream.read(&mut buffer)).await
                {
                    return Some(started.elapsed());
                }
            }
            None
        }
    });
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    let (_, idle_closed) = read_until_closed(&mut idle, SERVER_TIMEOUT + SLACK).await;
    assert!(idle_closed.is_some(), "an idle connection stayed open");
    let trickled = trickle.await.unwrap();
    assert!(
        trickled.is_some_and(|t| t < SERVER_TIMEOUT + SLACK),
        "a slowloris connection stayed open: {trickled:?}"
    );

    // Many connections at once, each answered once and then left idle. One
    // client (address) gets at most 64: its next one is closed at once,
    // while another client is still served. Four clients fill the global cap
    // of 256: a fifth is closed at once, while the probe port still answers.
    // The idle ones go after the header timeout, and the API answers again.
    let mut attempt = 0;
    let mut held = loop {
        attempt += 1;
        // No held connection times out before `started` + the header
        // timeout; an attempt that takes longer proves nothing, and is made
        // again.
        let started = Instant::now();
        let mut held = hold([127, 0, 0, 1], &addr, 64).await;
        let mut extra = connect_from([127, 0, 0, 1], &addr).await;
        let extra_refused = refused(&mut extra).await;
        // Another client (the first of three more) is served meanwhile.
        for client in 2..=4 {
            held.extend(hold([127, 0, 0, client], &addr, 64).await);
        }
        let mut refused_count = 0;
        for _ in 0..8 {
            let mut stream = connect_from([127, 0, 0, 5], &addr).await;
            if refused(&mut stream).await {
                refused_count += 1;
            }
        }
        let probe_started = Instant::now();
        let (probe, _) = http(&controller.health_url("/healthz"), "GET", None, None).await;
        let probe_took = probe_started.elapsed();
        if started.elapsed() < SERVER_TIMEOUT {
            assert!(extra_refused, "a client got more than 64 connections");
            assert_eq!(
                refused_count, 8,
                "connections beyond the global cap were served"
            );
            assert_eq!(probe, 200, "the probe port is starved by the API port");
            println!(
                "probe answered in {probe_took:?} with the API port at its connection cap \
                 (attempt {attempt}, {:?})",
                started.elapsed()
            );
            break held;
        }
        assert!(
            attempt < 3,
            "filling the connection cap took longer than the header timeout {attempt} times"
        );
        drop(held);
    };
    // Idle: closed by the server after the header timeout, which frees their
    // slots for the flood below.
    for stream in &mut held {
        let (_, closed) = read_until_closed(stream, SERVER_TIMEOUT + SLACK).await;
        assert!(closed.is_some(), "an idle connection stayed open");
    }
    eventually("API answers after a connection flood", || async {
        controller.get("/healthz").await.0 == 200
    })
    .await;
    drop(held);

    // A flood on /v1/verify: at most the rate (20/s) plus its burst get
    // through, the rest get 429; nothing crashes; memory stays bounded.
    // Each client from an address of its own, far from the per-client cap
    // (a connection the server has not let go of yet still counts).
    let rss_before = vm_kib(pid, "VmRSS:");
    let started = Instant::now();
    let results: Vec<u16> = futures::future::join_all((0..32u8).map(|client| {
        let (addr, body) = (&addr, &good_json);
        async move {
            let mut statuses = Vec::new();
            for _ in 0..20 {
                statuses.push(post_from([127, 0, 1, client + 1], addr, "/v1/verify", body).await);
            }
            statuses
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let elapsed = started.elapsed().as_secs_f64();
    let ok = results.iter().filter(|s| **s == 200).count();
    let limited = results.iter().filter(|s| **s == 429).count();
    let other: Vec<_> = results
        .iter()
        .filter(|s| ![200, 429, 503].contains(*s))
        .collect();
    assert!(
        other.is_empty(),
        "unexpected answers under flood: {other:?}"
    );
    assert!(limited > 0, "no request was rate-limited");
    assert!(
        (ok as f64) <= 20.0 * elapsed + 20.0 + 2.0,
        "{ok} requests passed in {elapsed:.1}s at 20/s"
    );
    let rss_after = vm_kib(pid, "VmRSS:");
    let peak = vm_kib(pid, "VmHWM:");
    println!(
        "flood: {} requests in {elapsed:.1}s, {ok} ok, {limited} rate-limited; RSS {} -> {} MiB, peak {} MiB",
        results.len(),
        rss_before / 1024,
        rss_after / 1024,
        peak / 1024
    );
    assert!(peak < 300 * 1024, "controller peak RSS {} MiB", peak / 1024);

    // Rewrap: whatever the caller adds (fields, query, headers), values come
    // back sealed to the cluster's key only.
    tokio::time::sleep(Duration::from_secs(2)).await; // refill the bucket
    let attacker = Identity::generate();
    let attacker_recipient = attacker.recipient().to_string();
    let mut body: serde_json::Value = serde_json::to_value(&good).unwrap();
    body["spec"]["recipients"] = serde_json::json!([attacker_recipient]);
    body["recipients"] = serde_json::json!([attacker_recipient]);
    let url = controller.url(&format!("/v1/rewrap?recipient={attacker_recipient}"));
    let (status, answer) = http(
        &url,
        "POST",
        Some("application/json"),
        Some(serde_json::to_vec(&body).unwrap()),
    )
    .await;
    if status == 200 {
        let rewrapped: SealedSecret = serde_json::from_str(&answer).unwrap();
        for value in rewrapped.spec.encrypted_data.values() {
            assert_eq!(
                value.split(':').nth(2).unwrap(),
                recipients[0].key_id().to_string(),
                "rewrap wrapped to a key the caller chose"
            );
        }
    } else {
        assert_eq!(status, 400, "{answer}");
    }
    assert!(!answer.contains(&attacker.key_id().to_string()));
    // A value sealed to the attacker and the cluster is current: it comes
    // back byte for byte (the attacker, already a recipient, gains nothing,
    // and nothing is added); one sealed only to the attacker is refused.
    let both = seal(
        &plain("app", "db", &[("password", "abuse-canary-2")]),
        Scope::Strict,
        &[recipients[0].clone(), attacker.recipient().clone()],
    );
    let (status, answer) = controller
        .post(
            "/v1/rewrap",
            "application/json",
            serde_json::to_vec(&both).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let rewrapped: SealedSecret = serde_json::from_str(&answer).unwrap();
    assert_eq!(rewrapped.spec.encrypted_data, both.spec.encrypted_data);
    let theirs = seal(
        &plain("app", "db", &[("password", "abuse-canary-3")]),
        Scope::Strict,
        &[attacker.recipient().clone()],
    );
    let (status, answer) = controller
        .post(
            "/v1/rewrap",
            "application/json",
            serde_json::to_vec(&theirs).unwrap(),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("UnknownKey"), "{answer}");

    // Still the same process, and no canary in its log.
    assert!(controller.process.is_running(), "the controller exited");
    assert_eq!(controller.process.pid(), Some(pid));
    assert!(!controller.log().contains("abuse-canary"));
}

/// The kubelet's probe timeout this test holds `/healthz` and `/readyz` to
/// (the chart gives them 2 s).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The kubelet restarts the pod after this many probes in a row fail (its
/// default `failureThreshold`); one slow probe is not a restart.
const FAILURE_THRESHOLD: usize = 3;
/// No probe may take longer than this, even alone.
const PROBE_HARD_MAX: Duration = Duration::from_secs(5);
/// Probes a flood takes at least, however slow they are.
const MIN_PROBES: usize = 20;
/// How long a flood lasts at most, however slow the machine.
const FLOOD_MAX: Duration = Duration::from_secs(120);

/// A value naming `held` (keys the controller holds) plus `junk` other key
/// ids, whose X25519 stanzas were all wrapped to other keys: structurally
/// valid, so a reader runs one Diffie-Hellman per held key it names, and
/// every one fails.
fn worst_value(held: &[KeyId], junk: usize) -> String {
    let value = renamed(&throwaway_value(held.len() + junk), held);
    let parsed = SealedValue::parse(&value).unwrap();
    assert!(held.iter().all(|id| parsed.key_ids().contains(id)));
    value
}

/// A value sealed to `count` throwaway keys (nobody holds them).
fn throwaway_value(count: usize) -> String {
    let recipients: Vec<_> = (0..count)
        .map(|_| Identity::generate().recipient().clone())
        .collect();
    let binding = Binding::new(Scope::Strict, "app", "flood", "v");
    envelope::seal(b"flood", &binding, &recipients)
        .unwrap()
        .encode()
}

/// `value` with its first `ids.len()` key ids replaced by `ids`, in the
/// key-ids field and in the key-ids stanza: it still parses (the age
/// header's MAC, which no parser checks, no longer matches). Costs no key
/// operation, so any number of values can name any key ids.
fn renamed(value: &str, ids: &[KeyId]) -> String {
    use base64::Engine;
    use base64::prelude::BASE64_STANDARD;
    let fields: Vec<&str> = value.split(':').collect();
    let mut named: Vec<String> = fields[2].split(',').map(str::to_owned).collect();
    let mut wrapped = BASE64_STANDARD.decode(fields[4]).unwrap();
    for (slot, id) in ids.iter().enumerate() {
        // The key-ids stanza names the key ids as text: swap them there too.
        let theirs = std::mem::replace(&mut named[slot], id.to_string());
        let at = wrapped
            .windows(theirs.len())
            .position(|w| w == theirs.as_bytes())
            .unwrap();
        wrapped[at..at + theirs.len()].copy_from_slice(named[slot].as_bytes());
    }
    let value = format!(
        "kseal:v2:{}:{}:{}:{}:{}:{}",
        named.join(","),
        fields[3],
        BASE64_STANDARD.encode(&wrapped),
        fields[5],
        fields[6],
        fields[7]
    );
    assert_eq!(
        SealedValue::parse(&value).unwrap().key_ids().len(),
        named.len()
    );
    value
}

/// A SealedSecret `app/<name>` (JSON) with `count` copies of `value`.
fn object_of(name: &str, value: &str, count: usize) -> serde_json::Value {
    let data: serde_json::Map<String, serde_json::Value> = (0..count)
        .map(|i| (format!("k{i:04}"), serde_json::Value::from(value)))
        .collect();
    serde_json::json!({
        "apiVersion": "kseal.dev/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": "app"},
        "spec": {"scope": "strict", "encryptedData": data},
    })
}

/// What a flood saw: answers by status, and the probes' latencies.
#[derive(Default)]
struct Flooded {
    statuses: std::collections::BTreeMap<u16, usize>,
    /// Work (key operations) of the requests that were let through.
    admitted_work: u64,
    probes: Vec<(u16, Duration)>,
    elapsed: Duration,
}

/// Floods `/v1/verify` and `/v1/rewrap` with `bodies` (path, body, cost)
/// from `workers` loops, while probing `/healthz` and `/readyz` on the
/// probe port every 100 ms: for `length`, and on a slow machine until
/// [`MIN_PROBES`] were taken and `min_work` was let through, up to
/// [`FLOOD_MAX`]. Loopback only, bounded.
async fn flood(
    controller: &Controller,
    bodies: &[(&'static str, Vec<u8>, u64)],
    workers: usize,
    length: Duration,
    min_work: u64,
) -> Flooded {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let started = Instant::now();
    let deadline = started + length;
    let flooding = Arc::new(AtomicBool::new(true));
    let admitted = Arc::new(AtomicU64::new(0));
    let loops = (0..workers).map(|worker| {
        let bodies: Vec<_> = bodies
            .iter()
            .map(|(path, body, cost)| (controller.url(path), body.clone(), *cost))
            .collect();
        let flooding = flooding.clone();
        let admitted = admitted.clone();
        async move {
            let mut seen = Vec::new();
            let mut turn = worker;
            while flooding.load(Ordering::SeqCst) {
                let (url, body, cost) = &bodies[turn % bodies.len()];
                turn += 1;
                let status = http(url, "POST", Some("application/json"), Some(body.clone()))
                    .await
                    .0;
                if status != 429 && status != 503 {
                    admitted.fetch_add(*cost, Ordering::SeqCst);
                }
                seen.push((status, *cost));
            }
            seen
        }
    });
    // The prober runs on a thread of its own, so the flood's clients (on
    // this test's runtime) cannot delay it: what it measures is the server.
    let health_addr = format!("127.0.0.1:{}", controller.health_port);
    let flooding_on = flooding.clone();
    let admitted_so_far = admitted.clone();
    let prober = std::thread::spawn(move || {
        let mut probes = Vec::new();
        let mut path = "/healthz";
        while (Instant::now() < deadline
            || probes.len() < MIN_PROBES
            || admitted_so_far.load(Ordering::SeqCst) < min_work)
            && started.elapsed() < FLOOD_MAX
        {
            probes.push(probe(&health_addr, path));
            path = if path == "/healthz" {
                "/readyz"
            } else {
                "/healthz"
            };
            std::thread::sleep(Duration::from_millis(100));
        }
        // The prober ends the flood: no part of it goes unprobed.
        flooding_on.store(false, Ordering::SeqCst);
        probes
    });
    let seen = futures::future::join_all(loops).await;
    let probes = prober.join().unwrap();
    let mut flooded = Flooded {
        probes,
        elapsed: started.elapsed(),
        ..Flooded::default()
    };
    for (status, cost) in seen.into_iter().flatten() {
        *flooded.statuses.entry(status).or_default() += 1;
        if status != 429 && status != 503 {
            flooded.admitted_work += cost;
        }
    }
    flooded
}

/// One probe as the kubelet makes it: connect, GET, read the answer, with a
/// 10 s limit; returns the status (0: no answer) and how long it took.
fn probe(addr: &str, path: &str) -> (u16, Duration) {
    use std::io::{Read, Write};
    let started = Instant::now();
    let limit = Duration::from_secs(10);
    let answer = (|| {
        let mut stream = std::net::TcpStream::connect_timeout(&addr.parse().ok()?, limit).ok()?;
        stream.set_read_timeout(Some(limit)).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(status_of(&response))
    })();
    (answer.unwrap_or(0), started.elapsed())
}

impl Flooded {
    /// Every probe answered 200, none took over [`PROBE_HARD_MAX`], and
    /// never [`FAILURE_THRESHOLD`] in a row over the probe timeout (what
    /// would make the kubelet restart the pod); returns the slowest.
    fn assert_probes_answered(&self, what: &str) -> Duration {
        assert!(self.probes.len() >= MIN_PROBES, "{what}: too few probes");
        let mut slow_in_a_row = 0;
        for (status, took) in &self.probes {
            assert_eq!(*status, 200, "{what}: a probe failed");
            assert!(
                *took < PROBE_HARD_MAX,
                "{what}: a probe took {took:?} (at most {PROBE_HARD_MAX:?})"
            );
            slow_in_a_row = if *took < PROBE_TIMEOUT {
                0
            } else {
                slow_in_a_row + 1
            };
            assert!(
                slow_in_a_row < FAILURE_THRESHOLD,
                "{what}: {slow_in_a_row} probes in a row took over {PROBE_TIMEOUT:?}: {:?}",
                self.probes
            );
        }
        self.probes.iter().map(|(_, took)| *took).max().unwrap()
    }

    fn median_probe(&self) -> Duration {
        let mut took: Vec<Duration> = self.probes.iter().map(|(_, t)| *t).collect();
        took.sort();
        took[took.len() / 2]
    }
}

/// Work is bounded per object and per request, charged by what it costs,
/// done off the async workers; the probes have a port of their own and
/// answer within their timeout while both decrypting endpoints are flooded
/// with the worst inputs the caps allow: the most values per object, each
/// naming every key the controller holds (so every Diffie-Hellman runs,
/// and fails), the most stanzas per value, values that really re-wrap.
/// The reconciler refuses an object over the value cap before decrypting.
#[tokio::test]
async fn work_is_bounded_and_probes_stay_answered() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    // A small work budget first (10 key operations a second, a burst of 10),
    // so a request at the cap leaves it in debt for minutes, however slow
    // this build and machine are.
    let controller = fixture.controller(
        "kseal-controller",
        &["--key-renew-period", "0", "--api-work-rate", "10"],
    );
    controller.wait_healthy().await;
    let (status, body) = http(&controller.health_url("/healthz"), "GET", None, None).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"), "the probe port");

    // Two held keys: the first, and the active one after a rotation.
    let old = fixture.recipients().await[0].clone();
    let config_maps: Api<ConfigMap> = Api::namespaced(fixture.client.clone(), NAMESPACE);
    let patch = serde_json::json!({"data": {"rotate-requested-at": "2026-01-01T00:00:00Z"}});
    config_maps
        .patch(
            "kseal-key-operations",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    eventually("a second key", || async {
        let (_, keys) = controller.get("/v1/public-keys").await;
        fixture.recipients().await[0].key_id() != old.key_id()
            && keys.contains(&old.key_id().to_string())
    })
    .await;
    let active = fixture.recipients().await[0].clone();
    let held = [old.key_id(), active.key_id()];

    // The worst bodies the caps allow.
    let two_dh = worst_value(&held, 0);
    let max_stanzas = worst_value(&held, MAX_RECIPIENTS - held.len());
    let fits = (2 * 1024 * 1024 - 4096) / (max_stanzas.len() + 12);
    let stanza_count = fits.min(MAX_VALUES);
    let verify_max_values = serde_json::to_vec(&object_of("flood", &two_dh, MAX_VALUES)).unwrap();
    let verify_max_stanzas =
        serde_json::to_vec(&object_of("flood", &max_stanzas, stanza_count)).unwrap();
    assert!(verify_max_stanzas.len() < 2 * 1024 * 1024);
    let names: Vec<String> = (0..MAX_VALUES).map(|i| format!("k{i:04}")).collect();
    let values: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "flood-canary")).collect();
    // Sealed to the old key: every value really unwraps and re-wraps.
    let rewrap_max_values = serde_json::to_vec(&seal(
        &plain("app", "flood", &values),
        Scope::Strict,
        std::slice::from_ref(&old),
    ))
    .unwrap();
    let over_cap = serde_json::to_vec(&object_of("flood", &two_dh, MAX_VALUES + 1)).unwrap();
    // The batch endpoint: the same caps for the batch as a whole. Four
    // objects of a quarter of the values each, sealed to the old key, cost
    // what the one object at the cap costs; two halves plus one value are
    // over the cap, as are more objects than MAX_VALUES (even empty ones).
    let quarter: Vec<serde_json::Value> = (0..4)
        .map(|q| {
            let part: Vec<(&str, &str)> =
                values[q * MAX_VALUES / 4..(q + 1) * MAX_VALUES / 4].to_vec();
            serde_json::to_value(seal(
                &plain("app", &format!("flood-{q}"), &part),
                Scope::Strict,
                std::slice::from_ref(&old),
            ))
            .unwrap()
        })
        .collect();
    let batch_max_values = serde_json::to_vec(&serde_json::json!({ "items": quarter })).unwrap();
    let batch_over_cap = serde_json::to_vec(&serde_json::json!({ "items": [
        object_of("half-a", &two_dh, MAX_VALUES / 2),
        object_of("half-b", &two_dh, MAX_VALUES / 2 + 1),
    ]}))
    .unwrap();
    let empty: Vec<serde_json::Value> = (0..=MAX_VALUES)
        .map(|i| object_of(&format!("e{i}"), &two_dh, 0))
        .collect();
    let batch_too_many = serde_json::to_vec(&serde_json::json!({ "items": empty })).unwrap();
    // Re-wrapping to the one active key: two operations (an ephemeral key
    // and a Diffie-Hellman) besides the unwrap.
    let (held_count, wrap_ops) = (held.len() as u64, 2);
    let verify_cost = MAX_VALUES as u64 * held_count;
    let stanzas_cost = stanza_count as u64 * held_count;
    let rewrap_cost = MAX_VALUES as u64 * (1 + wrap_ops);

    // Over the value cap: refused before any work, on both endpoints.
    for path in ["/v1/verify", "/v1/rewrap"] {
        let (status, answer) = controller
            .post(path, "application/json", over_cap.clone())
            .await;
        assert_eq!(status, 413, "{path}: {answer}");
        assert!(answer.contains(&MAX_VALUES.to_string()), "{answer}");
    }
    for body in [&batch_over_cap, &batch_too_many] {
        let (status, answer) = controller
            .post("/v1/rewrap-batch", "application/json", body.clone())
            .await;
        assert_eq!(status, 413, "/v1/rewrap-batch: {answer}");
        assert!(answer.contains(&MAX_VALUES.to_string()), "{answer}");
    }
    // At the cap: decrypted (every value fails: wrapped to other keys), and
    // charged its work, so the next request finds the budget spent, however
    // cheap. (Under a request budget alone, both would pass.)
    let timed = Instant::now();
    let (status, answer) = controller
        .post("/v1/verify", "application/json", verify_max_values.clone())
        .await;
    let one_request = timed.elapsed();
    assert_eq!(status, 422, "{answer}");
    let good = serde_json::to_vec(&seal(
        &plain("app", "db", &[("password", "p")]),
        Scope::Strict,
        std::slice::from_ref(&active),
    ))
    .unwrap();
    let (status, answer) = controller
        .post("/v1/verify", "application/json", good.clone())
        .await;
    assert_eq!(
        status, 429,
        "a request after {verify_cost} key operations: {answer}"
    );
    let (status, answer) = controller
        .post("/v1/verify", "application/json", verify_max_values.clone())
        .await;
    assert_eq!(status, 429, "{answer}");
    assert!(
        answer.contains(&format!("costs {verify_cost} key operations")),
        "{answer}"
    );
    println!(
        "cost: verify of {MAX_VALUES} values x {held_count} held keys = {verify_cost} key operations \
         ({one_request:?} for the request); {stanza_count} values of {MAX_RECIPIENTS} stanzas = {stanzas_cost}; \
         rewrap of {MAX_VALUES} values = {rewrap_cost}"
    );

    // An object over the cap never gets in: the CRD caps encryptedData at
    // MAX_VALUES (the reconciler's TooManyValues stays for objects made
    // before that). One at the cap is decrypted (and fails).
    let over: SealedSecret =
        serde_json::from_value(object_of("too-many", &two_dh, MAX_VALUES + 1)).unwrap();
    let refused = fixture
        .sealed_secrets("app")
        .create(&PostParams::default(), &over)
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(status)) if status.code == 422
            && status.message.contains("must have at most 1024 items")),
        "{refused:?}"
    );
    let at_cap: SealedSecret =
        serde_json::from_value(object_of("at-cap", &two_dh, MAX_VALUES)).unwrap();
    fixture.apply(&at_cap).await;
    let reason = fixture.wait_ready("app", "at-cap", "False").await;
    assert_ne!(reason, "TooManyValues");
    assert!(
        fixture
            .secrets("app")
            .get_opt("at-cap")
            .await
            .unwrap()
            .is_none()
    );

    // Flood with the default budgets: work let through stays within the
    // work budget (2,000 key operations a second, its burst, one request).
    drop(controller);
    let controller = fixture.controller("kseal-controller-defaults", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let bodies = [
        ("/v1/verify", verify_max_values.clone(), verify_cost),
        ("/v1/verify", verify_max_stanzas.clone(), stanzas_cost),
        ("/v1/rewrap", rewrap_max_values.clone(), rewrap_cost),
        ("/v1/rewrap-batch", batch_max_values.clone(), rewrap_cost),
    ];
    let flooded = flood(&controller, &bodies, 6, Duration::from_secs(10), 0).await;
    let slowest = flooded.assert_probes_answered("default budgets");
    let seconds = flooded.elapsed.as_secs_f64();
    let allowed = 2000.0 * seconds + 2000.0 + rewrap_cost.max(verify_cost) as f64;
    assert!(
        (flooded.admitted_work as f64) <= allowed,
        "{} key operations let through in {seconds:.1}s",
        flooded.admitted_work
    );
    assert!(flooded.statuses.get(&429).copied().unwrap_or(0) > 0);
    println!(
        "flood, default budgets: answers {:?} in {seconds:.1}s, {} key operations let through; \
         probes: {} answered, median {:?}, slowest {slowest:?}",
        flooded.statuses,
        flooded.admitted_work,
        flooded.probes.len(),
        flooded.median_probe()
    );

    // Flood with the budgets lifted: the crypto pool alone keeps the async
    // workers free, so the probes still answer while every core decrypts.
    drop(controller);
    let controller = fixture.controller(
        "kseal-controller-unlimited",
        &[
            "--key-renew-period",
            "0",
            "--api-rate",
            "1000000",
            "--api-work-rate",
            "1000000000",
        ],
    );
    controller.wait_healthy().await;
    // At least the work asserted below, on a slow machine too.
    let flooded = flood(
        &controller,
        &bodies,
        8,
        Duration::from_secs(10),
        4 * verify_cost,
    )
    .await;
    let slowest = flooded.assert_probes_answered("no budgets");
    let seconds = flooded.elapsed.as_secs_f64();
    assert_eq!(flooded.statuses.get(&429), None, "{:?}", flooded.statuses);
    assert!(
        flooded.admitted_work >= 4 * verify_cost,
        "the flood did little work: {:?}",
        flooded.statuses
    );
    println!(
        "flood, no budgets: answers {:?} in {seconds:.1}s, {} key operations ({:.0}/s); \
         probes: {} answered, median {:?}, slowest {slowest:?}",
        flooded.statuses,
        flooded.admitted_work,
        flooded.admitted_work as f64 / seconds,
        flooded.probes.len(),
        flooded.median_probe()
    );
    assert!(!controller.log().contains("flood-canary"));
}

/// `count` scrapes of `/metrics` on `port` at once, each reading nothing
/// for 5 s (a receive buffer of 4 KiB, so the server holds what it has
/// not sent), then read to the end: the answers by status, and the
/// controller's RSS while they were held.
async fn slow_scrapes(
    port: u16,
    count: usize,
    pid: u32,
) -> (std::collections::BTreeMap<u16, usize>, u64) {
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut slow = Vec::new();
    for _ in 0..count {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss = vm_kib(pid, "VmRSS:");
    let mut statuses = std::collections::BTreeMap::new();
    for stream in &mut slow {
        let (response, _) = read_until_closed(stream, ANSWER).await;
        *statuses.entry(status_of(&response)).or_default() += 1;
    }
    (statuses, rss)
}

/// SealedSecrets whose values name key ids nobody holds (16 objects of 90
/// values, each naming 64 distinct ids: 92,160 ids, the shape of the
/// report). Before, `/metrics` had a `kseal_sealed_secrets` series per id
/// (92,161 series, 4.6 MB a scrape) and every scrape rendered a copy of its
/// own, so 48 slow scrapers through the API port took the controller from
/// 114 to 307 MiB while they waited (678 MiB at the peak). Now: one series
/// per key the cluster holds plus one for all other ids; one rendering a
/// second, shared by concurrent scrapes; the API port's scrapes are
/// rate-limited (429), while the probe port (the kubelet and Prometheus)
/// answers every one.
#[tokio::test]
async fn metrics_are_bounded_whatever_values_name() {
    const OBJECTS: usize = 16;
    const VALUES: usize = 90;
    const SCRAPERS: usize = 48;
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    let mut controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let pid = controller.process.pid().unwrap();
    let recipients = fixture.recipients().await;
    let cluster_key = recipients[0].key_id();
    fixture
        .apply(&seal(
            &plain("app", "db", &[("password", "metrics-canary")]),
            Scope::Strict,
            &recipients,
        ))
        .await;
    assert_eq!(fixture.wait_ready("app", "db", "True").await, "Unsealed");

    let base = throwaway_value(MAX_RECIPIENTS);
    for object in 0..OBJECTS {
        let data: serde_json::Map<String, serde_json::Value> = (0..VALUES)
            .map(|value| {
                let ids: Vec<KeyId> = (0..MAX_RECIPIENTS)
                    .map(|i| KeyId::of_recipient_str(&format!("foreign-{object}-{value}-{i}")))
                    .collect();
                (format!("k{value:03}"), renamed(&base, &ids).into())
            })
            .collect();
        let sealed: SealedSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "kseal.dev/v1alpha1",
            "kind": "SealedSecret",
            "metadata": {"name": format!("foreign-{object}"), "namespace": "app"},
            "spec": {"scope": "strict", "encryptedData": data},
        }))
        .unwrap();
        fixture.apply(&sealed).await;
    }
    let scrape = || async { http(&controller.health_url("/metrics"), "GET", None, None).await };
    eventually("the controller counts every object", || async {
        scrape()
            .await
            .1
            .contains(&format!("kseal_sealed_secrets_without_key {OBJECTS}"))
    })
    .await;
    // Each foreign object fails naming 64 made-up key ids: its Warning
    // Event names a few and counts the rest, and the API server takes it
    // (a note over 1,024 bytes would be refused, and logged).
    let events: Api<Event> = Api::namespaced(fixture.client.clone(), "app");
    let warnings = || async {
        let list = events.list(&Default::default()).await.unwrap();
        list.items
            .into_iter()
            .filter(|event| event.type_.as_deref() == Some("Warning"))
            .map(|event| {
                (
                    event.reason.unwrap_or_default(),
                    event.message.unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>()
    };
    eventually("a Warning Event for every foreign object", || async {
        warnings().await.len() >= OBJECTS
    })
    .await;
    for (reason, message) in warnings().await {
        assert_eq!(reason, "UnknownKey", "{message}");
        assert!(message.contains(" and 59 more"), "{message}");
    }
    assert!(
        !controller.log().contains("could not publish an event"),
        "{}",
        controller.log()
    );
    let (status, body) = scrape().await;
    assert_eq!(status, 200);
    let series: Vec<&str> = body
        .lines()
        .filter(|line| line.starts_with("kseal_sealed_secrets{"))
        .collect();
    println!(
        "{} kseal_sealed_secrets series, {} bytes a scrape",
        series.len(),
        body.len()
    );

    // Slow scrapers, first through the API port (where the service proxy
    // leads), then the probe port (no scrape budget: every one served).
    let rss_before = vm_kib(pid, "VmRSS:");
    let (api, api_rss) = slow_scrapes(controller.port, SCRAPERS, pid).await;
    let (probes, probes_rss) = slow_scrapes(controller.health_port, SCRAPERS, pid).await;
    println!(
        "{SCRAPERS} slow scrapes: API port {api:?}, RSS {} -> {} MiB while held; \
         probe port {probes:?}, {} MiB while held; peak {} MiB",
        rss_before / 1024,
        api_rss / 1024,
        probes_rss / 1024,
        vm_kib(pid, "VmHWM:") / 1024
    );

    assert_eq!(
        series.len(),
        2,
        "one series for the cluster's key, one for all others:\n{}",
        series.join("\n")
    );
    assert!(
        body.contains(&format!(
            "kseal_sealed_secrets{{key_id=\"{cluster_key}\"}} 1\n"
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "kseal_sealed_secrets{{key_id=\"other\"}} {OBJECTS}\n"
        )),
        "{body}"
    );
    assert!(body.len() < 16 * 1024, "{} bytes a scrape", body.len());
    for (port, rss) in [("API", api_rss), ("probe", probes_rss)] {
        assert!(
            rss < rss_before + 32 * 1024,
            "{SCRAPERS} slow scrapes of the {port} port took {} MiB",
            rss.saturating_sub(rss_before) / 1024
        );
    }
    let refused = api.get(&429).copied().unwrap_or(0);
    assert!(
        refused > 0 && api.contains_key(&200),
        "the API port's scrapes are not rate-limited: {api:?}"
    );
    assert_eq!(
        refused + api.get(&200).copied().unwrap_or(0),
        SCRAPERS,
        "{api:?}"
    );
    assert_eq!(
        probes.get(&200).copied(),
        Some(SCRAPERS),
        "the probe port refused a scrape: {probes:?}"
    );
    assert!(controller.process.is_running(), "the controller exited");
    assert!(!controller.log().contains("metrics-canary"));
}
