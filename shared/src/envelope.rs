//! The sealed-value envelope, format v1 (see `docs/format.md`):
//!
//! ```text
//! kseal:v1:<key ids>:<wrapped data key>:<nonce>:<ciphertext>
//! ```
//!
//! * key ids: the comma-separated [`KeyId`]s of the recipients the data key
//!   is wrapped to;
//! * wrapped data key: a binary age file (base64) whose payload is the 32-byte
//!   data key, wrapped to every recipient, with a `kseal.dev/key-ids` stanza
//!   repeating the key ids so age's header MAC authenticates them;
//! * nonce: the 24-byte XChaCha20-Poly1305 nonce (base64);
//! * ciphertext: XChaCha20-Poly1305 of the value under the data key, with the
//!   binding's associated data (base64, includes the 16-byte tag).
//!
//! base64 is RFC 4648 standard alphabet with padding, decoded strictly.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use age_core::format::{FileKey, Stanza};
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::binding::{Binding, MAX_VALUE_LEN};
use crate::error::SealError;
use crate::secret::{DataKey, SecretBytes};
use crate::wrapped_key::AgeFile;
use crate::x25519::{Identity, KeyId, Recipient};

/// The first field of every sealed value.
pub const MAGIC: &str = "kseal";
/// The format version this library writes and reads.
pub const VERSION: &str = "v1";
/// Tag of the age stanza that carries the key ids inside the wrapped key.
pub const KEY_IDS_STANZA_TAG: &str = "kseal.dev/key-ids";
/// XChaCha20-Poly1305 nonce length.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// At most this many recipients per value.
pub const MAX_RECIPIENTS: usize = 64;
/// A sealed value longer than this is rejected before decoding (a 1 MiB value
/// encodes to about 1.4 MB).
pub const MAX_ENCODED_LEN: usize = 2 * 1024 * 1024;
/// At most this many stanzas in a wrapped data key: one X25519 stanza per
/// recipient, the key-ids stanza, and two more (files written by the `age`
/// crate's encryptor, as early kseal versions did, carry one "grease"
/// stanza). Bounds the work a value can ask of a reader.
pub const MAX_STANZAS: usize = MAX_RECIPIENTS + 3;
/// The tag of age's X25519 recipient stanzas.
const X25519_STANZA_TAG: &str = "X25519";

