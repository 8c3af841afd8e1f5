//! The controller's HTTP API under abuse, against the real process: bodies
//! too large (declared or chunked), bodies and headers sent slowly, idle and
//! excess connections, malformed and hostile bodies (YAML bombs), floods on
//! /v1/verify. Memory stays bounded, the rate limit holds, the process never
//! crashes, and /v1/rewrap never wraps to a recipient the caller chose.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use kseal_shared::{binding::Scope, sealed_secret::SealedSecret, x25519::Identity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server's header and body timeouts (`ServerLimits::new`).
const SERVER_TIMEOUT: Duration = Duration::from_secs(10);
/// How much later than the timeout the server may act.
const SLACK: Duration = Duration::from_secs(5);

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
    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    // The server answers 413 and closes; a reset may beat the answer to us.
    assert!(
        status_of(&response) == 413 || (response.is_empty() && closed.is_some()),
        "{response}"
    );

    // Malformed and hostile bodies: clear 4xx, fast.
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
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{content_type}: slow answer"
        );
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
            for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if stream.write_all(&[*byte]).await.is_err() {
                    return Some(started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let mut buffer = [0u8; 64];
            matches!(stream.read(&mut buffer).await, Ok(0) | Err(_)).then(|| started.elapsed())
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

    // Many connections at once: beyond the cap they are closed at once; the
    // idle ones go after the header timeout, and the API answers again.
    let mut held = Vec::new();
    for _ in 0..400 {
        if let Ok(stream) = TcpStream::connect(&addr).await {
            held.push(stream);
        }
    }
    let mut refused = 0;
    for stream in held.iter_mut().skip(256) {
        let mut buffer = [0u8; 1];
        if matches!(
            tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await,
            Ok(Ok(0)) | Ok(Err(_))
        ) {
            refused += 1;
        }
    }
    assert!(
        refused >= 100,
        "only {refused} of 144 excess connections closed"
    );
    eventually("API answers after a connection flood", || async {
        controller.get("/healthz").await.0 == 200
    })
    .await;
    drop(held);

    // A flood on /v1/verify: at most the rate (20/s) plus its burst get
    // through, the rest get 429; nothing crashes; memory stays bounded.
    let rss_before = vm_kib(pid, "VmRSS:");
    let started = Instant::now();
    let results: Vec<u16> = futures::future::join_all((0..64).map(|_| {
        let url = controller.url("/v1/verify");
        let body = good_json.clone();
        async move {
            let mut statuses = Vec::new();
            for _ in 0..10 {
                statuses.push(
                    http(&url, "POST", Some("application/json"), Some(body.clone()))
                        .await
                        .0,
                );
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
    // A value sealed to the attacker and the cluster comes back sealed to the
    // cluster only; one sealed only to the attacker is refused.
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
    let ids = rewrapped.spec.encrypted_data["password"]
        .split(':')
        .nth(2)
        .unwrap()
        .to_owned();
    assert_eq!(ids, recipients[0].key_id().to_string());
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
