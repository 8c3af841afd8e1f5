//! What a sealed value is bound to: the scope, and per scope the namespace,
//! the name and the data key name. The binding becomes the AEAD associated
//! data, so a value moved anywhere its scope does not allow fails to open.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::SealError;

/// Where a sealed value may be unsealed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Only as the Secret with this exact namespace and name.
    #[default]
    Strict,
    /// As any Secret in this namespace.
    NamespaceWide,
    /// As any Secret in any namespace.
    ClusterWide,
}

impl Scope {
    /// Every scope, narrowest first.
    pub const ALL: [Scope; 3] = [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide];

    /// The spelling in `spec.scope` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Strict => "strict",
            Scope::NamespaceWide => "namespace-wide",
            Scope::ClusterWide => "cluster-wide",
        }
    }

    /// Whether values are bound to the namespace (all but cluster-wide).
    pub fn binds_namespace(self) -> bool {
        !matches!(self, Scope::ClusterWide)
    }

    /// Whether values are bound to the name (strict only).
    pub fn binds_name(self) -> bool {
        matches!(self, Scope::Strict)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = SealError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                SealError::InvalidBinding(format!(
                    "unknown scope {s:?} (expected strict, namespace-wide or cluster-wide)"
                ))
            })
    }
}

/// A scope is read from its string form only (`docs/format.md` §7): serde's
/// derived enum reader would also take a map such as `{cluster-wide: null}`,
/// which a policy tool reading the string would see as another scope.
impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScopeName;
        impl serde::de::Visitor<'_> for ScopeName {
            type Value = Scope;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one of the strings strict, namespace-wide or cluster-wide")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Scope, E> {
                Scope::from_str(value).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(ScopeName)
    }
}

/// The context one value is sealed for. Fields the scope does not bind are
/// ignored (they may be set; they are not part of the associated data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding<'a> {
    /// How widely the value may be used.
    pub scope: Scope,
    /// The Secret's namespace (bound unless cluster-wide).
    pub namespace: &'a str,
    /// The Secret's name (bound by strict scope only).
    pub name: &'a str,
    /// The data key the value is stored under (always bound).
    pub key: &'a str,
}

/// First field of format v1's associated data: names the format and its
/// version.
pub const AAD_DOMAIN_V1: &[u8] = b"kseal.dev/sealed-value/v1";
/// First field of format v2's associated data.
pub const AAD_DOMAIN_V2: &[u8] = b"kseal.dev/sealed-value/v2";

/// The largest data a Kubernetes Secret can hold (the API server's limit on
/// the whole object, applied here to one value).
pub const MAX_VALUE_LEN: usize = 1024 * 1024;

impl<'a> Binding<'a> {
    /// A binding; [`validate`](Self::validate) checks it.
    pub fn new(scope: Scope, namespace: &'a str, name: &'a str, key: &'a str) -> Self {
        Self {
            scope,
            namespace,
            name,
            key,
        }
    }

    /// Checks the fields this scope needs are present and well-formed.
    pub fn validate(&self) -> Result<(), SealError> {
        validate_key_name(self.key)?;
        if self.scope.binds_namespace() && self.namespace.is_empty() {
            return Err(SealError::InvalidBinding(format!(
                "scope {} needs a namespace",
                self.scope
            )));
        }
        if self.scope.binds_name() && self.name.is_empty() {
            return Err(SealError::InvalidBinding(format!(
                "scope {} needs a name",
                self.scope
            )));
        }
        Ok(())
    }

    /// The namespace as bound: empty when the scope does not bind it.
    pub fn bound_namespace(&self) -> &'a str {
        if self.scope.binds_namespace() {
            self.namespace
        } else {
            ""
        }
    }

    /// The name as bound: empty when the scope does not bind it.
    pub fn bound_name(&self) -> &'a str {
        if self.scope.binds_name() {
            self.name
        } else {
            ""
        }
    }

    /// Format v1's AEAD associated data:
    /// `lp(AAD_DOMAIN_V1) ‖ lp(scope) ‖ lp(namespace) ‖ lp(name) ‖ lp(key)`,
    /// where `lp(x)` is x's length as a 4-byte big-endian integer followed by
    /// x, and unbound fields are empty. Every field is length-prefixed, so two
    /// different bindings never produce the same bytes.
    pub fn associated_data_v1(&self) -> Vec<u8> {
        self.length_prefixed(AAD_DOMAIN_V1)
    }

    /// Format v2's AEAD associated data: v1's fields with
    /// [`AAD_DOMAIN_V2`] first, then the seal time as 8 bytes big-endian
    /// (seconds since the Unix epoch):
    /// `lp(AAD_DOMAIN_V2) ‖ lp(scope) ‖ lp(namespace) ‖ lp(name) ‖ lp(key) ‖ u64be(sealed_at)`.
    pub fn associated_data_v2(&self, sealed_at: u64) -> Vec<u8> {
        let mut aad = self.length_prefixed(AAD_DOMAIN_V2);
        aad.extend_from_slice(&sealed_at.to_be_bytes());
        aad
    }

    fn length_prefixed(&self, domain: &[u8]) -> Vec<u8> {
        let fields: [&[u8]; 5] = [
            domain,
            self.scope.as_str().as_bytes(),
            self.bound_namespace().as_bytes(),
            self.bound_name().as_bytes(),
            self.key.as_bytes(),
        ];
        let mut aad = Vec::with_capacity(fields.iter().map(|f| 4 + f.len()).sum::<usize>() + 8);
        for field in fields {
            // Kubernetes names are far below 4 GiB; saturate rather than wrap.
            let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
            aad.extend_from_slice(&len.to_be_bytes());
            aad.extend_from_slice(field);
        }
        aad
    }
}

