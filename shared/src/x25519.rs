//! Cluster keys: age X25519 identities and recipients, their key ids, and
//! the identity / recipients file formats that `age-keygen` and `age` use.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use age_core::format::{FILE_KEY_BYTES, FileKey, Stanza};
use age_core::primitives::{aead_decrypt, hkdf};
use base64::Engine;
use base64::prelude::BASE64_STANDARD_NO_PAD;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

/// Problems with keys, identity files and recipient lists.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not an age X25519 recipient. The text is never quoted: it may be
    /// anything (a private key, a line of a file that is not a recipients
    /// file).
    #[error("invalid recipient: {reason}")]
    InvalidRecipient {
        /// What is wrong.
        reason: &'static str,
    },
    /// Not an age X25519 identity.
    #[error("invalid identity: {reason}")]
    InvalidIdentity {
        /// What is wrong.
        reason: &'static str,
    },
    /// A line of an identity file is not an identity.
    #[error("identity file, line {line}: {reason}")]
    IdentityFileLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the line itself).
        reason: String,
    },
    /// A line of a recipients file is not a recipient.
    #[error("recipients file, line {line}: {reason}")]
    RecipientsFileLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the line itself).
        reason: String,
    },
    /// An identity file without identities.
    #[error("the identity file contains no identities")]
    NoIdentities,
    /// A recipients file without recipients.
    #[error("the recipients file contains no recipients")]
    NoRecipients,
    /// Not 16 lowercase hex digits.
    #[error("invalid key id (expected 16 lowercase hex digits)")]
    InvalidKeyId,
}

/// Number of bytes of SHA-256 kept in a key id.
pub const KEY_ID_LEN: usize = 8;

/// A short fingerprint of a recipient: the first 8 bytes of
/// `SHA-256(recipient string)`, shown as 16 lowercase hex digits.
///
/// Key ids are public. They let the controller pick the right private key at
/// once and let anyone see which key sealed a value without decrypting it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// The key id of a recipient given in its canonical `age1…` form.
    pub fn of_recipient_str(recipient: &str) -> Self {
        let digest = Sha256::digest(recipient.as_bytes());
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self(id)
    }

    /// The 8 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = KeyError;

    /// Parses exactly 16 lowercase hex digits; anything else is rejected so
    /// every key id has a single spelling.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != KEY_ID_LEN * 2 {
            return Err(KeyError::InvalidKeyId);
        }
        let mut id = [0u8; KEY_ID_LEN];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            id[i] = (lower_hex_digit(pair[0])? << 4) | lower_hex_digit(pair[1])?;
        }
        Ok(Self(id))
    }
}

fn lower_hex_digit(c: u8) -> Result<u8, KeyError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(KeyError::InvalidKeyId),
    }
}

/// A public key to seal to: an age X25519 recipient (`age1…`) and its key id.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient {
    inner: age::x25519::Recipient,
    encoded: String,
    key_id: KeyId,
}

impl Recipient {
    /// This recipient's key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub(crate) fn age(&self) -> &age::x25519::Recipient {
        &self.inner
    }
}

impl FromStr for Recipient {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Never echoed, whatever it is: an identity given where a recipient
        // belongs (`-R key.txt` with the private key file), or a line of a
        // file that is no recipients file at all. A private key is named as
        // such even behind a byte-order mark or other invisible characters.
        let trimmed = s.trim();
        if trimmed
            .to_ascii_uppercase()
            .contains(&SECRET_KEY_HRP.to_ascii_uppercase())
        {
            return Err(KeyError::InvalidRecipient {
                reason: "this is a private key (identity), not a public key (recipient)",
            });
        }
        if trimmed.starts_with("ssh-") || trimmed.starts_with("ecdsa-sha2-") {
            return Err(KeyError::InvalidRecipient {
                reason: "SSH public keys are not supported; kseal seals to age X25519 recipients (age1…)",
            });
        }
        if let Some(hrp) = plugin_recipient_hrp(trimmed) {
            return Err(KeyError::InvalidRecipient {
                reason: plugin_refusal_static(&hrp),
            });
        }
        let inner = age::x25519::Recipient::from_str(trimmed)
            .map_err(|reason| KeyError::InvalidRecipient { reason })?;
        // Key ids hash the canonical (lowercase) encoding.
        let encoded = inner.to_string();
        let key_id = KeyId::of_recipient_str(&encoded);
        Ok(Self {
            inner,
            encoded,
            key_id,
        })
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encoded)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({} {})", self.key_id, self.encoded)
    }
}

