//! Host and guest configuration for VFIO passthrough, rendered from the verified host
//! state and applied atomically.
//!
//! The model: [`HostFacts`] (what was read under a root: CPU, kernel, bootloader,
//! devices, the current `/etc` files, verdict warnings) and a [`Request`] (which device
//! sets, which guest formats, options) go into [`generate`], a pure function returning
//! a [`Plan`]: kernel parameters to add and remove, whole new contents of each file it
//! touches, the commands to run afterwards, guest snippets and warnings. [`apply`]
//! writes a plan atomically with backups; [`apply::rollback`] undoes the last one.
//!
//! [`facts::from_host`] derives [`HostFacts`] from `passthru-iommu-groups`' host model,
//! which read the devices, the configuration files and the boot tools once, confined
//! under its root; [`verdicts::warnings`] carries that crate's preflight findings
//! (reset bug, missing reset, shared group, ...) into the plan.
//!
//! Files passthru shares with the user are edited in two ways only: the one kernel
//! command-line value it merges into (see [`cmdline`], [`grub`]), and a marked block it
//! owns (see [`block`]). No other line is ever rewritten.
//!
//! ```
//! use passthru_config_gen::{cmdline, grub};
//! let text = "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet amd_iommu=on\"\n";
//! let current = grub::current_tokens(text).unwrap();
//! let planned = cmdline::plan(&current, &cmdline::ParamEdit {
//!     add: vec!["iommu=pt".into()],
//!     remove: vec!["amd_iommu=on".into()],
//! });
//! let merged = grub::edit(text, &planned, &[]).unwrap();
//! assert_eq!(merged, "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt\"\n");
//! ```
#![forbid(unsafe_code)]

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod apply;
pub mod block;
pub mod cmdline;
pub mod diff;
mod error;
pub mod facts;
pub mod grub;
pub mod guest;
pub mod host;
pub mod kubevirt;
pub mod mapping;
pub mod model;
pub mod verdicts;

pub use error::{Error, Result};
pub use model::{
    Bootloader, ConfigCode, CpuVendor, Detection, DeviceFacts, GrubFlavor, GuestKind, HostFacts,
    Initramfs, KernelVersion, Request, Warning,
};

use model::warning;
use passthru_pci_ids::Slot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One file of a plan: its system path, current content (None: absent) and new content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// System path (`/etc/modprobe.d/vfio.conf`), joined to the root when written.
    pub path: String,
    /// Content read from disk when the plan was made.
    pub old: Option<String>,
    /// Content after the change.
    pub new: String,
}

impl FileChange {
    /// Build a change.
    pub fn new(path: &str, old: Option<String>, new: String) -> FileChange {
        FileChange {
            path: path.to_string(),
            old,
            new,
        }
    }

    /// Whether writing it would change the disk.
    pub fn changes(&self) -> bool {
        self.old.as_deref() != Some(self.new.as_str())
    }

    /// Unified diff against the current content (empty when unchanged).
    pub fn diff(&self) -> String {
        diff::unified(&self.path, self.old.as_deref(), &self.new)
    }
}

impl Serialize for FileChange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        FileReport::from(self).serialize(s)
    }
}

/// A file of the plan as `passthru config --json` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct FileReport {
    /// System path (`/etc/modprobe.d/vfio.conf`).
    pub path: String,
    /// The content after the change.
    pub content: String,
    /// Unified diff from the current content (`--- /dev/null` for a new file).
    pub diff: String,
}

impl From<&FileChange> for FileReport {
    fn from(f: &FileChange) -> FileReport {
        FileReport {
            path: f.path.clone(),
            content: f.new.clone(),
            diff: f.diff(),
        }
    }
}

/// Kernel parameters the plan adds to and removes from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct KernelParams {
    /// Tokens appended.
    pub add: Vec<String>,
    /// Tokens removed (only on request).
    pub remove: Vec<String>,
}

