//! Host-wide facts beyond the PCI tree, read once by the loader: interrupt
//! remapping, KVM, the CPU's and the IOMMU's address widths, kernel lockdown and
//! Secure Boot, boot framebuffers, and the processes holding a device's nodes.
//!
//! Formats (the kernel's own, in our words):
//! - `/proc/interrupts` (kernel/irq/proc.c): one line per interrupt, the chip's name
//!   among its words; with interrupt remapping the MSI and IO-APIC chips are named
//!   `IR-PCI-MSI...`, `IR-IO-APIC` (arch/x86/kernel/apic/io_apic.c's remapped chip;
//!   the `IR-` prefix of the remapping MSI domains of drivers/iommu/intel/irq_remapping.c
//!   and drivers/iommu/amd/iommu.c, arch/x86/kernel/apic/msi.c in older kernels),
//!   without it `PCI-MSI...`, `IO-APIC`.
//! - `/sys/class/iommu/dmar*/intel-iommu/{cap,ecap}` (drivers/iommu/intel/iommu.c): the
//!   registers in hex without `0x`. `ecap` bit 3 is interrupt remapping support, `cap`
//!   bits 21:16 the maximum guest address width minus one (drivers/iommu/intel/iommu.h).
//! - `/sys/class/iommu/ivhd*/amd-iommu/{cap,features}` (drivers/iommu/amd/init.c,
//!   `amd_iommu_show_cap`/`amd_iommu_show_features`): `cap` the IOMMU's PCI capability
//!   header in hex (bit 27: the Extended Feature Register exists, `IOMMU_CAP_EFR` in
//!   amd_iommu_types.h); `features` the EFR in hex, since the EFR2 patches (2022)
//!   two values joined by `:`, first `EFR2:EFR`, and since "iommu/amd: Consolidate
//!   feature detection and reporting logic" (v6.7) `EFR:EFR2`. EFR bits 11:10 (HATS,
//!   `FEATURE_HATS`) give the host page table's levels: 4 plus the field, 3 reserved.
//! - `/proc/cpuinfo` (arch/x86/kernel/cpu/proc.c): `flags` (`vmx`, `svm`,
//!   `hypervisor`) and `address sizes : N bits physical, M bits virtual`.
//! - `/sys/kernel/security/lockdown` (security/lockdown/lockdown.c): the modes with
//!   the active one in brackets, `none [integrity] confidentiality`.
//! - `SecureBoot-8be4df61-...` in efivarfs: 4 bytes of attributes, then the value byte.
//! - `/proc/iomem` (kernel/resource.c): `start-end : name`, nested by indentation,
//!   addresses shown as zeros to readers without CAP_SYS_ADMIN.
//! - `/proc/PID/fd/N`: links to the open files; `/proc/PID/comm` the command name.

use crate::load::Loader;
use crate::model::{Device, Group, GroupId};
use crate::sysfs::{Kind, Traced, BIG_TEXT_LIMIT};
use passthru_pci_ids::Bdf;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `/proc/interrupts`.
pub const INTERRUPTS: &str = "proc/interrupts";
/// `/proc/iomem`.
pub const IOMEM: &str = "proc/iomem";
/// The kernel lockdown state.
pub const LOCKDOWN: &str = "sys/kernel/security/lockdown";
/// The UEFI `SecureBoot` variable (EFI global variable GUID).
pub const SECURE_BOOT: &str =
    "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// vfio_iommu_type1's switch for platforms without interrupt remapping.
pub const ALLOW_UNSAFE_INTERRUPTS: &str =
    "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";
/// The KVM device node.
pub const DEV_KVM: &str = "dev/kvm";
/// The platform devices the firmware framebuffer registers (drivers/firmware/sysfb.c,
/// and before 5.15 arch/x86/kernel/sysfb.c).
pub const FB_PLATFORM: [&str; 3] = [
    "sys/bus/platform/devices/simple-framebuffer.0",
    "sys/bus/platform/devices/efi-framebuffer.0",
    "sys/bus/platform/devices/vesa-framebuffer.0",
];
/// `/proc/iomem` names of boot framebuffers.
pub const FB_IOMEM_NAMES: [&str; 5] = [
    "BOOTFB",
    "efifb",
    "simple-framebuffer",
    "vesafb",
    "simplefb",
];

