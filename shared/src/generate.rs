//! Generated values: `kseal seal --generate KEY=SPEC` seals a fresh random
//! value nobody ever sees, and `kseal regenerate` replaces it with another of
//! the same form. The form is recorded, in the clear, in the SealedSecret's
//! `spec.generated` (see [`crate::sealed_secret::SealedSecretSpec::generated`]).
//!
//! Forms ([`Generator`]), N from 1 to [`MAX_LENGTH`]:
//! * `hex:N`: N random bytes, lowercase hex (2N characters);
//! * `base64:N`: N random bytes, standard base64 with padding;
//! * `alnum:N`: N characters drawn uniformly from `[A-Za-z0-9]` (rejection
//!   sampling, no modulo bias: about 5.95 bits each);
//! * `uuid`: a random UUID (version 4, RFC 9562), lowercase, hyphenated.
//!
//! Randomness comes from the operating system's CSPRNG ([`rand::rngs::OsRng`]),
//! as for data keys. Every buffer that holds a value or the bytes it is made
//! from is wiped on drop; the result is a [`SecretBytes`], whose `Debug`
//! prints only its length.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::secret::SecretBytes;

/// The largest N of `hex:N`, `base64:N` and `alnum:N`.
pub const MAX_LENGTH: usize = 4096;

/// How a value is generated; written `hex:N`, `base64:N`, `alnum:N` or
/// `uuid` (exactly [`crate::sealed_secret::GENERATOR_PATTERN`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Generator {
    /// N random bytes, lowercase hex.
    Hex(usize),
    /// N random bytes, standard base64 (padded).
    Base64(usize),
    /// N characters of `[A-Za-z0-9]`, uniformly.
    Alnum(usize),
    /// A random UUID, version 4, lowercase and hyphenated.
    Uuid,
}

/// The 62 characters of `alnum:N`.
const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Random bytes below this are kept for `alnum:N` (4 × 62), the rest drawn
/// again, so every character is equally likely.
const ALNUM_ACCEPT_BELOW: u8 = 248;

/// What the forms are, for messages.
const FORMS: &str = "hex:N, base64:N, alnum:N (N from 1 to 4096) or uuid";

/// Why a generator spec does not parse. The spec is quoted only when it is
/// made of a known form and digits: a value typed by mistake where a spec
/// belongs (`--generate password=hunter2`) is never shown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GeneratorError {
    /// Not one of the forms (the text is not shown).
    #[error("not a generator (the text is not shown: it may be a value); expected {FORMS}")]
    Unknown,
    /// A known form whose length is missing, not a number, or out of range.
    #[error(
        "generator {shown:?}: N must be a whole number from 1 to {MAX_LENGTH} without a leading zero (expected {FORMS})"
    )]
    Length {
        /// The spec when it is safe to show (a form and digits), else the
        /// form with `N`.
        shown: String,
    },
    /// `uuid` with a length.
    #[error("generator {shown:?}: uuid takes no length (expected {FORMS})")]
    UuidLength {
        /// The spec when it is safe to show, else `uuid:N`.
        shown: String,
    },
}

impl FromStr for Generator {
    type Err = GeneratorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "uuid" {
            return Ok(Generator::Uuid);
        }
        let (kind, length) = s.split_once(':').unwrap_or((s, ""));
        // Shown only when it is a form followed by a few digits (or none).
        let digits = length.len() <= 12 && length.bytes().all(|b| b.is_ascii_digit());
        let shown = || {
            if digits {
                s.to_owned()
            } else {
                format!("{kind}:N")
            }
        };
        let make: fn(usize) -> Generator = match kind {
            "hex" => Generator::Hex,
            "base64" => Generator::Base64,
            "alnum" => Generator::Alnum,
            "uuid" => return Err(GeneratorError::UuidLength { shown: shown() }),
            _ => return Err(GeneratorError::Unknown),
        };
        let canonical = digits && !length.is_empty() && !length.starts_with('0');
        match length.parse::<usize>() {
            Ok(n) if canonical && (1..=MAX_LENGTH).contains(&n) => Ok(make(n)),
            _ => Err(GeneratorError::Length { shown: shown() }),
        }
    }
}

impl fmt::Display for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Generator::Hex(n) => write!(f, "hex:{n}"),
            Generator::Base64(n) => write!(f, "base64:{n}"),
            Generator::Alnum(n) => write!(f, "alnum:{n}"),
            Generator::Uuid => f.write_str("uuid"),
        }
    }
}

impl Generator {
    /// A fresh value from the operating system's CSPRNG.
    pub fn generate(&self) -> SecretBytes {
        self.generate_with(&mut rand::rngs::OsRng)
    }

