//! Figures more than one scenario reports, or that compare scenarios'
//! figures without knowing the scenarios.

use serde::Serialize;

use super::round;

/// One tool's figures that a comparison divides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Headline {
    /// Seconds from the first apply until every object is in sync.
    pub sync_s: f64,
    /// Controller CPU per object during the sync, milliseconds.
    pub cpu_ms_per_object: f64,
    /// Seconds from a restart until its first full resync, when measured.
    pub restart_resync_s: Option<f64>,
    /// Controller peak resident memory, MiB.
    pub peak_rss_mib: f64,
}

/// kseal against another tool's run: how many times faster (sync,
/// restart), less CPU per object, less peak memory; `null` when a figure
/// is missing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratios {
    /// The other tool's run's flags.
    pub flags: Vec<String>,
    pub sync_faster: Option<f64>,
    pub cpu_per_object_less: Option<f64>,
    pub restart_faster: Option<f64>,
    pub peak_rss_less: Option<f64>,
}

impl Ratios {
    /// `other / kseal` for each headline figure, one decimal.
    pub fn of(kseal: &Headline, other: &Headline, flags: &[String]) -> Self {
        let ratio = |other: Option<f64>, kseal: Option<f64>| match (other, kseal) {
            (Some(other), Some(kseal)) if kseal > 0.0 => Some(round(other / kseal, 1)),
            _ => None,
        };
        Self {
            flags: flags.to_vec(),
            sync_faster: ratio(Some(other.sync_s), Some(kseal.sync_s)),
            cpu_per_object_less: ratio(
                Some(other.cpu_ms_per_object),
                Some(kseal.cpu_ms_per_object),
            ),
            restart_faster: ratio(other.restart_resync_s, kseal.restart_resync_s),
            peak_rss_less: ratio(Some(other.peak_rss_mib), Some(kseal.peak_rss_mib)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_their_json() {
        let kseal = Headline {
            sync_s: 2.0,
            cpu_ms_per_object: 0.5,
            restart_resync_s: None,
            peak_rss_mib: 20.0,
        };
        let bitnami = Headline {
            sync_s: 9.0,
            cpu_ms_per_object: 2.0,
            restart_resync_s: Some(4.0),
            peak_rss_mib: 50.0,
        };
        let ratios = Ratios::of(&kseal, &bitnami, &["--kubeclient-qps=-1".to_owned()]);
        assert_eq!(
            serde_json::to_string(&ratios).unwrap(),
            r#"{"flags":["--kubeclient-qps=-1"],"sync_faster":4.5,"cpu_per_object_less":4.0,"restart_faster":null,"peak_rss_less":2.5}"#
        );
    }
}
