//! Reading a wrapped data key: a binary age v1 file whose payload is the
//! 32-byte data key.
//!
//! age's general-purpose reader parses the header with parser combinators
//! and allocates a 64 KiB stream buffer per file; for a 32-byte payload that
//! was about a third of an unseal. This reader handles exactly the files
//! kseal writes, as the age v1 specification defines them, with age's own
//! HKDF and AEAD primitives and the same identities:
//!
//! * header: `age-encryption.org/v1`, stanzas (`-> tag args…` and a body in
//!   canonical unpadded base64 wrapped at 64 columns, the last line shorter),
//!   then `--- ` and the header MAC;
//! * MAC: HMAC-SHA-256 under HKDF-SHA-256(file key, salt "", "header") over
//!   the header bytes up to and including `---`;
//! * payload: a 16-byte nonce, then one final STREAM chunk:
//!   ChaCha20-Poly1305 under HKDF-SHA-256(file key, salt nonce, "payload")
//!   with nonce `0⁸⁸ ‖ 0x01`.
//!
//! This is the one reader of a wrapped data key: [`AgeFile::parse`] checks
//! the header's grammar as the age specification states it (every argument
//! one or more printable ASCII characters, canonical base64, a 32-byte MAC)
//! and the payload's size; everything that looks at a wrapped key goes
//! through it. Tests check that it agrees with the `age` crate on every
//! single-bit change of real files.

use std::borrow::Cow;

use age_core::format::{FILE_KEY_BYTES, FileKey, Stanza};
use age_core::primitives::hkdf;
use age_core::secrecy::ExposeSecret;
use base64::Engine;
use base64::prelude::BASE64_STANDARD_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::envelope::{ReaderCheck, enforced, unchecked};
use crate::secret::{DATA_KEY_LEN, DataKey};

const INTRO: &[u8] = b"age-encryption.org/v1\n";
const STANZA_PREFIX: &[u8] = b"-> ";
const MAC_PREFIX: &[u8] = b"--- ";
const BODY_COLUMNS: usize = 64;
const PAYLOAD_NONCE_LEN: usize = 16;
const TAG_LEN: usize = 16;

/// Wraps a data key to `recipients` as a binary age v1 file: the
/// recipients' stanzas (made by age's own recipient implementation), the
/// `extra` stanzas, the header MAC, and the key as one final STREAM chunk.
/// Equivalent to `age::Encryptor` without its 64 KiB stream buffer.
pub(crate) fn wrap(
    data_key: &DataKey,
    recipients: &[&dyn age::Recipient],
    extra: Vec<Stanza>,
) -> Option<Vec<u8>> {
    use rand::RngCore;
    let file_key = FileKey::init_with_mut(|key| rand::rngs::OsRng.fill_bytes(key));
    let mut stanzas = Vec::with_capacity(recipients.len() + extra.len());
    for recipient in recipients {
        let (wrapped, _labels) = recipient.wrap_file_key(&file_key).ok()?;
        stanzas.extend(wrapped);
    }
    stanzas.extend(extra);
    write_file(&file_key, &stanzas, data_key)
}

/// Writes a binary age v1 file with exactly these stanzas, in this order,
/// whose payload is `data_key` encrypted under `file_key`. The stanzas must
/// wrap `file_key` for the file to open; the test-vector generator also
/// uses this to build files that break one reader rule each.
pub(crate) fn write_file(
    file_key: &FileKey,
    stanzas: &[Stanza],
    data_key: &DataKey,
) -> Option<Vec<u8>> {
    let mut header = Vec::with_capacity(160 + 128 * stanzas.len());
    header.extend_from_slice(INTRO);
    for stanza in stanzas {
        write_stanza(&mut header, stanza);
    }
    write_file_with_header(file_key, header, data_key)
}

