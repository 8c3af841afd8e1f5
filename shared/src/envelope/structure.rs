//! What a reader checks of a wrapped data key without keys
//! (`docs/format.md` §4, step 3).

use age_core::format::Stanza;
use base64::Engine;
use base64::prelude::BASE64_STANDARD_NO_PAD;

use super::wrapped_key::AgeFile;
use super::{
    FormatVersion, KEY_IDS_STANZA_TAG, MAX_STANZAS, ReaderCheck, X25519_STANZA_TAG, enforced,
    read_key_id,
};
use crate::error::SealError;
use crate::x25519::KeyId;

/// Bytes of an X25519 stanza's ephemeral share and of its body (the
/// wrapped 16-byte file key and a 16-byte tag).
const X25519_SHARE_LEN: usize = 32;
const X25519_BODY_LEN: usize = 32;
/// Stanzas a v1 wrapped key may hold besides the X25519 and key-ids ones
/// (age's grease; early kseal versions wrote one).
const V1_OTHER_STANZAS: usize = 2;

/// Checks a wrapped data key against the value's key ids:
///
/// * it parses as an age file ([`AgeFile`]), at most [`MAX_STANZAS`]
///   stanzas (a bound: the rules below allow no more);
/// * exactly one `kseal.dev/key-ids` stanza, with an empty body, lists the
///   same key ids in the same order (one argument each, each a key id as
///   written);
/// * exactly one X25519 stanza per key id, each with one argument (the
///   canonical base64 of a 32-byte share) and a 32-byte body; the i-th is
///   unwrapped only with the i-th key;
/// * v2 only: nothing else, and in this order: the X25519 stanzas, then the
///   key-ids stanza (checked as two rules: no other stanza; no X25519
///   stanza after the key-ids stanza).
///
/// Whether the i-th X25519 stanza was made for the i-th key cannot be told
/// without that key's private half: its holder finds out (unwrap failed).
pub(super) fn check_wrapped_key(
    file: &[u8],
    key_ids: &[KeyId],
    version: FormatVersion,
) -> Result<(), SealError> {
    let file = AgeFile::parse(file, MAX_STANZAS).map_err(SealError::Malformed)?;
    let mut key_id_stanzas = file
        .stanzas
        .iter()
        .enumerate()
        .filter(|(_, stanza)| stanza.tag == KEY_IDS_STANZA_TAG);
    // Without the count check: the first key-ids stanza, if any.
    let key_ids_stanza = match (key_id_stanzas.next(), key_id_stanzas.next()) {
        (Some(found), None) => Some(found),
        (None, _) if enforced(ReaderCheck::KeyIdsStanzaCount) => {
            return Err(SealError::Malformed(
                "wrapped data key has no key-ids stanza",
            ));
        }
        (Some(_), Some(_)) if enforced(ReaderCheck::KeyIdsStanzaCount) => {
            return Err(SealError::Malformed(
                "wrapped data key has two key-ids stanzas",
            ));
        }
        (first, _) => first,
    };
    if let Some((_, stanza)) = key_ids_stanza {
        if !stanza.body.is_empty() && enforced(ReaderCheck::KeyIdsStanzaBody) {
            return Err(SealError::Malformed(
                "the wrapped data key's key-ids stanza has a body",
            ));
        }
        // A text that is not a key id equals none (`read_key_id`).
        let listed: Option<Vec<KeyId>> = stanza.args.iter().map(|arg| read_key_id(arg)).collect();
        match listed {
            Some(listed) if listed == key_ids => {}
            Some(_) if enforced(ReaderCheck::KeyIdsStanzaMatch) => {
                return Err(SealError::Malformed(
                    "key ids do not match the wrapped data key's key-ids stanza",
                ));
            }
            None if enforced(ReaderCheck::KeyIdsStanzaMatch) => {
                return Err(SealError::Malformed("invalid key id in the key-ids stanza"));
            }
            _ => {}
        }
    }
    let x25519: Vec<&Stanza> = file
        .stanzas
        .iter()
        .filter(|stanza| stanza.tag == X25519_STANZA_TAG)
        .collect();
    if x25519.len() != key_ids.len() && enforced(ReaderCheck::X25519Count) {
        return Err(SealError::Malformed(
            "the wrapped data key does not have one X25519 stanza per key id",
        ));
    }
    if !x25519.iter().all(|stanza| is_x25519_shaped(stanza)) && enforced(ReaderCheck::X25519Shape) {
        return Err(SealError::Malformed(
            "an X25519 stanza is not one 32-byte share and a 32-byte body",
        ));
    }
    if version == FormatVersion::V1
        && file.stanzas.len() > key_ids.len() + 1 + V1_OTHER_STANZAS
        && enforced(ReaderCheck::V1OtherStanzas)
    {
        return Err(SealError::Malformed(
            "a v1 wrapped data key holds at most two stanzas besides the recipients' and the key-ids stanza",
        ));
    }
    if version == FormatVersion::V2 {
        let others = file
            .stanzas
            .iter()
            .any(|stanza| stanza.tag != X25519_STANZA_TAG && stanza.tag != KEY_IDS_STANZA_TAG);
        if others && enforced(ReaderCheck::V2OnlyRecipientStanzas) {
            return Err(SealError::Malformed(
                "a v2 wrapped data key holds only the X25519 stanzas and the key-ids stanza",
            ));
        }
        let x25519_after = |position: usize| {
            file.stanzas[position..]
                .iter()
                .any(|stanza| stanza.tag == X25519_STANZA_TAG)
        };
        if key_ids_stanza.is_some_and(|(position, _)| x25519_after(position))
            && enforced(ReaderCheck::V2KeyIdsStanzaLast)
        {
            return Err(SealError::Malformed(
                "in a v2 wrapped data key the key-ids stanza comes last",
            ));
        }
    }
    Ok(())
}

/// One argument, the canonical unpadded base64 of 32 bytes, and a 32-byte
/// body: the shape the age specification gives an X25519 stanza.
fn is_x25519_shaped(stanza: &Stanza) -> bool {
    let [share] = stanza.args.as_slice() else {
        return false;
    };
    stanza.body.len() == X25519_BODY_LEN
        && BASE64_STANDARD_NO_PAD
            .decode(share)
            .is_ok_and(|bytes| bytes.len() == X25519_SHARE_LEN)
}