/// The Bech32 human-readable part of age's X25519 recipients.
const X25519_RECIPIENT_HRP: &str = "age";
/// The human-readable part of age's native post-quantum (hybrid ML-KEM)
/// recipients, `age1pq1…`.
const PQ_RECIPIENT_HRP: &str = "age1pq";

/// The Bech32 human-readable part (lower case) of an age recipient other
/// than X25519: `age1yubikey` for `age1yubikey1…`, `age1tpm` for
/// `age1tpm1…`; `None` for anything else. Only a string that is valid
/// Bech32 (checksum included) and whose part is `age1` and a plugin name
/// counts, so that no other text is ever taken for one and quoted: callers
/// quote this part, and nothing more of the string.
pub fn plugin_recipient_hrp(recipient: &str) -> Option<String> {
    use bech32::primitives::decode::CheckedHrpstring;
    let checked = CheckedHrpstring::new::<bech32::Bech32>(recipient.trim()).ok()?;
    let hrp = checked.hrp().to_lowercase();
    let name = hrp.strip_prefix("age1")?;
    // age's plugin names: lower-case letters, digits and `+-._`.
    let plugin_name = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'_')
        });
    (plugin_name && hrp != X25519_RECIPIENT_HRP).then_some(hrp)
}

/// Why kseal refuses a recipient whose Bech32 part is `hrp` (see
/// [`plugin_recipient_hrp`]), quoting only that part.
pub fn plugin_refusal(hrp: &str) -> String {
    if hrp == PQ_RECIPIENT_HRP {
        return format!(
            "post-quantum (hybrid ML-KEM) recipient ({hrp}1…) is not supported: {X25519_ONLY}"
        );
    }
    format!("age plugin recipient ({hrp}1…) is not supported: {X25519_ONLY}; {KEEP_RECOVERY_KEY}")
}

/// The end of every refusal of a recipient that is not X25519.
macro_rules! x25519_only {
    () => {
        "kseal seals to X25519 recipients only (docs/format.md §1)"
    };
}
/// What to do with a recovery key instead of a plugin.
macro_rules! keep_recovery_key {
    () => {
        "keep the recovery key as an X25519 identity offline, e.g. encrypted with a passphrase (age -p) or on an air-gapped machine"
    };
}
const X25519_ONLY: &str = x25519_only!();
const KEEP_RECOVERY_KEY: &str = keep_recovery_key!();

/// [`plugin_refusal`] as a `&'static str`, for [`KeyError::InvalidRecipient`]:
/// the well-known plugins by name, any other as `age1<plugin>1…`. Where the
/// message may be built at run time (recipients flags and files), callers
/// use [`plugin_refusal`], which names any plugin.
fn plugin_refusal_static(hrp: &str) -> &'static str {
    macro_rules! refusal {
        ($hrp:literal) => {
            concat!(
                "age plugin recipient (",
                $hrp,
                "1…) is not supported: ",
                x25519_only!(),
                "; ",
                keep_recovery_key!()
            )
        };
    }
    match hrp {
        PQ_RECIPIENT_HRP => concat!(
            "post-quantum (hybrid ML-KEM) recipient (age1pq1…) is not supported: ",
            x25519_only!()
        ),
        "age1yubikey" => refusal!("age1yubikey"),
        "age1tpm" => refusal!("age1tpm"),
        "age1se" => refusal!("age1se"),
        "age1fido2-hmac" => refusal!("age1fido2-hmac"),
        "age1tag" => refusal!("age1tag"),
        "age1tagpq" => refusal!("age1tagpq"),
        "age1trezor" => refusal!("age1trezor"),
        "age1ledger" => refusal!("age1ledger"),
        _ => refusal!("age1<plugin>"),
    }
}

