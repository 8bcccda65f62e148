//! The host model: PCI devices, IOMMU groups, resets and boot setup as sysfs,
//! procfs and `/etc` show them, read under a root directory; snapshots of exactly
//! what the model reads; and the preflight verdicts.
//!
//! # The model
//!
//! [`Host::load`] reads a root directory (`/` live, a snapshot, or a fixture tree):
//! `sys/bus/pci/devices/*` and each device's attributes and binary `config`, the
//! bridge chain from the device's real path under `sys/devices/`, the IOMMU groups
//! (`sys/kernel/iommu_groups`), IOMMU state (`sys/class/iommu`, ACPI DMAR/IVRS),
//! `proc/cmdline`, `proc/cpuinfo`, the kernel release, loaded modules, vfio-pci
//! parameters and the boot setup files under `etc/`. Symbolic links are resolved
//! inside the root (an absolute target counts from the root) and never followed
//! out of it; every read is bounded. Only an unusable root or one without
//! `sys/bus/pci/devices` is an error: anything else missing, unreadable or garbled
//! is an absent fact plus a [`Note`].
//!
//! [`Host::load_stage`] with [`Stage::Inventory`] reads only what a listing shows
//! (ids, class, driver, group) with the fewest file-system operations: `passthru
//! list`. Both stages are one loader over one confined file-system layer,
//! [`sysfs::Root`], which every other reader of the host (config-gen, vfio-core)
//! uses too.
//!
//! Lookups: [`Host::device`], [`Host::group_of`], [`Host::resolve`] (a
//! [`DeviceSpec`]: BDF, slot or `vendor:device`), [`Host::with_companions`],
//! [`Host::request`] (what `check` checks: matches plus companions, default every GPU),
//! [`Host::bus_peers`], [`Host::below`], [`Host::slot_siblings`].
//!
//! # Cost
//!
//! Loading is linear in the number of devices: each device directory is listed
//! once and only the attributes present are opened, each file once (no `lstat`
//! per attribute, no lookup that walks other devices). [`check`] indexes the
//! topology (bus peers, children, devices below each bridge) once per report,
//! so checking every GPU of a host is linear too. The lookups above
//! ([`Host::bus_peers`], [`Host::below`]) walk every device per call: right for
//! one question, not for one question per device. Unit tests pin the file-system
//! operations per device and the walks per check.
//!
//! # Verdicts
//!
//! [`check`] (or [`check_bdfs`]) gives a [`Report`]: per device a [`Verdict`] and
//! [`Finding`]s with stable [`Code`]s (`iommu-off`, `group-shared`, `no-reset`,
//! `reset-bug`, `host-driver`, `boot-vga`, `acs-missing`, `companion-function`, ...);
//! [`findings_device`] adds the per-device findings that look past groups and resets
//! (`unresponsive`, `not-endpoint`, `direct-mapping`, `d3cold`, `bar-window`,
//! `msix-relocation`, `no-display-output`; the repository's `docs/findings.md` gives
//! each rule and its source). A device argument or address the host does not have is
//! an error with code `unknown-device` ([`Error::code`]), never an empty report.
//! [`reset::analyse`] recomputes the kernel's reset methods from topology and
//! config space rather than trusting the enumeration-time `reset_method`.
//!
//! # Snapshots and fixtures
//!
//! [`snapshot()`] copies what the model read into a directory that loads to the same
//! model. [`fixture`] builds host trees from a topology description, for tests
//! and benchmarks.
//!
//! ```
//! use passthru_iommu_groups::{check, fixture, DeviceSpec, Host, Verdict};
//!
//! let dir = tempfile::tempdir().unwrap();
//! fixture::scenario_amd().write(dir.path()).unwrap();
//! let host = Host::load(dir.path()).unwrap();
//! let spec: DeviceSpec = "0b:00".parse().unwrap();
//! let report = check(&host, &[spec]).unwrap();
//! // Fiji: the AMD reset bug, amdgpu bound, the boot display.
//! assert_eq!(report.devices[0].verdict, Verdict::Warn);
//! ```
#![forbid(unsafe_code)]
// Every public fallible function documents when it fails and when it panics.

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod boot;
mod error;
pub mod facts;
pub mod findings_device;
mod findings_host;
pub mod fixture;
#[cfg(any(feature = "arbitrary", feature = "proptest"))]
pub mod generate;
mod inventory;
mod load;
mod load_host;
mod model;
pub mod reset;
pub mod snapshot;
mod spec;
pub mod sysfs;
mod topology;
pub mod verdict;

pub use error::{Error, Result};
pub use facts::ConfigFacts;
pub use inventory::parse_modalias;
pub use load_host::{DmarUnit, GraphicsNode, Holder, Holders, Iomem, IomemRange, Platform};
pub use model::system_path;
pub use model::{
    BootSetup, CpuVendor, Device, Group, GroupId, Host, IommuState, Note, ReservedRegion, Resource,
    Stage, NOIOMMU_GROUP_NAME,
};
pub use reset::{ResetAnalysis, ResetMethod};
pub use snapshot::{snapshot, SnapshotInfo, SnapshotStats};
pub use spec::DeviceSpec;
pub use verdict::{
    check, check_bdfs, Code, DeviceReport, Finding, HostSummary, IommuStatus, Report, Severity,
    Verdict,
};