    /// A fresh value from `rng` (tests use a seeded one).
    pub fn generate_with<R: RngCore + CryptoRng>(&self, rng: &mut R) -> SecretBytes {
        match *self {
            Generator::Hex(n) => {
                let bytes = random_bytes(rng, n);
                SecretBytes::new(hex(&bytes).to_vec())
            }
            Generator::Base64(n) => {
                let bytes = random_bytes(rng, n);
                let engine = base64::engine::general_purpose::STANDARD;
                let len = base64::encoded_len(n, true).unwrap_or_default();
                let mut out = Zeroizing::new(vec![0u8; len]);
                let written = engine.encode_slice(&*bytes, &mut out).unwrap_or_default();
                out.truncate(written);
                SecretBytes::new(out.to_vec())
            }
            Generator::Alnum(n) => {
                let mut out = Zeroizing::new(Vec::with_capacity(n));
                let mut pool = Zeroizing::new([0u8; 64]);
                while out.len() < n {
                    rng.fill_bytes(pool.as_mut());
                    for &byte in pool.iter() {
                        if out.len() == n {
                            break;
                        }
                        if byte < ALNUM_ACCEPT_BELOW {
                            out.push(ALNUM[usize::from(byte % 62)]);
                        }
                    }
                }
                SecretBytes::new(out.to_vec())
            }
            Generator::Uuid => {
                let mut bytes = Zeroizing::new([0u8; 16]);
                rng.fill_bytes(bytes.as_mut());
                // RFC 9562 §5.4: version 4 in the high nibble of octet 6,
                // variant 0b10 in the two high bits of octet 8.
                bytes[6] = (bytes[6] & 0x0f) | 0x40;
                bytes[8] = (bytes[8] & 0x3f) | 0x80;
                let digits = hex(bytes.as_ref());
                let mut out = Zeroizing::new(Vec::with_capacity(36));
                for (index, range) in [0..8, 8..12, 12..16, 16..20, 20..32]
                    .into_iter()
                    .enumerate()
                {
                    if index > 0 {
                        out.push(b'-');
                    }
                    out.extend_from_slice(&digits[range]);
                }
                SecretBytes::new(out.to_vec())
            }
        }
    }
}

/// `n` random bytes, wiped on drop.
fn random_bytes<R: RngCore + CryptoRng>(rng: &mut R, n: usize) -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    rng.fill_bytes(&mut bytes);
    bytes
}

