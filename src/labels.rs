//! Node Feature Discovery labels: the verdicts of `check`, as the lines of NFD's local
//! feature file (`/etc/kubernetes/node-feature-discovery/features.d/passthru`).
//!
//! Every label is derived from the host model and the preflight reports of
//! [`crate::iommu_groups::check_bdfs`]: nothing here reads the file system. The label
//! set is an interface, documented in docs/labels.md; the rules NFD and Kubernetes
//! impose are enforced here:
//!
//! - a label is `<prefix>/<name>=<value>`; the name and the value follow the syntax of
//!   Kubernetes label names and values (k8s.io/apimachinery
//!   pkg/util/validation/validation.go, `IsQualifiedName` and `IsValidLabelValue`):
//!   at most 63 characters of `[A-Za-z0-9._-]`, starting and ending alphanumeric
//!   (a value may be empty);
//! - the prefix is a sub-namespace of `feature.node.kubernetes.io`, which nfd-master
//!   always accepts (its `denyLabelNs` option cannot deny it);
//! - NFD's local source skips a feature file larger than 65536 bytes
//!   (node-feature-discovery source/local/local.go, `MaxFeatureFileSize`), so the file
//!   is kept within that size.

use crate::iommu_groups::{check_bdfs, Code, DeviceReport, Host, Report, Severity, Verdict};
use crate::pci_ids::{Bdf, Slot};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The namespace of every passthru label.
pub const PREFIX: &str = "passthru.feature.node.kubernetes.io";

/// The version of the label set (docs/labels.md), itself a label.
pub const LABELS_VERSION: &str = "1";

/// Where NFD's local source reads feature files (its default `features.d`).
pub const FEATURES_DIR: &str = "/etc/kubernetes/node-feature-discovery/features.d";

/// The feature file passthru writes in [`FEATURES_DIR`].
pub const FEATURE_FILE: &str = "passthru";

/// NFD's limit on one feature file, in bytes (a larger file is skipped whole).
pub const MAX_FILE_BYTES: usize = 65536;

/// The longest label name (after the prefix) or value Kubernetes accepts.
pub const MAX_NAME: usize = 63;

/// One label: the name after [`PREFIX`] and its value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Label {
    /// The name (without the prefix), valid per [`valid_name`].
    pub name: String,
    /// The value, valid per [`valid_value`].
    pub value: String,
}

impl Label {
    /// A label whose name and value are made valid with [`name`] and [`value`].
    pub fn new(n: &str, v: &str) -> Label {
        Label {
            name: name(n),
            value: value(v),
        }
    }

    /// The feature-file line: `<prefix>/<name>=<value>`.
    pub fn line(&self) -> String {
        format!("{PREFIX}/{}={}", self.name, self.value)
    }
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Whether `s` is a valid label name part (non-empty, at most 63 characters of
/// `[A-Za-z0-9._-]`, alphanumeric at both ends).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && valid_value(s)
}

/// Whether `s` is a valid label value (empty, or as [`valid_name`]).
pub fn valid_value(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let b = s.as_bytes();
    s.len() <= MAX_NAME
        && s.chars().all(allowed)
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// FNV-1a (32 bit) of `s`: a fixed, platform-independent hash for shortened names.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Make `raw` a valid label value, deterministically: every character outside
/// `[A-Za-z0-9._-]` becomes `-`, non-alphanumeric characters are trimmed from both
/// ends, the rest is cut to 54 characters (trimmed again) and given `-` and the 8 hex
/// digits of the 32-bit FNV-1a hash of `raw`, so two inputs that map to the same
/// characters or share their first 54 still differ. A valid input comes back
/// unchanged; a changed one is at most 63 characters.
pub fn value(raw: &str) -> String {
    if valid_value(raw) {
        return raw.to_string();
    }
    let hash = format!("{:08x}", fnv1a(raw));
    let mapped: String = raw
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    // All characters are ASCII now, so byte cuts are character cuts.
    let cut = &trimmed[..trimmed.len().min(MAX_NAME - 9)];
    let cut = cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if cut.is_empty() {
        hash
    } else {
        format!("{cut}-{hash}")
    }
}

/// Make `raw` a valid label name ([`value`], and never empty: an input with nothing
/// usable becomes `x-` and its hash).
pub fn name(raw: &str) -> String {
    let v = value(raw);
    if v.is_empty() {
        format!("x-{:08x}", fnv1a(raw))
    } else {
        v
    }
}

/// How a device resets, for schedulers: `ok` (a reset the kernel uses), `none` (no
/// usable reset: `no-reset`) or `bug` (a known broken reset: `reset-bug`).
/// Ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResetLabel {
    /// A reset method the kernel will use.
    Ok,
    /// No usable reset method.
    None,
    /// A reset that is known to leave the device broken (AMD reset bug).
    Bug,
}

impl ResetLabel {
    fn of(d: &DeviceReport) -> ResetLabel {
        let has = |c: Code| d.findings.iter().any(|f| f.code == c);
        if has(Code::ResetBug) {
            ResetLabel::Bug
        } else if has(Code::NoReset) {
            ResetLabel::None
        } else {
            ResetLabel::Ok
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ResetLabel::Ok => "ok",
            ResetLabel::None => "none",
            ResetLabel::Bug => "bug",
        }
    }
}

fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Warn => "warn",
        Verdict::Fail => "fail",
    }
}