const X25519_STANZA_TAG: &str = "X25519";
const X25519_HKDF_LABEL: &[u8] = b"age-encryption.org/v1/X25519";
const X25519_ENCRYPTED_FILE_KEY_LEN: usize = FILE_KEY_BYTES + 16;

/// A private age X25519 key with its public key and key id computed once.
///
/// `age::x25519::Identity` recomputes its public key (a base-point
/// multiplication, ~12 µs) on every unwrap; unsealing thousands of values
/// makes that a quarter of the cost. This identity unwraps X25519 stanzas
/// exactly as the age specification says, with age's own HKDF and AEAD
/// primitives, and keeps the public half. Tests check that it agrees with
/// `age::x25519::Identity`.
///
/// The secret scalar is zeroized on drop (x25519-dalek's `zeroize` feature);
/// `Debug` prints only the key id.
#[derive(Clone)]
pub struct Identity {
    age: age::x25519::Identity,
    secret: StaticSecret,
    public: PublicKey,
    recipient: Recipient,
}

const SECRET_KEY_HRP: &str = "age-secret-key-";

impl Identity {
    /// A new random identity.
    pub fn generate() -> Self {
        let fresh = age::x25519::Identity::generate();
        // Round-trips through age's own encoding, so a generated identity and
        // a parsed one are built the same way.
        match Self::from_str(fresh.to_string().expose_secret()) {
            Ok(identity) => identity,
            Err(_) => unreachable!("age encodes identities it can parse"),
        }
    }

    /// The matching public key.
    pub fn recipient(&self) -> &Recipient {
        &self.recipient
    }

    /// The key id of its public key.
    pub fn key_id(&self) -> KeyId {
        self.recipient.key_id
    }

    /// The `AGE-SECRET-KEY-1…` encoding. Handle with care: this is the key.
    pub fn to_secret_string(&self) -> age::secrecy::SecretString {
        self.age.to_string()
    }

    /// The identity as `age-keygen` writes it: a creation comment, the public
    /// key comment, and the secret key line.
    pub fn to_keygen_file(&self, created: &str) -> age::secrecy::SecretString {
        age::secrecy::SecretString::from(format!(
            "# created: {created}\n# public key: {}\n{}\n",
            self.recipient,
            self.age.to_string().expose_secret()
        ))
    }
}

impl FromStr for Identity {
    type Err = KeyError;

    /// Parses one `AGE-SECRET-KEY-1…` string. Errors never echo the input.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // age's parser is the authority on what a valid identity is.
        let age = age::x25519::Identity::from_str(s)
            .map_err(|reason| KeyError::InvalidIdentity { reason })?;
        let (hrp, mut bytes) = bech32::decode(s).map_err(|_| KeyError::InvalidIdentity {
            reason: "invalid Bech32",
        })?;
        let scalar: Option<[u8; 32]> = bytes.as_slice().try_into().ok();
        bytes.zeroize();
        let Some(mut scalar) = scalar.filter(|_| hrp.as_str().eq_ignore_ascii_case(SECRET_KEY_HRP))
        else {
            return Err(KeyError::InvalidIdentity {
                reason: "not an X25519 identity",
            });
        };
        let secret = StaticSecret::from(scalar);
        scalar.zeroize();
        let public = PublicKey::from(&secret);
        let inner = age.to_public();
        let encoded = inner.to_string();
        let key_id = KeyId::of_recipient_str(&encoded);
        Ok(Self {
            age,
            secret,
            public,
            recipient: Recipient {
                inner,
                encoded,
                key_id,
            },
        })
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({} <redacted>)", self.recipient.key_id)
    }
}