/// Finishes an age file from its header up to (not including) `---`: the
/// MAC over it, the payload. [`write_file`] passes a canonical header; the
/// test-vector generator also passes hand-made ones.
pub(crate) fn write_file_with_header(
    file_key: &FileKey,
    mut out: Vec<u8>,
    data_key: &DataKey,
) -> Option<Vec<u8>> {
    use rand::RngCore;
    finish_header(file_key, &mut out)?;
    let secret: &[u8; FILE_KEY_BYTES] = file_key.expose_secret();
    let mut nonce = [0u8; PAYLOAD_NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    out.extend_from_slice(&nonce);
    let payload_key = Zeroizing::new(hkdf(&nonce, b"payload", secret));
    let key: &[u8; 32] = &payload_key;
    let chunk = ChaCha20Poly1305::new(key.into())
        .encrypt(
            Nonce::from_slice(&LAST_CHUNK_NONCE),
            data_key.expose().as_slice(),
        )
        .ok()?;
    out.extend_from_slice(&chunk);
    Some(out)
}

/// Writes a binary age v1 file with exactly these stanzas, in this order,
/// and `payload` (a nonce and one STREAM chunk, as [`AgeFile::payload`]
/// gives it) byte for byte: the header of a file whose file key stays the
/// same, with stanzas replaced (a re-wrap that keeps other recipients'
/// stanzas). The payload depends only on the file key, so it stays valid.
pub(crate) fn write_file_with_payload(
    file_key: &FileKey,
    stanzas: &[Stanza],
    payload: &[u8],
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(160 + 128 * stanzas.len() + payload.len());
    out.extend_from_slice(INTRO);
    for stanza in stanzas {
        write_stanza(&mut out, stanza);
    }
    finish_header(file_key, &mut out)?;
    out.extend_from_slice(payload);
    Some(out)
}

/// Ends a header (everything before `---`): `---`, the MAC under the file
/// key over all of it, the line end.
fn finish_header(file_key: &FileKey, out: &mut Vec<u8>) -> Option<()> {
    out.extend_from_slice(b"---");
    let secret: &[u8; FILE_KEY_BYTES] = file_key.expose_secret();
    let mac_key = Zeroizing::new(hkdf(&[], b"header", secret));
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(mac_key.as_ref()).ok()?;
    mac.update(out);
    out.push(b' ');
    out.extend_from_slice(
        BASE64_STANDARD_NO_PAD
            .encode(mac.finalize().into_bytes())
            .as_bytes(),
    );
    out.push(b'\n');
    Some(())
}

/// The STREAM nonce of a file's first and last chunk: counter 0, last flag.
const LAST_CHUNK_NONCE: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// Writes one stanza in canonical form (also for tests that build headers
/// by hand).
pub(crate) fn write_stanza(out: &mut Vec<u8>, stanza: &Stanza) {
    out.extend_from_slice(STANZA_PREFIX);
    out.extend_from_slice(stanza.tag.as_bytes());
    for arg in &stanza.args {
        out.push(b' ');
        out.extend_from_slice(arg.as_bytes());
    }
    out.push(b'\n');
    // Wrapped at 64 columns; the last line is shorter (possibly empty).
    let body = BASE64_STANDARD_NO_PAD.encode(&stanza.body);
    let mut last_len = 0;
    for line in body.as_bytes().chunks(BODY_COLUMNS) {
        out.extend_from_slice(line);
        out.push(b'\n');
        last_len = line.len();
    }
    if last_len == BODY_COLUMNS || body.is_empty() {
        out.push(b'\n');
    }
}

/// A wrapped data key taken apart: the header's stanzas, the bytes its MAC
/// covers, the MAC, and the payload (nonce and one STREAM chunk).
pub(crate) struct AgeFile<'a> {
    /// The stanzas, in file order.
    pub stanzas: Vec<Stanza>,
    covered: &'a [u8],
    mac: [u8; 32],
    payload: &'a [u8],
}

/// The payload of a wrapped data key: nonce, 32-byte key, tag.
pub(crate) const PAYLOAD_LEN: usize = PAYLOAD_NONCE_LEN + DATA_KEY_LEN + TAG_LEN;

/// Where the line at the start of `bytes` ends (its `\n`).
fn line_end(bytes: &[u8]) -> Result<usize, &'static str> {
    bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("wrapped data key has no header end")
}

