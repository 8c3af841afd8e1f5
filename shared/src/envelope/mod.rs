//! The sealed-value envelope (see `docs/format.md`, which is normative).
//!
//! kseal writes format v2 and reads v1 and v2:
//!
//! ```text
//! kseal:v2:<key ids>:<sealed at>:<wrapped data key>:<nonce>:<commitment>:<ciphertext>
//! kseal:v1:<key ids>:<wrapped data key>:<nonce>:<ciphertext>
//! ```
//!
//! * key ids: the comma-separated [`KeyId`]s of the recipients the data key
//!   is wrapped to;
//! * sealed at (v2): when the value was sealed, seconds since the Unix epoch
//!   (UTC), decimal; `0` when it was never recorded (a value upgraded from
//!   v1). Part of the associated data, so it cannot be changed;
//! * wrapped data key: a binary age file (base64) whose payload is the 32-byte
//!   data key, wrapped to every recipient, with a `kseal.dev/key-ids` stanza
//!   repeating the key ids so age's header MAC authenticates them (read
//!   and written by the `wrapped_key` module);
//! * nonce: the 24-byte XChaCha20-Poly1305 nonce (base64);
//! * commitment (v2): 32 bytes (base64) derived from the data key and the
//!   nonce (the `commitment` module); a reader checks it before it decrypts, so the
//!   value opens under exactly one data key;
//! * ciphertext: XChaCha20-Poly1305 of the value (base64, with the 16-byte
//!   tag), under the data key (v1) or a key derived from it (v2), with the
//!   binding's associated data.
//!
//! base64 is RFC 4648 standard alphabet with padding, decoded strictly.

mod commitment;
mod structure;
mod wrapped_key;

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use age_core::format::{FileKey, Stanza};
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::binding::{Binding, MAX_VALUE_LEN};
use crate::error::SealError;
use crate::secret::{DataKey, SecretBytes};
use crate::x25519::{Identity, KeyId, Recipient};
use wrapped_key::AgeFile;

pub use commitment::COMMITMENT_LEN;

/// The first field of every sealed value.
pub const MAGIC: &str = "kseal";
/// The format version this library writes.
pub const VERSION: FormatVersion = FormatVersion::V2;
/// Tag of the age stanza that carries the key ids inside the wrapped key.
/// One letter from the sealing-key Secrets' label
/// ([`crate::contract::KEY_ID_LABEL`], `kseal.dev/key-id`); both are fixed
/// by what is already sealed and stored.
pub const KEY_IDS_STANZA_TAG: &str = "kseal.dev/key-ids";
/// XChaCha20-Poly1305 nonce length, bytes.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length, bytes.
pub const TAG_LEN: usize = 16;
/// At most this many recipients (key ids) per value.
pub const MAX_RECIPIENTS: usize = 64;
/// A sealed value longer than this (bytes) is rejected before decoding (a
/// 1 MiB value encodes to about 1.4 MB).
pub const MAX_ENCODED_LEN: usize = 2 * 1024 * 1024;
/// The longest ciphertext a reader accepts, bytes: the largest plaintext and
/// its tag.
pub const MAX_CIPHERTEXT_LEN: usize = MAX_VALUE_LEN + TAG_LEN;
/// At most this many stanzas in a v1 wrapped data key: one X25519 stanza
/// per recipient, the key-ids stanza, and two more (files written by the
/// `age` crate's encryptor, as early kseal versions did, carry one "grease"
/// stanza). A v2 wrapped key has exactly one stanza per recipient and the
/// key-ids stanza.
pub const MAX_STANZAS: usize = MAX_RECIPIENTS + 3;
/// The `sealed at` of a value whose seal time was never recorded (upgraded
/// from v1).
pub const SEALED_AT_UNRECORDED: u64 = 0;
/// The latest seal time a reader accepts: 9999-01-01T00:00:00Z, seconds
/// since the Unix epoch.
pub const MAX_SEALED_AT: u64 = 253_370_764_800;
/// The tag of age's X25519 recipient stanzas.
const X25519_STANZA_TAG: &str = "X25519";