impl age::Identity for Identity {
    /// Unwraps an `X25519` stanza as the age v1 specification defines it.
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        if stanza.tag != X25519_STANZA_TAG {
            return None;
        }
        let [share] = stanza.args.as_slice() else {
            return Some(Err(age::DecryptError::InvalidHeader));
        };
        // age's base64 in stanzas is canonical, unpadded standard base64.
        let ephemeral: [u8; 32] = match BASE64_STANDARD_NO_PAD.decode(share) {
            Ok(bytes) => match bytes.try_into() {
                Ok(bytes) => bytes,
                Err(_) => return Some(Err(age::DecryptError::InvalidHeader)),
            },
            Err(_) => return Some(Err(age::DecryptError::InvalidHeader)),
        };
        if stanza.body.len() != X25519_ENCRYPTED_FILE_KEY_LEN {
            return Some(Err(age::DecryptError::InvalidHeader));
        }
        let ephemeral = PublicKey::from(ephemeral);
        let shared = self.secret.diffie_hellman(&ephemeral);
        if !shared.was_contributory() {
            return Some(Err(age::DecryptError::InvalidHeader));
        }
        let mut salt = [0u8; 64];
        salt[..32].copy_from_slice(ephemeral.as_bytes());
        salt[32..].copy_from_slice(self.public.as_bytes());
        let mut wrapping_key = hkdf(&salt, X25519_HKDF_LABEL, shared.as_bytes());
        let unwrapped = aead_decrypt(&wrapping_key, FILE_KEY_BYTES, &stanza.body);
        wrapping_key.zeroize();
        // A stanza for another recipient fails to open: not ours, try the next.
        let mut file_key = unwrapped.ok()?;
        let key = FileKey::init_with_mut(|out| out.copy_from_slice(&file_key));
        file_key.zeroize();
        Some(Ok(key))
    }
}

/// Parses an identity file as `age-keygen` writes it (`docs/format.md` §1):
/// lines end in LF or CRLF; empty lines and lines starting with `#` are
/// skipped; every other line is exactly one upper-case `AGE-SECRET-KEY-1…`
/// with nothing before or after it. A byte-order mark, white space around a
/// key, a lower-case key, age plugin identities and SSH/PEM private keys are
/// refused with a reason. At least one identity is required. Errors name the
/// line but never echo it.
pub fn parse_identity_file(contents: &str) -> Result<Vec<Identity>, KeyError> {
    if contents.starts_with('\u{feff}') {
        return Err(KeyError::IdentityFileLine {
            line: 1,
            reason: "the file starts with a byte-order mark; save it as plain UTF-8".to_owned(),
        });
    }
    let mut identities = Vec::new();
    for (index, line) in contents.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |reason: &str| KeyError::IdentityFileLine {
            line: index + 1,
            reason: reason.to_owned(),
        };
        if let Some(reason) = identity_line_problem(line) {
            return Err(at(reason));
        }
        identities.push(Identity::from_str(line).map_err(|err| at(&err.to_string()))?);
    }
    nonempty(identities, KeyError::NoIdentities)
}