/// A parsed sealed value. Public data only: nothing here is secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedValue {
    key_ids: Vec<KeyId>,
    wrapped_key: Vec<u8>,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl SealedValue {
    /// Parses and checks the structure of a sealed value string, including
    /// that the outer key ids equal those in the wrapped key's header.
    pub fn parse(encoded: &str) -> Result<Self, SealError> {
        if encoded.len() > MAX_ENCODED_LEN {
            return Err(SealError::Malformed("value too long"));
        }
        let mut fields = encoded.split(':');
        if fields.next() != Some(MAGIC) {
            return Err(SealError::NotSealedValue);
        }
        match fields.next() {
            Some(VERSION) => {}
            Some(other) => {
                // Name the version only when it looks like one (`v` and up
                // to 8 digits): the field could be anything, a plaintext
                // pasted by mistake included.
                let looks_like_a_version = other.len() <= 9
                    && other.strip_prefix('v').is_some_and(|digits| {
                        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                    });
                let shown = if looks_like_a_version {
                    other.to_owned()
                } else {
                    "(not shown)".to_owned()
                };
                return Err(SealError::UnsupportedVersion(shown));
            }
            None => return Err(SealError::Malformed("missing version")),
        }
        let (Some(key_ids), Some(wrapped), Some(nonce), Some(ciphertext), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(SealError::Malformed("expected 6 colon-separated fields"));
        };
        let key_ids = parse_key_ids(key_ids)?;
        let wrapped_key = decode_field(wrapped, "wrapped data key is not valid base64")?;
        let nonce: [u8; NONCE_LEN] = decode_field(nonce, "nonce is not valid base64")?
            .try_into()
            .map_err(|_| SealError::Malformed("nonce must be 24 bytes"))?;
        let ciphertext = decode_field(ciphertext, "ciphertext is not valid base64")?;
        if ciphertext.len() < TAG_LEN {
            return Err(SealError::Malformed("ciphertext shorter than its tag"));
        }
        check_wrapped_key(&wrapped_key, &key_ids)?;
        Ok(Self {
            key_ids,
            wrapped_key,
            nonce,
            ciphertext,
        })
    }

    /// The ids of the keys the data key is wrapped to, in stanza order.
    pub fn key_ids(&self) -> &[KeyId] {
        &self.key_ids
    }

    /// The wrapped data key: a complete binary age file.
    pub fn wrapped_key(&self) -> &[u8] {
        &self.wrapped_key
    }

    /// The XChaCha20-Poly1305 nonce.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// The ciphertext with its 16-byte tag.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// Whether the data key is wrapped to exactly this set of recipients.
    pub fn is_sealed_to(&self, key_ids: &[KeyId]) -> bool {
        let ours: HashSet<_> = self.key_ids.iter().collect();
        let theirs: HashSet<_> = key_ids.iter().collect();
        ours == theirs
    }

    /// The string form stored in `spec.encryptedData`.
    pub fn encode(&self) -> String {
        let key_ids: Vec<String> = self.key_ids.iter().map(KeyId::to_string).collect();
        format!(
            "{MAGIC}:{VERSION}:{}:{}:{}:{}",
            key_ids.join(","),
            BASE64_STANDARD.encode(&self.wrapped_key),
            BASE64_STANDARD.encode(self.nonce),
            BASE64_STANDARD.encode(&self.ciphertext)
        )
    }
}

impl fmt::Display for SealedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedValue")
            .field("key_ids", &self.key_ids)
            .field("wrapped_key_len", &self.wrapped_key.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

fn decode_field(field: &str, what: &'static str) -> Result<Vec<u8>, SealError> {
    BASE64_STANDARD
        .decode(field)
        .map_err(|_| SealError::Malformed(what))
}

/// At most [`MAX_RECIPIENTS`] ids, counted before any is parsed: the work
/// stays constant whatever the field holds (a 2 MiB field of ids once cost
/// seconds of quadratic duplicate checks).
fn parse_key_ids(field: &str) -> Result<Vec<KeyId>, SealError> {
    if field.split(',').nth(MAX_RECIPIENTS).is_some() {
        return Err(SealError::Malformed("too many key ids"));
    }
    let mut key_ids = Vec::with_capacity(MAX_RECIPIENTS);
    for part in field.split(',') {
        let id = part
            .parse::<KeyId>()
            .map_err(|_| SealError::Malformed("invalid key id"))?;
        if key_ids.contains(&id) {
            return Err(SealError::Malformed("duplicate key id"));
        }
        key_ids.push(id);
    }
    Ok(key_ids)
}

/// The key ids the given sealed values are wrapped to (sorted, unique).
/// Only values that parse count: `encryptedData` could hold any text, and a
/// bogus `kseal:v1:<hex>…` must neither name a key nor hide one.
pub fn key_ids_in<'a>(values: impl IntoIterator<Item = &'a str>) -> BTreeSet<KeyId> {
    values
        .into_iter()
        .filter_map(|value| SealedValue::parse(value).ok())
        .flat_map(|value| value.key_ids().to_vec())
        .collect()
}

