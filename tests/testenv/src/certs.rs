//! A tiny PKI for the local control plane: a CA, the API server's serving
//! certificate, client certificates (CN = user, one O per group) and the
//! service-account signing key. All keys are ECDSA P-256. Also the
//! kubeconfigs that embed a client certificate.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rand::RngCore;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::asn1::{Any, Ia5String, OctetString, SetOfVec};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{EncodePem, Tag};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_O: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const OID_KP_SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
const OID_KP_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct CertKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: String,
}

/// A certificate authority that issues serving and client certificates.
pub struct Ca {
    name: Name,
    key: SigningKey,
    cert_pem: String,
}

impl Ca {
    /// A new self-signed CA.
    pub fn new(common_name: &str) -> Result<Self> {
        let key = new_key();
        let name = name(common_name, &[])?;
        let spki = SubjectPublicKeyInfoOwned::from_key(*key.verifying_key())?;
        let builder = CertificateBuilder::new(
            Profile::Root,
            serial()?,
            validity()?,
            name.clone(),
            spki,
            &key,
        )?;
        let cert = builder.build::<DerSignature>()?;
        Ok(Self {
            name,
            cert_pem: cert.to_pem(LineEnding::LF)?,
            key,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A serving certificate for the given DNS names and IP addresses.
    pub fn serving_cert(&self, common_name: &str, dns: &[&str], ips: &[IpAddr]) -> Result<CertKey> {
        let mut sans = Vec::new();
        for d in dns {
            sans.push(GeneralName::DnsName(Ia5String::new(d)?));
        }
        for ip in ips {
            let octets = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            sans.push(GeneralName::IpAddress(OctetString::new(octets)?));
        }
        self.issue(
            name(common_name, &[])?,
            OID_KP_SERVER_AUTH,
            Some(SubjectAltName(sans)),
        )
    }

    /// A client certificate: Kubernetes reads the user name from CN and the
    /// groups from the O attributes.
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> Result<CertKey> {
        self.issue(name(user, groups)?, OID_KP_CLIENT_AUTH, None)
    }

    fn issue(
        &self,
        subject: Name,
        usage: ObjectIdentifier,
        sans: Option<SubjectAltName>,
    ) -> Result<CertKey> {
        let key = new_key();
        let spki = SubjectPublicKeyInfoOwned::from_key(*key.verifying_key())?;
        let mut builder = CertificateBuilder::new(
            Profile::Leaf {
                issuer: self.name.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: true,
            },
            serial()?,
            validity()?,
            subject,
            spki,
            &self.key,
        )?;
        builder.add_extension(&ExtendedKeyUsage(vec![usage]))?;
        if let Some(sans) = sans {
            builder.add_extension(&sans)?;
        }
        let cert = builder.build::<DerSignature>()?;
        Ok(CertKey {
            cert_pem: cert.to_pem(LineEnding::LF)?,
            key_pem: key_pem(&key)?,
        })
    }
}

/// The service-account token signing key pair: (private PKCS#8 PEM, public SPKI PEM).
pub fn service_account_key() -> Result<(String, String)> {
    let key = new_key();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .context("encoding the service-account public key")?;
    Ok((key_pem(&key)?, public))
}

fn new_key() -> SigningKey {
    SigningKey::random(&mut rand::rngs::OsRng)
}

fn key_pem(key: &SigningKey) -> Result<String> {
    Ok(key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding a private key")?
        .to_string())
}

fn name(common_name: &str, organizations: &[&str]) -> Result<Name> {
    let mut rdns = Vec::new();
    // Organizations first, CN last: the usual order (O=…, CN=…).
    for (oid, value) in organizations
        .iter()
        .map(|o| (OID_O, *o))
        .chain([(OID_CN, common_name)])
    {
        let atv = AttributeTypeAndValue {
            oid,
            value: Any::new(Tag::Utf8String, value.as_bytes())?,
        };
        rdns.push(RelativeDistinguishedName(SetOfVec::try_from(vec![atv])?));
    }
    Ok(RdnSequence(rdns))
}

fn serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte
    Ok(SerialNumber::new(&bytes)?)
}

fn validity() -> Result<Validity> {
    // Valid from an hour ago (clock skew) for ten years.
    let now = SystemTime::now();
    let not_before = now - Duration::from_secs(3600);
    let not_after = now + Duration::from_secs(10 * 365 * 24 * 3600);
    Ok(Validity {
        not_before: Time::try_from(not_before)?,
        not_after: Time::try_from(not_after)?,
    })
}

/// Writes a kubeconfig with the CA and the client certificate embedded.
pub(crate) fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    cert: &CertKey,
) -> Result<()> {
    let user_json = serde_json::to_string(user)?;
    let text = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: kseal-testenv\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n\
         - name: {user_json}\n  user:\n    client-certificate-data: {crt}\n    client-key-data: {key}\n\
         contexts:\n\
         - name: kseal-testenv\n  context:\n    cluster: kseal-testenv\n    user: {user_json}\n    namespace: default\n\
         current-context: kseal-testenv\n",
        ca = B64.encode(ca_pem),
        crt = B64.encode(&cert.cert_pem),
        key = B64.encode(&cert.key_pem),
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