/// Why a non-comment line of an identity file is not an identity kseal
/// reads, before Bech32 decoding; `None` when it may be one.
fn identity_line_problem(line: &str) -> Option<&'static str> {
    const PREFIX: &str = "AGE-SECRET-KEY-1";
    // Other kinds of key first, by what they start with: their lines hold
    // spaces, and "white space in the line" would not say what is wrong.
    if let Some(kind) = other_key_kind(line.trim()) {
        return Some(kind);
    }
    if line.trim() != line {
        return Some("white space before or after the key");
    }
    if line.contains(char::is_whitespace) {
        return Some("white space in the line: one key per line, and no comment after it");
    }
    let upper = line.to_ascii_uppercase();
    if upper.starts_with("AGE-PLUGIN-") {
        return Some(
            "age plugin identities are not supported; kseal needs an X25519 identity (AGE-SECRET-KEY-1…)",
        );
    }
    if upper.starts_with("AGE-SECRET-KEY-PQ-") {
        return Some(
            "post-quantum (hybrid ML-KEM) identities are not supported; kseal needs an X25519 identity (AGE-SECRET-KEY-1…)",
        );
    }
    if upper.starts_with(PREFIX) && !line.starts_with(PREFIX) {
        return Some("an identity must be upper case, as age-keygen writes it");
    }
    if line.starts_with(PREFIX)
        && line
            .bytes()
            .any(|b| !(b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-'))
    {
        return Some("an identity must be upper case, as age-keygen writes it");
    }
    if line.starts_with("age1") {
        return Some("this is a public key (recipient), not a private key (identity)");
    }
    None
}

/// What kind of key other than an age identity a line of an identity file
/// starts, by its first bytes (the PEM label, the SSH key type); `None` when
/// it is none of them. The line itself is never quoted.
fn other_key_kind(line: &str) -> Option<&'static str> {
    if let Some(label) = line.strip_prefix("-----BEGIN ") {
        let label = label.split("-----").next().unwrap_or_default();
        return Some(match label {
            "AGE ENCRYPTED FILE" => {
                "a passphrase-protected identity file: decrypt it first (age -d)"
            }
            "OPENSSH PRIVATE KEY" => {
                "an OpenSSH private key (ssh-keygen's format); kseal needs an age X25519 identity (AGE-SECRET-KEY-1…)"
            }
            "RSA PRIVATE KEY" => {
                "a PEM RSA private key (PKCS#1); kseal needs an age X25519 identity (AGE-SECRET-KEY-1…)"
            }
            "EC PRIVATE KEY" => {
                "a PEM EC private key (SEC 1); kseal needs an age X25519 identity (AGE-SECRET-KEY-1…)"
            }
            "DSA PRIVATE KEY" => {
                "a PEM DSA private key; kseal needs an age X25519 identity (AGE-SECRET-KEY-1…)"
            }
            "PRIVATE KEY" => {
                "a PEM private key (PKCS#8); kseal needs an age X25519 identity (AGE-SECRET-KEY-1…)"
            }
            "ENCRYPTED PRIVATE KEY" => {
                "an encrypted PEM private key (PKCS#8); kseal needs an age X25519 identity (AGE-SECRET-KEY-1…)"
            }
            "PGP PRIVATE KEY BLOCK" => {
                "an OpenPGP private key; kseal needs an age X25519 identity (AGE-SECRET-KEY-1…)"
            }
            "CERTIFICATE" | "PUBLIC KEY" | "RSA PUBLIC KEY" => {
                "a PEM certificate or public key; kseal needs an age X25519 identity (AGE-SECRET-KEY-1…)"
            }
            _ => {
                "a PEM block, not an age identity; kseal needs an age X25519 identity (AGE-SECRET-KEY-1…)"
            }
        });
    }
    let ssh_type = line.split(' ').next().unwrap_or_default();
    if ssh_type.starts_with("ssh-")
        || ssh_type.starts_with("ecdsa-sha2-")
        || ssh_type.starts_with("sk-ssh-")
        || ssh_type.starts_with("sk-ecdsa-")
    {
        return Some(
            "an SSH public key (a private key is needed, and an age X25519 one: AGE-SECRET-KEY-1…)",
        );
    }
    if line.starts_with("PuTTY-User-Key-File-") {
        return Some("a PuTTY private key; kseal needs an age X25519 identity (AGE-SECRET-KEY-1…)");
    }
    None
}