/// Checks a wrapped data key against the value's key ids, without keys: it
/// parses as an age file ([`crate::wrapped_key::AgeFile`]); exactly one
/// `kseal.dev/key-ids` stanza, with an empty body, lists the same key ids in
/// the same order (one argument each); and there is exactly one X25519
/// stanza per key id (the i-th stanza is unwrapped only with the i-th key).
fn check_wrapped_key(file: &[u8], key_ids: &[KeyId]) -> Result<(), SealError> {
    let file = AgeFile::parse(file, MAX_STANZAS).map_err(SealError::Malformed)?;
    let mut key_id_stanzas = file
        .stanzas
        .iter()
        .filter(|stanza| stanza.tag == KEY_IDS_STANZA_TAG);
    let stanza = match (key_id_stanzas.next(), key_id_stanzas.next()) {
        (Some(stanza), None) => stanza,
        (None, _) => {
            return Err(SealError::Malformed(
                "wrapped data key has no key-ids stanza",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(SealError::Malformed(
                "wrapped data key has two key-ids stanzas",
            ));
        }
    };
    if !stanza.body.is_empty() {
        return Err(SealError::Malformed(
            "the wrapped data key's key-ids stanza has a body",
        ));
    }
    let listed = stanza
        .args
        .iter()
        .map(|arg| arg.parse::<KeyId>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| SealError::Malformed("invalid key id in the key-ids stanza"))?;
    if listed != key_ids {
        return Err(SealError::Malformed(
            "key ids do not match the wrapped data key's key-ids stanza",
        ));
    }
    let x25519 = file
        .stanzas
        .iter()
        .filter(|stanza| stanza.tag == X25519_STANZA_TAG)
        .count();
    if x25519 != key_ids.len() {
        return Err(SealError::Malformed(
            "the wrapped data key does not have one X25519 stanza per key id",
        ));
    }
    Ok(())
}

/// Private keys indexed by key id, so unsealing tries only the key a value
/// names.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    by_id: HashMap<KeyId, Identity>,
}

impl Keyring {
    /// A keyring of these identities.
    pub fn new(identities: impl IntoIterator<Item = Identity>) -> Self {
        Self {
            by_id: identities
                .into_iter()
                .map(|identity| (identity.key_id(), identity))
                .collect(),
        }
    }

    /// Adds (or replaces) an identity.
    pub fn insert(&mut self, identity: Identity) {
        self.by_id.insert(identity.key_id(), identity);
    }

    /// The identity with this key id.
    pub fn get(&self, key_id: &KeyId) -> Option<&Identity> {
        self.by_id.get(key_id)
    }

    /// Whether an identity has this key id.
    pub fn contains(&self, key_id: &KeyId) -> bool {
        self.by_id.contains_key(key_id)
    }

    /// How many identities.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The key ids, in no particular order.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.by_id.keys()
    }
}

impl FromIterator<Identity> for Keyring {
    fn from_iter<T: IntoIterator<Item = Identity>>(iter: T) -> Self {
        Self::new(iter)
    }
}

/// Seals one value: a fresh data key encrypts it under the binding's
/// associated data, and is wrapped with age to every recipient.
pub fn seal(
    plaintext: &[u8],
    binding: &Binding<'_>,
    recipients: &[Recipient],
) -> Result<SealedValue, SealError> {
    binding.validate()?;
    if plaintext.len() > MAX_VALUE_LEN {
        return Err(SealError::TooLarge);
    }
    let data_key = DataKey::generate();
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = aead(&data_key)
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &binding.associated_data(),
            },
        )
        .map_err(|_| SealError::Internal("value encryption failed"))?;
    let (key_ids, wrapped_key) = wrap_data_key(&data_key, recipients)?;
    Ok(SealedValue {
        key_ids,
        wrapped_key,
        nonce,
        ciphertext,
    })
}

/// Opens one value with whichever of the keyring's identities it names.
pub fn open(
    value: &SealedValue,
    binding: &Binding<'_>,
    keyring: &Keyring,
) -> Result<SecretBytes, SealError> {
    binding.validate()?;
    let data_key = unwrap_data_key(value, keyring)?;
    decrypt_with(value, binding, &data_key)
}

/// Re-wraps a value's data key to `recipients`. The value must open under
/// `binding` first (nothing unverifiable is re-wrapped); its nonce and
/// ciphertext are kept byte for byte.
pub fn rewrap(
    value: &SealedValue,
    binding: &Binding<'_>,
    keyring: &Keyring,
    recipients: &[Recipient],
) -> Result<SealedValue, SealError> {
    binding.validate()?;
    let data_key = unwrap_data_key(value, keyring)?;
    drop(decrypt_with(value, binding, &data_key)?);
    let (key_ids, wrapped_key) = wrap_data_key(&data_key, recipients)?;
    Ok(SealedValue {
        key_ids,
        wrapped_key,
        nonce: value.nonce,
        ciphertext: value.ciphertext.clone(),
    })
}

