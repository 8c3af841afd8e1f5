//! The control plane's PKI, written to `<state dir>/pki/`.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result};

use super::{KUBELET_CLIENT_USER, Layout};
use crate::certs::{self, Ca};

/// A new CA and what the components need from it, as PEM files in
/// [`Layout::pki`]: `ca.crt`; the API server's serving certificate
/// `apiserver.{crt,key}` (for `localhost`, the `kubernetes` Service names,
/// 127.0.0.1, the Service IP 10.0.0.1 and the API server's address); the
/// ServiceAccount signing key pair `sa.{key,pub}`; with a node, the API
/// server's client certificate towards the kubelet,
/// `apiserver-kubelet-client.{crt,key}`. Returns the CA (it mints users
/// later). Errors when a key cannot be generated or a file written.
pub(super) fn generate(layout: &Layout) -> Result<Ca> {
    let pki = layout.pki();
    let write = |name: &str, contents: &[u8]| {
        let path = pki.join(name);
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
    };
    let ca = Ca::new("kseal-testenv-ca")?;
    write("ca.crt", ca.cert_pem().as_bytes())?;
    let serving = ca.serving_cert(
        "kube-apiserver",
        &[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
        &[
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V4(layout.apiserver_host),
        ],
    )?;
    write("apiserver.crt", serving.cert_pem.as_bytes())?;
    write("apiserver.key", serving.key_pem.as_bytes())?;
    let (sa_key, sa_pub) = certs::service_account_key()?;
    write("sa.key", sa_key.as_bytes())?;
    write("sa.pub", sa_pub.as_bytes())?;
    if layout.node {
        // The API server authenticates to the kubelet with it.
        let kubelet_client = ca.client_cert(KUBELET_CLIENT_USER, &[])?;
        write(
            "apiserver-kubelet-client.crt",
            kubelet_client.cert_pem.as_bytes(),
        )?;
        write(
            "apiserver-kubelet-client.key",
            kubelet_client.key_pem.as_bytes(),
        )?;
    }
    Ok(ca)
}
