//! The report vocabulary every passthru report shares (feature `alloc`; `serde` adds
//! `Serialize`/`Deserialize`, `schemars` adds `JsonSchema`): one [`Severity`] and one
//! [`Finding`], generic over the code enum of the crate that raises it.
//!
//! The preflight verdicts (`passthru check`), the VFIO sequence (`passthru verify`) and
//! the configuration generator (`passthru config`) each have their own set of stable
//! kebab-case codes (one enum per crate) and report them in this one shape:
//!
//! ```json
//! { "code": "reset-bug", "severity": "fail", "message": "...",
//!   "evidence": ["/sys/bus/pci/devices/0000:0b:00.0/reset_method = flr"],
//!   "device": "0000:0b:00.0" }
//! ```
//!
//! It lives here, in the crate every other passthru crate depends on, so that no report
//! crate needs another report crate to name a finding.
//!
//! ```
//! use passthru_pci_ids::report::{Finding, Severity};
//! assert!(Severity::Info < Severity::Warn && Severity::Warn < Severity::Fail);
//! let f = Finding::new("my-code", Severity::Warn, "what is wrong; what to do")
//!     .with_evidence(["/proc/cmdline: iommu=pt".to_string()])
//!     .for_device("0b:00.0".parse().unwrap());
//! assert_eq!(f.device.unwrap().to_string(), "0000:0b:00.0");
//! ```

use crate::ids::Bdf;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// How bad a finding is. Ordered `Info < Warn < Fail` (the worst of a set is its
/// `max`); lowercase in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub enum Severity {
    /// Worth knowing; nothing to fix.
    Info,
    /// Works with care, or needs a configuration change.
    Warn,
    /// Will not pass through cleanly as things stand.
    Fail,
}

impl Severity {
    /// The lowercase name used in JSON (`info`, `warn`, `fail`).
    pub const fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Fail => "fail",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One finding: a stable code, how bad, what to do, the facts it rests on, and the
/// device it is about (`None`: the host as a whole).
///
/// `C` is the code enum of the crate that raised it; each serializes as a kebab-case
/// string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct Finding<C> {
    /// Stable kebab-case code.
    pub code: C,
    /// How bad.
    pub severity: Severity,
    /// What is wrong and what to do.
    pub message: String,
    /// The facts it rests on: a file and the value read there, a register, a kernel
    /// answer. Empty when the message says it all.
    #[cfg_attr(feature = "serde", serde(default))]
    pub evidence: Vec<String>,
    /// The device it is about (`0000:0b:00.0`); `null` for the host as a whole.
    #[cfg_attr(feature = "serde", serde(default))]
    pub device: Option<Bdf>,
}

impl<C> Finding<C> {
    /// A finding with no evidence, about the host as a whole.
    pub fn new(code: C, severity: Severity, message: impl Into<String>) -> Finding<C> {
        Finding {
            code,
            severity,
            message: message.into(),
            evidence: Vec::new(),
            device: None,
        }
    }

    /// The same, resting on `evidence`.
    #[must_use]
    pub fn with_evidence(mut self, evidence: impl IntoIterator<Item = String>) -> Finding<C> {
        self.evidence = evidence.into_iter().collect();
        self
    }

    /// The same, about `device`.
    #[must_use]
    pub fn for_device(mut self, device: Bdf) -> Finding<C> {
        self.device = Some(device);
        self
    }

    /// The same with the code mapped (a crate carrying another crate's findings).
    pub fn map_code<D>(self, f: impl FnOnce(C) -> D) -> Finding<D> {
        Finding {
            code: f(self.code),
            severity: self.severity,
            message: self.message,
            evidence: self.evidence,
            device: self.device,
        }
    }
}

/// The worst severity of `findings` (`None` when there are none).
pub fn worst<'a, C: 'a>(findings: impl IntoIterator<Item = &'a Finding<C>>) -> Option<Severity> {
    findings.into_iter().map(|f| f.severity).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_orders_info_warn_fail() {
        let mut v = [Severity::Fail, Severity::Info, Severity::Warn];
        v.sort();
        assert_eq!(v, [Severity::Info, Severity::Warn, Severity::Fail]);
        assert_eq!(v.map(Severity::name), ["info", "warn", "fail"]);
    }

    #[test]
    fn worst_is_the_max_and_none_when_empty() {
        let f = |s| Finding::new("c", s, "m");
        assert_eq!(worst::<&str>(&[]), None);
        assert_eq!(
            worst(&[f(Severity::Warn), f(Severity::Info)]),
            Some(Severity::Warn)
        );
        assert_eq!(
            worst(&[f(Severity::Warn), f(Severity::Fail)]),
            Some(Severity::Fail)
        );
    }

    #[test]
    fn map_code_keeps_every_other_field() {
        let bdf: Bdf = "0b:00.1".parse().unwrap();
        let f = Finding::new(1u8, Severity::Fail, "m")
            .with_evidence([String::from("e")])
            .for_device(bdf)
            .map_code(|c| c + 1);
        assert_eq!(f.code, 2);
        assert_eq!(f.severity, Severity::Fail);
        assert_eq!(f.evidence, [String::from("e")]);
        assert_eq!(f.device, Some(bdf));
    }
}