/// Everything `passthru config` would do. Serializes as its [`PlanReport`].
#[derive(Debug, Clone, Serialize)]
#[serde(into = "PlanReport")]
pub struct Plan {
    /// The command-line merge.
    pub kernel_params: KernelParams,
    /// Files written (only those whose content changes are listed).
    pub files: Vec<FileChange>,
    /// Commands to run after writing, in order.
    pub commands: Vec<String>,
    /// Guest configuration per format.
    pub guest: BTreeMap<GuestKind, String>,
    /// Warnings (verdicts first, then the generator's own).
    pub warnings: Vec<Warning>,
    /// How the bootloader, its update command and the initramfs tool were chosen.
    pub detected: Vec<model::Detection>,
    /// Why each passthru kernel parameter is wanted (present already or added now).
    #[serde(skip)]
    pub param_reasons: Vec<host::WantedParam>,
    /// Every generated file, changed or not (for idempotence reporting).
    #[serde(skip)]
    pub all_files: Vec<FileChange>,
    /// Conflicts with what the user wrote that passthru will not override: each says
    /// what to change by hand. Also listed in `warnings`; [`apply::apply_plan`]
    /// refuses a plan that has any (see [`Plan::check_applicable`]).
    #[serde(skip)]
    pub refusals: Vec<Warning>,
    /// Wanted parameters not added because the command line sets the same parameter
    /// differently (left as the user has it; also a `param-conflict` warning).
    #[serde(skip)]
    pub param_conflicts: Vec<cmdline::Conflict>,
}

/// A plan as `passthru config --json` gives it (what [`Plan`] serializes to, and what a
/// reader of that JSON deserializes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct PlanReport {
    /// The command-line merge.
    pub kernel_params: KernelParams,
    /// Files written (only those whose content changes are listed).
    pub files: Vec<FileReport>,
    /// Commands to run after writing, in order.
    pub commands: Vec<String>,
    /// Guest configuration per format.
    pub guest: BTreeMap<GuestKind, String>,
    /// Warnings (verdicts first, then the generator's own).
    pub warnings: Vec<Warning>,
    /// How the bootloader, its update command and the initramfs tool were chosen.
    pub detected: Vec<model::Detection>,
}

impl From<Plan> for PlanReport {
    fn from(p: Plan) -> PlanReport {
        PlanReport {
            kernel_params: p.kernel_params,
            files: p.files.iter().map(FileReport::from).collect(),
            commands: p.commands,
            guest: p.guest,
            warnings: p.warnings,
            detected: p.detected,
        }
    }
}

impl Plan {
    /// Whether applying it changes no file.
    pub fn is_noop(&self) -> bool {
        self.files.is_empty()
    }

    /// `Ok` when nothing the user wrote stands in the way of writing the plan; else an
    /// error listing every conflict and its fix.
    ///
    /// # Errors
    ///
    /// Error::Request listing every refusal and its fix.
    pub fn check_applicable(&self) -> Result<()> {
        if self.refusals.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = self
            .refusals
            .iter()
            .map(|w| format!("[{}] {}", w.code, w.message))
            .collect();
        Err(Error::Request(format!(
            "nothing written: {} conflict{} with what is already configured:\n  {}",
            list.len(),
            if list.len() == 1 { "" } else { "s" },
            list.join("\n  ")
        )))
    }
}

