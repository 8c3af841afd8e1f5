//! How old a sealed value may get: the `max_age` of `.kseal.yaml` rules and
//! `kseal check --max-age`, and a SealedSecret's `spec.maxAge`.
//!
//! Teams rotate static credentials on a schedule (90 days is common); format
//! v2 records when each value was sealed, authenticated, so its age is known
//! without any key. One grammar and one verdict serve the CLI and the
//! controller.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::envelope::SealedValue;

/// The grammar of a [`MaxAge`], as a regular expression (also the CRD
/// schema's pattern for `spec.maxAge`): a whole number without a leading
/// zero, from 1 to [`MAX_AGE_LIMIT`] in its unit (876,600 hours, 36,525
/// days or 5,217 weeks). A test holds it to the parser for every number up
/// to past each unit's limit.
pub const MAX_AGE_PATTERN: &str = "^(([1-9][0-9]{0,4}|[1-7][0-9]{5}|8[0-6][0-9]{4}|87[0-5][0-9]{3}|876[0-5][0-9]{2}|876600)h|([1-9][0-9]{0,3}|[12][0-9]{4}|3[0-5][0-9]{3}|36[0-4][0-9]{2}|365[01][0-9]|3652[0-5])d|([1-9][0-9]{0,2}|[1-4][0-9]{3}|5[01][0-9]{2}|520[0-9]|521[0-7])w)$";

/// The longest max age, in seconds: 100 years of 365.25 days (Julian years,
/// the astronomers' year), so 876,600 hours, 36,525 days or 5,217 weeks.
/// Longer is no rotation rule at all, and a typo (`100000d`) should say so.
pub const MAX_AGE_LIMIT: u64 = 36_525 * 86_400;

/// Seconds per unit of a [`MaxAge`].
const UNITS: [(char, u64); 3] = [('h', 3_600), ('d', 86_400), ('w', 604_800)];

/// A seal time may lie this far in the future (clock skew between the
/// sealing machine and the checker), seconds; beyond it the value is
/// [`AgeVerdict::SealedInTheFuture`].
pub const CLOCK_SKEW: i64 = 3_600;

/// A maximum age: a positive whole number of hours, days or weeks, written
/// `<n>h`, `<n>d` or `<n>w` (`90d`, `2160h`, `13w`), without a leading zero,
/// at most 100 years ([`MAX_AGE_LIMIT`]): exactly [`MAX_AGE_PATTERN`]. The
/// CRD's schema for `spec.maxAge` is the same pattern, so the API server
/// admits exactly what parses; `.kseal.yaml`'s `max_age` and `kseal check
/// --max-age` read the same grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaxAge {
    amount: u64,
    unit: char,
}

/// Why a max age does not parse.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error(
    "invalid max age {0:?}: expected a positive whole number of hours, days or weeks without a leading zero, at most 100 years (876600h, 36525d or 5217w), like 90d, 2160h or 13w"
)]
pub struct MaxAgeError(String);

impl MaxAge {
    /// The max age in seconds.
    pub fn as_seconds(self) -> u64 {
        let per_unit = UNITS
            .iter()
            .find(|(unit, _)| *unit == self.unit)
            .map_or(0, |(_, seconds)| *seconds);
        self.amount.saturating_mul(per_unit)
    }

    /// The verdict on one value, at `now`.
    pub fn verdict(self, value: &SealedValue, now: jiff::Timestamp) -> AgeVerdict {
        self.verdict_at(value.sealed_at_seconds(), now)
    }

    /// The verdict on a value sealed at `sealed_at` (seconds since the Unix
    /// epoch, [`crate::envelope::SEALED_AT_UNRECORDED`] when not recorded).
    pub fn verdict_at(self, sealed_at: u64, now: jiff::Timestamp) -> AgeVerdict {
        if sealed_at == crate::envelope::SEALED_AT_UNRECORDED {
            return AgeVerdict::Unrecorded;
        }
        let sealed_at = i64::try_from(sealed_at).unwrap_or(i64::MAX);
        let age = now.as_second().saturating_sub(sealed_at);
        if age < -CLOCK_SKEW {
            return AgeVerdict::SealedInTheFuture;
        }
        let max = i64::try_from(self.as_seconds()).unwrap_or(i64::MAX);
        if age > max {
            AgeVerdict::Overdue { age_seconds: age }
        } else {
            AgeVerdict::Fresh
        }
    }
}