/// Declares [`ReaderCheck`] with the `rule` (the vectors' `rule` field,
/// `docs/format.md` §4) each check belongs to, and, for tests, the list of
/// all of them: a new check cannot be added without its rule and its switch.
macro_rules! reader_checks {
    ($($(#[$doc:meta])* $check:ident => $rule:literal,)*) => {
        /// One check a reader makes (`docs/format.md` §4), the unit a test
        /// can switch off. Every check has a test vector that no other
        /// check rejects: switched off alone, the vector's outcome changes
        /// (`every_reader_check_is_needed`). The 67-stanza cap of
        /// [`MAX_STANZAS`] is a bound, not a check: the rules already allow
        /// no more (64 key ids, the key-ids stanza, two more in v1), so no
        /// value breaks it alone.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub(crate) enum ReaderCheck {
            $($(#[$doc])* $check,)*
        }

        #[cfg(test)]
        impl ReaderCheck {
            /// Every check, in §4's order.
            pub(crate) const ALL: &'static [ReaderCheck] = &[$(ReaderCheck::$check,)*];

            /// The §4 rule the check belongs to: the `rule` of its vectors.
            pub(crate) fn rule(self) -> &'static str {
                match self {
                    $(ReaderCheck::$check => $rule,)*
                }
            }
        }
    };
}

reader_checks! {
    /// A value string of at most [`MAX_ENCODED_LEN`] bytes.
    ValueLength => "sizes",
    /// The first field is `kseal`.
    Magic => "magic",
    /// The version is `v1` or `v2`.
    Version => "version",
    /// 6 (v1) or 8 (v2) fields.
    FieldCount => "fields",
    /// At most [`MAX_RECIPIENTS`] key ids, counted before any is parsed.
    KeyIdCount => "key-ids",
    /// Every key id is 16 lowercase hex digits, in the key-ids field and in
    /// the key-ids stanza: a text that is not one never equals a key id.
    KeyIdSyntax => "key-ids",
    /// No key id twice.
    KeyIdDuplicate => "key-ids",
    /// The seal time is `0` or 1 to 12 digits without a leading zero.
    SealedAtSyntax => "sealed-at",
    /// The seal time is at most [`MAX_SEALED_AT`].
    SealedAtRange => "sealed-at",
    /// The base64 fields decode strictly (padding, trailing bits, alphabet).
    Base64 => "base64",
    /// The nonce is [`NONCE_LEN`] bytes.
    NonceLength => "sizes",
    /// The commitment is [`COMMITMENT_LEN`] bytes.
    CommitmentLength => "sizes",
    /// The ciphertext holds at least a tag.
    CiphertextMin => "sizes",
    /// The ciphertext is at most [`MAX_CIPHERTEXT_LEN`] bytes.
    CiphertextMax => "sizes",
    /// The wrapped key starts with age v1's intro line.
    AgeIntro => "age-grammar",
    /// Stanza lines: a tag and arguments of printable ASCII, single spaces.
    AgeStanzaLine => "age-grammar",
    /// Stanza bodies: full 64-column lines, then one shorter line.
    AgeBodyLines => "age-grammar",
    /// Stanza bodies are canonical unpadded base64.
    AgeBodyBase64 => "age-grammar",
    /// The header MAC is the canonical unpadded base64 of 32 bytes.
    AgeMacLine => "age-grammar",
    /// The payload is a nonce, a 32-byte key and a tag.
    AgePayloadLength => "age-grammar",
    /// Exactly one key-ids stanza.
    KeyIdsStanzaCount => "key-ids-stanza",
    /// The key-ids stanza has an empty body.
    KeyIdsStanzaBody => "key-ids-stanza",
    /// The key-ids stanza lists the value's key ids, in order.
    KeyIdsStanzaMatch => "key-ids-stanza",
    /// One X25519 stanza per key id.
    X25519Count => "x25519-stanzas",
    /// Every X25519 stanza is one 32-byte share and a 32-byte body.
    X25519Shape => "x25519-stanzas",
    /// v2: no stanza but the X25519 ones and the key-ids stanza.
    V2OnlyRecipientStanzas => "stanza-order",
    /// v2: the key-ids stanza comes after every X25519 stanza.
    V2KeyIdsStanzaLast => "stanza-order",
    /// v1: at most two stanzas besides the recipients' and the key-ids one.
    V1OtherStanzas => "v1-stanzas",
    /// The binding is valid.
    Binding => "binding",
    /// Only identities whose key ids are listed are tried (no fallback to
    /// every key held).
    KeyIdSelection => "no-matching-identity",
    /// An identity unwraps only the X25519 stanza at its key id's position.
    UnwrapOwnStanza => "unwrap",
    /// A stanza that unwraps to a wrong file key does not end the search:
    /// every selected identity is tried on its own.
    UnwrapEachKey => "unwrap",
    /// The header MAC verifies under the file key.
    HeaderMac => "unwrap",
    /// The wrapped key's payload tag verifies.
    PayloadTag => "unwrap",
    /// v2: the commitment matches the data key.
    Commitment => "commitment",
    /// The AEAD tag verifies under the binding's associated data.
    Aead => "aead",
}

/// Called where an input breaks `check`: whether the reader refuses it.
/// Always, outside this crate's own tests, so this costs nothing; the code
/// a `false` leads to (what a reader without the check would do) is
/// unreachable there.
#[cfg(not(test))]
#[inline(always)]
pub(crate) const fn enforced(_check: ReaderCheck) -> bool {
    true
}

/// Called where an input breaks `check`: whether the reader refuses it.
/// In tests, a check can be switched off on the current thread
/// ([`switch::without`]); every call is recorded ([`switch::take_broken`]).
#[cfg(test)]
pub(crate) fn enforced(check: ReaderCheck) -> bool {
    switch::enforced(check)
}

/// Switching reader checks off, for the tests that show every check is
/// needed (thread-local: tests run in parallel).
#[cfg(test)]
pub(crate) mod switch {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::ReaderCheck;

    thread_local! {
        static OFF: RefCell<BTreeSet<ReaderCheck>> = const { RefCell::new(BTreeSet::new()) };
        static BROKEN: RefCell<Vec<ReaderCheck>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn enforced(check: ReaderCheck) -> bool {
        BROKEN.with_borrow_mut(|broken| broken.push(check));
        !OFF.with_borrow(|off| off.contains(&check))
    }

    /// Runs `f` with `checks` switched off on this thread.
    pub(crate) fn without<T>(checks: &[ReaderCheck], f: impl FnOnce() -> T) -> T {
        struct On(BTreeSet<ReaderCheck>);
        impl Drop for On {
            fn drop(&mut self) {
                let before = std::mem::take(&mut self.0);
                OFF.with_borrow_mut(|off| *off = before);
            }
        }
        let _on = On(OFF.with_borrow(Clone::clone));
        OFF.with_borrow_mut(|off| off.extend(checks.iter().copied()));
        f()
    }

    /// The checks inputs broke since the last call, in order: for a refused
    /// value, the last is the one that refused it.
    pub(crate) fn take_broken() -> Vec<ReaderCheck> {
        BROKEN.with_borrow_mut(std::mem::take)
    }
}

/// What a reader without some checks decodes instead, for the tests that
/// switch checks off ([`enforced`]). Outside tests these refuse everything:
/// the lenient code exists only in test builds.
pub(crate) mod unchecked {
    use chacha20poly1305::aead::{Aead, Nonce};

    /// Base64 decoded leniently: white space and line breaks dropped, the
    /// URL-safe alphabet, padding or none, any trailing bits.
    #[cfg(test)]
    pub(crate) fn base64(text: &[u8]) -> Option<Vec<u8>> {
        use base64::Engine;
        use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
        const LENIENT: GeneralPurpose = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let cleaned: Vec<u8> = text
            .iter()
            .filter(|b| !b.is_ascii_whitespace())
            .map(|&b| match b {
                b'-' => b'+',
                b'_' => b'/',
                other => other,
            })
            .collect();
        LENIENT.decode(cleaned).ok()
    }

    /// Outside tests: refused.
    #[cfg(not(test))]
    pub(crate) fn base64(_text: &[u8]) -> Option<Vec<u8>> {
        None
    }

    /// An AEAD ciphertext decrypted without checking its tag: the
    /// ciphertext without the tag, XORed with the key stream (the
    /// encryption of zeros).
    #[cfg(test)]
    pub(crate) fn open_without_tag<A: Aead>(
        cipher: &A,
        nonce: &Nonce<A>,
        sealed: &[u8],
    ) -> Option<Vec<u8>> {
        let len = sealed.len().checked_sub(super::TAG_LEN)?;
        let stream = cipher.encrypt(nonce, vec![0u8; len].as_slice()).ok()?;
        Some(
            sealed[..len]
                .iter()
                .zip(&stream)
                .map(|(byte, key)| byte ^ key)
                .collect(),
        )
    }

    /// Outside tests: refused.
    #[cfg(not(test))]
    pub(crate) fn open_without_tag<A: Aead>(
        _cipher: &A,
        _nonce: &Nonce<A>,
        _sealed: &[u8],
    ) -> Option<Vec<u8>> {
        None
    }
}

/// A sealed-value format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FormatVersion {
    /// The first format: no key commitment, no seal time. Read, not
    /// written; `kseal rewrap` upgrades it.
    V1,
    /// Key-committing, with the seal time in the associated data.
    V2,
}

impl FormatVersion {
    /// The version field: `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            FormatVersion::V1 => "v1",
            FormatVersion::V2 => "v2",
        }
    }

    /// Colon-separated fields of a value of this version, magic included.
    fn field_count(self) -> usize {
        match self {
            FormatVersion::V1 => 6,
            FormatVersion::V2 => 8,
        }
    }
}

