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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;

use age_core::format::{FileKey, Stanza};
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::binding::{Binding, MAX_VALUE_LEN};
use crate::error::SealError;
use crate::keys::{Identity, KeyId, Recipient};
use crate::secret::{DATA_KEY_LEN, DataKey, SecretBytes};

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

const AGE_HEADER_FIRST_LINE: &[u8] = b"age-encryption.org/v1\n";

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
        if header_key_ids(&wrapped_key)? != key_ids {
            return Err(SealError::Malformed(
                "key ids do not match the wrapped data key's key-ids stanza",
            ));
        }
        Ok(Self {
            key_ids,
            wrapped_key,
            nonce,
            ciphertext,
        })
    }

    pub fn key_ids(&self) -> &[KeyId] {
        &self.key_ids
    }

    /// The wrapped data key: a complete binary age file.
    pub fn wrapped_key(&self) -> &[u8] {
        &self.wrapped_key
    }

    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

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

fn parse_key_ids(field: &str) -> Result<Vec<KeyId>, SealError> {
    let mut key_ids = Vec::new();
    for part in field.split(',') {
        let id = part
            .parse::<KeyId>()
            .map_err(|_| SealError::Malformed("invalid key id"))?;
        if key_ids.contains(&id) {
            return Err(SealError::Malformed("duplicate key id"));
        }
        key_ids.push(id);
    }
    if key_ids.len() > MAX_RECIPIENTS {
        return Err(SealError::Malformed("too many key ids"));
    }
    Ok(key_ids)
}

/// Reads the key ids from the `kseal.dev/key-ids` stanza of an age header
/// without decrypting. The header's text lines end at the `---` MAC line;
/// stanza lines start with `-> ` (which base64 body lines never do).
fn header_key_ids(age_file: &[u8]) -> Result<Vec<KeyId>, SealError> {
    let Some(header) = age_file.strip_prefix(AGE_HEADER_FIRST_LINE) else {
        return Err(SealError::Malformed(
            "wrapped data key is not an age v1 file",
        ));
    };
    let mut found = None;
    for line in header.split(|&b| b == b'\n') {
        if line.starts_with(b"--- ") {
            return found.ok_or(SealError::Malformed(
                "wrapped data key has no key-ids stanza",
            ));
        }
        let Some(stanza) = line.strip_prefix(b"-> ") else {
            continue;
        };
        let stanza = std::str::from_utf8(stanza)
            .map_err(|_| SealError::Malformed("wrapped data key header is not text"))?;
        let mut words = stanza.split(' ');
        if words.next() != Some(KEY_IDS_STANZA_TAG) {
            continue;
        }
        if found.is_some() {
            return Err(SealError::Malformed(
                "wrapped data key has two key-ids stanzas",
            ));
        }
        found = Some(parse_key_ids(&words.collect::<Vec<_>>().join(","))?);
    }
    Err(SealError::Malformed("wrapped data key has no header end"))
}

/// Private keys indexed by key id, so unsealing tries only the key a value
/// names.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    by_id: HashMap<KeyId, Identity>,
}

impl Keyring {
    pub fn new(identities: impl IntoIterator<Item = Identity>) -> Self {
        Self {
            by_id: identities
                .into_iter()
                .map(|identity| (identity.key_id(), identity))
                .collect(),
        }
    }

    pub fn insert(&mut self, identity: Identity) {
        self.by_id.insert(identity.key_id(), identity);
    }

    pub fn get(&self, key_id: &KeyId) -> Option<&Identity> {
        self.by_id.get(key_id)
    }

    pub fn contains(&self, key_id: &KeyId) -> bool {
        self.by_id.contains_key(key_id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

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

/// Unwraps the data key with the keyring's identities that the value names.
pub fn unwrap_data_key(value: &SealedValue, keyring: &Keyring) -> Result<DataKey, SealError> {
    let candidates: Vec<&Identity> = value
        .key_ids
        .iter()
        .filter_map(|id| keyring.get(id))
        .collect();
    if candidates.is_empty() {
        let key_ids: Vec<String> = value.key_ids.iter().map(KeyId::to_string).collect();
        return Err(SealError::NoMatchingIdentity {
            key_ids: key_ids.join(", "),
        });
    }
    let unwrapper = CheckedUnwrap {
        expected_key_ids: &value.key_ids,
        candidates,
    };
    match crate::wrapped_key::unwrap(&value.wrapped_key, &unwrapper) {
        crate::wrapped_key::FastUnwrap::Key(key) => return Ok(key),
        crate::wrapped_key::FastUnwrap::Failed => return Err(SealError::UnwrapFailed),
        crate::wrapped_key::FastUnwrap::Unsupported => {}
    }
    unwrap_with_age(&value.wrapped_key, &unwrapper)
}

/// The general reader: the `age` crate's decryptor.
fn unwrap_with_age(file: &[u8], unwrapper: &CheckedUnwrap<'_>) -> Result<DataKey, SealError> {
    let decryptor = age::Decryptor::new(file).map_err(|_| SealError::UnwrapFailed)?;
    let mut reader = decryptor
        .decrypt(std::iter::once(unwrapper as &dyn age::Identity))
        .map_err(|_| SealError::UnwrapFailed)?;
    // One byte more than a key: a longer payload is rejected, not truncated.
    let mut buffer = Zeroizing::new(Vec::with_capacity(DATA_KEY_LEN + 1));
    (&mut reader)
        .take(DATA_KEY_LEN as u64 + 1)
        .read_to_end(&mut buffer)
        .map_err(|_| SealError::UnwrapFailed)?;
    DataKey::from_slice_wiping(&mut buffer).ok_or(SealError::UnwrapFailed)
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

/// Unwraps with the named identities only, after checking that the header's
/// authenticated key-ids stanza lists exactly the value's outer key ids. The
/// age decryptor verifies the header MAC after a successful unwrap, so a
/// changed key id anywhere is rejected.
struct CheckedUnwrap<'a> {
    expected_key_ids: &'a [KeyId],
    candidates: Vec<&'a Identity>,
}

impl age::Identity for CheckedUnwrap<'_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        let mut key_id_stanzas = stanzas.iter().filter(|s| s.tag == KEY_IDS_STANZA_TAG);
        let consistent = match (key_id_stanzas.next(), key_id_stanzas.next()) {
            (Some(stanza), None) => {
                stanza.body.is_empty()
                    && stanza.args.len() == self.expected_key_ids.len()
                    && stanza
                        .args
                        .iter()
                        .zip(self.expected_key_ids)
                        .all(|(arg, id)| arg.parse::<KeyId>().ok().as_ref() == Some(id))
            }
            _ => false,
        };
        if !consistent {
            return Some(Err(age::DecryptError::InvalidHeader));
        }
        self.candidates
            .iter()
            .find_map(|identity| age::Identity::unwrap_stanzas(*identity, stanzas))
    }
}