/// Counts for one label group (a class or a vendor:device).
#[derive(Debug, Clone, Copy)]
struct Tally {
    count: usize,
    pass: usize,
    worst: Verdict,
    reset: ResetLabel,
}

impl Tally {
    fn add(&mut self, verdict: Verdict, reset: ResetLabel) {
        self.count += 1;
        if verdict != Verdict::Fail {
            self.pass += 1;
        }
        self.worst = self.worst.max(verdict);
        self.reset = self.reset.max(reset);
    }

    fn labels(&self, stem: &str, out: &mut Vec<Label>) {
        out.push(Label::new(
            &format!("{stem}.count"),
            &self.count.to_string(),
        ));
        out.push(Label::new(&format!("{stem}.pass"), &self.pass.to_string()));
        out.push(Label::new(
            &format!("{stem}.worst"),
            verdict_str(self.worst),
        ));
        out.push(Label::new(&format!("{stem}.reset"), self.reset.as_str()));
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            count: 0,
            pass: 0,
            worst: Verdict::Pass,
            reset: ResetLabel::Ok,
        }
    }
}

/// The functions the labels describe: every display device (class 03xx) and every
/// function bound to vfio-pci (what the operator set aside for guests), grouped by
/// slot, since a slot goes to one guest as a whole.
pub fn candidate_slots(host: &Host) -> BTreeMap<Slot, Vec<Bdf>> {
    let mut slots: BTreeMap<Slot, Vec<Bdf>> = BTreeMap::new();
    for d in host.devices.values() {
        if d.is_any_bridge() {
            continue;
        }
        if d.class.is_display() || d.is_vfio_bound() {
            slots.entry(d.bdf.slot()).or_default().push(d.bdf);
        }
    }
    slots
}

/// One preflight report per candidate slot (its functions and their companions), as
/// `passthru check <slot>` gives it: each slot is checked as one guest's device.
///
/// # Errors
/// Only what [`check_bdfs`] returns for an address the host lacks, which the
/// candidates, taken from the host, never are.
pub fn slot_reports(host: &Host) -> crate::iommu_groups::Result<Vec<Report>> {
    candidate_slots(host)
        .values()
        .map(|bdfs| check_bdfs(host, bdfs))
        .collect()
}

/// The labels for `host`, from the per-slot reports of [`slot_reports`]: host labels,
/// then one group of four labels per device class and per vendor:device. Each
/// function counts with the worst verdict of its slot and of the host (the slot passes
/// as a whole, and only on a host that passes).
pub fn labels(host: &Host, reports: &[Report]) -> Vec<Label> {
    let mut out = vec![Label::new("version", LABELS_VERSION)];
    let iommu = host.iommu.active();
    out.push(Label::new("iommu", if iommu { "true" } else { "false" }));
    let no_intremap = crate::iommu_groups::verdict::host_summary(host)
        .findings
        .iter()
        .any(|f| f.code == Code::NoIntremap);
    let intremap = if no_intremap {
        "false"
    } else if host.platform.irq_remapped() == Some(true) {
        "true"
    } else {
        "unknown"
    };
    out.push(Label::new("intremap", intremap));
    let mut classes: BTreeMap<String, Tally> = BTreeMap::new();
    let mut ids: BTreeMap<String, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    for r in reports {
        // A host that fails (no IOMMU, no interrupt remapping) fails every slot, as
        // check's exit status says; the host's warnings stay the host's.
        let host_fails = r.host.findings.iter().any(|f| f.severity == Severity::Fail);
        let devices_worst = r.devices.iter().map(|d| d.verdict).max();
        let slot_worst = if host_fails {
            Some(Verdict::Fail)
        } else {
            devices_worst
        };
        for d in &r.devices {
            let v = slot_worst.unwrap_or(d.verdict).max(d.verdict);
            let reset = ResetLabel::of(d);
            // The class code's base class and subclass (`0300`), as NFD's pci source names them.
            let class = format!("class-{:02x}{:02x}", d.class.class, d.class.subclass);
            classes.entry(class).or_default().add(v, reset);
            ids.entry(format!("pci-{}_{}", d.vendor_id, d.device_id))
                .or_default()
                .add(v, reset);
            total.add(v, reset);
        }
    }
    out.push(Label::new("devices.count", &total.count.to_string()));
    out.push(Label::new("devices.pass", &total.pass.to_string()));
    for (stem, t) in classes.iter().chain(&ids) {
        t.labels(stem, &mut out);
    }
    out
}