/// At most this many processes are looked at for open device nodes.
const MAX_PROCS: usize = 8192;
/// At most this many open files are read (links) over all processes.
const MAX_FDS: usize = 65_536;

/// One Intel VT-d unit's registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmarUnit {
    /// `dmar0`, ...
    pub name: String,
    /// The capability register.
    pub cap: Option<u64>,
    /// The extended capability register.
    pub ecap: Option<u64>,
}

impl DmarUnit {
    /// Interrupt remapping supported (`ecap` bit 3).
    pub fn intremap(&self) -> Option<bool> {
        self.ecap.map(|e| e & (1 << 3) != 0)
    }

    /// The maximum guest address width in bits (`cap` bits 21:16, plus one).
    pub fn mgaw(&self) -> Option<u8> {
        self.cap.map(|c| ((c >> 16) & 0x3f) as u8 + 1)
    }
}

/// One AMD-Vi unit's registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AmdIommuUnit {
    /// `ivhd0`, ...
    pub name: String,
    /// The capability header (`cap`).
    pub cap: Option<u64>,
    /// `features` as the kernel printed it.
    pub features: Option<String>,
    /// The Extended Feature Register, picked out of `features` by the kernel release
    /// (absent when the order of a two-value `features` is unknown, or `cap` says the
    /// unit has no EFR).
    pub efr: Option<u64>,
}

impl AmdIommuUnit {
    /// The host (v1) page table's levels: EFR HATS (bits 11:10) plus 4; `None` for the
    /// reserved value 3, which makes the kernel turn host translation off
    /// (drivers/iommu/amd/init.c, "iommu/amd: Add efr[HATS] max v1 page table level").
    pub fn host_levels(&self) -> Option<u8> {
        let hats = (self.efr? >> 10) & 3;
        (hats != 3).then_some(hats as u8 + 4)
    }

    /// The IOVA width those levels translate: 12 bits of page offset and 9 per level,
    /// at most 64 (`PM_LEVEL_SHIFT`, the aperture `dma_max_address` gives a v1 domain):
    /// 48 bits for 4 levels, 57 for 5, 64 for 6.
    pub fn addr_bits(&self) -> Option<u8> {
        self.host_levels().map(|l| (12 + 9 * l).min(64))
    }
}

/// The EFR out of `features` (see the module's formats): one value is the EFR; of two,
/// the second before kernel 6.7 and the first from 6.7 on; unknown release, unknown.
fn efr_of(features: &str, release: Option<(u32, u32)>) -> Option<u64> {
    match features.split_once(':') {
        None => parse_hex64(features),
        Some((a, b)) => match release {
            Some(v) if v >= (6, 7) => parse_hex64(a),
            Some(_) => parse_hex64(b),
            None => None,
        },
    }
}

/// One boot framebuffer `/proc/iomem` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IomemRange {
    /// Its name (`BOOTFB`, `efifb`, ...).
    pub name: String,
    /// First address.
    pub start: u64,
    /// Last address.
    pub end: u64,
}

/// What `/proc/iomem` says about boot framebuffers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Iomem {
    /// The framebuffer ranges.
    pub framebuffers: Vec<IomemRange>,
    /// Every address reads zero (a reader without CAP_SYS_ADMIN): ranges unknown.
    pub zeroed: bool,
}

/// A DRM or fbdev node and the device it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphicsNode {
    /// The node under `/dev` (`/dev/dri/card0`, `/dev/fb0`).
    pub node: String,
    /// The device its `device` link names (a PCI address, `simple-framebuffer.0`, ...).
    pub device: String,
}

/// A process holding a device node open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Command name (`/proc/PID/comm`).
    pub comm: Option<String>,
    /// The node it holds (`/dev/dri/card0`, `/dev/nvidia0`, `/dev/vfio/12`, `/dev/fb0`).
    pub node: String,
}