impl fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed sealed value. Public data only: nothing here is secret (the
/// commitment is a one-way function of the data key).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedValue {
    key_ids: Vec<KeyId>,
    /// Seconds since the Unix epoch; [`SEALED_AT_UNRECORDED`] for v1.
    sealed_at: u64,
    wrapped_key: Vec<u8>,
    nonce: [u8; NONCE_LEN],
    /// `Some` exactly for v2.
    commitment: Option<[u8; COMMITMENT_LEN]>,
    ciphertext: Vec<u8>,
}

impl SealedValue {
    /// Parses a sealed value string and checks everything a reader can
    /// check without keys (`docs/format.md` §4, steps 1–3): the fields and
    /// their encodings, the key ids, the seal time, and the wrapped key's
    /// structure against the key ids.
    ///
    /// Errors: [`SealError::NotSealedValue`], [`SealError::UnsupportedVersion`]
    /// or [`SealError::Malformed`].
    pub fn parse(encoded: &str) -> Result<Self, SealError> {
        if encoded.len() > MAX_ENCODED_LEN && enforced(ReaderCheck::ValueLength) {
            return Err(SealError::Malformed("value too long"));
        }
        let mut fields = encoded.split(':');
        if fields.next() != Some(MAGIC) && enforced(ReaderCheck::Magic) {
            return Err(SealError::NotSealedValue);
        }
        let version = match fields.next() {
            Some("v1") => FormatVersion::V1,
            Some("v2") => FormatVersion::V2,
            Some(other) if enforced(ReaderCheck::Version) => {
                return Err(SealError::UnsupportedVersion(shown_version(other)));
            }
            None if enforced(ReaderCheck::FieldCount) => {
                return Err(SealError::Malformed("missing version"));
            }
            // Without the check: read as the version this library writes.
            Some(_) | None => VERSION,
        };
        let mut fields: Vec<&str> = fields.take(version.field_count() - 1).collect();
        if fields.len() != version.field_count() - 2 {
            if enforced(ReaderCheck::FieldCount) {
                return Err(match version {
                    FormatVersion::V1 => {
                        SealError::Malformed("a v1 value has 6 colon-separated fields")
                    }
                    FormatVersion::V2 => {
                        SealError::Malformed("a v2 value has 8 colon-separated fields")
                    }
                });
            }
            // Without the check: extra fields ignored, missing ones empty.
            fields.resize(version.field_count() - 2, "");
        }
        let (key_ids, sealed_at, wrapped, nonce, commitment, ciphertext) = match version {
            FormatVersion::V1 => (fields[0], None, fields[1], fields[2], None, fields[3]),
            FormatVersion::V2 => (
                fields[0],
                Some(fields[1]),
                fields[2],
                fields[3],
                Some(fields[4]),
                fields[5],
            ),
        };
        let key_ids = parse_key_ids(key_ids)?;
        let sealed_at = match sealed_at {
            Some(field) => parse_sealed_at(field)?,
            None => SEALED_AT_UNRECORDED,
        };
        let wrapped_key = decode_field(wrapped, "wrapped data key is not valid base64")?;
        let nonce: [u8; NONCE_LEN] = fixed_length(
            decode_field(nonce, "nonce is not valid base64")?,
            ReaderCheck::NonceLength,
            "nonce must be 24 bytes",
        )?;
        let commitment = commitment
            .map(|field| {
                fixed_length(
                    decode_field(field, "commitment is not valid base64")?,
                    ReaderCheck::CommitmentLength,
                    "commitment must be 32 bytes",
                )
            })
            .transpose()?;
        let ciphertext = decode_field(ciphertext, "ciphertext is not valid base64")?;
        if ciphertext.len() < TAG_LEN && enforced(ReaderCheck::CiphertextMin) {
            return Err(SealError::Malformed("ciphertext shorter than its tag"));
        }
        if ciphertext.len() > MAX_CIPHERTEXT_LEN && enforced(ReaderCheck::CiphertextMax) {
            return Err(SealError::Malformed(
                "ciphertext longer than 1 MiB and its tag",
            ));
        }
        structure::check_wrapped_key(&wrapped_key, &key_ids, version)?;
        Ok(Self {
            key_ids,
            sealed_at,
            wrapped_key,
            nonce,
            commitment,
            ciphertext,
        })
    }