/// Expand the request's slots to functions and build the plan. Pure: reads nothing
/// but its arguments.
///
/// # Errors
///
/// Error::Request when no device is requested, a slot is both requested and removed, or a
/// device is unknown or cannot be passed through as asked; Error::Param or Error::Syntax
/// from the host side (see host::plan).
pub fn generate(facts: &HostFacts, req: &Request) -> Result<Plan> {
    if (req.sets.is_empty() && req.remove.is_empty()) || req.sets.iter().any(Vec::is_empty) {
        return Err(Error::Request(
            "no device requested: name at least one device (BDF, slot or vendor:device)".into(),
        ));
    }
    let mut removed: Vec<&DeviceFacts> = Vec::new();
    for slot in &req.remove {
        if req.sets.iter().flatten().any(|s| s == slot) {
            return Err(Error::Request(format!(
                "{slot} is both requested and to be removed"
            )));
        }
        let fns: Vec<&DeviceFacts> = facts
            .devices
            .iter()
            .filter(|d| d.bdf.slot() == *slot)
            .collect();
        if fns.is_empty() {
            return Err(Error::Request(format!(
                "unknown-device: --remove {slot}: no PCI device at {slot} on this host"
            )));
        }
        removed.extend(fns);
    }
    let mut seen: Vec<Slot> = Vec::new();
    let mut sets = Vec::new();
    for set in &req.sets {
        let mut slots = Vec::new();
        for slot in set {
            if seen.contains(slot) {
                return Err(Error::Request(format!(
                    "{slot} is requested twice; each slot can go to one guest only"
                )));
            }
            seen.push(*slot);
            slots.push(*slot);
        }
        let mut functions: Vec<&DeviceFacts> = facts
            .devices
            .iter()
            .filter(|d| slots.contains(&d.bdf.slot()))
            .collect();
        functions.sort_by_key(|d| d.bdf);
        if let Some(b) = functions.iter().find(|d| d.class.class == 0x06) {
            return Err(Error::Request(format!(
                "{} is a bridge (class {}): pass the device behind it, not the bridge",
                b.bdf, b.class
            )));
        }
        for slot in &slots {
            if !functions.iter().any(|d| d.bdf.slot() == *slot) {
                return Err(Error::Request(format!(
                    "unknown-device: no PCI device at {slot} on this host"
                )));
            }
        }
        sets.push(guest::GuestSet { slots, functions });
    }
    let devs: Vec<&DeviceFacts> = sets
        .iter()
        .flat_map(|s| s.functions.iter().copied())
        .collect();
    let all_slots: Vec<Slot> = sets.iter().flat_map(|s| s.slots.iter().copied()).collect();
    let (existing_x_vga, vm_warnings) = guest::proxmox_x_vga(facts, &all_slots);
    let x_vga_used = existing_x_vga
        || req.x_vga
            && devs.iter().any(|d| d.class.is_vga())
            && req
                .guests
                .iter()
                .any(|g| matches!(g, GuestKind::Proxmox | GuestKind::Qemu));
    let hp = host::plan(facts, req, &devs, &removed, x_vga_used)?;

    let mut warnings: Vec<Warning> = facts.findings.clone();
    warnings.extend(vm_warnings);
    for d in &devs {
        if guest::code43(d) {
            warnings.push(warning(ConfigCode::Code43, format!("{} is an NVIDIA consumer GPU: drivers older than R465 refuse to run in a VM (Windows \"Code 43\"); install R465 or later in the guest", d.bdf)).for_device(d.bdf));
        }
    }
    if req.x_vga && req.guests.contains(&GuestKind::Libvirt) {
        warnings.push(warning(
            ConfigCode::XVgaLibvirt,
            "libvirt has no x-vga attribute; the libvirt block passes the GPU without legacy VGA",
        ));
    }
    warnings.extend(hp.warnings);
    warnings.extend(hp.refusals.iter().cloned());
    let mut uniq = Vec::new();
    for w in warnings {
        if !uniq.contains(&w) {
            uniq.push(w);
        }
    }
    let mut guest_out = BTreeMap::new();
    for kind in req.guests.iter().filter(|_| !sets.is_empty()) {
        let text = if *kind == GuestKind::Kubevirt {
            kubevirt::render(&sets, &facts.device_names)
        } else {
            guest::render(*kind, &sets, req.x_vga)
        };
        guest_out.insert(
            *kind,
            guest::with_phys_bits(*kind, text, facts.guest_phys_bits),
        );
    }
    Ok(Plan {
        kernel_params: KernelParams {
            add: hp.planned.add.clone(),
            remove: hp.planned.remove.clone(),
        },
        files: hp.files.iter().filter(|f| f.changes()).cloned().collect(),
        commands: hp.commands,
        guest: guest_out,
        warnings: uniq,
        detected: facts.detected.clone(),
        param_reasons: hp.wanted,
        all_files: hp.files,
        refusals: hp.refusals,
        param_conflicts: hp.planned.conflicts.clone(),
    })
}