impl FromStr for MaxAge {
    type Err = MaxAgeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || MaxAgeError(s.chars().take(32).collect());
        let unit = s.chars().last().ok_or_else(bad)?;
        if !UNITS.iter().any(|(known, _)| *known == unit) {
            return Err(bad());
        }
        let digits = &s[..s.len() - 1];
        // Six digits hold every amount up to the limit (876,600 hours);
        // more are refused before any arithmetic.
        let canonical = (1..=6).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !canonical {
            return Err(bad());
        }
        let amount: u64 = digits.parse().map_err(|_| bad())?;
        let max_age = MaxAge { amount, unit };
        if max_age.as_seconds() > MAX_AGE_LIMIT {
            return Err(bad());
        }
        Ok(max_age)
    }
}

impl fmt::Display for MaxAge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit)
    }
}

impl Serialize for MaxAge {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MaxAge {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for MaxAge {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MaxAge".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": MAX_AGE_PATTERN,
            "description": "A positive whole number of hours, days or weeks: 90d, 2160h, 13w"
        })
    }
}

/// How one value's age compares with a [`MaxAge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgeVerdict {
    /// Younger than the max age.
    Fresh,
    /// Older than the max age.
    Overdue {
        /// Seconds since the value was sealed.
        age_seconds: i64,
    },
    /// Its seal time was never recorded (v1, or upgraded from v1): it cannot
    /// be shown to be fresh, so it counts as overdue.
    Unrecorded,
    /// Sealed more than [`CLOCK_SKEW`] in the future: a wrong clock where it
    /// was sealed; counts as overdue so it is looked at.
    SealedInTheFuture,
}

impl AgeVerdict {
    /// Whether the value must be re-sealed from its plaintext.
    pub fn is_due(self) -> bool {
        !matches!(self, AgeVerdict::Fresh)
    }
}

impl fmt::Display for AgeVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgeVerdict::Fresh => f.write_str("fresh"),
            AgeVerdict::Overdue { age_seconds } => {
                write!(f, "sealed {}", describe_age(*age_seconds))
            }
            AgeVerdict::Unrecorded => {
                f.write_str("seal time not recorded (format v1, or upgraded from v1)")
            }
            AgeVerdict::SealedInTheFuture => f.write_str("sealed in the future (a wrong clock?)"),
        }
    }
}

/// Seconds from `then` to now (negative when `then` is in the future).
pub fn seconds_since(then: jiff::Timestamp) -> i64 {
    jiff::Timestamp::now().as_second() - then.as_second()
}