/// Lowercase hex of `bytes`, wiped on drop.
fn hex(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len() * 2));
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 0x0f)]);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::sealed_secret::GENERATOR_PATTERN;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn parse(s: &str) -> Generator {
        s.parse().unwrap_or_else(|err| panic!("{s:?}: {err}"))
    }

    /// `GENERATOR_PATTERN` (the CRD's schema for `spec.generated`) and the
    /// parser accept exactly the same strings, and what parses prints back
    /// as written.
    #[test]
    fn the_pattern_and_the_parser_agree() {
        let pattern = regex::Regex::new(GENERATOR_PATTERN).unwrap();
        let mut candidates: Vec<String> = Vec::new();
        for kind in [
            "hex", "base64", "alnum", "uuid", "HEX", "Hex", "b64", "base32", "", " hex", "hex ",
        ] {
            candidates.push(kind.to_owned());
            candidates.push(format!("{kind}:"));
            for n in 0..=5000 {
                candidates.push(format!("{kind}:{n}"));
            }
            for n in [
                "01", "001", "0", "04096", "+1", "-1", " 1", "1 ", "1.0", "1e3", "4096\n",
            ] {
                candidates.push(format!("{kind}:{n}"));
            }
            for n in [9999, 10000, 40960, usize::MAX] {
                candidates.push(format!("{kind}:{n}"));
            }
        }
        candidates.extend(
            [
                "uuid:", "uuid4", "uuidv4", "hex:32:1", "hex::32", ":32", "hex32", "hex=32",
            ]
            .map(String::from),
        );
        let mut accepted = 0;
        for candidate in &candidates {
            let parsed = candidate.parse::<Generator>();
            assert_eq!(
                pattern.is_match(candidate),
                parsed.is_ok(),
                "{candidate:?}: {parsed:?}"
            );
            if let Ok(generator) = parsed {
                assert_eq!(&generator.to_string(), candidate);
                accepted += 1;
            }
        }
        // 4096 of each length form, and uuid.
        assert_eq!(accepted, 3 * MAX_LENGTH + 1);
    }

    #[test]
    fn errors_name_the_rule_and_show_only_what_is_safe() {
        let err = |s: &str| s.parse::<Generator>().unwrap_err().to_string();
        assert!(
            err("hex:0")
                .starts_with("generator \"hex:0\": N must be a whole number from 1 to 4096"),
            "{}",
            err("hex:0")
        );
        assert!(err("alnum:4097").starts_with("generator \"alnum:4097\": N must be"));
        assert!(err("base64:").starts_with("generator \"base64:\": N must be"));
        assert!(err("hex").starts_with("generator \"hex\": N must be"));
        assert!(err("uuid:4").starts_with("generator \"uuid:4\": uuid takes no length"));
        // What may be a value is never shown.
        for value in [
            "hunter2-canary",
            "hex:hunter2-canary",
            "uuid:hunter2-canary",
        ] {
            let message = err(value);
            assert!(!message.contains("hunter2"), "{message}");
        }
        assert!(err("hex:hunter2-canary").starts_with("generator \"hex:N\": "));
        assert!(err("hunter2-canary").starts_with("not a generator"));
    }

    /// Lengths and alphabets of every form.
    #[test]
    fn lengths_and_alphabets() {
        for n in [1, 2, 3, 31, 32, 33, 64, 4096] {
            let value = parse(&format!("hex:{n}")).generate();
            assert_eq!(value.len(), 2 * n);
            assert!(
                value
                    .expose()
                    .iter()
                    .all(|b| b"0123456789abcdef".contains(b))
            );

            let value = parse(&format!("base64:{n}")).generate();
            assert_eq!(value.len(), n.div_ceil(3) * 4);
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value.expose())
                .unwrap();
            assert_eq!(decoded.len(), n);

            let value = parse(&format!("alnum:{n}")).generate();
            assert_eq!(value.len(), n);
            assert!(value.expose().iter().all(u8::is_ascii_alphanumeric));
        }
    }

    #[test]
    fn uuids_are_version_4_variant_rfc() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let value = Generator::Uuid.generate();
            let text = std::str::from_utf8(value.expose()).unwrap().to_owned();
            assert_eq!(text.len(), 36, "{text}");
            let groups: Vec<&str> = text.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{text}"
            );
            assert!(
                text.bytes()
                    .all(|b| b == b'-' || b"0123456789abcdef".contains(&b)),
                "{text}"
            );
            assert_eq!(&text[14..15], "4", "version: {text}");
            assert!(
                matches!(&text[19..20], "8" | "9" | "a" | "b"),
                "variant: {text}"
            );
            assert!(seen.insert(text));
        }
    }

    /// Two values are never the same (128 bits and more).
    #[test]
    fn values_are_fresh() {
        for spec in ["hex:16", "base64:16", "alnum:22", "uuid"] {
            let generator = parse(spec);
            assert_ne!(generator.generate(), generator.generate(), "{spec}");
        }
    }

    /// Every character of `alnum` is about equally likely (a chi-squared
    /// test: with 61 degrees of freedom, 120 is beyond the 0.9999 quantile,
    /// and a modulo bias, 8 of 62 characters drawn 5/4 as often, scores over
    /// a thousand at this sample size).
    #[test]
    fn characters_are_uniform() {
        let mut rng = StdRng::seed_from_u64(27);
        let value = Generator::Alnum(MAX_LENGTH).generate_with(&mut rng);
        let mut counts = [0u64; 256];
        for _ in 0..50 {
            for &b in Generator::Alnum(MAX_LENGTH)
                .generate_with(&mut rng)
                .expose()
            {
                counts[usize::from(b)] += 1;
            }
        }
        assert_eq!(value.len(), MAX_LENGTH);
        let total: u64 = counts.iter().sum();
        let expected = total as f64 / 62.0;
        let chi2: f64 = ALNUM
            .iter()
            .map(|&c| {
                let diff = counts[usize::from(c)] as f64 - expected;
                diff * diff / expected
            })
            .sum();
        assert!(chi2 < 120.0, "chi2 {chi2}");
        // What a modulo-biased draw (`byte % 62`, no rejection) would score.
        let mut biased = [0u64; 62];
        let mut bytes = vec![0u8; total as usize];
        rng.fill_bytes(&mut bytes);
        for b in bytes {
            biased[usize::from(b % 62)] += 1;
        }
        let chi2_biased: f64 = biased
            .iter()
            .map(|&count| {
                let diff = count as f64 - expected;
                diff * diff / expected
            })
            .sum();
        assert!(chi2_biased > 1000.0, "biased chi2 {chi2_biased}");
    }

    /// Bytes from 248 up are drawn again, never folded into the alphabet.
    #[test]
    fn alnum_rejects_the_top_of_the_byte_range() {
        /// Yields 248, 249, …, 255, then 0, 1, 2, … (wrapping).
        struct Counting(u8);
        impl RngCore for Counting {
            fn next_u32(&mut self) -> u32 {
                u32::from(self.next())
            }
            fn next_u64(&mut self) -> u64 {
                u64::from(self.next())
            }
            fn fill_bytes(&mut self, dest: &mut [u8]) {
                for byte in dest {
                    *byte = self.next();
                }
            }
            fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
                self.fill_bytes(dest);
                Ok(())
            }
        }
        impl Counting {
            fn next(&mut self) -> u8 {
                let byte = self.0;
                self.0 = self.0.wrapping_add(1);
                byte
            }
        }
        impl CryptoRng for Counting {}
        let value = Generator::Alnum(70).generate_with(&mut Counting(248));
        // 248..=255 skipped; then 0, 1, … map onto the alphabet in order.
        let expected: Vec<u8> = (0..70).map(|i| ALNUM[i % 62]).collect();
        assert_eq!(value.expose(), expected.as_slice());
    }

    #[test]
    fn debug_prints_no_value() {
        let value = Generator::Hex(8).generate();
        let shown = format!("{value:?}");
        assert!(!shown.contains(std::str::from_utf8(value.expose()).unwrap()));
        assert_eq!(shown, "SecretBytes(<redacted 16 bytes>)");
    }
}