/// Unwraps the data key with the keyring's identities that the value names:
/// each only with its own X25519 stanza, so a value costs at most one
/// Diffie-Hellman per key held.
pub fn unwrap_data_key(value: &SealedValue, keyring: &Keyring) -> Result<DataKey, SealError> {
    let candidates: Vec<(usize, &Identity)> = value
        .key_ids
        .iter()
        .enumerate()
        .filter_map(|(index, id)| keyring.get(id).map(|identity| (index, identity)))
        .collect();
    if candidates.is_empty() {
        return Err(SealError::NoMatchingIdentity {
            key_ids: value.key_ids.clone(),
        });
    }
    let file = AgeFile::parse(&value.wrapped_key, MAX_STANZAS).map_err(SealError::Malformed)?;
    file.unwrap(&StanzaByPosition { candidates })
        .ok_or(SealError::UnwrapFailed)
}

fn decrypt_with(
    value: &SealedValue,
    binding: &Binding<'_>,
    data_key: &DataKey,
) -> Result<SecretBytes, SealError> {
    aead(data_key)
        .decrypt(
            XNonce::from_slice(&value.nonce),
            Payload {
                msg: &value.ciphertext,
                aad: &binding.associated_data(),
            },
        )
        .map(SecretBytes::new)
        .map_err(|_| SealError::DecryptFailed)
}

fn aead(data_key: &DataKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(data_key.expose().into())
}

/// Wraps a data key to the recipients (duplicates removed) as a binary age
/// file with the key-ids stanza; returns the key ids in stanza order.
fn wrap_data_key(
    data_key: &DataKey,
    recipients: &[Recipient],
) -> Result<(Vec<KeyId>, Vec<u8>), SealError> {
    let mut seen = HashSet::new();
    let unique: Vec<&Recipient> = recipients
        .iter()
        .filter(|recipient| seen.insert(recipient.key_id()))
        .collect();
    if unique.is_empty() {
        return Err(SealError::NoRecipients);
    }
    if unique.len() > MAX_RECIPIENTS {
        return Err(SealError::InvalidBinding(format!(
            "at most {MAX_RECIPIENTS} recipients per value"
        )));
    }
    let key_ids: Vec<KeyId> = unique.iter().map(|recipient| recipient.key_id()).collect();
    let recipients: Vec<&dyn age::Recipient> = unique
        .iter()
        .map(|recipient| recipient.age() as &dyn age::Recipient)
        .collect();
    let key_ids_stanza = Stanza {
        tag: KEY_IDS_STANZA_TAG.to_owned(),
        args: key_ids.iter().map(KeyId::to_string).collect(),
        body: Vec::new(),
    };
    let wrapped = crate::wrapped_key::wrap(data_key, &recipients, &[key_ids_stanza])
        .ok_or(SealError::Internal("age encryption failed"))?;
    Ok((key_ids, wrapped))
}

/// Unwraps with the named identities only, each with the X25519 stanza at
/// its key id's position ([`check_wrapped_key`] checked the rest when the
/// value was parsed). The header MAC is verified after a successful unwrap,
/// so a changed key id or stanza anywhere is rejected.
struct StanzaByPosition<'a> {
    candidates: Vec<(usize, &'a Identity)>,
}

impl age::Identity for StanzaByPosition<'_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        let x25519: Vec<&Stanza> = stanzas
            .iter()
            .filter(|stanza| stanza.tag == X25519_STANZA_TAG)
            .collect();
        self.candidates.iter().find_map(|(index, identity)| {
            age::Identity::unwrap_stanza(*identity, x25519.get(*index)?)
        })
    }
}
