//! Users of the control plane: client certificates from its CA and
//! kubeconfigs embedding them.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::{ADMIN_USER, ControlPlane, Layout};
use crate::certs::{Ca, write_kubeconfig};

/// The controller manager's kubeconfig, in the state directory.
pub(super) const KCM_KUBECONFIG: &str = "kube-controller-manager.kubeconfig";

/// A user minted by [`ControlPlane::mint_user`]: a client certificate with
/// CN = name and one O per group, and a kubeconfig using it.
#[derive(Debug, Clone)]
pub struct User {
    /// The user name (certificate CN).
    pub name: String,
    /// The groups (certificate O attributes).
    pub groups: Vec<String>,
    /// A kubeconfig file for this user.
    pub kubeconfig: PathBuf,
}

impl User {
    /// A kube client acting as this user.
    pub async fn client(&self) -> Result<Client> {
        client_from_kubeconfig(&self.kubeconfig).await
    }
}

/// The control plane's own kubeconfigs in the state directory:
/// `admin.kubeconfig` ([`ADMIN_USER`], in `system:masters`) and
/// [`KCM_KUBECONFIG`] (`system:kube-controller-manager`). Returns the admin.
/// Errors when a certificate cannot be issued or a file written.
pub(super) fn control_plane_kubeconfigs(layout: &Layout, ca: &Ca) -> Result<User> {
    let server = layout.server_url();
    let admin_cert = ca.client_cert(ADMIN_USER, &["system:masters"])?;
    let admin_kubeconfig = layout.root.join("admin.kubeconfig");
    write_kubeconfig(
        &admin_kubeconfig,
        &server,
        ca.cert_pem(),
        ADMIN_USER,
        &admin_cert,
    )?;
    let kcm_user = "system:kube-controller-manager";
    let kcm_cert = ca.client_cert(kcm_user, &[])?;
    write_kubeconfig(
        &layout.root.join(KCM_KUBECONFIG),
        &server,
        ca.cert_pem(),
        kcm_user,
        &kcm_cert,
    )?;
    Ok(User {
        name: ADMIN_USER.to_owned(),
        groups: vec!["system:masters".to_owned()],
        kubeconfig: admin_kubeconfig,
    })
}

impl ControlPlane {
    /// Mints a client certificate for `name` in `groups` and writes a
    /// kubeconfig for it. The user has no permissions beyond what RBAC grants
    /// that name or those groups (plus `system:authenticated`).
    pub fn mint_user(&self, name: &str, groups: &[&str]) -> Result<User> {
        let cert = self.ca.client_cert(name, groups)?;
        let n = self.users.fetch_add(1, Ordering::Relaxed);
        let file: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self
            .root
            .join("users")
            .join(format!("{n:03}-{file}.kubeconfig"));
        write_kubeconfig(&path, &self.server_url(), self.ca.cert_pem(), name, &cert)?;
        Ok(User {
            name: name.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            kubeconfig: path,
        })
    }

    /// A kube client for a freshly minted user (see [`ControlPlane::mint_user`]).
    pub async fn client_for_user(&self, name: &str, groups: &[&str]) -> Result<Client> {
        self.mint_user(name, groups)?.client().await
    }

    /// Mints the identity of ServiceAccount `namespace/name`: user
    /// `system:serviceaccount:<ns>:<name>` in groups `system:serviceaccounts`
    /// and `system:serviceaccounts:<ns>`, which is what RBAC matches for a
    /// ServiceAccount subject. (The ServiceAccount object itself need not exist.)
    pub fn mint_service_account(&self, namespace: &str, name: &str) -> Result<User> {
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let ns_group = format!("system:serviceaccounts:{namespace}");
        self.mint_user(&user, &["system:serviceaccounts", &ns_group])
    }
}

/// A kube client from a kubeconfig file (its current context).
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading {}", path.display()))?;
    Client::try_from(config).context("building a kube client")
}