/// The processes holding device nodes open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Holders {
    /// Whether `/proc` was there to look at.
    pub scanned: bool,
    /// The holders of graphics, NVIDIA, fbdev and VFIO group nodes.
    pub holders: Vec<Holder>,
    /// Processes whose open files could not be read (another user's, without root).
    pub unreadable: usize,
    /// The scan stopped at its bound.
    pub truncated: bool,
}

/// Host-wide facts for the host findings (each absent when unreadable, with a note).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Platform {
    /// `/proc/cpuinfo` has a `flags` line.
    pub cpu_flags_known: bool,
    /// The CPU offers hardware virtualization (`vmx` or `svm`).
    pub cpu_virt: Option<&'static str>,
    /// The `hypervisor` flag: this host is itself a virtual machine.
    pub in_vm: bool,
    /// The CPU's physical address bits (`address sizes`).
    pub phys_bits: Option<u8>,
    /// `/dev/kvm` exists.
    pub dev_kvm: bool,
    /// The interrupt chip names `/proc/interrupts` shows for MSI and IO-APIC
    /// interrupts, device suffixes cut (`IR-PCI-MSIX`, `IO-APIC`).
    pub irq_chips: Option<BTreeSet<String>>,
    /// `allow_unsafe_interrupts` of vfio_iommu_type1.
    pub allow_unsafe_interrupts: Option<bool>,
    /// The Intel VT-d units.
    pub dmar: Vec<DmarUnit>,
    /// AMD-Vi units (`/sys/class/iommu/ivhd*`).
    pub amd_iommu: Vec<AmdIommuUnit>,
    /// The lockdown mode (the bracketed word).
    pub lockdown: Option<String>,
    /// The firmware's Secure Boot state.
    pub secure_boot: Option<bool>,
    /// Boot framebuffers in `/proc/iomem`.
    pub iomem: Option<Iomem>,
    /// Firmware framebuffer platform devices present.
    pub fb_platform: Vec<String>,
    /// DRM and fbdev nodes with their devices.
    pub graphics: Vec<GraphicsNode>,
    /// Processes holding device nodes.
    pub holders: Holders,
}

impl Platform {
    /// Interrupt remapping as `/proc/interrupts` shows it: on when any chip is an `IR-`
    /// one, off when MSI or IO-APIC chips show and none is, unknown otherwise.
    pub fn irq_remapped(&self) -> Option<bool> {
        let c = self.irq_chips.as_ref()?;
        if c.iter().any(|n| n.starts_with("IR-")) {
            Some(true)
        } else if c.is_empty() {
            None
        } else {
            Some(false)
        }
    }

    /// The narrowest IOMMU unit's address width (VT-d MGAW, AMD-Vi host page table),
    /// with the evidence naming the file and value it comes from.
    pub fn iommu_addr_bits(&self) -> Option<(u8, String)> {
        let intel = self.dmar.iter().filter_map(|u| {
            let bits = u.mgaw()?;
            Some((
                bits,
                format!(
                    "/sys/class/iommu/{}/intel-iommu/cap: {:x} (MGAW {bits} bits)",
                    u.name,
                    u.cap.unwrap_or(0)
                ),
            ))
        });
        let amd = self.amd_iommu.iter().filter_map(|u| {
            let bits = u.addr_bits()?;
            Some((
                bits,
                format!(
                    "/sys/class/iommu/{}/amd-iommu/features: {} (EFR HATS: {}-level host page table, {bits}-bit IOVA)",
                    u.name,
                    u.features.as_deref().unwrap_or(""),
                    u.host_levels()?
                ),
            ))
        });
        intel.chain(amd).min_by_key(|(b, _)| *b)
    }
}

/// An MSI or IO-APIC chip name in a `/proc/interrupts` word, its device suffix cut
/// (`IR-PCI-MSIX-0000:00:14.0` gives `IR-PCI-MSIX`).
fn irq_chip(word: &str) -> Option<String> {
    let base = word.strip_prefix("IR-").unwrap_or(word);
    if !(base.starts_with("PCI-MSI") || base.starts_with("IO-APIC")) {
        return None;
    }
    let cut = word
        .find(|c: char| c.is_ascii_digit())
        .map_or(word, |i| word[..i].trim_end_matches('-'));
    Some(cut.to_string())
}