    /// The format version.
    pub fn version(&self) -> FormatVersion {
        if self.commitment.is_some() {
            FormatVersion::V2
        } else {
            FormatVersion::V1
        }
    }

    /// The ids of the keys the data key is wrapped to, in stanza order.
    pub fn key_ids(&self) -> &[KeyId] {
        &self.key_ids
    }

    /// When the value was sealed, or `None` when that was never recorded
    /// (v1, or a value upgraded from v1). Authenticated: part of the
    /// associated data.
    pub fn sealed_at(&self) -> Option<jiff::Timestamp> {
        if self.sealed_at == SEALED_AT_UNRECORDED {
            return None;
        }
        i64::try_from(self.sealed_at)
            .ok()
            .and_then(|seconds| jiff::Timestamp::from_second(seconds).ok())
    }

    /// The seal time field as written: seconds since the Unix epoch, or
    /// [`SEALED_AT_UNRECORDED`].
    pub fn sealed_at_seconds(&self) -> u64 {
        self.sealed_at
    }

    /// The wrapped data key: a complete binary age file.
    pub fn wrapped_key(&self) -> &[u8] {
        &self.wrapped_key
    }

    /// The XChaCha20-Poly1305 nonce.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// The key commitment (v2 only).
    pub fn commitment(&self) -> Option<&[u8; COMMITMENT_LEN]> {
        self.commitment.as_ref()
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

    /// Whether re-wrapping to these key ids would change nothing: the value
    /// is sealed to exactly them, in the format this library writes (a v1
    /// value is upgraded by a re-wrap).
    pub fn is_current_for(&self, key_ids: &[KeyId]) -> bool {
        self.version() == VERSION && self.is_sealed_to(key_ids)
    }

    /// Whether a cluster whose keys are `own` (every key it has held) and
    /// whose active key ids are `target` has nothing to re-wrap in this
    /// value ([`rewrap_replacing`] would change nothing): it is v2, sealed
    /// to every `target` key, and to no other `own` key. Other recipients
    /// do not matter: they are kept.
    pub fn is_current_for_cluster(&self, own: &HashSet<KeyId>, target: &[KeyId]) -> bool {
        self.version() == VERSION
            && target.iter().all(|id| self.key_ids.contains(id))
            && self
                .key_ids
                .iter()
                .all(|id| target.contains(id) || !own.contains(id))
    }

    /// What a re-wrap of `original` into `self` did to each recipient,
    /// told without keys by comparing their X25519 stanzas: kept byte for
    /// byte, wrapped afresh (a new stanza, or a key the original did not
    /// name), or dropped. `kseal rewrap --online` checks it, so a re-wrap
    /// never drops a recipient silently. Either value not parsing (it was
    /// checked at [`SealedValue::parse`]) gives every key id of `self` as
    /// fresh.
    pub fn rewrap_changes(&self, original: &SealedValue) -> RewrapChanges {
        let stanzas = |value: &SealedValue| -> Option<Vec<Stanza>> {
            let file = AgeFile::parse(&value.wrapped_key, MAX_STANZAS).ok()?;
            Some(
                file.stanzas
                    .into_iter()
                    .filter(|stanza| stanza.tag == X25519_STANZA_TAG)
                    .collect(),
            )
        };
        let (before, after) = (stanzas(original), stanzas(self));
        let stanza_of = |stanzas: &Option<Vec<Stanza>>, ids: &[KeyId], id: &KeyId| {
            let index = ids.iter().position(|candidate| candidate == id)?;
            let stanza = stanzas.as_ref()?.get(index)?;
            Some((stanza.args.clone(), stanza.body.clone()))
        };
        let mut changes = RewrapChanges::default();
        for id in &self.key_ids {
            let old = stanza_of(&before, &original.key_ids, id);
            let new = stanza_of(&after, &self.key_ids, id);
            if old.is_some() && old == new {
                changes.kept.push(*id);
            } else {
                changes.fresh.push(*id);
            }
        }
        changes.dropped = original
            .key_ids
            .iter()
            .filter(|id| !self.key_ids.contains(id))
            .copied()
            .collect();
        changes
    }

    /// Checks, without keys, that `self` can be a re-wrap of `original`
    /// ([`rewrap`]'s output for it), for a reader that must not take
    /// another value in its place (`kseal rewrap --online` checks what the
    /// controller answers):
    ///
    /// * a v2 original: `self` is v2 with the same seal time, nonce,
    ///   commitment and ciphertext, so only the key ids and the wrapped key
    ///   differ. The commitment fixes the one data key the ciphertext
    ///   opens under, so such a value decrypts to the original's plaintext
    ///   or not at all;
    /// * a v1 original (upgraded by a re-wrap, every field new): `self` is
    ///   v2, its seal time unrecorded, its ciphertext the same length. That
    ///   is all that can be told without keys: v1 is not key-committing.
    pub fn check_rewrap_of(&self, original: &SealedValue) -> Result<(), RewrapMismatch> {
        if self.version() != VERSION {
            return Err(RewrapMismatch::Version);
        }
        if original.version() == FormatVersion::V1 {
            if self.sealed_at != SEALED_AT_UNRECORDED {
                return Err(RewrapMismatch::SealedAt);
            }
            if self.ciphertext.len() != original.ciphertext.len() {
                return Err(RewrapMismatch::Ciphertext);
            }
            return Ok(());
        }
        if self.sealed_at != original.sealed_at {
            Err(RewrapMismatch::SealedAt)
        } else if self.nonce != original.nonce {
            Err(RewrapMismatch::Nonce)
        } else if self.commitment != original.commitment {
            Err(RewrapMismatch::Commitment)
        } else if self.ciphertext != original.ciphertext {
            Err(RewrapMismatch::Ciphertext)
        } else {
            Ok(())
        }
    }

    /// The string form stored in `spec.encryptedData`.
    pub fn encode(&self) -> String {
        let key_ids: Vec<String> = self.key_ids.iter().map(KeyId::to_string).collect();
        let key_ids = key_ids.join(",");
        let wrapped = BASE64_STANDARD.encode(&self.wrapped_key);
        let nonce = BASE64_STANDARD.encode(self.nonce);
        let ciphertext = BASE64_STANDARD.encode(&self.ciphertext);
        match &self.commitment {
            None => format!("{MAGIC}:v1:{key_ids}:{wrapped}:{nonce}:{ciphertext}"),
            Some(commitment) => format!(
                "{MAGIC}:v2:{key_ids}:{}:{wrapped}:{nonce}:{}:{ciphertext}",
                self.sealed_at,
                BASE64_STANDARD.encode(commitment)
            ),
        }
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
            .field("version", &self.version())
            .field("key_ids", &self.key_ids)
            .field("sealed_at", &self.sealed_at)
            .field("wrapped_key_len", &self.wrapped_key.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// What a re-wrap did to each recipient of a value
/// ([`SealedValue::rewrap_changes`]), key ids in the new value's order
/// (`dropped`: in the original's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewrapChanges {
    /// Recipients whose stanza is byte-identical: kept as they were.
    pub kept: Vec<KeyId>,
    /// Recipients with a new stanza: the keys the re-wrap wrapped to.
    pub fresh: Vec<KeyId>,
    /// Recipients of the original that the re-wrap no longer names.
    pub dropped: Vec<KeyId>,
}

/// What a value claimed as a re-wrap changed that a re-wrap keeps (see
/// [`SealedValue::check_rewrap_of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RewrapMismatch {
    /// Not in the format a re-wrap writes (v2).
    #[error("it is not in format v2, which a re-wrap writes")]
    Version,
    /// Another seal time (a v1 upgrade must leave it unrecorded).
    #[error("its seal time changed")]
    SealedAt,
    /// Another nonce.
    #[error("its nonce changed")]
    Nonce,
    /// Another key commitment: another data key.
    #[error("its key commitment changed (another data key)")]
    Commitment,
    /// Another ciphertext (another length, for a v1 upgrade).
    #[error("its ciphertext changed")]
    Ciphertext,
}

/// The version field of an unsupported value, named only when it looks like
/// one (`v` and up to 8 digits): the field could be anything, a plaintext
/// pasted by mistake included.
fn shown_version(field: &str) -> String {
    let looks_like_a_version = field.len() <= 9
        && field
            .strip_prefix('v')
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    if looks_like_a_version {
        field.to_owned()
    } else {
        "(not shown)".to_owned()
    }
}

fn decode_field(field: &str, what: &'static str) -> Result<Vec<u8>, SealError> {
    match BASE64_STANDARD.decode(field) {
        Ok(bytes) => Ok(bytes),
        Err(_) if enforced(ReaderCheck::Base64) => Err(SealError::Malformed(what)),
        Err(_) => unchecked::base64(field.as_bytes()).ok_or(SealError::Malformed(what)),
    }
}

/// A decoded field of exactly `N` bytes; without `check`, the first `N`
/// bytes, zero-padded.
fn fixed_length<const N: usize>(
    bytes: Vec<u8>,
    check: ReaderCheck,
    what: &'static str,
) -> Result<[u8; N], SealError> {
    match <[u8; N]>::try_from(bytes) {
        Ok(array) => Ok(array),
        Err(_) if enforced(check) => Err(SealError::Malformed(what)),
        Err(bytes) => {
            let mut array = [0u8; N];
            let len = bytes.len().min(N);
            array[..len].copy_from_slice(&bytes[..len]);
            Ok(array)
        }
    }
}

/// A key id as written (16 lowercase hex digits), in the key-ids field or
/// the key-ids stanza. `None` for any other text; without the check, such a
/// text reads as an id of its own (its hash), so equal texts give equal ids
/// and no held key matches it: a reader that compares key ids as text.
pub(crate) fn read_key_id(text: &str) -> Option<KeyId> {
    match text.parse::<KeyId>() {
        Ok(id) => Some(id),
        Err(_) if enforced(ReaderCheck::KeyIdSyntax) => None,
        Err(_) => Some(KeyId::of_recipient_str(text)),
    }
}

/// At most [`MAX_RECIPIENTS`] ids, counted before any is parsed: the work
/// stays constant whatever the field holds (a 2 MiB field of ids once cost
/// seconds of quadratic duplicate checks).
fn parse_key_ids(field: &str) -> Result<Vec<KeyId>, SealError> {
    if field.split(',').nth(MAX_RECIPIENTS).is_some() && enforced(ReaderCheck::KeyIdCount) {
        return Err(SealError::Malformed("too many key ids"));
    }
    let mut key_ids = Vec::with_capacity(MAX_RECIPIENTS);
    for part in field.split(',') {
        let id = read_key_id(part).ok_or(SealError::Malformed("invalid key id"))?;
        if key_ids.contains(&id) && enforced(ReaderCheck::KeyIdDuplicate) {
            return Err(SealError::Malformed("duplicate key id"));
        }
        key_ids.push(id);
    }
    Ok(key_ids)
}

/// `0`, or 1 to 12 decimal digits without a leading zero, at most
/// [`MAX_SEALED_AT`]: one spelling per time.
fn parse_sealed_at(field: &str) -> Result<u64, SealError> {
    const BAD: SealError =
        SealError::Malformed("seal time must be decimal seconds without leading zeros");
    let canonical = !field.is_empty()
        && field.len() <= 12
        && field.bytes().all(|b| b.is_ascii_digit())
        && (field == "0" || !field.starts_with('0'));
    let seconds: u64 = if canonical {
        field.parse().map_err(|_| BAD)?
    } else if enforced(ReaderCheck::SealedAtSyntax) {
        return Err(BAD);
    } else {
        // Without the check: any spelling Rust's integer parser takes
        // (leading zeros, a plus sign), white space around it.
        field.trim().parse().map_err(|_| BAD)?
    };
    if seconds > MAX_SEALED_AT && enforced(ReaderCheck::SealedAtRange) {
        return Err(SealError::Malformed("seal time after 9999-01-01T00:00:00Z"));
    }
    Ok(seconds)
}

/// The key ids the given sealed values are wrapped to (sorted, unique).
/// Only values that parse count: `encryptedData` could hold any text, and a
/// bogus `kseal:v2:<hex>…` must neither name a key nor hide one.
pub fn key_ids_in<'a>(values: impl IntoIterator<Item = &'a str>) -> BTreeSet<KeyId> {
    values
        .into_iter()
        .filter_map(|value| SealedValue::parse(value).ok())
        .flat_map(|value| value.key_ids().to_vec())
        .collect()
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

/// Seals one value in format v2, with the current time as its seal time.
/// See [`seal_at`].
pub fn seal(
    plaintext: &[u8],
    binding: &Binding<'_>,
    recipients: &[Recipient],
) -> Result<SealedValue, SealError> {
    let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(SEALED_AT_UNRECORDED);
    seal_at(plaintext, binding, recipients, now)
}

/// Seals one value in format v2 with the given seal time (seconds since the
/// Unix epoch, at most [`MAX_SEALED_AT`]): a fresh data key, from which the
/// AEAD key and the commitment are derived, encrypts it under the binding's
/// associated data (which includes the seal time), and is wrapped with age
/// to every recipient (at most [`MAX_RECIPIENTS`], duplicates removed).
///
/// Errors: [`SealError::InvalidBinding`], [`SealError::TooLarge`] (over
/// 1 MiB), [`SealError::NoRecipients`].
pub fn seal_at(
    plaintext: &[u8],
    binding: &Binding<'_>,
    recipients: &[Recipient],
    sealed_at: u64,
) -> Result<SealedValue, SealError> {
    binding.validate()?;
    if plaintext.len() > MAX_VALUE_LEN {
        return Err(SealError::TooLarge);
    }
    if sealed_at > MAX_SEALED_AT {
        return Err(SealError::InvalidBinding(
            "seal time after 9999-01-01T00:00:00Z".to_owned(),
        ));
    }
    let data_key = DataKey::generate();
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let keys = commitment::derive(&data_key, &nonce);
    let ciphertext = XChaCha20Poly1305::new((&*keys.aead_key).into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &binding.associated_data_v2(sealed_at),
            },
        )
        .map_err(|_| SealError::Internal("value encryption failed"))?;
    let (key_ids, wrapped_key) = wrap_data_key(&data_key, recipients)?;
    Ok(SealedValue {
        key_ids,
        sealed_at,
        wrapped_key,
        nonce,
        commitment: Some(keys.commitment),
        ciphertext,
    })
}

/// Opens one value (v1 or v2) with whichever of the keyring's identities it
/// names, in the order of `docs/format.md` §4: the binding, the key, the
/// commitment (v2), then the AEAD.
///
/// Errors: [`SealError::InvalidBinding`], [`SealError::NoMatchingIdentity`],
/// [`SealError::UnwrapFailed`], [`SealError::CommitmentMismatch`],
/// [`SealError::DecryptFailed`].
pub fn open(
    value: &SealedValue,
    binding: &Binding<'_>,
    keyring: &Keyring,
) -> Result<SecretBytes, SealError> {
    check_binding(binding)?;
    let data_key = unwrap_data_key(value, keyring)?;
    decrypt_with(value, binding, &data_key)
}

/// A reader checks the binding before it uses any key (`docs/format.md`
/// §4, step 8).
fn check_binding(binding: &Binding<'_>) -> Result<(), SealError> {
    match binding.validate() {
        Err(err) if enforced(ReaderCheck::Binding) => Err(err),
        _ => Ok(()),
    }
}

/// Re-wraps a value's data key to `recipients` (at most [`MAX_RECIPIENTS`]).
/// The value must open under `binding` first (nothing unverifiable is
/// re-wrapped).
///
/// A v2 value keeps its seal time, nonce, commitment and ciphertext byte for
/// byte: only the key ids and the wrapped key change. A v1 value is upgraded
/// to v2: it is sealed again from its plaintext (held in memory only) under
/// a fresh data key, with its seal time [`SEALED_AT_UNRECORDED`] (v1 never
/// recorded one), so every field changes; compare
/// [`SealedValue::version`] before and after to tell.
pub fn rewrap(
    value: &SealedValue,
    binding: &Binding<'_>,
    keyring: &Keyring,
    recipients: &[Recipient],
) -> Result<SealedValue, SealError> {
    check_binding(binding)?;
    let data_key = unwrap_data_key(value, keyring)?;
    let plaintext = decrypt_with(value, binding, &data_key)?;
    if value.version() == FormatVersion::V1 {
        return seal_at(
            plaintext.expose(),
            binding,
            recipients,
            SEALED_AT_UNRECORDED,
        );
    }
    drop(plaintext);
    let (key_ids, wrapped_key) = wrap_data_key(&data_key, recipients)?;
    Ok(SealedValue {
        key_ids,
        sealed_at: value.sealed_at,
        wrapped_key,
        nonce: value.nonce,
        commitment: value.commitment,
        ciphertext: value.ciphertext.clone(),
    })
}

/// Re-wraps a value for the cluster whose keys are `own` (every key it has
/// held, in any state): the X25519 stanzas of `own` keys are replaced by
/// stanzas for `recipients` (the cluster's active key), and every other
/// recipient's stanza (an offline recovery key, another cluster) is kept
/// byte for byte, in its place. This needs no private key but the
/// cluster's: the file key is kept, so kept stanzas still wrap it, and the
/// header MAC is computed again under it (`docs/format.md` §5).
///
/// The value must open under `binding` first, and its header MAC must
/// verify under the file key: a kept stanza was therefore written by
/// someone who held the file key, never added by the caller. The new
/// stanzas wrap to `recipients` only, so whoever asks for a re-wrap
/// cannot add a recipient. A v2 value keeps its seal time, nonce,
/// commitment, ciphertext and payload; the new stanzas take the place of
/// the first replaced one. A v1 value cannot keep stanzas (its upgrade
/// makes a new data key): it is upgraded as [`rewrap`] does, sealed to
/// `recipients` only; callers that must not lose recipients check
/// [`SealedValue::rewrap_changes`].
///
/// Errors: those of [`open`], [`SealError::NoRecipients`], and
/// [`SealError::InvalidBinding`] when the result would name more than
/// [`MAX_RECIPIENTS`] keys.
pub fn rewrap_replacing(
    value: &SealedValue,
    binding: &Binding<'_>,
    keyring: &Keyring,
    own: &HashSet<KeyId>,
    recipients: &[Recipient],
) -> Result<SealedValue, SealError> {
    if value.version() == FormatVersion::V1 {
        return rewrap(value, binding, keyring, recipients);
    }
    check_binding(binding)?;
    let mut seen = HashSet::new();
    let fresh: Vec<&Recipient> = recipients
        .iter()
        .filter(|recipient| seen.insert(recipient.key_id()))
        .collect();
    if fresh.is_empty() {
        return Err(SealError::NoRecipients);
    }
    let (file_key, data_key) = unwrap_keys(value, keyring)?;
    drop(decrypt_with(value, binding, &data_key)?);
    let file = AgeFile::parse(&value.wrapped_key, MAX_STANZAS).map_err(SealError::Malformed)?;
    let x25519: Vec<&Stanza> = file
        .stanzas
        .iter()
        .filter(|stanza| stanza.tag == X25519_STANZA_TAG)
        .collect();
    let replaced = |id: &KeyId| own.contains(id) || seen.contains(id);
    let mut key_ids = Vec::with_capacity(value.key_ids.len() + fresh.len());
    let mut stanzas = Vec::with_capacity(value.key_ids.len() + fresh.len() + 1);
    let mut placed = false;
    for (index, id) in value.key_ids.iter().enumerate() {
        if replaced(id) {
            if !placed {
                placed = true;
                for recipient in &fresh {
                    let (wrapped, _labels) =
                        age::Recipient::wrap_file_key(recipient.age(), &file_key)
                            .map_err(|_| SealError::Internal("age encryption failed"))?;
                    stanzas.extend(wrapped);
                    key_ids.push(recipient.key_id());
                }
            }
            continue;
        }
        // Parsing checked one X25519 stanza per key id, in order.
        let stanza = x25519.get(index).ok_or(SealError::Malformed(
            "wrapped data key has too few X25519 stanzas",
        ))?;
        stanzas.push(Stanza {
            tag: stanza.tag.clone(),
            args: stanza.args.clone(),
            body: stanza.body.clone(),
        });
        key_ids.push(*id);
    }
    if key_ids.len() > MAX_RECIPIENTS {
        return Err(SealError::InvalidBinding(format!(
            "at most {MAX_RECIPIENTS} recipients per value"
        )));
    }
    stanzas.push(key_ids_stanza(&key_ids));
    let wrapped_key = wrapped_key::write_file_with_payload(&file_key, &stanzas, file.payload())
        .ok_or(SealError::Internal("age encryption failed"))?;
    Ok(SealedValue {
        key_ids,
        sealed_at: value.sealed_at,
        wrapped_key,
        nonce: value.nonce,
        commitment: value.commitment,
        ciphertext: value.ciphertext.clone(),
    })
}

/// Unwraps the data key with the keyring's identities that the value names:
/// each only with its own X25519 stanza, so a value costs at most one
/// Diffie-Hellman per key held. The key is not yet checked against a v2
/// value's commitment: [`open`] and [`rewrap`] do that.
pub fn unwrap_data_key(value: &SealedValue, keyring: &Keyring) -> Result<DataKey, SealError> {
    unwrap_keys(value, keyring).map(|(_, data_key)| data_key)
}

/// [`unwrap_data_key`], also giving the age file key it was wrapped under.
fn unwrap_keys(value: &SealedValue, keyring: &Keyring) -> Result<(FileKey, DataKey), SealError> {
    let mut candidates: Vec<(Option<usize>, &Identity)> = value
        .key_ids
        .iter()
        .enumerate()
        .filter_map(|(index, id)| keyring.get(id).map(|identity| (Some(index), identity)))
        .collect();
    if candidates.is_empty() {
        if enforced(ReaderCheck::KeyIdSelection) {
            return Err(SealError::NoMatchingIdentity {
                key_ids: value.key_ids.clone(),
            });
        }
        // Without the check: a trial of every key held on every stanza.
        candidates = keyring
            .by_id
            .values()
            .map(|identity| (None, identity))
            .collect();
        candidates.sort_by_key(|(_, identity)| identity.key_id());
    }
    let file = AgeFile::parse(&value.wrapped_key, MAX_STANZAS).map_err(SealError::Malformed)?;
    // Each held key on its own, header MAC included: a stanza that unwraps
    // to another file key (made so, or damaged) must not hide a later key's
    // good stanza.
    for (position, identity) in candidates {
        let own = StanzaByPosition::new(identity, position);
        if let Some(keys) = file.unwrap_keys(&own) {
            return Ok(keys);
        }
        if own.unwrapped() {
            // The stanza gave a file key, the header MAC or the payload
            // refused it.
            if !enforced(ReaderCheck::UnwrapEachKey) {
                break;
            }
        } else if position.is_some() && !enforced(ReaderCheck::UnwrapOwnStanza) {
            // Without the check: the key tries every stanza.
            if let Some(keys) = file.unwrap_keys(&StanzaByPosition::new(identity, None)) {
                return Ok(keys);
            }
        }
    }
    Err(SealError::UnwrapFailed)
}

/// Checks a v2 value's commitment before anything is decrypted, then opens
/// the AEAD.
fn decrypt_with(
    value: &SealedValue,
    binding: &Binding<'_>,
    data_key: &DataKey,
) -> Result<SecretBytes, SealError> {
    let (key, aad): (Zeroizing<[u8; 32]>, Vec<u8>) = match &value.commitment {
        None => (
            Zeroizing::new(*data_key.expose()),
            binding.associated_data_v1(),
        ),
        Some(expected) => {
            let keys = commitment::derive(data_key, &value.nonce);
            if !commitment::matches(&keys.commitment, expected) && enforced(ReaderCheck::Commitment)
            {
                return Err(SealError::CommitmentMismatch);
            }
            (keys.aead_key, binding.associated_data_v2(value.sealed_at))
        }
    };
    let cipher = XChaCha20Poly1305::new((&*key).into());
    let nonce = XNonce::from_slice(&value.nonce);
    match cipher.decrypt(
        nonce,
        Payload {
            msg: &value.ciphertext,
            aad: &aad,
        },
    ) {
        Ok(plaintext) => Ok(SecretBytes::new(plaintext)),
        Err(_) if enforced(ReaderCheck::Aead) => Err(SealError::DecryptFailed),
        Err(_) => unchecked::open_without_tag(&cipher, nonce, &value.ciphertext)
            .map(SecretBytes::new)
            .ok_or(SealError::DecryptFailed),
    }
}

/// Wraps a data key to the recipients (duplicates removed) as a binary age
/// file: one X25519 stanza per recipient, then the key-ids stanza; returns
/// the key ids in stanza order.
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
    let wrapped = wrapped_key::wrap(data_key, &recipients, vec![key_ids_stanza(&key_ids)])
        .ok_or(SealError::Internal("age encryption failed"))?;
    Ok((key_ids, wrapped))
}