/// An age for people: `3 hours ago` below two days, else `45 days ago`;
/// `in the future` beyond [`CLOCK_SKEW`].
pub fn describe_age(seconds: i64) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit} ago")
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match seconds {
        s if s < -CLOCK_SKEW => "in the future (a wrong clock where it was sealed?)".to_owned(),
        s if s < 3_600 => "less than an hour ago".to_owned(),
        s if s < 2 * 86_400 => plural(s / 3_600, "hour"),
        s => plural(s / 86_400, "day"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::binding::{Binding, Scope};
    use crate::envelope::{SEALED_AT_UNRECORDED, seal_at};
    use crate::x25519::Identity;

    #[test]
    fn grammar() {
        for (text, seconds) in [
            ("90d", 90 * 86_400),
            ("1h", 3_600),
            ("2160h", 2_160 * 3_600),
            ("13w", 13 * 604_800),
            ("36525d", MAX_AGE_LIMIT),
            ("876600h", MAX_AGE_LIMIT),
            ("5217w", 5_217 * 604_800),
        ] {
            let parsed: MaxAge = text.parse().unwrap();
            assert_eq!(parsed.as_seconds(), seconds, "{text}");
            assert_eq!(parsed.to_string(), text);
        }
        for bad in [
            "",
            "d",
            "0d",
            "90",
            "90D",
            "90 d",
            " 90d",
            "90days",
            "1.5d",
            "-1d",
            "+1d",
            "1m",
            "1y",
            "090d",
            "00d",
            "9999999999999d",
            "999999999999d",
            "100000d",
            "36526d",
            "876601h",
            "5218w",
            "36600d",
            "９0d",
        ] {
            assert!(bad.parse::<MaxAge>().is_err(), "{bad:?}");
        }
    }

    /// The CRD admits exactly what parses: a SealedSecret the API server
    /// accepts must never fail to decode in the controller's list. Every
    /// amount from 1 to well past each unit's limit, and odd spellings.
    #[test]
    fn the_crd_pattern_is_the_grammar() {
        let pattern = regex::Regex::new(MAX_AGE_PATTERN).unwrap();
        let check = |input: &str| {
            assert_eq!(
                pattern.is_match(input),
                input.parse::<MaxAge>().is_ok(),
                "{input:?}"
            );
        };
        for (unit, limit) in [('h', 876_600u64), ('d', 36_525), ('w', 5_217)] {
            for amount in 1..=limit + 10_000 {
                check(&format!("{amount}{unit}"));
            }
        }
        for input in [
            "", "d", "0d", "090d", "00d", "1x", "１d", "1d\n", "\n1d", "1dd", "d1", "1m",
        ] {
            check(input);
        }
        for digits in 0..=13 {
            for unit in ['h', 'd', 'w', 'm'] {
                check(&format!("{}{unit}", "9".repeat(digits)));
                check(&format!("1{}{unit}", "0".repeat(digits)));
                check(&format!("0{}{unit}", "1".repeat(digits)));
            }
        }
    }

    #[test]
    fn verdicts() {
        let id = Identity::generate();
        let binding = Binding::new(Scope::Strict, "ns", "n", "k");
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let at =
            |seconds: u64| seal_at(b"v", &binding, &[id.recipient().clone()], seconds).unwrap();
        let max: MaxAge = "90d".parse().unwrap();
        let day = 86_400;
        assert_eq!(max.verdict(&at(1_800_000_000), now), AgeVerdict::Fresh);
        assert_eq!(
            max.verdict(&at(1_800_000_000 - 90 * day), now),
            AgeVerdict::Fresh
        );
        assert_eq!(
            max.verdict(&at(1_800_000_000 - 90 * day - 1), now),
            AgeVerdict::Overdue {
                age_seconds: 90 * 86_400 + 1
            }
        );
        assert_eq!(
            max.verdict(&at(1_800_000_000 - 400 * day), now),
            AgeVerdict::Overdue {
                age_seconds: 400 * 86_400
            }
        );
        assert_eq!(
            max.verdict(&at(SEALED_AT_UNRECORDED), now),
            AgeVerdict::Unrecorded
        );
        assert_eq!(max.verdict(&at(1_800_003_600), now), AgeVerdict::Fresh);
        assert_eq!(
            max.verdict(&at(1_800_003_601), now),
            AgeVerdict::SealedInTheFuture
        );
        assert!(AgeVerdict::Unrecorded.is_due() && !AgeVerdict::Fresh.is_due());
    }

    #[test]
    fn ages_for_people() {
        for (seconds, text) in [
            (-3_601, "in the future (a wrong clock where it was sealed?)"),
            (-3_600, "less than an hour ago"),
            (0, "less than an hour ago"),
            (3_600, "1 hour ago"),
            (7_300, "2 hours ago"),
            (2 * 86_400 - 1, "47 hours ago"),
            (2 * 86_400, "2 days ago"),
            (45 * 86_400 + 5, "45 days ago"),
            (86_400 * 400, "400 days ago"),
        ] {
            assert_eq!(describe_age(seconds), text, "{seconds}");
        }
    }
}