/// The chips of `/proc/interrupts` text, and the lines to keep (the header and the
/// first line of each chip).
fn parse_interrupts(text: &str) -> (BTreeSet<String>, String) {
    let mut chips = BTreeSet::new();
    let mut kept = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            kept.push_str(line);
            kept.push('\n');
            continue;
        }
        for w in line.split_whitespace() {
            if let Some(c) = irq_chip(w) {
                if chips.insert(c) {
                    kept.push_str(line);
                    kept.push('\n');
                }
                break;
            }
        }
    }
    (chips, kept)
}

/// `N bits physical` of the first `address sizes` line.
fn phys_bits_of(cpuinfo: &str) -> Option<u8> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k.trim() != "address sizes" {
            return None;
        }
        v.split(',')
            .find_map(|p| p.trim().strip_suffix(" bits physical")?.trim().parse().ok())
    })
}

/// The first `flags` line's words.
fn cpu_flags(cpuinfo: &str) -> Option<BTreeSet<&str>> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "flags").then(|| v.split_whitespace().collect())
    })
}

/// The bracketed word of the lockdown file.
fn lockdown_mode(s: &str) -> Option<String> {
    let a = s.find('[')?;
    let b = s[a..].find(']')?;
    Some(s[a + 1..a + b].to_string())
}

/// One `/proc/iomem` line: range and name.
fn iomem_line(line: &str) -> Option<(u64, u64, &str)> {
    let (range, name) = line.trim().split_once(" : ")?;
    let (a, b) = range.split_once('-')?;
    Some((
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
        name.trim(),
    ))
}