/// Parses an age recipients file: `#` comments, blank lines, one `age1…`
/// per line. Age plugin recipients are refused, naming the plugin (see
/// [`plugin_refusal`]).
pub fn parse_recipients_file(contents: &str) -> Result<Vec<Recipient>, KeyError> {
    parse_key_lines(contents, |line, text, reason| {
        KeyError::RecipientsFileLine {
            line,
            reason: match plugin_recipient_hrp(text) {
                Some(hrp) => plugin_refusal(&hrp),
                None => reason,
            },
        }
    })
    .and_then(|recipients| nonempty(recipients, KeyError::NoRecipients))
}

/// One key per line; blank lines and `#` comments skipped. `at` names the
/// failing line (never its content) from its number, its text and the
/// parse error.
fn parse_key_lines<T: FromStr<Err = KeyError>>(
    contents: &str,
    at: impl Fn(usize, &str, String) -> KeyError,
) -> Result<Vec<T>, KeyError> {
    contents
        .lines()
        .enumerate()
        .map(|(index, line)| (index, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(index, line)| T::from_str(line).map_err(|err| at(index + 1, line, err.to_string())))
        .collect()
}

fn nonempty<T>(items: Vec<T>, empty: KeyError) -> Result<Vec<T>, KeyError> {
    if items.is_empty() {
        Err(empty)
    } else {
        Ok(items)
    }
}

/// Removes duplicate recipients (same key id), keeping the first.
pub fn dedup_recipients(recipients: &mut Vec<Recipient>) {
    let mut seen = HashSet::new();
    recipients.retain(|recipient| seen.insert(recipient.key_id));
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::Identity as _;

    #[test]
    fn key_id_is_sha256_prefix_of_recipient() {
        let recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        // echo -n age1ql3z… | sha256sum
        let id = KeyId::of_recipient_str(recipient);
        let digest = Sha256::digest(recipient.as_bytes());
        assert_eq!(id.as_bytes(), &digest[..8]);
        assert_eq!(id.to_string().len(), 16);
        assert_eq!(KeyId::from_str(&id.to_string()).unwrap(), id);
    }

    #[test]
    fn key_id_parsing_is_strict() {
        for bad in [
            "",
            "0123",
            "0123456789ABCDEF",
            "0123456789abcdeg",
            "0123456789abcdef0",
        ] {
            assert!(KeyId::from_str(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identity_debug_is_redacted() {
        let identity = Identity::generate();
        let shown = format!("{identity:?}");
        assert!(shown.contains(&identity.key_id().to_string()));
        assert!(!shown.contains("AGE-SECRET-KEY"));
    }

    #[test]
    fn identity_roundtrips_through_its_string() {
        let identity = Identity::generate();
        let again = Identity::from_str(identity.to_secret_string().expose_secret()).unwrap();
        assert_eq!(again.recipient(), identity.recipient());
    }

    #[test]
    fn cached_identity_agrees_with_age() {
        for _ in 0..16 {
            let identity = Identity::generate();
            let reference =
                age::x25519::Identity::from_str(identity.to_secret_string().expose_secret())
                    .unwrap();
            let other = Identity::generate();
            let file_key = FileKey::new(Box::new(rand::random()));
            let (stanzas, _) =
                age::Recipient::wrap_file_key(identity.recipient().age(), &file_key).unwrap();
            let ours = identity.unwrap_stanza(&stanzas[0]).unwrap().unwrap();
            let theirs = reference.unwrap_stanza(&stanzas[0]).unwrap().unwrap();
            assert_eq!(ours.expose_secret(), theirs.expose_secret());
            assert_eq!(ours.expose_secret(), file_key.expose_secret());
            // Another identity does not claim the stanza.
            assert!(other.unwrap_stanza(&stanzas[0]).is_none());
            // Malformed stanzas are header errors for both.
            let copy = |s: &Stanza| Stanza {
                tag: s.tag.clone(),
                args: s.args.clone(),
                body: s.body.clone(),
            };
            let mut bad = copy(&stanzas[0]);
            bad.args.push("extra".into());
            assert!(matches!(identity.unwrap_stanza(&bad), Some(Err(_))));
            assert!(matches!(reference.unwrap_stanza(&bad), Some(Err(_))));
            let mut short = copy(&stanzas[0]);
            short.body.pop();
            assert!(matches!(identity.unwrap_stanza(&short), Some(Err(_))));
            assert!(matches!(reference.unwrap_stanza(&short), Some(Err(_))));
        }
    }

    #[test]
    fn identity_file_with_comments_and_several_keys() {
        let a = Identity::generate();
        let b = Identity::generate();
        let file = format!(
            "{}\n\n# another\n{}\n",
            a.to_keygen_file("2026-01-01T00:00:00Z").expose_secret(),
            b.to_secret_string().expose_secret()
        );
        let parsed = parse_identity_file(&file).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].key_id(), a.key_id());
        assert_eq!(parsed[1].key_id(), b.key_id());
    }

    #[test]
    fn identity_file_errors_do_not_echo_the_line() {
        let err = parse_identity_file("# c\nAGE-SECRET-KEY-1NOTAKEY\n").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(!message.contains("NOTAKEY"), "{message}");
        assert!(matches!(
            parse_identity_file("# only a comment\n"),
            Err(KeyError::NoIdentities)
        ));
    }

    /// Keys of another kind are named by their kind (docs/format.md §1),
    /// before any rule on white space could speak for them.
    #[test]
    fn other_kinds_of_key_are_named() {
        for (text, kind) in [
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\n",
                "OpenSSH private key",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n",
                "PEM RSA private key",
            ),
            ("-----BEGIN EC PRIVATE KEY-----\n", "PEM EC private key"),
            (
                "-----BEGIN PRIVATE KEY-----\r\n",
                "PEM private key (PKCS#8)",
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
                "encrypted PEM private key",
            ),
            (
                "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n",
                "passphrase-protected identity file",
            ),
            ("-----BEGIN CERTIFICATE-----\n", "certificate or public key"),
            (
                "  -----BEGIN OPENSSH PRIVATE KEY-----\n",
                "OpenSSH private key",
            ),
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHunter2 me@host\n",
                "SSH public key",
            ),
            (
                "ecdsa-sha2-nistp256 AAAAE2VjZHNh me@host\n",
                "SSH public key",
            ),
            ("PuTTY-User-Key-File-3: ssh-ed25519\n", "PuTTY private key"),
        ] {
            let message = parse_identity_file(text).unwrap_err().to_string();
            assert!(message.contains(kind), "{text:?}: {message}");
            assert!(!message.contains("white space"), "{text:?}: {message}");
            assert!(
                !message.contains("Hunter2") && !message.contains("b3Bl"),
                "{message}"
            );
        }
    }

    /// A valid Bech32 string with this human-readable part, as an age
    /// plugin encodes its recipients (a 33-byte compressed P-256 point for
    /// age-plugin-yubikey, age-plugin-tpm and age-plugin-se).
    fn plugin_recipient(hrp: &str) -> String {
        let mut data = [0x5au8; 33];
        data[0] = 0x02;
        bech32::encode::<bech32::Bech32>(bech32::Hrp::parse(hrp).unwrap(), &data).unwrap()
    }

    const PLUGIN_REFUSAL_END: &str = "is not supported: kseal seals to X25519 recipients only (docs/format.md §1); keep the recovery key as an X25519 identity offline, e.g. encrypted with a passphrase (age -p) or on an air-gapped machine";

    #[test]
    fn plugin_recipients_are_refused_naming_only_the_plugin() {
        // The example of age-plugin-yubikey users (a real recipient, valid
        // Bech32), and generated ones for other plugins.
        let yubikey = "age1yubikey1qgyl9efw5cexsg8ee66jpxglnvfaswhd4zjhntqawagp4zgh064puht4g9l";
        assert_eq!(
            plugin_recipient_hrp(yubikey).as_deref(),
            Some("age1yubikey")
        );
        for (recipient, hrp) in [
            (yubikey.to_owned(), "age1yubikey"),
            (plugin_recipient("age1yubikey"), "age1yubikey"),
            (plugin_recipient("age1tpm"), "age1tpm"),
            (plugin_recipient("age1se"), "age1se"),
            (
                plugin_recipient("age1yubikey").to_ascii_uppercase(),
                "age1yubikey",
            ),
        ] {
            let data = &recipient[hrp.len() + 1..];
            let expected = format!("age plugin recipient ({hrp}1…) {PLUGIN_REFUSAL_END}");
            // Parsed alone (-r, .kseal.yaml recipients)…
            let err = Recipient::from_str(&recipient).unwrap_err().to_string();
            assert_eq!(err, format!("invalid recipient: {expected}"));
            assert!(
                !err.to_ascii_lowercase()
                    .contains(&data.to_ascii_lowercase()),
                "{err}"
            );
            // …and in a recipients file (-R, recipients_file), beside an
            // X25519 recipient.
            let file = format!("{}\n  {recipient}\n", Identity::generate().recipient());
            let err = parse_recipients_file(&file).unwrap_err().to_string();
            assert_eq!(err, format!("recipients file, line 2: {expected}"));
            assert!(
                !err.to_ascii_lowercase()
                    .contains(&data.to_ascii_lowercase()),
                "{err}"
            );
        }
        // A plugin without a well-known name: named in full where the
        // message is built at run time, generically where it is static.
        let other = plugin_recipient("age1example-plugin");
        assert_eq!(
            parse_recipients_file(&other).unwrap_err().to_string(),
            format!(
                "recipients file, line 1: age plugin recipient (age1example-plugin1…) {PLUGIN_REFUSAL_END}"
            )
        );
        assert_eq!(
            Recipient::from_str(&other).unwrap_err().to_string(),
            format!(
                "invalid recipient: age plugin recipient (age1<plugin>1…) {PLUGIN_REFUSAL_END}"
            )
        );
        // age's post-quantum recipients are no plugin, and said as such.
        let pq = plugin_recipient("age1pq");
        assert_eq!(
            Recipient::from_str(&pq).unwrap_err().to_string(),
            "invalid recipient: post-quantum (hybrid ML-KEM) recipient (age1pq1…) is not supported: kseal seals to X25519 recipients only (docs/format.md §1)"
        );
        assert_eq!(
            plugin_refusal("age1pq"),
            Recipient::from_str(&pq).unwrap_err().to_string()["invalid recipient: ".len()..]
        );
    }

    #[test]
    fn only_valid_bech32_is_taken_for_a_plugin_recipient() {
        let x25519 = Identity::generate().recipient().to_string();
        assert_eq!(plugin_recipient_hrp(&x25519), None);
        assert!(Recipient::from_str(&x25519).is_ok());
        // A broken checksum, or text that merely starts like one, is not
        // quoted: age's own error, as before.
        let mut broken = plugin_recipient("age1yubikey");
        broken.pop();
        broken.push(if broken.ends_with('q') { 'p' } else { 'q' });
        for text in [broken.as_str(), "age1secretpassword1xyz", "age1yubikey1"] {
            assert_eq!(plugin_recipient_hrp(text), None, "{text}");
            let err = parse_recipients_file(text).unwrap_err().to_string();
            assert!(!err.contains("plugin"), "{err}");
            assert!(!err.contains("secretpassword"), "{err}");
        }
    }

    #[test]
    fn recipients_file() {
        let a = Identity::generate();
        let file = format!("# team\n{}\n\n", a.recipient());
        let parsed = parse_recipients_file(&file).unwrap();
        assert_eq!(parsed[0].key_id(), a.key_id());
        assert!(
            parse_recipients_file("age1bogus\n")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
    }
}