/// A header argument (or tag) as age defines it: one or more printable
/// ASCII characters, no spaces.
fn is_argument(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

impl<'a> AgeFile<'a> {
    /// Parses a binary age v1 file whose payload is one 32-byte key, with at
    /// most `max_stanzas` stanzas. Errors say what is wrong, never quote.
    pub(crate) fn parse(file: &'a [u8], max_stanzas: usize) -> Result<Self, &'static str> {
        let mut rest = match file.strip_prefix(INTRO) {
            Some(rest) => rest,
            None if enforced(ReaderCheck::AgeIntro) => {
                return Err("wrapped data key is not an age v1 file");
            }
            // Without the check: any first line.
            None => {
                let end = line_end(file)?;
                &file[end + 1..]
            }
        };
        let mut stanzas = Vec::new();
        loop {
            if let Some(after) = rest.strip_prefix(MAC_PREFIX) {
                let end = line_end(after)?;
                let mac = match BASE64_STANDARD_NO_PAD
                    .decode(&after[..end])
                    .ok()
                    .and_then(|mac| <[u8; 32]>::try_from(mac).ok())
                {
                    Some(mac) => mac,
                    None if enforced(ReaderCheck::AgeMacLine) => {
                        return Err("wrapped data key's header MAC is malformed");
                    }
                    None => unchecked::base64(&after[..end])
                        .and_then(|mac| <[u8; 32]>::try_from(mac).ok())
                        .ok_or("wrapped data key's header MAC is malformed")?,
                };
                // The MAC covers everything up to and including "---".
                let covered = &file[..file.len() - after.len() - 1];
                let payload = &after[end + 1..];
                if payload.len() != PAYLOAD_LEN && enforced(ReaderCheck::AgePayloadLength) {
                    return Err("wrapped data key's payload is not one 32-byte key");
                }
                return Ok(Self {
                    stanzas,
                    covered,
                    mac,
                    payload,
                });
            }
            // A bound, not a rule: the format's rules allow no more stanzas
            // (`envelope::MAX_STANZAS`), and parsing stops here.
            if stanzas.len() == max_stanzas {
                return Err("wrapped data key has too many stanzas");
            }
            let line_and_rest = rest
                .strip_prefix(STANZA_PREFIX)
                .ok_or("wrapped data key header is malformed")?;
            let end = line_end(line_and_rest)?;
            let line = match std::str::from_utf8(&line_and_rest[..end]) {
                Ok(line) => Cow::Borrowed(line),
                Err(_) if enforced(ReaderCheck::AgeStanzaLine) => {
                    return Err("wrapped data key header is not text");
                }
                Err(_) => String::from_utf8_lossy(&line_and_rest[..end]),
            };
            let mut words = line.split(' ');
            let tag = words.next().unwrap_or_default();
            let args: Vec<String> = words.map(str::to_owned).collect();
            if (!is_argument(tag) || !args.iter().all(|arg| is_argument(arg)))
                && enforced(ReaderCheck::AgeStanzaLine)
            {
                return Err("wrapped data key has a malformed stanza line");
            }
            rest = &line_and_rest[end + 1..];
            // Body lines: full 64-column lines, then a shorter final one,
            // then the next stanza or the MAC line (both start with '-',
            // which base64 never does).
            let mut encoded = Vec::new();
            let mut ended = false;
            loop {
                let end = line_end(rest)?;
                let line = &rest[..end];
                if ended && line.first() == Some(&b'-') {
                    break;
                }
                if (ended || line.len() > BODY_COLUMNS) && enforced(ReaderCheck::AgeBodyLines) {
                    return Err("wrapped data key has a malformed stanza body");
                }
                // Without the check: every line up to the next stanza.
                encoded.extend_from_slice(line);
                rest = &rest[end + 1..];
                ended = ended || line.len() != BODY_COLUMNS;
            }
            let body = match BASE64_STANDARD_NO_PAD.decode(&encoded) {
                Ok(body) => body,
                Err(_) if enforced(ReaderCheck::AgeBodyBase64) => {
                    return Err("wrapped data key has a malformed stanza body");
                }
                Err(_) => unchecked::base64(&encoded)
                    .ok_or("wrapped data key has a malformed stanza body")?,
            };
            stanzas.push(Stanza {
                tag: tag.to_owned(),
                args,
                body,
            });
        }
    }

    /// Opens the file with `identity`, which unwraps the file key from the
    /// stanzas (kseal's checks the key-ids stanza first); then checks the
    /// header MAC and decrypts the payload. `None`: wrong key or tampered.
    #[cfg(test)]
    pub(crate) fn unwrap(&self, identity: &dyn age::Identity) -> Option<DataKey> {
        self.unwrap_keys(identity).map(|(_, data_key)| data_key)
    }

    /// The payload bytes: the nonce and the one STREAM chunk.
    pub(crate) fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Opens the file with `identity` (the file key from the stanzas, then
    /// the header MAC and the payload), giving the file key too, verified
    /// by the header MAC and the payload's tag, for a re-wrap that keeps it.
    pub(crate) fn unwrap_keys(&self, identity: &dyn age::Identity) -> Option<(FileKey, DataKey)> {
        let file_key: FileKey = identity.unwrap_stanzas(&self.stanzas)?.ok()?;
        let secret: &[u8; FILE_KEY_BYTES] = file_key.expose_secret();
        let mut mac_key = Zeroizing::new(hkdf(&[], b"header", secret));
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(mac_key.as_ref()).ok()?;
        mac_key.zeroize();
        mac.update(self.covered);
        if mac.verify_slice(&self.mac).is_err() && enforced(ReaderCheck::HeaderMac) {
            return None;
        }
        // Parsing checked the payload's length (a test may switch that off).
        let nonce = self.payload.get(..PAYLOAD_NONCE_LEN)?;
        let chunk = &self.payload[PAYLOAD_NONCE_LEN..];
        let payload_key = Zeroizing::new(hkdf(nonce, b"payload", secret));
        let key: &[u8; 32] = &payload_key;
        let cipher = ChaCha20Poly1305::new(key.into());
        let chunk_nonce = Nonce::from_slice(&LAST_CHUNK_NONCE);
        let mut plaintext = match cipher.decrypt(chunk_nonce, chunk) {
            Ok(plaintext) => plaintext,
            Err(_) if enforced(ReaderCheck::PayloadTag) => return None,
            Err(_) => unchecked::open_without_tag(&cipher, chunk_nonce, chunk)?,
        };
        let data_key = DataKey::from_slice_wiping(&mut plaintext)?;
        Some((file_key, data_key))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::binding::{Binding, Scope};
    use crate::envelope::seal;
    use crate::x25519::Identity;

    /// The age crate's reading of the same file, for comparison.
    fn with_age(file: &[u8], identity: &Identity) -> Option<Vec<u8>> {
        let decryptor = age::Decryptor::new(file).ok()?;
        let mut reader = decryptor
            .decrypt(std::iter::once(identity as &dyn age::Identity))
            .ok()?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).ok()?;
        Some(out)
    }

    /// This reader's verdict: `None` when the file does not parse,
    /// `Some(None)` when it parses but does not open.
    fn fast(file: &[u8], identity: &Identity) -> Option<Option<Vec<u8>>> {
        let parsed = AgeFile::parse(file, 16).ok()?;
        Some(parsed.unwrap(identity).map(|key| key.expose().to_vec()))
    }

    #[test]
    fn written_files_open_with_age() {
        let a = Identity::generate();
        let b = Identity::generate();
        for body_len in [0usize, 1, 47, 48, 49, 96] {
            let data_key = DataKey::generate();
            let extra = Stanza {
                tag: "test".into(),
                args: vec!["x".into()],
                body: vec![7; body_len],
            };
            let recipients = [
                a.recipient().age() as &dyn age::Recipient,
                b.recipient().age(),
            ];
            let file = wrap(&data_key, &recipients, vec![extra]).unwrap();
            for identity in [&a, &b] {
                assert_eq!(
                    with_age(&file, identity).unwrap(),
                    data_key.expose(),
                    "body {body_len}"
                );
                assert_eq!(fast(&file, identity).unwrap().unwrap(), data_key.expose());
            }
            assert_eq!(with_age(&file, &Identity::generate()), None);
        }
    }

    #[test]
    fn agrees_with_age_on_every_bit_flip() {
        let a = Identity::generate();
        let b = Identity::generate();
        let binding = Binding::new(Scope::ClusterWide, "", "", "k");
        let sealed = seal(
            b"v",
            &binding,
            &[a.recipient().clone(), b.recipient().clone()],
        )
        .unwrap();
        let file = sealed.wrapped_key().to_vec();
        let key = fast(&file, &b).expect("parses").expect("opens");
        assert_eq!(Some(key), with_age(&file, &b));
        let mut unsupported = 0;
        for position in 0..file.len() {
            for bit in 0..8 {
                let mut tampered = file.clone();
                tampered[position] ^= 1 << bit;
                match fast(&tampered, &b) {
                    // Whatever the fast reader decides, age decides the same.
                    Some(result) => {
                        assert_eq!(result, with_age(&tampered, &b), "byte {position} bit {bit}")
                    }
                    // Refused by the parser: age must reject it too.
                    None => {
                        unsupported += 1;
                        assert_eq!(with_age(&tampered, &b), None, "byte {position} bit {bit}");
                    }
                }
            }
        }
        assert!(unsupported < file.len() * 8);
    }
}