/// The feature file: a header comment, the `# +expiry-time=` directive when given
/// (RFC 3339, which NFD parses), then one line per label. When the lines would pass
/// [`MAX_FILE_BYTES`], the vendor:device labels (`pci-*`) are kept in order while they
/// fit, each group of four whole, the rest dropped, and `truncated=true` says so.
pub fn render(labels: &[Label], expiry: Option<&str>) -> String {
    let mut head = String::from(
        "# Written by `passthru labels` (docs/labels.md); rewritten on every run, do not edit.\n",
    );
    if let Some(t) = expiry {
        let _ = writeln!(head, "# +expiry-time={t}");
    }
    let body = |ls: &[Label], truncated: bool| {
        let mut s = head.clone();
        for l in ls {
            s.push_str(&l.line());
            s.push('\n');
        }
        if truncated {
            s.push_str(&Label::new("truncated", "true").line());
            s.push('\n');
        }
        s
    };
    let full = body(labels, false);
    if full.len() <= MAX_FILE_BYTES {
        return full;
    }
    // Too long: keep every non-`pci-` label and the leading `pci-` groups (a group:
    // the labels sharing a stem before the last `.`) that fit, in one pass.
    let stem = |l: &Label| {
        l.name
            .rsplit_once('.')
            .map_or(l.name.clone(), |(s, _)| s.to_string())
    };
    let size = |l: &Label| l.line().len() + 1;
    let is_pci = |l: &Label| l.name.starts_with("pci-");
    let trailer = Label::new("truncated", "true").line().len() + 1;
    let mut fixed = head.len() + trailer;
    let mut keep: Vec<bool> = labels.iter().map(|l| !is_pci(l)).collect();
    for (i, l) in labels.iter().enumerate() {
        if keep[i] {
            fixed += size(l);
        }
    }
    // Never with passthru's own label set: the non-`pci-` labels alone are too long.
    let mut i = labels.len();
    while fixed > MAX_FILE_BYTES && i > 0 {
        i -= 1;
        if keep[i] {
            keep[i] = false;
            fixed -= size(&labels[i]);
        }
    }
    let mut budget = MAX_FILE_BYTES.saturating_sub(fixed);
    let mut i = 0;
    while i < labels.len() {
        if !is_pci(&labels[i]) {
            i += 1;
            continue;
        }
        let s = stem(&labels[i]);
        let mut j = i;
        let mut bytes = 0;
        while j < labels.len() && is_pci(&labels[j]) && stem(&labels[j]) == s {
            bytes += size(&labels[j]);
            j += 1;
        }
        if bytes > budget {
            break;
        }
        budget -= bytes;
        keep[i..j].iter_mut().for_each(|k| *k = true);
        i = j;
    }
    let kept: Vec<Label> = labels
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(l, _)| l.clone())
        .collect();
    body(&kept, true)
}

/// A duration for `--expiry`: a whole number with a unit, `s`, `m`, `h` or `d`
/// (`90m`, `2h`), at most 366 days.
///
/// # Errors
/// A message naming the text when it is not such a duration.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let err = || format!("{s:?} is not a duration such as 90s, 30m, 2h or 1d");
    let unit = s.chars().last().ok_or_else(err)?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return Err(err()),
    };
    let n: u64 = s[..s.len() - 1].parse().map_err(|_| err())?;
    let secs = n.checked_mul(mult).ok_or_else(err)?;
    if secs == 0 || secs > 366 * 86400 {
        return Err(format!("{s:?}: the expiry must be between 1s and 366d"));
    }
    Ok(secs)
}

/// `secs` since the Unix epoch as RFC 3339 UTC (`2026-12-06T15:04:05Z`), the format
/// NFD's `expiry-time` directive takes.
pub fn rfc3339(secs: u64) -> String {
    let [y, m, d, hh, mm, ss] = crate::config_gen::apply::utc(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // date -u -d @951782400: the leap day of a century leap year.
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        // date -u -d @1798761599
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1d"), Ok(86400));
        for bad in ["", "h", "2", "2w", "-1h", "0s", "400d", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_kept_or_fixed() {
        assert_eq!(name("pci-10de_1eb8.count"), "pci-10de_1eb8.count");
        assert_eq!(name("-a b-"), format!("a-b-{:08x}", fnv1a("-a b-")));
        assert!(valid_name(&name("")));
        let long = "a".repeat(100);
        let n = name(&long);
        assert_eq!(n.len(), 63);
        assert_eq!(n, format!("{}-{:08x}", "a".repeat(54), fnv1a(&long)));
        assert_eq!(value(""), "");
    }
}
