//! kseal reads Secrets exactly as Kubernetes does: one row per input shape,
//! kseal's decoded bytes (seal, then unseal) equal what the real `kubectl`
//! (built from the pinned `k8s.io/kubernetes` module, like the control
//! plane) makes of the same input, or both refuse it.
//!
//! * flags: `kubectl create secret generic … --dry-run=client -o json`;
//! * manifests: what the real API server would store,
//!   `kubectl create --dry-run=server -o json -f FILE`.
//!
//! Where kseal deliberately differs, the row says so and checks both sides.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;

type Data = BTreeMap<String, Vec<u8>>;

fn decode_data(object: &serde_json::Value) -> Data {
    use base64::Engine;
    object["data"]
        .as_object()
        .map(|data| {
            data.iter()
                .map(|(key, value)| {
                    let bytes = base64::prelude::BASE64_STANDARD
                        .decode(value.as_str().unwrap_or_default())
                        .unwrap();
                    (key.clone(), bytes)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs kubectl; the object it printed, or its error. Its discovery cache
/// is `kubectl-cache` beside `kubeconfig` (a control plane's own, or the
/// workspace's), never `~/.kube/cache`, which a later control plane on the
/// same port would read.
fn kubectl(
    kubectl: &Path,
    dir: &Path,
    kubeconfig: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<serde_json::Value, String> {
    let output = Command::new(kubectl)
        .current_dir(dir)
        .env("KUBECONFIG", kubeconfig)
        .arg("--cache-dir")
        .arg(kubeconfig.with_file_name("kubectl-cache"))
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).unwrap())
}

/// Seals with kseal and unseals again: the data, or kseal's error.
fn kseal(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Result<Data, String> {
    let _ = std::fs::remove_file(ws.path("out.yaml"));
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "--allow-empty-data",
            "-o",
            "out.yaml",
        ])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(stderr(&output));
    }
    let output = ws
        .cmd()
        .args([
            "unseal",
            "-i",
            ws.identity.to_str().unwrap(),
            "-f",
            "out.yaml",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    Ok(decode_data(
        &serde_json::from_slice(&output.stdout).unwrap(),
    ))
}

/// What a row expects of kseal against kubectl.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Both accept with the same bytes, or both refuse.
    Same,
    /// kubectl accepts, kseal refuses on purpose (documented in
    /// docs/inputs.md).
    KsealRefuses,
}

/// Compares one row; returns whether kubectl accepted the input.
fn compare(
    what: &str,
    theirs: Result<Data, String>,
    ours: Result<Data, String>,
    expect: Expect,
) -> bool {
    eprintln!(
        "{what}: kubectl {}, kseal {}",
        if theirs.is_ok() { "accepts" } else { "refuses" },
        if ours.is_ok() { "accepts" } else { "refuses" }
    );
    let accepted = theirs.is_ok();
    match (expect, &theirs, &ours) {
        (Expect::Same, Ok(theirs), Ok(ours)) => {
            assert_eq!(ours, theirs, "{what}: kseal's bytes differ from kubectl's")
        }
        (Expect::Same, Err(_), Err(_)) => {}
        (Expect::KsealRefuses, Ok(_), Err(_)) => {}
        _ => panic!("{what}: expected {expect:?}; kubectl: {theirs:?}\nkseal: {ours:?}"),
    }
    accepted
}

/// A kubeconfig for `--dry-run=client`, which never connects; the server
/// is on loopback all the same.
fn offline_kubeconfig(ws: &Workspace) -> std::path::PathBuf {
    ws.write(
        "offline.kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:9\"}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n",
    )
}

/// How many flag rows kubectl accepts and refuses: pinned, so a row that
/// silently turns into a refusal on both sides (a broken fixture) fails.
const FLAG_ROWS_ACCEPTED_REFUSED: (usize, usize) = (28, 25);
/// The same for the manifest rows.
const MANIFEST_ROWS_ACCEPTED_REFUSED: (usize, usize) = (40, 40);

/// One `kubectl create secret generic` input shape.
struct FlagRow {
    what: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
    args: Vec<&'static str>,
    env: Vec<(&'static str, &'static str)>,
}

fn row(
    what: &'static str,
    files: Vec<(&'static str, &[u8])>,
    args: &[&'static str],
    env: &[(&'static str, &'static str)],
) -> FlagRow {
    FlagRow {
        what,
        files: files.into_iter().map(|(n, b)| (n, b.to_vec())).collect(),
        args: args.to_vec(),
        env: env.to_vec(),
    }
}

fn flag_rows() -> Vec<FlagRow> {
    let pem = b"-----BEGIN CERTIFICATE-----\nMIIB\r\n-----END CERTIFICATE-----\n";
    let long_line = format!("BIG={}\nAFTER=1\n", "x".repeat(70 * 1024));
    let long_line: &'static [u8] = Box::leak(long_line.into_bytes().into_boxed_slice());
    vec![
        // --from-literal
        row("literal", vec![], &["--from-literal=k=v"], &[]),
        row(
            "literal with '=' in the value",
            vec![],
            &["--from-literal=k=a=b=="],
            &[],
        ),
        row(
            "literal with an empty value",
            vec![],
            &["--from-literal=k="],
            &[],
        ),
        row(
            "literal with quotes kept",
            vec![],
            &["--from-literal=k=\"q\"", "--from-literal=s='q'"],
            &[],
        ),
        row(
            "literal with spaces, tab, newline, unicode",
            vec![],
            &["--from-literal=k= a\tb\nc é ✓ "],
            &[],
        ),
        row(
            "literal with a comma",
            vec![],
            &["--from-literal=k=a,b"],
            &[],
        ),
        row(
            "literal without '='",
            vec![],
            &["--from-literal=novalue"],
            &[],
        ),
        row(
            "literal with an empty key",
            vec![],
            &["--from-literal==v"],
            &[],
        ),
        row(
            "literal with an invalid key",
            vec![],
            &["--from-literal=a b=v"],
            &[],
        ),
        row("literal key '..'", vec![], &["--from-literal=..=v"], &[]),
        row(
            "literal key starting with '..'",
            vec![],
            &["--from-literal=..a=v"],
            &[],
        ),
        row(
            "literal key of 254 characters",
            vec![],
            &[Box::leak(
                format!("--from-literal={}=v", "k".repeat(254)).into_boxed_str(),
            )],
            &[],
        ),
        row(
            "literal key of 253 characters",
            vec![],
            &[Box::leak(
                format!("--from-literal={}=v", "k".repeat(253)).into_boxed_str(),
            )],
            &[],
        ),
        row(
            "literal given twice",
            vec![],
            &["--from-literal=k=1", "--from-literal=k=2"],
            &[],
        ),
        // --from-file
        row(
            "file",
            vec![("cert.pem", pem)],
            &["--from-file=cert.pem"],
            &[],
        ),
        row(
            "file under a key",
            vec![("cert.pem", pem)],
            &["--from-file=tls.crt=cert.pem"],
            &[],
        ),
        row(
            "binary file",
            vec![("blob", &[0, 0xff, 0xfe, 0x80, b'\n', b'\r'])],
            &["--from-file=blob"],
            &[],
        ),
        row(
            "empty file",
            vec![("empty", b"")],
            &["--from-file=empty"],
            &[],
        ),
        row(
            "file in a directory: key is the base name",
            vec![("sub/a.txt", b"a")],
            &["--from-file=sub/a.txt"],
            &[],
        ),
        row(
            "directory: every regular file, not recursive",
            vec![("d/a", b"1"), ("d/.hidden", b"2"), ("d/sub/c", b"3")],
            &["--from-file=d"],
            &[],
        ),
        row(
            "directory with a trailing slash",
            vec![("d/a", b"1")],
            &["--from-file=d/"],
            &[],
        ),
        row(
            "directory with an invalid file name",
            vec![("d/a b", b"1")],
            &["--from-file=d"],
            &[],
        ),
        row(
            "directory under a key",
            vec![("d/a", b"1")],
            &["--from-file=k=d"],
            &[],
        ),
        row(
            "comma-separated files",
            vec![("a", b"1"), ("b", b"2")],
            &["--from-file=a,b"],
            &[],
        ),
        row(
            "quoted file name with a comma",
            vec![("a,b", b"1")],
            &["--from-file=\"k=a,b\""],
            &[],
        ),
        row(
            "file name that is not a valid key",
            vec![("a b", b"1")],
            &["--from-file=a b"],
            &[],
        ),
        row(
            "key and path with two '='",
            vec![("a", b"1")],
            &["--from-file=k=a=b"],
            &[],
        ),
        row(
            "missing key before '='",
            vec![("a", b"1")],
            &["--from-file==a"],
            &[],
        ),
        row("missing path after '='", vec![], &["--from-file=k="], &[]),
        row("missing file", vec![], &["--from-file=nope"], &[]),
        row(
            "file and literal with the same key",
            vec![("k", b"1")],
            &["--from-file=k", "--from-literal=k=2"],
            &[],
        ),
        // --from-env-file
        row(
            "env file: comments, blank lines, '=' in values",
            vec![("a.env", b"# c\n\nA=1\n  # indented comment\nB=x=y\nC=\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: values kept exactly (spaces, quotes)",
            vec![("a.env", b"A= spaced \nB=\"quoted\"\nC='single'\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: leading white space trimmed",
            vec![("a.env", b"  A=1\n\tB=2\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: Unicode white space (NBSP, ideographic) trimmed",
            vec![("a.env", "\u{a0}\u{3000}A=1\n".as_bytes())],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: CRLF and a UTF-8 BOM",
            vec![("a.env", b"\xef\xbb\xbfA=1\r\nB=2\r\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: no final newline",
            vec![("a.env", b"A=1\nB=2")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: a lone CR inside a value",
            vec![("a.env", b"A=1\r2\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: KEY without '=' reads the environment",
            vec![("a.env", b"FROM_ENV\nA=1\n")],
            &["--from-env-file=a.env"],
            &[("FROM_ENV", "from the environment")],
        ),
        row(
            "env file: KEY without '=' and no such variable",
            vec![("a.env", b"KSEAL_SURELY_UNSET_VARIABLE\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: key with a space before '='",
            vec![("a.env", b"A =1\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: key starting with a digit",
            vec![("a.env", b"1A=1\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: 'export A=1'",
            vec![("a.env", b"export A=1\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: empty key",
            vec![("a.env", b"=1\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: BOM on a later line",
            vec![("a.env", b"A=1\n\xef\xbb\xbfB=2\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: invalid UTF-8",
            vec![("a.env", b"A=\xff\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: invalid UTF-8 in a comment",
            vec![("a.env", b"# \xff\nA=1\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: a key twice",
            vec![("a.env", b"A=1\nA=2\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: keys valid as env names but not as data keys",
            vec![("a.env", b"..A=1\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env file: only comments",
            vec![("a.env", b"# nothing\n\n")],
            &["--from-env-file=a.env"],
            &[],
        ),
        row(
            "env files, comma-separated",
            vec![("a.env", b"A=1\n"), ("b.env", b"B=2\n")],
            &["--from-env-file=a.env,b.env"],
            &[],
        ),
        row(
            "env file: a directory",
            vec![("d/a", b"1")],
            &["--from-env-file=d"],
            &[],
        ),
        row(
            "env file: a line over 64 KiB",
            vec![("a.env", long_line)],
            &["--from-env-file=a.env"],
            &[],
        ),
    ]
}

/// Rows where kseal differs on purpose.
fn flag_expectation(what: &str) -> Expect {
    match what {
        // kubectl's line scanner silently stops at a line over 64 KiB and
        // stores what came before; kseal refuses rather than drop values.
        "env file: a line over 64 KiB" => Expect::KsealRefuses,
        _ => Expect::Same,
    }
}

#[test]
fn flags_give_the_bytes_kubectl_create_secret_gives() {
    let Some(bins) = kseal_testenv::bins_or_skip() else {
        return;
    };
    let kubectl_bin = bins.kubectl();
    let rows = flag_rows();
    let (mut compared, mut accepted) = (0, 0);
    for row in &rows {
        let ws = Workspace::new();
        for (name, bytes) in &row.files {
            let path = ws.path(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
        if row.what.starts_with("directory") {
            // A symlink in the directory: kubectl skips it (not a regular file).
            std::os::unix::fs::symlink(ws.path("d/a"), ws.path("d/link")).ok();
        }
        let kubeconfig = offline_kubeconfig(&ws);
        let mut args = vec![
            "create",
            "secret",
            "generic",
            "s",
            "--namespace",
            "app",
            "--dry-run=client",
            "-o",
            "json",
        ];
        args.extend(row.args.iter().copied());
        let theirs = kubectl(&kubectl_bin, ws.dir.path(), &kubeconfig, &args, &row.env)
            .map(|object| decode_data(&object));
        let mut ours_args = vec!["--name", "s", "--namespace", "app"];
        ours_args.extend(row.args.iter().copied());
        let ours = kseal(&ws, &ours_args, &row.env);
        if compare(row.what, theirs, ours, flag_expectation(row.what)) {
            accepted += 1;
        }
        compared += 1;
    }
    assert_eq!(compared, rows.len());
    // Both sides of the rule are exercised: kubectl accepts most rows and
    // refuses the rest (the counts are those of the table above).
    eprintln!(
        "{compared} rows: kubectl accepts {accepted}, refuses {}",
        compared - accepted
    );
    assert_eq!((accepted, compared - accepted), FLAG_ROWS_ACCEPTED_REFUSED);
    // Combining --from-env-file with the other sources: kubectl refuses it;
    // kseal allows it (the result is the union, as if made in two steps).
    let ws = Workspace::new();
    ws.write("a.env", "A=1\n");
    let theirs = kubectl(
        &kubectl_bin,
        ws.dir.path(),
        &offline_kubeconfig(&ws),
        &[
            "create",
            "secret",
            "generic",
            "s",
            "--dry-run=client",
            "-o",
            "json",
            "--from-env-file=a.env",
            "--from-literal=B=2",
        ],
        &[],
    );
    assert!(theirs.is_err(), "{theirs:?}");
    let ours = kseal(
        &ws,
        &[
            "--name",
            "s",
            "--namespace",
            "app",
            "--from-env-file=a.env",
            "--from-literal=B=2",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(
        ours,
        Data::from([("A".into(), b"1".to_vec()), ("B".into(), b"2".to_vec())])
    );
}

/// One manifest shape: (what, file name, bytes, expectation).
fn manifest_rows() -> Vec<(&'static str, &'static str, Vec<u8>, Expect)> {
    let head = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: app\n";
    let cert: Vec<u8> = (0..200u8).collect();
    let wrapped = {
        use base64::Engine;
        let encoded = base64::prelude::BASE64_STANDARD.encode(&cert);
        let lines: Vec<String> = encoded
            .as_bytes()
            .chunks(76)
            .map(|chunk| format!("    {}\n", String::from_utf8_lossy(chunk)))
            .collect();
        lines.concat()
    };
    let y = |body: &str| format!("{head}{body}").into_bytes();
    let utf16 = |text: &str, little: bool| {
        let mut out = if little {
            vec![0xff, 0xfe]
        } else {
            vec![0xfe, 0xff]
        };
        for unit in text.encode_utf16() {
            out.extend(if little {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            });
        }
        out
    };
    let same = Expect::Same;
    vec![
        ("data, one line", "a.yaml", y("data:\n  k: aGVsbG8=\n"), same),
        ("data wrapped at 76 columns (literal block)", "a.yaml", y(&format!("data:\n  cert.pem: |\n{wrapped}")), same),
        ("data wrapped, CRLF file", "a.yaml", y(&format!("data:\n  cert.pem: |\n{wrapped}")).iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect(), same),
        ("data wrapped, plain multi-line scalar", "a.yaml", y("data:\n  k: aGVs\n    bG8=\n"), same),
        ("data wrapped, folded block (spaces)", "a.yaml", y("data:\n  k: >\n    aGVs\n    bG8=\n"), same),
        ("data with a leading space", "a.yaml", y("data:\n  k: \" aGVsbG8=\"\n"), same),
        ("data with a trailing space", "a.yaml", y("data:\n  k: \"aGVsbG8= \"\n"), same),
        ("data with a tab inside", "a.yaml", y("data:\n  k: \"aGVs\\tbG8=\"\n"), same),
        ("data without padding", "a.yaml", y("data:\n  k: aGVsbG8\n"), same),
        ("data with set trailing bits", "a.yaml", y("data:\n  k: aGVsbG9=\n"), same),
        ("data, URL-safe alphabet", "a.yaml", y("data:\n  k: _-8=\n"), same),
        ("data, empty string", "a.yaml", y("data:\n  k: \"\"\n"), same),
        ("data, null value", "a.yaml", y("data:\n  k:\n"), same),
        ("data, a number", "a.yaml", y("data:\n  k: 1234\n"), same),
        ("stringData", "a.yaml", y("stringData:\n  k: héllo wörld ✓\n"), same),
        ("stringData, literal block", "a.yaml", y("stringData:\n  k: |\n    line 1\n    line 2\n"), same),
        ("stringData, folded block, keep", "a.yaml", y("stringData:\n  k: >+\n    a\n    b\n\n"), same),
        ("stringData, quoted escapes", "a.yaml", y("stringData:\n  k: \"tab\\tnl\\nnul\\0\"\n"), same),
        ("stringData overrides data", "a.yaml", y("data:\n  k: aGVsbG8=\n  d: ZA==\nstringData:\n  k: override\n"), same),
        ("stringData, empty string", "a.yaml", y("stringData:\n  k: \"\"\n"), same),
        ("stringData, null value", "a.yaml", y("stringData:\n  k:\n"), same),
        ("stringData, a number", "a.yaml", y("stringData:\n  k: 8080\n"), same),
        ("stringData, a YAML 1.2 boolean", "a.yaml", y("stringData:\n  k: true\n"), same),
        ("stringData, a YAML 1.1 boolean (yes)", "a.yaml", y("stringData:\n  k: yes\n"), same),
        ("stringData, a YAML 1.1 boolean (off)", "a.yaml", y("stringData:\n  k: off\n"), same),
        ("stringData, quoted yes", "a.yaml", y("stringData:\n  k: \"yes\"\n"), same),
        ("stringData, a timestamp-like value", "a.yaml", y("stringData:\n  k: 2001-12-14\n"), same),
        ("data key '..x'", "a.yaml", y("stringData:\n  ..x: v\n"), same),
        ("data key with '/'", "a.yaml", y("stringData:\n  a/b: v\n"), same),
        ("anchors and merge keys", "a.yaml", y("stringData:\n  a: &v shared\n  b: *v\n"), same),
        ("UTF-8 BOM and CRLF", "a.yaml", [&[0xef, 0xbb, 0xbf][..], &y("stringData:\n  k: v\n").iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect::<Vec<u8>>()].concat(), same),
        ("UTF-16LE with BOM", "a.yaml", utf16(&format!("{head}stringData:\n  k: é✓\n"), true), same),
        ("UTF-16BE with BOM", "a.yaml", utf16(&format!("{head}stringData:\n  k: é✓\n"), false), same),
        ("invalid UTF-8 in a value", "a.yaml", [y("stringData:\n  k: \"a"), vec![0xff], b"\"\n".to_vec()].concat(), Expect::KsealRefuses),
        ("JSON, data with escaped newlines", "a.json", br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"app"},"data":{"k":"aGVs\nbG8=\r\n"}}"#.to_vec(), same),
        ("JSON, stringData with unicode escapes", "a.json", br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"app"},"stringData":{"k":"\u00e9\ud83d\ude00"}}"#.to_vec(), same),
        ("JSON, data with a space", "a.json", br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"app"},"data":{"k":"aGVs bG8="}}"#.to_vec(), same),
        ("kind: List", "a.yaml", b"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: s\n    namespace: app\n  stringData: {k: v}\n".to_vec(), same),
        ("unknown field (a typo of stringData)", "a.yaml", y("stringdata:\n  k: v\ndata: {a: YQ==}\n"), same),
        ("unknown field in metadata (a typo of labels)", "a.yaml", b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: app\n  lables: {a: b}\nstringData: {k: v}\n".to_vec(), same),
        ("name not an RFC 1123 subdomain", "a.yaml", b"apiVersion: v1\nkind: Secret\nmetadata: {name: runnerToken, namespace: app}\nstringData: {k: v}\n".to_vec(), same),
        ("label value too long", "a.yaml", format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: app, labels: {{a: {}}}}}\nstringData: {{k: v}}\n", "v".repeat(64)).into_bytes(), same),
    ]
    .into_iter()
    .chain(typed_rows())
    .collect()
}

/// Every built-in Secret type, in the forms the API server accepts and
/// refuses (`ValidateSecret`): kseal refuses exactly what it refuses,
/// before sealing (shared/src/secret_type).
fn typed_rows() -> Vec<(&'static str, &'static str, Vec<u8>, Expect)> {
    use base64::Engine;
    let typed = |type_: &str, data: &[(&str, &[u8])]| {
        let mut text = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: app\ntype: {type_}\n"
        );
        if !data.is_empty() {
            text.push_str("data:\n");
            for (key, value) in data {
                let encoded = base64::prelude::BASE64_STANDARD.encode(value);
                text.push_str(&format!("  {key}: \"{encoded}\"\n"));
            }
        }
        text.into_bytes()
    };
    let annotated = |value: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: app\n  annotations:\n    kubernetes.io/service-account.name: \"{value}\"\ntype: kubernetes.io/service-account-token\nstringData: {{token: t}}\n"
        )
        .into_bytes()
    };
    let nested = |depth: usize| {
        let mut text = "{\"a\":".repeat(depth - 1);
        text.push_str("{}");
        text.push_str(&"}".repeat(depth - 1));
        text.into_bytes()
    };
    let tls = "kubernetes.io/tls";
    let json = "kubernetes.io/dockerconfigjson";
    let cfg = "kubernetes.io/dockercfg";
    let basic = "kubernetes.io/basic-auth";
    let ssh = "kubernetes.io/ssh-auth";
    let key = ".dockerconfigjson";
    let same = Expect::Same;
    vec![
        (
            "type Opaque",
            "a.yaml",
            typed("Opaque", &[("k", b"v")]),
            same,
        ),
        (
            "a type Kubernetes does not know",
            "a.yaml",
            typed("example.com/custom", &[]),
            same,
        ),
        (
            "type bootstrap token, no data",
            "a.yaml",
            typed("bootstrap.kubernetes.io/token", &[]),
            same,
        ),
        (
            "tls with tls.crt and tls.key",
            "a.yaml",
            typed(tls, &[("tls.crt", b"c"), ("tls.key", b"k")]),
            same,
        ),
        (
            "tls with empty tls.crt and tls.key",
            "a.yaml",
            typed(tls, &[("tls.crt", b""), ("tls.key", b"")]),
            same,
        ),
        (
            "tls without tls.key",
            "a.yaml",
            typed(tls, &[("tls.crt", b"c")]),
            same,
        ),
        (
            "tls without tls.crt",
            "a.yaml",
            typed(tls, &[("tls.key", b"k"), ("ca.crt", b"c")]),
            same,
        ),
        ("tls without data", "a.yaml", typed(tls, &[]), same),
        (
            "dockerconfigjson, an object",
            "a.yaml",
            typed(
                json,
                &[(key, br#"{"auths":{"r.example":{"auth":"dTpw"}}}"#)],
            ),
            same,
        ),
        (
            "dockerconfigjson, null",
            "a.yaml",
            typed(json, &[(key, b"null")]),
            same,
        ),
        (
            "dockerconfigjson, white space around",
            "a.yaml",
            typed(json, &[(key, b" \t\r\n{}\n")]),
            same,
        ),
        (
            "dockerconfigjson, invalid UTF-8 in a string",
            "a.yaml",
            typed(json, &[(key, b"{\"a\":\"\xff\xfe\"}")]),
            same,
        ),
        (
            "dockerconfigjson, duplicate keys",
            "a.yaml",
            typed(json, &[(key, br#"{"a":1,"a":2}"#)]),
            same,
        ),
        (
            "dockerconfigjson, a huge number",
            "a.yaml",
            typed(json, &[(key, br#"{"a":1e400}"#)]),
            same,
        ),
        (
            "dockerconfigjson, a tiny number",
            "a.yaml",
            typed(json, &[(key, br#"{"a":1e-400}"#)]),
            same,
        ),
        (
            "dockerconfigjson, nested 10000 deep",
            "a.yaml",
            typed(json, &[(key, &nested(10_000))]),
            same,
        ),
        (
            "dockerconfigjson, nested 10001 deep",
            "a.yaml",
            typed(json, &[(key, &nested(10_001))]),
            same,
        ),
        (
            "dockerconfigjson, not JSON",
            "a.yaml",
            typed(json, &[(key, b"Zleaked")]),
            same,
        ),
        (
            "dockerconfigjson, empty",
            "a.yaml",
            typed(json, &[(key, b"")]),
            same,
        ),
        (
            "dockerconfigjson, an array",
            "a.yaml",
            typed(json, &[(key, b"[]")]),
            same,
        ),
        (
            "dockerconfigjson, a string",
            "a.yaml",
            typed(json, &[(key, b"\"s\"")]),
            same,
        ),
        (
            "dockerconfigjson, a byte-order mark",
            "a.yaml",
            typed(json, &[(key, b"\xef\xbb\xbf{}")]),
            same,
        ),
        (
            "dockerconfigjson, trailing garbage",
            "a.yaml",
            typed(json, &[(key, b"{} x")]),
            same,
        ),
        (
            "dockerconfigjson, a trailing comma",
            "a.yaml",
            typed(json, &[(key, br#"{"a":1,}"#)]),
            same,
        ),
        (
            "dockerconfigjson, a control character in a string",
            "a.yaml",
            typed(json, &[(key, b"{\"a\":\"\t\"}")]),
            same,
        ),
        (
            "dockerconfigjson, under .dockercfg",
            "a.yaml",
            typed(json, &[(".dockercfg", b"{}")]),
            same,
        ),
        (
            "dockercfg, an object",
            "a.yaml",
            typed(cfg, &[(".dockercfg", br#"{"r.example":{"auth":"dTpw"}}"#)]),
            same,
        ),
        (
            "dockercfg, not JSON",
            "a.yaml",
            typed(cfg, &[(".dockercfg", b"{auths}")]),
            same,
        ),
        (
            "dockercfg, missing",
            "a.yaml",
            typed(cfg, &[("k", b"v")]),
            same,
        ),
        (
            "basic-auth, username only",
            "a.yaml",
            typed(basic, &[("username", b"u")]),
            same,
        ),
        (
            "basic-auth, an empty password only",
            "a.yaml",
            typed(basic, &[("password", b"")]),
            same,
        ),
        (
            "basic-auth, neither",
            "a.yaml",
            typed(basic, &[("user", b"u")]),
            same,
        ),
        (
            "ssh-auth with a key",
            "a.yaml",
            typed(ssh, &[("ssh-privatekey", b"k")]),
            same,
        ),
        (
            "ssh-auth, an empty key",
            "a.yaml",
            typed(ssh, &[("ssh-privatekey", b"")]),
            same,
        ),
        (
            "ssh-auth, no key",
            "a.yaml",
            typed(ssh, &[("ssh-publickey", b"p")]),
            same,
        ),
        (
            "service-account-token, annotated",
            "a.yaml",
            annotated("builder"),
            same,
        ),
        (
            "service-account-token, empty annotation",
            "a.yaml",
            annotated(""),
            same,
        ),
        (
            "service-account-token, no annotation",
            "a.yaml",
            typed("kubernetes.io/service-account-token", &[("token", b"t")]),
            same,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_give_the_bytes_the_api_server_stores() {
    if kseal_testenv::bins_or_skip().is_none() {
        return;
    }
    let cp = kseal_testenv::ControlPlane::start().await.unwrap();
    let kubectl_bin = cp.bins().kubectl();
    let kubeconfig = cp.admin_kubeconfig().to_owned();
    let ws = Workspace::new();
    kubectl(
        &kubectl_bin,
        ws.dir.path(),
        &kubeconfig,
        &["create", "namespace", "app", "-o", "json"],
        &[],
    )
    .unwrap();
    let rows = manifest_rows();
    let mut accepted = 0;
    for (what, file, bytes, expect) in &rows {
        std::fs::write(ws.path(file), bytes).unwrap();
        let theirs = kubectl(
            &kubectl_bin,
            ws.dir.path(),
            &kubeconfig,
            &["create", "--dry-run=server", "-o", "json", "-f", file],
            &[],
        )
        .map(|object| {
            // A List answer holds one Secret.
            match object["kind"].as_str() {
                Some("List") => decode_data(&object["items"][0]),
                _ => decode_data(&object),
            }
        });
        let ours = kseal(&ws, &["-f", file], &[]);
        if compare(what, theirs, ours, *expect) {
            accepted += 1;
        }
    }
    eprintln!("{} rows: kubectl accepts {accepted}", rows.len());
    assert_eq!(
        (accepted, rows.len() - accepted),
        MANIFEST_ROWS_ACCEPTED_REFUSED
    );
    // The same inputs on stdin.
    for (what, _, bytes, expect) in &rows {
        let theirs = {
            let mut child = cp
                .kubectl()
                .args(["create", "--dry-run=server", "-o", "json", "-f", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), bytes).unwrap();
            let output = child.wait_with_output().unwrap();
            if output.status.success() {
                let object: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
                Ok(match object["kind"].as_str() {
                    Some("List") => decode_data(&object["items"][0]),
                    _ => decode_data(&object),
                })
            } else {
                Err(String::from_utf8_lossy(&output.stderr).into_owned())
            }
        };
        let output = ws
            .cmd()
            .args([
                "seal",
                "-r",
                &ws.recipient,
                "--allow-empty-data",
                "-o",
                "out.yaml",
            ])
            .write_stdin(bytes.clone())
            .output()
            .unwrap();
        let ours = if output.status.success() {
            let output = ws
                .cmd()
                .args([
                    "unseal",
                    "-i",
                    ws.identity.to_str().unwrap(),
                    "-f",
                    "out.yaml",
                    "--format",
                    "json",
                ])
                .output()
                .unwrap();
            Ok(decode_data(
                &serde_json::from_slice(&output.stdout).unwrap(),
            ))
        } else {
            Err(stderr(&output))
        };
        compare(&format!("{what} (stdin)"), theirs, ours, *expect);
    }
    drop(cp);
}

/// Client-side `kubectl apply` copies the object into an annotation, and
/// annotations are limited to 256 KiB: kseal warns when it writes a
/// SealedSecret over that, and only then. Checked with the real kubectl on
/// the real API server, on either side of the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_sealed_secrets_warn_where_client_side_apply_fails() {
    if kseal_testenv::bins_or_skip().is_none() {
        return;
    }
    let cp = kseal_testenv::ControlPlane::start().await.unwrap();
    let ws = Workspace::new();
    let crd = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/kseal/crds/sealedsecrets.kseal.dev.yaml");
    let run = |args: &[&str]| {
        cp.kubectl()
            .current_dir(ws.dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    assert_exit(
        &run(&["apply", "--server-side", "-f", crd.to_str().unwrap()]),
        0,
    );
    assert_exit(
        &run(&[
            "wait",
            "--for=condition=Established",
            "crd/sealedsecrets.kseal.dev",
        ]),
        0,
    );
    assert_exit(&run(&["create", "namespace", "app"]), 0);
    for (name, bytes, too_large) in [("below", 180_000, false), ("above", 210_000, true)] {
        ws.write("value.bin", &"x".repeat(bytes));
        let output = ws
            .cmd()
            .args([
                "seal",
                "-r",
                &ws.recipient,
                "--name",
                name,
                "--namespace",
                "app",
            ])
            .args(["--from-file", "v=value.bin", "-o", &format!("{name}.yaml")])
            .output()
            .unwrap();
        assert_exit(&output, 0);
        let warned = stderr(&output).contains("client-side `kubectl apply` fails");
        assert_eq!(warned, too_large, "{name}: {}", stderr(&output));
        let client_side = run(&["apply", "-f", &format!("{name}.yaml")]);
        assert_eq!(
            !client_side.status.success(),
            too_large,
            "{name}: {}",
            stderr(&client_side)
        );
        if too_large {
            assert!(
                stderr(&client_side).contains("Too long"),
                "{}",
                stderr(&client_side)
            );
            assert_exit(
                &run(&["apply", "--server-side", "-f", &format!("{name}.yaml")]),
                0,
            );
        }
    }
}