/// Kubernetes' rule for Secret data keys (see
/// [`crate::names::check_data_key`], the one place it is written).
pub fn validate_key_name(key: &str) -> Result<(), SealError> {
    crate::names::check_data_key(key).map_err(|err| SealError::InvalidBinding(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_parses_and_prints() {
        for scope in Scope::ALL {
            assert_eq!(Scope::from_str(scope.as_str()).unwrap(), scope);
        }
        assert!(Scope::from_str("global").is_err());
        assert_eq!(Scope::default(), Scope::Strict);
    }

    #[test]
    fn associated_data_layout() {
        let aad = Binding::new(Scope::Strict, "ns", "n", "k").associated_data_v1();
        let mut expected = Vec::new();
        for field in [AAD_DOMAIN_V1, b"strict", b"ns", b"n", b"k"] {
            expected.extend_from_slice(&(field.len() as u32).to_be_bytes());
            expected.extend_from_slice(field);
        }
        assert_eq!(aad, expected);
    }

    #[test]
    fn unbound_fields_do_not_matter() {
        let a = Binding::new(Scope::ClusterWide, "a", "x", "k").associated_data_v2(5);
        let b = Binding::new(Scope::ClusterWide, "b", "y", "k").associated_data_v2(5);
        assert_eq!(a, b);
        let a = Binding::new(Scope::NamespaceWide, "a", "x", "k").associated_data_v1();
        let b = Binding::new(Scope::NamespaceWide, "a", "y", "k").associated_data_v1();
        assert_eq!(a, b);
    }

    #[test]
    fn length_prefix_separates_fields() {
        let a = Binding::new(Scope::Strict, "ab", "c", "k").associated_data_v1();
        let b = Binding::new(Scope::Strict, "a", "bc", "k").associated_data_v1();
        assert_ne!(a, b);
        let a = Binding::new(Scope::Strict, "ab", "c", "k").associated_data_v2(7);
        let b = Binding::new(Scope::Strict, "a", "bc", "k").associated_data_v2(7);
        assert_ne!(a, b);
    }

    #[test]
    fn v2_ends_with_the_seal_time_and_differs_from_v1() {
        let binding = Binding::new(Scope::Strict, "ns", "n", "k");
        let v2 = binding.associated_data_v2(0x0102_0304_0506_0708);
        assert!(v2.ends_with(&[1, 2, 3, 4, 5, 6, 7, 8]));
        assert!(v2.starts_with(&[0, 0, 0, 25]));
        assert_ne!(v2[..v2.len() - 8], binding.associated_data_v1()[..]);
        assert_ne!(binding.associated_data_v2(1), binding.associated_data_v2(2));
    }

    #[test]
    fn scope_is_read_from_its_string_only() {
        for scope in Scope::ALL {
            let json = format!("\"{scope}\"");
            assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
        }
        for bad in [
            r#"{"cluster-wide":null}"#,
            r#"{"strict":null}"#,
            "1",
            "null",
            r#""Strict""#,
        ] {
            assert!(serde_json::from_str::<Scope>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation() {
        assert!(
            Binding::new(Scope::Strict, "ns", "", "k")
                .validate()
                .is_err()
        );
        assert!(
            Binding::new(Scope::NamespaceWide, "", "", "k")
                .validate()
                .is_err()
        );
        assert!(
            Binding::new(Scope::ClusterWide, "", "", "k")
                .validate()
                .is_ok()
        );
        for bad in ["", "a/b", "a b", "ä", &"x".repeat(254)] {
            assert!(validate_key_name(bad).is_err(), "{bad}");
        }
        for good in ["a", "A-b_c.d", ".dockerconfigjson", "tls.crt"] {
            assert!(validate_key_name(good).is_ok(), "{good}");
        }
    }
}