/// The framebuffers of `/proc/iomem` text and the lines to keep (the first line,
/// which shows whether addresses are hidden, and the framebuffer lines).
fn parse_iomem(text: &str) -> (Iomem, String) {
    let mut fbs = Vec::new();
    let mut kept = String::new();
    let mut zeroed = true;
    let mut any = false;
    for (i, line) in text.lines().enumerate() {
        let Some((start, end, name)) = iomem_line(line) else {
            continue;
        };
        any = true;
        if start != 0 || end != 0 {
            zeroed = false;
        }
        let fb = FB_IOMEM_NAMES.contains(&name);
        if fb {
            fbs.push(IomemRange {
                name: name.to_string(),
                start,
                end,
            });
        }
        // The first line shows whether addresses are hidden (its end is not zero
        // unless they are).
        if fb || i == 0 {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    (
        Iomem {
            framebuffers: fbs,
            zeroed: any && zeroed,
        },
        kept,
    )
}

fn parse_hex64(s: &str) -> Option<u64> {
    let d = s.strip_prefix("0x").unwrap_or(s);
    if d.is_empty() || d.len() > 16 {
        return None;
    }
    u64::from_str_radix(d, 16).ok()
}

/// Read the platform facts. `cpuinfo` is `/proc/cpuinfo`'s text, already read.
pub(crate) fn load_platform(
    l: &mut Loader,
    cpuinfo: Option<&str>,
    devices: &BTreeMap<Bdf, Device>,
    groups: &BTreeMap<GroupId, Group>,
    units: &[String],
    kernel: Option<&str>,
) -> Platform {
    let mut p = Platform::default();
    if let Some(c) = cpuinfo {
        if let Some(f) = cpu_flags(c) {
            p.cpu_flags_known = true;
            p.cpu_virt = ["vmx", "svm"].into_iter().find(|v| f.contains(v));
            p.in_vm = f.contains("hypervisor");
        }
        p.phys_bits = phys_bits_of(c);
    }
    p.dev_kvm = l.exists(Path::new(DEV_KVM));

    if let Some(t) = l.text(Path::new(INTERRUPTS), BIG_TEXT_LIMIT) {
        let (chips, kept) = parse_interrupts(&t);
        l.fs.record_as(Path::new(INTERRUPTS), kept.as_bytes());
        p.irq_chips = Some(chips);
    }
    p.allow_unsafe_interrupts =
        l.parsed(Path::new(ALLOW_UNSAFE_INTERRUPTS), "Y or N", |s| match s {
            "Y" | "1" => Some(true),
            "N" | "0" => Some(false),
            _ => None,
        });
    for u in units.iter().filter(|u| u.starts_with("dmar")) {
        let dir = PathBuf::from("sys/class/iommu").join(u).join("intel-iommu");
        let cap = l.parsed(&dir.join("cap"), "a hex register", parse_hex64);
        let ecap = l.parsed(&dir.join("ecap"), "a hex register", parse_hex64);
        p.dmar.push(DmarUnit {
            name: u.clone(),
            cap,
            ecap,
        });
    }
    let release = kernel.and_then(crate::findings_host::kernel_version);
    for u in units.iter().filter(|u| u.starts_with("ivhd")) {
        let dir = PathBuf::from("sys/class/iommu").join(u).join("amd-iommu");
        let cap = l.parsed(&dir.join("cap"), "a hex register", parse_hex64);
        let features = l.trimmed(&dir.join("features"));
        let has_efr = cap.is_none_or(|c| c & (1 << 27) != 0);
        let efr = features
            .as_deref()
            .filter(|_| has_efr)
            .and_then(|f| efr_of(f, release));
        if let (Some(f), None, true) = (&features, efr, has_efr) {
            l.note(
                dir.join("features"),
                format!("{f:?}: the Extended Feature Register could not be picked out (two values need the kernel release to order them): AMD IOMMU address width unknown"),
            );
        }
        p.amd_iommu.push(AmdIommuUnit {
            name: u.clone(),
            cap,
            features,
            efr,
        });
    }
    p.lockdown = l.parsed(
        Path::new(LOCKDOWN),
        "modes with one in brackets",
        lockdown_mode,
    );
    if let Some(b) = l.read_bytes(Path::new(SECURE_BOOT), 64) {
        match b.get(4) {
            Some(v) if b.len() == 5 => p.secure_boot = Some(*v == 1),
            _ => l.note(
                SECURE_BOOT,
                format!(
                    "{} bytes, not 4 attribute bytes and a value: Secure Boot unknown",
                    b.len()
                ),
            ),
        }
    }
    if let Some(t) = l.text(Path::new(IOMEM), BIG_TEXT_LIMIT) {
        let (iomem, kept) = parse_iomem(&t);
        l.fs.record_as(Path::new(IOMEM), kept.as_bytes());
        if iomem.zeroed {
            l.note(
                IOMEM,
                "every address reads zero (read without CAP_SYS_ADMIN): boot framebuffer ranges unknown",
            );
        }
        p.iomem = Some(iomem);
    }
    for f in FB_PLATFORM {
        if l.exists(Path::new(f)) {
            p.fb_platform
                .push(f.rsplit('/').next().unwrap_or(f).to_string());
        }
    }
    graphics_nodes(l, &mut p);
    p.holders = holders(l, devices, groups, &p.graphics);
    p
}

/// DRM (`card*`, `renderD*`) and fbdev (`fb*`) nodes and their devices.
fn graphics_nodes(l: &mut Loader, p: &mut Platform) {
    for (class, dev, prefixes) in [
        ("sys/class/drm", "dev/dri", &["card", "renderD"][..]),
        ("sys/class/graphics", "dev", &["fb"][..]),
    ] {
        for (n, _) in l.list(Path::new(class)) {
            let node_like = prefixes.iter().any(|pre| {
                n.strip_prefix(pre)
                    .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
            });
            if !node_like {
                continue;
            }
            if let Some(d) = l.link_name(&PathBuf::from(class).join(&n).join("device")) {
                p.graphics.push(GraphicsNode {
                    node: format!("/{dev}/{n}"),
                    device: d,
                });
            }
        }
    }
}

/// Whether `target` (an open file's link target) is a node the holders scan keeps.
fn watched(target: &str, groups: &BTreeMap<GroupId, Group>, graphics: &[GraphicsNode]) -> bool {
    if let Some(g) = target.strip_prefix("/dev/vfio/") {
        return g.parse::<GroupId>().is_ok_and(|g| groups.contains_key(&g));
    }
    target.starts_with("/dev/nvidia") || graphics.iter().any(|n| n.node == target)
}

/// The processes holding graphics, NVIDIA, fbdev or VFIO group nodes open. Bounded
/// ([`MAX_PROCS`], [`MAX_FDS`]); only the kept processes' links and names stay in
/// the trace.
fn holders(
    l: &mut Loader,
    devices: &BTreeMap<Bdf, Device>,
    groups: &BTreeMap<GroupId, Group>,
    graphics: &[GraphicsNode],
) -> Holders {
    let mut h = Holders::default();
    let entries = match l.fs.list(Path::new("proc")) {
        Ok(Some(v)) => v,
        Ok(None) => return h,
        Err(e) => {
            let msg = format!("{}: device-busy not checked", crate::load::error_chain(&e));
            l.note("proc", msg);
            return h;
        }
    };
    h.scanned = true;
    let nvidia = devices.values().any(|d| d.vendor.0 == 0x10de);
    let mut fds = 0usize;
    let mut kept_pids: BTreeSet<String> = BTreeSet::new();
    let mut kept_fds: BTreeSet<(String, String)> = BTreeSet::new();
    let mut procs = 0usize;
    for (name, kind) in &entries {
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        if *kind != Kind::Dir {
            continue;
        }
        procs += 1;
        if procs > MAX_PROCS || fds >= MAX_FDS {
            h.truncated = true;
            break;
        }
        let fd_dir = PathBuf::from("proc").join(name).join("fd");
        let list = match l.fs.list(&fd_dir) {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(_) => {
                h.unreadable += 1;
                continue;
            }
        };
        let mut held = Vec::new();
        for (fd, k) in list {
            if k != Kind::Link {
                continue;
            }
            fds += 1;
            if fds > MAX_FDS {
                h.truncated = true;
                break;
            }
            let Ok(Some(t)) = l.fs.read_link(&fd_dir.join(&fd)) else {
                continue;
            };
            let t = t.to_string_lossy().into_owned();
            if (nvidia || !t.starts_with("/dev/nvidia")) && watched(&t, groups, graphics) {
                held.push((fd, t));
            }
        }
        if held.is_empty() {
            continue;
        }
        let comm = l.trimmed(&PathBuf::from("proc").join(name).join("comm"));
        kept_pids.insert(name.clone());
        kept_fds.extend(held.iter().map(|(fd, _)| (name.clone(), fd.clone())));
        held.sort_by(|a, b| a.1.cmp(&b.1));
        held.dedup_by(|a, b| a.1 == b.1);
        for (_, node) in held {
            h.holders.push(Holder {
                pid,
                comm: comm.clone(),
                node,
            });
        }
    }
    if h.unreadable > 0 {
        l.note(
            "proc",
            format!(
                "the open files of {} processes could not be read (another user's, without root): device-busy is partial",
                h.unreadable
            ),
        );
    }
    if h.truncated {
        l.note(
            "proc",
            format!("stopped after {MAX_PROCS} processes or {MAX_FDS} open files: device-busy is partial"),
        );
    }
    // A snapshot keeps only the holders: their names and their links to watched nodes.
    l.fs.retain_trace(|path, how| {
        let mut c = path
            .components()
            .map(|c| c.as_os_str().to_str().unwrap_or(""));
        if c.next() != Some("proc") {
            return true;
        }
        let Some(second) = c.next() else {
            return true;
        };
        let third = c.next();
        if second.parse::<u32>().is_err() {
            // Entries of `proc` the listing met (files, links such as `self`,
            // `mounts`) that nothing read; a link the loader read through stays.
            let read = matches!(
                second,
                "cmdline" | "cpuinfo" | "modules" | "interrupts" | "iomem" | "sys"
            );
            return third.is_some() || how == Traced::File || (how == Traced::Link && read);
        }
        if !kept_pids.contains(second) {
            return false;
        }
        match (third, c.next()) {
            (None, _) | (Some("comm"), None) | (Some("fd"), None) => true,
            (Some("fd"), Some(fd)) => kept_fds.contains(&(second.to_string(), fd.to_string())),
            _ => false,
        }
    });
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chip names as kernel/irq/proc.c prints them, with and without remapping
    /// (drivers/iommu/intel/irq_remapping.c prefixes `IR-`).
    #[test]
    fn interrupt_chips_and_kept_lines() {
        let t = "           CPU0       CPU1\n\
                 \x20 0:         36          0   IO-APIC   2-edge      timer\n\
                 \x20 9:          0          0   IR-IO-APIC    9-fasteoi   acpi\n\
                 \x2016:          0          0   IR-IO-APIC   16-fasteoi   i801_smbus\n\
                 122:          0        112   IR-PCI-MSIX-0000:01:00.0    0-edge      nvme0q0\n\
                 123:          5          0   DMAR-MSI    0-edge      dmar0\n\
                 NMI:          0          0   Non-maskable interrupts\n";
        let (chips, kept) = parse_interrupts(t);
        let v: Vec<&str> = chips.iter().map(String::as_str).collect();
        assert_eq!(v, ["IO-APIC", "IR-IO-APIC", "IR-PCI-MSIX"]);
        // The header and the first line of each chip.
        assert_eq!(kept.lines().count(), 4, "{kept}");
        assert_eq!(parse_interrupts(&kept).0, chips);
        let p = Platform {
            irq_chips: Some(chips),
            ..Platform::default()
        };
        assert_eq!(p.irq_remapped(), Some(true));
        let none = Platform {
            irq_chips: Some(parse_interrupts("CPU0\n 1: 0 PCI-MSI-0000:00:1f.2 0-edge ahci\n").0),
            ..Platform::default()
        };
        assert_eq!(none.irq_remapped(), Some(false));
        let empty = Platform {
            irq_chips: Some(BTreeSet::new()),
            ..Platform::default()
        };
        assert_eq!(empty.irq_remapped(), None);
    }

    /// drivers/iommu/intel/iommu.h: ecap bit 3 is IR, cap bits 21:16 are MGAW - 1.
    #[test]
    fn vtd_register_fields() {
        let u = |cap: u64, ecap: u64| DmarUnit {
            name: "dmar0".into(),
            cap: Some(cap),
            ecap: Some(ecap),
        };
        // A Skylake client's registers.
        assert_eq!(u(0xd2008c40660462, 0xf050da).mgaw(), Some(39));
        assert_eq!(u(0xd2008c40660462, 0xf050da).intremap(), Some(true));
        assert_eq!(u(0, 0xf050d2).intremap(), Some(false));
        assert_eq!(u(0x2f << 16, 0).mgaw(), Some(48));
        assert_eq!(parse_hex64("d2008c40660462"), Some(0xd2008c40660462));
        assert_eq!(parse_hex64("zz"), None);
    }

    /// drivers/iommu/amd: EFR bits 11:10 (HATS) are the host page table's levels minus
    /// 4 (3 reserved); the IOVA is 12 + 9 bits per level, at most 64; `features` is
    /// `EFR`, `EFR2:EFR` (6.0 to 6.6) or `EFR:EFR2` (6.7 on).
    #[test]
    fn amd_iommu_register_fields() {
        let u = |efr: u64| AmdIommuUnit {
            name: "ivhd0".into(),
            cap: None,
            features: None,
            efr: Some(efr),
        };
        assert_eq!(u(0).addr_bits(), Some(48));
        assert_eq!(u(1 << 10).addr_bits(), Some(57));
        assert_eq!(u(2 << 10).host_levels(), Some(6));
        assert_eq!(u(2 << 10).addr_bits(), Some(64));
        assert_eq!(u(3 << 10).addr_bits(), None);
        assert_eq!(efr_of("800", None), Some(0x800));
        assert_eq!(efr_of("0:800", Some((6, 1))), Some(0x800));
        assert_eq!(efr_of("800:0", Some((6, 12))), Some(0x800));
        assert_eq!(efr_of("800:0", None), None);
        assert_eq!(efr_of("zz:0", Some((6, 12))), None);
    }

    /// arch/x86/kernel/cpu/proc.c: `address sizes\t: 46 bits physical, 48 bits virtual`.
    #[test]
    fn cpuinfo_fields() {
        let c = "processor\t: 0\nflags\t\t: fpu vmx hypervisor\naddress sizes\t: 46 bits physical, 48 bits virtual\n";
        assert_eq!(phys_bits_of(c), Some(46));
        let f = cpu_flags(c).unwrap();
        assert!(f.contains("vmx") && f.contains("hypervisor") && !f.contains("svm"));
        assert_eq!(phys_bits_of("address sizes : junk\n"), None);
        assert!(cpu_flags("processor : 0\n").is_none());
    }

    /// security/lockdown/lockdown.c prints every mode, the active one bracketed.
    #[test]
    fn lockdown_modes() {
        assert_eq!(
            lockdown_mode("none [integrity] confidentiality").as_deref(),
            Some("integrity")
        );
        assert_eq!(
            lockdown_mode("[none] integrity confidentiality").as_deref(),
            Some("none")
        );
        assert_eq!(lockdown_mode("none integrity"), None);
    }

    /// Garbled facts are absent with a note naming their path; nothing panics.
    #[test]
    fn garbled_facts_are_absent_with_notes() {
        use crate::fixture::{Fixture, IommuKind};
        use crate::model::{CpuVendor, Host};
        let dir = tempfile::tempdir().unwrap();
        Fixture::new(CpuVendor::Intel, IommuKind::Intel)
            .file(
                "sys/devices/virtual/iommu/dmar0/intel-iommu/cap",
                "not hex\n",
            )
            .file("sys/devices/virtual/iommu/dmar0/intel-iommu/ecap", "0x\n")
            .file(ALLOW_UNSAFE_INTERRUPTS, "maybe\n")
            .file(LOCKDOWN, "integrity\n")
            .file(SECURE_BOOT, "\u{6}\0")
            .file(INTERRUPTS, "\u{0}garbage without chips\n")
            .file(IOMEM, "no ranges here\n")
            .write(dir.path())
            .unwrap();
        let h = Host::load(dir.path()).unwrap();
        let p = &h.platform;
        assert_eq!(p.dmar[0].cap, None);
        assert_eq!(p.dmar[0].ecap, None);
        assert_eq!(p.allow_unsafe_interrupts, None);
        assert_eq!(p.lockdown, None);
        assert_eq!(p.secure_boot, None);
        assert_eq!(p.irq_remapped(), None);
        assert!(!p.iomem.as_ref().unwrap().zeroed);
        let noted = |path: &str| h.notes.iter().any(|n| n.path == Path::new(path));
        // The registers are read (and named) through sys/class/iommu.
        for path in [
            "sys/class/iommu/dmar0/intel-iommu/cap",
            "sys/class/iommu/dmar0/intel-iommu/ecap",
            ALLOW_UNSAFE_INTERRUPTS,
            LOCKDOWN,
            SECURE_BOOT,
        ] {
            assert!(noted(path), "{path}: {:?}", h.notes);
        }
    }

    /// kernel/resource.c: `start-end : name`, children indented; zeros for readers
    /// without CAP_SYS_ADMIN.
    #[test]
    fn iomem_framebuffers_and_hidden_addresses() {
        let t = "00000000-00000fff : Reserved\n\
                 00001000-0009ffff : System RAM\n\
                 c0000000-cfffffff : PCI Bus 0000:01\n\
                 \x20 c0000000-c02fffff : BOOTFB\n\
                 \x20   c0000000-c02fffff : simple-framebuffer.0\n";
        let (m, kept) = parse_iomem(t);
        assert!(!m.zeroed);
        assert_eq!(m.framebuffers.len(), 1);
        assert_eq!(m.framebuffers[0].start, 0xc000_0000);
        assert_eq!(m.framebuffers[0].end, 0xc02f_ffff);
        assert_eq!(parse_iomem(&kept).0, m, "{kept}");
        let z = "00000000-00000000 : Reserved\n  00000000-00000000 : BOOTFB\n";
        let (mz, kz) = parse_iomem(z);
        assert!(mz.zeroed);
        assert_eq!(parse_iomem(&kz).0, mz);
        assert!(!parse_iomem("").0.zeroed);
    }
}
