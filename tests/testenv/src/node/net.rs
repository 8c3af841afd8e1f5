//! The node's network: fixed private ranges that stay on this machine, and
//! the checks that they do not collide with the host's own routes.

use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};

use super::host::run;

/// The node's address, on `lo` (the kernel here has no `dummy` links; the
/// node address must not be loopback). The API server binds and advertises it.
pub const NODE_IP: &str = "10.250.0.1";
/// The pod range (one node, one /24) and the bridge's address in it.
pub const POD_CIDR: &str = "10.244.0.0/24";
/// The bridge's address: the pods' gateway to the service range and the node.
pub const POD_GATEWAY: &str = "10.244.0.1";
/// The service range (`--service-cluster-ip-range`).
pub const SERVICE_CIDR: &str = "10.0.0.0/24";
/// The `kubernetes` Service's address (first of the service range).
pub const KUBERNETES_SERVICE_IP: &str = "10.0.0.1";
/// The CNI bridge.
pub const BRIDGE: &str = "kseal0";
/// Debian's CNI plugins (`containernetworking-plugins`).
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// The mangle-table chain that drops pod traffic to any other interface.
pub const EGRESS_CHAIN: &str = "KSEAL-NODE-EGRESS";
/// Fixed ports of the node components (upstream defaults; one node per machine).
pub const KUBELET_PORT: u16 = 10250;
/// Kubelet healthz (127.0.0.1).
pub const KUBELET_HEALTHZ_PORT: u16 = 10248;
/// kube-proxy healthz (127.0.0.1).
pub const KUBE_PROXY_HEALTHZ_PORT: u16 = 10256;
/// kube-proxy metrics (127.0.0.1).
pub const KUBE_PROXY_METRICS_PORT: u16 = 10249;

/// An IPv4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: u32,
    len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n` or `a.b.c.d` (a /32).
    pub fn parse(s: &str) -> Result<Self> {
        let (ip, len) = s.split_once('/').unwrap_or((s, "32"));
        let ip: Ipv4Addr = ip.parse().with_context(|| format!("bad address {s:?}"))?;
        let len: u8 = len.parse().with_context(|| format!("bad prefix {s:?}"))?;
        if len > 32 {
            bail!("bad prefix length in {s:?}");
        }
        Ok(Self {
            addr: u32::from(ip) & mask(len),
            len,
        })
    }

    /// Whether the two prefixes share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let len = self.len.min(other.len);
        (self.addr & mask(len)) == (other.addr & mask(len))
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

/// Fails if a route or address of the host (other than the default route)
/// overlaps the node's ranges: they must be private to this machine.
pub fn check_ranges_free() -> Result<()> {
    let ours = [
        ("the node address", format!("{NODE_IP}/32")),
        ("the pod range", POD_CIDR.to_owned()),
        ("the service range", SERVICE_CIDR.to_owned()),
    ];
    let routes = run("ip", &["-4", "route", "show", "table", "all"])?;
    let addrs = run("ip", &["-4", "-o", "addr", "show"])?;
    let mut taken = Vec::new();
    for line in routes.lines() {
        let mut words = line.split_whitespace();
        let mut first = words.next().unwrap_or("");
        // Route types (local, broadcast, …) come before the destination.
        if matches!(
            first,
            "local" | "broadcast" | "unicast" | "multicast" | "anycast"
        ) {
            first = words.next().unwrap_or("");
        }
        if first == "default" || first.is_empty() {
            continue;
        }
        if let Ok(c) = Cidr::parse(first) {
            taken.push((line.to_owned(), c));
        }
    }
    for line in addrs.lines() {
        let mut words = line.split_whitespace();
        if let Some(addr) = words.find(|w| *w == "inet").and_then(|_| words.next())
            && let Ok(c) = Cidr::parse(addr)
        {
            taken.push((line.to_owned(), c));
        }
    }
    for (what, range) in ours {
        let ours = Cidr::parse(&range)?;
        if let Some((line, _)) = taken.iter().find(|(_, c)| c.overlaps(&ours)) {
            bail!(
                "the host already uses {what} {range} ({line:?}); a kseal-testenv node needs \
                 these ranges unused (is a node, or another cluster, already running here?)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps() {
        let cases = [
            ("10.244.0.0/24", "10.244.0.5/32", true),
            ("10.244.0.0/24", "10.244.1.0/24", false),
            ("10.0.0.0/8", "10.244.0.0/24", true),
            ("192.0.2.0/24", "10.0.0.0/24", false),
            ("0.0.0.0/0", "10.0.0.0/24", true),
            ("10.250.0.1", "10.250.0.0/30", true),
        ];
        for (a, b, want) in cases {
            let (a, b) = (Cidr::parse(a).unwrap(), Cidr::parse(b).unwrap());
            assert_eq!(a.overlaps(&b), want, "{a:?} {b:?}");
            assert_eq!(b.overlaps(&a), want, "{b:?} {a:?}");
        }
        assert!(Cidr::parse("10.0.0.0/33").is_err());
    }
}
