//! What the node changes on the host, recorded before it changes it, and the
//! teardown that puts everything back. The record is also written to a file,
//! so a node whose test binary was killed is cleaned up by the next start.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::net;

/// Host paths the kubelet, containerd and the CNI plugins may create whatever
/// their configuration says; removed at teardown when they did not exist.
pub const HOST_PATHS: [&str; 8] = [
    "/var/lib/kubelet",
    "/var/log/pods",
    "/var/log/containers",
    "/usr/libexec/kubernetes",
    "/var/lib/cni",
    "/run/netns",
    "/run/containerd",
    "/etc/cni",
];

/// Sysctls the node's components set (kubelet: kernel tunables; the bridge
/// plugin: forwarding; kube-proxy: conntrack, route_localnet, bridge
/// netfilter). Globs are expanded when the node starts.
const SYSCTLS: [&str; 14] = [
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/*",
    "net/ipv4/conf/default/*",
    "net/ipv4/conf/lo/*",
    "net/ipv6/conf/all/forwarding",
    "net/bridge/*",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_*",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// The cgroup the kubelet creates (cgroupfs driver, default cgroup root) in
/// every hierarchy.
pub const KUBEPODS: &str = "kubepods";

const CGROUP_FS: &str = "/sys/fs/cgroup";

/// How long teardown waits for killed processes to be gone and their
/// cgroups to empty: usually moments, much longer on a loaded machine.
const TEARDOWN_WAIT: Duration = Duration::from_secs(60);

/// Everything needed to undo the node's changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// The node's state dir (containerd root/state, kubelet root, logs).
    pub state_dir: PathBuf,
    /// Sysctl path under /proc/sys → value before the node started.
    pub sysctls: BTreeMap<String, String>,
    /// Host paths that did not exist before.
    pub absent_paths: Vec<PathBuf>,
    /// nftables tables (`family name`) that existed before.
    pub nft_tables: Vec<String>,
    /// Cgroup hierarchies (dirs under /sys/fs/cgroup) without `kubepods` before.
    pub cgroup_hierarchies: Vec<PathBuf>,
    /// Whether the node address was added to `lo` by us.
    pub lo_address_added: bool,
}

impl Record {
    /// Reads the host's state before the node touches it.
    pub fn take(state_dir: &Path) -> Result<Self> {
        let mut sysctls = BTreeMap::new();
        for path in sysctl_paths() {
            if let Ok(v) = fs::read_to_string(Path::new("/proc/sys").join(&path)) {
                sysctls.insert(path, v.trim().to_owned());
            }
        }
        let absent_paths = HOST_PATHS
            .iter()
            .map(PathBuf::from)
            .filter(|p| !p.exists())
            .collect();
        let mut cgroup_hierarchies = Vec::new();
        // cgroup v2 (unified): /sys/fs/cgroup itself is the hierarchy.
        // (Only v1 machines were tried so far.)
        let root = Path::new(CGROUP_FS);
        if root.join("cgroup.controllers").exists() && !root.join(KUBEPODS).exists() {
            cgroup_hierarchies.push(root.to_owned());
        }
        for h in fs::read_dir(CGROUP_FS)?.flatten() {
            let p = h.path();
            if p.is_dir() && !p.join(KUBEPODS).exists() {
                cgroup_hierarchies.push(p);
            }
        }
        Ok(Self {
            state_dir: state_dir.to_owned(),
            sysctls,
            absent_paths,
            nft_tables: nft_tables()?,
            cgroup_hierarchies,
            lo_address_added: false,
        })
    }

    /// Undoes everything, best effort: every step runs even if an earlier one
    /// failed; the errors are returned together.
    pub fn teardown(&self) -> Result<()> {
        let mut errors = Vec::new();
        let mut step = |what: &str, r: Result<()>| {
            if let Err(e) = r {
                errors.push(format!("{what}: {e:#}"));
            }
        };
        step("killing pod processes", self.kill_pod_processes());
        step("killing containerd shims", kill_shims(&self.state_dir));
        step("unmounting", self.unmount());
        step("removing cgroups", self.remove_cgroups());
        step("removing links", remove_links());
        if self.lo_address_added {
            step(
                "removing the node address",
                run(
                    "ip",
                    &["addr", "del", &format!("{}/32", net::NODE_IP), "dev", "lo"],
                )
                .map(drop),
            );
        }
        step("removing iptables rules", self.remove_firewall());
        step("restoring sysctls", self.restore_sysctls());
        for p in &self.absent_paths {
            if p.exists() {
                step(
                    &format!("removing {}", p.display()),
                    fs::remove_dir_all(p).map_err(Into::into),
                );
            }
        }
        if self.state_dir.exists() {
            step(
                &format!("removing {}", self.state_dir.display()),
                fs::remove_dir_all(&self.state_dir).map_err(Into::into),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("{}", errors.join("\n"))
        }
    }

    fn kubepods_dirs(&self) -> Vec<PathBuf> {
        self.cgroup_hierarchies
            .iter()
            .map(|h| h.join(KUBEPODS))
            .filter(|p| p.exists())
            .collect()
    }

    fn kill_pod_processes(&self) -> Result<()> {
        let deadline = Instant::now() + TEARDOWN_WAIT;
        loop {
            let mut pids = BTreeSet::new();
            for root in self.kubepods_dirs() {
                for dir in walk_dirs(&root) {
                    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
                        pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
                    }
                }
            }
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("processes left in the kubepods cgroups: {pids:?}");
            }
            kill9(&pids);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn unmount(&self) -> Result<()> {
        let mut prefixes: Vec<PathBuf> = vec![self.state_dir.clone()];
        prefixes.extend(self.absent_paths.iter().cloned());
        for _ in 0..5 {
            let mounts: Vec<PathBuf> = mount_points()?
                .into_iter()
                .filter(|m| prefixes.iter().any(|p| m.starts_with(p)))
                .collect();
            if mounts.is_empty() {
                return Ok(());
            }
            // Deepest (latest) first.
            for m in mounts.iter().rev() {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(m)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let left: Vec<PathBuf> = mount_points()?
            .into_iter()
            .filter(|m| prefixes.iter().any(|p| m.starts_with(p)))
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            bail!("still mounted: {left:?}")
        }
    }

    fn remove_cgroups(&self) -> Result<()> {
        let deadline = Instant::now() + TEARDOWN_WAIT;
        loop {
            let mut left = Vec::new();
            for root in self.kubepods_dirs() {
                let mut dirs = walk_dirs(&root);
                // Children before parents.
                dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
                for d in dirs {
                    if fs::remove_dir(&d).is_err() {
                        left.push(d);
                    }
                }
            }
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("cannot remove cgroups {left:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn remove_firewall(&self) -> Result<()> {
        let before: BTreeSet<&String> = self.nft_tables.iter().collect();
        for table in nft_tables()? {
            if before.contains(&table) {
                // A table the host had: remove only the node's chains.
                remove_chains(&table)?;
            } else {
                let mut args = vec!["delete", "table"];
                args.extend(table.split_whitespace());
                run("nft", &args)?;
            }
        }
        Ok(())
    }

    fn restore_sysctls(&self) -> Result<()> {
        for (path, old) in &self.sysctls {
            let file = Path::new("/proc/sys").join(path);
            let now = fs::read_to_string(&file).unwrap_or_default();
            if now.trim() != old {
                fs::write(&file, old).with_context(|| format!("writing {}", file.display()))?;
            }
        }
        Ok(())
    }
}

/// Sysctl paths (relative to /proc/sys) the node may change.
fn sysctl_paths() -> Vec<String> {
    let mut out = Vec::new();
    for pattern in SYSCTLS {
        if let Some(dir) = pattern.strip_suffix("/*") {
            expand(dir, "", &mut out);
        } else if let Some((dir, prefix)) = pattern.rsplit_once('/')
            && let Some(prefix) = prefix.strip_suffix('*')
        {
            expand(dir, prefix, &mut out);
        } else {
            out.push(pattern.to_owned());
        }
    }
    out
}

fn expand(dir: &str, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(Path::new("/proc/sys").join(dir)) else {
        return;
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    // Write-only or unreadable entries are skipped when read.
    out.extend(names.into_iter().map(|n| format!("{dir}/{n}")));
}

/// Every directory under `root`, `root` included.
fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_owned()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = fs::read_dir(&out[i]) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

fn kill9(pids: &BTreeSet<u32>) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The containerd shims of this node (they outlive containerd): found by the
/// containerd address in their command line, which lies in the state dir.
pub fn shim_pids(state_dir: &Path) -> BTreeSet<u32> {
    let marker = state_dir.to_string_lossy().into_owned();
    let mut out = BTreeSet::new();
    for (pid, cmdline) in processes() {
        if cmdline
            .first()
            .is_some_and(|c| c.contains("containerd-shim"))
            && cmdline.iter().any(|a| a.contains(&marker))
        {
            out.insert(pid);
        }
    }
    out
}

fn kill_shims(state_dir: &Path) -> Result<()> {
    let deadline = Instant::now() + TEARDOWN_WAIT;
    loop {
        let pids = shim_pids(state_dir);
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("containerd shims still running: {pids:?}");
        }
        kill9(&pids);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every process: pid and command line.
pub fn processes() -> Vec<(u32, Vec<String>)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        out.push((pid, args));
    }
    out
}

fn remove_links() -> Result<()> {
    // Veths left on the bridge (their namespaces are gone by now, which
    // normally removes them), then the bridge.
    let links = run("ip", &["-o", "link", "show", "master", net::BRIDGE]).unwrap_or_default();
    for line in links.lines() {
        if let Some(name) = line.split(':').nth(1) {
            let name = name.trim().split('@').next().unwrap_or("");
            if !name.is_empty() {
                let _ = run("ip", &["link", "del", name]);
            }
        }
    }
    if Path::new("/sys/class/net").join(net::BRIDGE).exists() {
        run("ip", &["link", "del", net::BRIDGE])?;
    }
    Ok(())
}

/// Mount points, in /proc/self/mountinfo order.
pub fn mount_points() -> Result<Vec<PathBuf>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .collect())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(char::from(v));
            i += 4;
        } else {
            out.push(char::from(b[i]));
            i += 1;
        }
    }
    out
}

/// nftables tables as `family name` (iptables-nft keeps its rules there).
pub fn nft_tables() -> Result<Vec<String>> {
    let text = run("nft", &["list", "tables"])?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("table "))
        .map(|t| t.trim().to_owned())
        .collect())
}

/// Removes the chains the node made (`KUBE-*`, `KSEAL-*`) from a table the
/// host already had, with the rules that jump to them.
fn remove_chains(table: &str) -> Result<()> {
    let (family, name) = table.split_once(' ').unwrap_or(("ip", table));
    let tool = match family {
        "ip" => "iptables",
        "ip6" => "ip6tables",
        _ => return Ok(()),
    };
    let rules = run(tool, &["-t", name, "-S"])?;
    let ours = |c: &str| c.starts_with("KUBE-") || c.starts_with("KSEAL-");
    for line in rules.lines() {
        let words = shell_words(line);
        if words.first().map(String::as_str) == Some("-A")
            && words.get(1).is_some_and(|c| !ours(c))
            && words.windows(2).any(|w| w[0] == "-j" && ours(&w[1]))
        {
            let mut args = vec!["-t".to_owned(), name.to_owned(), "-D".to_owned()];
            args.extend(words[1..].iter().cloned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(tool, &args)?;
        }
    }
    let chains: Vec<String> = rules
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .map(|c| c.trim().to_owned())
        .filter(|c| ours(c))
        .collect();
    for c in &chains {
        run(tool, &["-t", name, "-F", c])?;
    }
    for c in &chains {
        run(tool, &["-t", name, "-X", c])?;
    }
    Ok(())
}

/// Splits an `iptables -S` line (double quotes group words).
fn shell_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Runs a command, returns stdout; fails with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `iptables-save` output without comments and chain counters (they
/// change with traffic).
fn strip_counters(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.find(" [") {
            Some(i) if l.starts_with(':') => l[..i].to_owned(),
            _ => l.to_owned(),
        })
        .collect()
}

/// The cgroups one level below each hierarchy of [`CGROUP_FS`], sorted.
fn cgroups() -> Result<Vec<String>> {
    let mut cgroups = Vec::new();
    for h in fs::read_dir(CGROUP_FS)?.flatten() {
        if let Ok(children) = fs::read_dir(h.path()) {
            for c in children.flatten() {
                if c.file_type().is_ok_and(|t| t.is_dir()) {
                    cgroups.push(c.path().display().to_string());
                }
            }
        }
    }
    cgroups.sort();
    Ok(cgroups)
}

/// `<pid> <command line>` of every node process (containerd, its shims,
/// runc, the kubelet, kube-proxy, the scheduler), sorted.
fn node_processes() -> Vec<String> {
    let names = [
        "containerd",
        "containerd-shim-runc-v2",
        "runc",
        "kubelet",
        "kube-proxy",
        "kube-scheduler",
    ];
    let mut procs: Vec<String> = processes()
        .into_iter()
        .filter_map(|(pid, args)| {
            let exe = args.first()?;
            let base = exe.rsplit('/').next()?;
            names
                .contains(&base)
                .then(|| format!("{pid} {}", args.join(" ")))
        })
        .collect();
    procs.sort();
    procs
}

/// `<file> <port>` for each of the node's fixed ports something listens
/// on (TCP, IPv4 and IPv6).
fn listening_node_ports() -> Vec<String> {
    let ports = [
        net::KUBELET_PORT,
        net::KUBELET_HEALTHZ_PORT,
        net::KUBE_PROXY_HEALTHZ_PORT,
        net::KUBE_PROXY_METRICS_PORT,
    ];
    let mut listening = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for l in fs::read_to_string(file).unwrap_or_default().lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            // State 0A is LISTEN.
            if f.get(3) == Some(&"0A")
                && let Some(port) = f.get(1).and_then(|a| a.rsplit(':').next())
                && let Ok(port) = u16::from_str_radix(port, 16)
                && ports.contains(&port)
            {
                listening.push(format!("{file} {port}"));
            }
        }
    }
    listening
}

/// What a node may change on the host, read in one go, to prove a node left
/// the machine as it found it (compare a snapshot before and after).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSnapshot {
    /// Section name → its lines.
    pub sections: BTreeMap<&'static str, Vec<String>>,
}

impl HostSnapshot {
    /// Reads links, addresses, routes, firewall tables and rules, mounts,
    /// cgroups, sysctls, node processes, listening node ports and host paths.
    pub fn take() -> Result<Self> {
        let mut s = BTreeMap::new();
        let lines = |t: String| -> Vec<String> { t.lines().map(str::to_owned).collect() };
        s.insert(
            "links",
            lines(run("ip", &["-o", "link", "show"])?)
                .into_iter()
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
                .collect(),
        );
        s.insert("addresses", lines(run("ip", &["-o", "addr", "show"])?));
        s.insert(
            "routes",
            lines(run("ip", &["route", "show", "table", "all"])?),
        );
        s.insert(
            "routes6",
            lines(run("ip", &["-6", "route", "show", "table", "all"])?),
        );
        s.insert("nft tables", nft_tables()?);
        s.insert("iptables", strip_counters(&run("iptables-save", &[])?));
        s.insert("ip6tables", strip_counters(&run("ip6tables-save", &[])?));
        s.insert(
            "mounts",
            mount_points()?
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        );
        s.insert("cgroups", cgroups()?);
        s.insert(
            "sysctls",
            sysctl_paths()
                .into_iter()
                .filter_map(|p| {
                    let v = fs::read_to_string(Path::new("/proc/sys").join(&p)).ok()?;
                    Some(format!("{p} = {}", v.trim()))
                })
                .collect(),
        );
        s.insert("node processes", node_processes());
        s.insert("listening node ports", listening_node_ports());
        s.insert(
            "host paths",
            HOST_PATHS
                .iter()
                .filter(|p| Path::new(p).exists())
                .map(|p| (*p).to_owned())
                .collect(),
        );
        Ok(Self { sections: s })
    }

    /// Lines that differ from `before`, per section (`-` gone, `+` new).
    pub fn diff(&self, before: &HostSnapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (name, lines) in &self.sections {
            let old: BTreeSet<&String> = before
                .sections
                .get(name)
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            let new: BTreeSet<&String> = lines.iter().collect();
            for l in old.difference(&new) {
                out.push(format!("{name}: - {l}"));
            }
            for l in new.difference(&old) {
                out.push(format!("{name}: + {l}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_lines_split_like_a_shell() {
        assert_eq!(
            shell_words(r#"-A FORWARD -m comment --comment "kube a\"b" -j KUBE-FORWARD"#),
            [
                "-A",
                "FORWARD",
                "-m",
                "comment",
                "--comment",
                "kube a\"b",
                "-j",
                "KUBE-FORWARD"
            ]
        );
        assert_eq!(
            shell_words(r#"-A X --comment """#),
            ["-A", "X", "--comment", ""]
        );
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mount(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount(r"/plain"), "/plain");
    }
}