/// The `kseal.dev/key-ids` stanza: one argument per key id, empty body.
fn key_ids_stanza(key_ids: &[KeyId]) -> Stanza {
    Stanza {
        tag: KEY_IDS_STANZA_TAG.to_owned(),
        args: key_ids.iter().map(KeyId::to_string).collect(),
        body: Vec::new(),
    }
}

/// Unwraps with one named identity only, with the X25519 stanza at its key
/// id's position ([`structure::check_wrapped_key`] checked the rest when
/// the value was parsed). The header MAC is verified after a successful
/// unwrap, so a changed key id or stanza anywhere is rejected.
struct StanzaByPosition<'a> {
    identity: &'a Identity,
    /// `None`: every X25519 stanza (only when a test switched a check off).
    position: Option<usize>,
    /// Whether the stanza gave a file key.
    unwrapped: Cell<bool>,
}

impl<'a> StanzaByPosition<'a> {
    fn new(identity: &'a Identity, position: Option<usize>) -> Self {
        Self {
            identity,
            position,
            unwrapped: Cell::new(false),
        }
    }

    fn unwrapped(&self) -> bool {
        self.unwrapped.get()
    }
}

impl age::Identity for StanzaByPosition<'_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        let mut x25519 = stanzas
            .iter()
            .filter(|stanza| stanza.tag == X25519_STANZA_TAG);
        let unwrap = |stanza: &Stanza| age::Identity::unwrap_stanza(self.identity, stanza);
        let result = match self.position {
            Some(index) => unwrap(x25519.nth(index)?),
            None => x25519.find_map(unwrap),
        };
        self.unwrapped
            .set(matches!(result, Some(Ok(_))) || self.unwrapped.get());
        result
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod two_key;
#[cfg(test)]
mod vectors;
