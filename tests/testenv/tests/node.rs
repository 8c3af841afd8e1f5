//! The harness's real worker node: it starts, runs a Pod from a locally
//! built image, `kubectl logs` works through the authenticated kubelet API,
//! pods reach the API server through the `kubernetes` Service, the network
//! keeps pod traffic on this machine (read from routes and rules only: no
//! test sends traffic to an outside address), a second node is refused, and
//! when it stops the machine is exactly as it was before.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kseal_testenv::node::{self, net};
use kseal_testenv::{ControlPlane, HostSnapshot, Options, bins_or_skip};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

#[tokio::test]
async fn node_runs_pods_keeps_traffic_local_and_leaves_the_host_as_found() {
    if bins_or_skip().is_none() || !node::node_or_skip() {
        return;
    }
    // curl reads the API server's and the kubelet's answers below.
    kseal_testenv::system::ensure_debian_packages(&["curl"]).unwrap();
    let before = HostSnapshot::take().unwrap();
    let t = Instant::now();
    let cp = ControlPlane::start_with(Options {
        node: true,
        ..Options::default()
    })
    .await
    .unwrap();
    let up = t.elapsed();
    let n = cp.node().unwrap();
    eprintln!(
        "control plane {:.1}s, node {:?}, all {:.1}s",
        cp.start_time().as_secs_f64(),
        n.startup(),
        up.as_secs_f64()
    );

    // One node per machine: a second one is refused with a clear message.
    let err = node::lock_file().unwrap_err().to_string();
    assert!(err.contains("already up on this machine"), "{err}");
    assert!(err.contains(&std::process::id().to_string()), "{err}");

    // A Pod from the locally built (imported, never pulled) pause image.
    let client = cp.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "pause"},
        "spec": {
            "containers": [{
                "name": "pause",
                "image": n.pause_image(),
                "imagePullPolicy": "Never",
                "securityContext": {
                    "runAsNonRoot": true,
                    "readOnlyRootFilesystem": true,
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            }],
        },
    }))
    .unwrap();
    let t = Instant::now();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let ip = loop {
        let p = pods.get("pause").await.unwrap();
        let status = p.status.unwrap_or_default();
        if status.phase.as_deref() == Some("Running")
            && let Some(ip) = status.pod_ip
        {
            break ip;
        }
        assert!(t.elapsed() < Duration::from_secs(180), "pod not Running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("pod Running after {:.1}s", t.elapsed().as_secs_f64());
    assert!(ip.starts_with("10.244.0."), "{ip}");

    // kubectl logs: API server -> kubelet with a client certificate, the
    // kubelet authorizing by webhook. Running means the process started,
    // not that its first line is written yet: retry for a while.
    let t = Instant::now();
    loop {
        let logs = cp.kubectl().args(["logs", "pause"]).output().unwrap();
        if logs.status.success()
            && String::from_utf8_lossy(&logs.stdout).contains("kseal-testenv pause: pid")
        {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "{logs:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // No anonymous access to the kubelet.
    let anon = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "https://{}:{}/pods",
            net::NODE_IP,
            net::KUBELET_PORT
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&anon.stdout), "401");

    // Inside the pod: routes to the pod range, the service range and the
    // node address only; no default route.
    let routes = n.in_pod_netns(&ip, &["ip", "-4", "route"]).unwrap();
    let mut dsts: Vec<&str> = routes
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    dsts.sort();
    assert_eq!(
        dsts,
        [net::SERVICE_CIDR, net::POD_CIDR, net::NODE_IP],
        "{routes}"
    );
    assert!(!routes.contains("default"), "{routes}");
    // …and the API server answers there through the `kubernetes` Service
    // (kube-proxy's rules, the lease endpoint reconciler): 401 without
    // credentials. One slow answer on a loaded machine is not a failure:
    // retry for a minute.
    let t = Instant::now();
    loop {
        let code = n.in_pod_netns(
            &ip,
            &[
                "curl",
                "-sk",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
                &format!("https://{}:443/readyz", net::KUBERNETES_SERVICE_IP),
            ],
        );
        if code.as_deref().is_ok_and(|c| c == "401") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the API server through the Service from the pod: {code:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // On the host: pod traffic to any interface but the bridge is dropped,
    // before kube-proxy's filter rules; no masquerading of the pod range.
    let mangle = run("iptables", &["-t", "mangle", "-S"]);
    let drop_rule = format!(
        "-A {} -s {} ! -o {} -m comment --comment \"kseal-testenv: pod traffic stays on this machine\" -j DROP",
        net::EGRESS_CHAIN,
        net::POD_CIDR,
        net::BRIDGE
    );
    assert!(mangle.contains(&drop_rule), "{mangle}");
    let first_forward = mangle
        .lines()
        .find(|l| l.starts_with("-A FORWARD"))
        .unwrap();
    assert_eq!(
        first_forward,
        format!("-A FORWARD -j {}", net::EGRESS_CHAIN)
    );
    let nat = run("iptables", &["-t", "nat", "-S"]);
    assert!(
        !nat.lines()
            .any(|l| l.contains(net::POD_CIDR) && l.contains("MASQUERADE")),
        "{nat}"
    );
    assert!(!nat.contains("CNI-"), "{nat}");
    let host_routes = run("ip", &["-4", "route"]);
    let bridge_route = host_routes
        .lines()
        .find(|l| l.starts_with(net::POD_CIDR))
        .unwrap();
    assert!(
        bridge_route.contains(&format!("dev {}", net::BRIDGE)),
        "{host_routes}"
    );

    // While up, the host differs in the expected places.
    let during = HostSnapshot::take().unwrap();
    let changed = during.diff(&before);
    let mut per_section = std::collections::BTreeMap::<&str, usize>::new();
    for line in &changed {
        *per_section
            .entry(line.split(':').next().unwrap())
            .or_default() += 1;
        if ["host paths", "sysctls", "cgroups", "mounts"]
            .iter()
            .any(|s| line.starts_with(s))
        {
            eprintln!("while up: {line}");
        }
    }
    eprintln!("while up, changed lines per section: {per_section:?}");
    for section in ["links", "addresses", "nft tables", "node processes"] {
        assert!(
            changed.iter().any(|l| l.starts_with(section)),
            "{section} unchanged while the node runs: {changed:#?}"
        );
    }

    let t = Instant::now();
    drop(cp);
    eprintln!("teardown {:.1}s", t.elapsed().as_secs_f64());
    let after = HostSnapshot::take().unwrap();
    let diff = after.diff(&before);
    assert!(diff.is_empty(), "the node left changes behind: {diff:#?}");
    assert!(!std::path::Path::new(node::RECORD_PATH).exists());
    // And the lock is free again.
    drop(node::lock_file().unwrap());
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}
