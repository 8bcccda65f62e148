//! Host configuration: kernel command line (GRUB, systemd-boot/Proxmox, kernelstub),
//! modprobe.d, module loading and the initramfs.
//!
//! Rules (docs/rules.md, "The user's story" and the kernel's documentation):
//! - Intel: `intel_iommu=on` only where the kernel does not turn VT-d on by itself.
//!   Mainline's `CONFIG_INTEL_IOMMU_DEFAULT_ON` is `default y` (drivers/iommu/intel/Kconfig,
//!   help: "If this option is not selected, DMAR support can be enabled by passing
//!   intel_iommu=on to the kernel"), but distributions have long shipped it off: Arch and
//!   Alpine ("is not set", void-packages PR #7139, 2017), Debian (Ben Hutchings' 2019 patch
//!   turning it into an on / off / on-but-integrated-GPU-off choice, bugs.debian.org/935270).
//!   So the kernel's own `/boot/config-<release>` decides (or, failing that, VT-d being
//!   active already without the parameter: see [`crate::facts::from_host`]); when neither
//!   tells, the parameter is added (it is documented and harmless where VT-d is on).
//! - AMD: nothing. The AMD IOMMU is on whenever firmware enables it; `amd_iommu=on` is not a
//!   documented value (kernel-parameters.txt lists none; ROCm removed it from its docs for
//!   that reason, ROCm/legacy-rocm-build PR #3919; a 6.12 kernel logs
//!   "AMD-Vi: Unknown option - 'on'"): warn, and remove
//!   it only on request (`remove_params`), since it is the user's token.
//! - `iommu=pt` optional; the firmware framebuffer kept off a requested GPU that is the boot
//!   display or holds the framebuffer in a BAR: `initcall_blacklist=sysfb_init` on 5.15+,
//!   `video=efifb:off video=vesafb:off` before (drivers/firmware/sysfb.c);
//!   `pcie_acs_override` never by default (only on request, only on a patched kernel, with a
//!   security warning).
//! - vfio-pci `ids=` cover every function of each requested slot plus every id bound
//!   before (passthru's block from earlier runs, the user's own last `ids=` line),
//!   minus the slots `Request::remove` names; sorted and deduplicated. modprobe keeps
//!   only the last `ids=` (every `options` line applies, files in name order), so when
//!   the user has such a line passthru writes none of its own: an id missing from it
//!   (or one to remove) is a refusal carrying the line to write instead.
//! - A requested function whose vendor:device another function shares that the host
//!   keeps is bound by address instead: a udev rule sets its `driver_override` to
//!   vfio-pci on its `add` event and asks for a probe
//!   ([`UDEV_VFIO_OVERRIDE`]), copied into the initramfs by dracut (`install_items`),
//!   mkinitcpio (`FILES`) and an initramfs-tools hook, and its id leaves `ids=` (unless the user's own line binds
//!   it). driverctl (`driverctl set-override ADDR vfio-pci`) is named as the
//!   alternative. Addresses bound by earlier runs stay until `--remove`.
//! - `disable_vga=1` only when no guest uses x-vga (the two contradict: no VGA region);
//!   a block an earlier run wrote for x-vga keeps it off, and earlier blacklist lines
//!   stay.
//! - `disable_idle_d3=1` when `check` reports `d3cold` for a requested device (no FLR,
//!   idle power-off allowed): vfio-pci then never lets an idle device go to D3
//!   (docs/findings.md).
//! - `softdep <driver> pre: vfio-pci` for each host driver that would claim the devices;
//!   blacklisting only on request.
//! - A kernel without loadable modules (`CONFIG_MODULES` not `y` in its
//!   `/boot/config-<release>`) never reads modprobe.d: vfio-pci's options go on the
//!   command line (`vfio-pci.ids=`, `vfio-pci.disable_vga=1`,
//!   `vfio-pci.disable_idle_d3=1`, the `module.param=` form the kernel parses for
//!   built-in code, kernel-parameters.txt), and no modprobe.d, modules-load.d or
//!   initramfs module list is written (`no-modules` says so).
//! - `vfio_virqfd` only before kernel 6.2 (merged into `vfio` since).

use crate::block;
use crate::cmdline::{self, ParamEdit, Planned};
use crate::grub;
use crate::model::{
    warning, Bootloader, ConfigCode, CpuVendor, DeviceFacts, GrubFlavor, HostFacts, Initramfs,
    Request, Warning,
};
use crate::{Error, FileChange, Result};
use passthru_iommu_groups::Code;
use passthru_pci_ids::Bdf;
use passthru_pci_ids::VendorId;
use std::collections::{BTreeMap, BTreeSet};

/// `/etc/default/grub`.
pub const GRUB_DEFAULT: &str = "/etc/default/grub";
/// Drop-ins Debian's and Ubuntu's `grub-mkconfig` sources after [`GRUB_DEFAULT`]
/// (`*.cfg`; Ubuntu cloud images set `GRUB_CMDLINE_LINUX_DEFAULT` in one).
pub const GRUB_DROPIN_DIR: &str = "/etc/default/grub.d";
/// `/etc/kernel/cmdline` (systemd-boot, proxmox-boot-tool).
pub const KERNEL_CMDLINE: &str = "/etc/kernel/cmdline";
/// kernelstub's configuration (read only; changed through `kernelstub`).
pub const KERNELSTUB_CONFIG: &str = "/etc/kernelstub/configuration";
/// The generated modprobe.d file.
pub const MODPROBE_VFIO: &str = "/etc/modprobe.d/vfio.conf";
/// The generated modules-load.d file.
pub const MODULES_LOAD_VFIO: &str = "/etc/modules-load.d/vfio.conf";
/// The udev rule selecting vendor-reset's device-specific reset (vendor-reset's README).
pub const UDEV_VENDOR_RESET: &str = "/etc/udev/rules.d/99-passthru-vendor-reset.rules";
/// The udev rule binding functions to vfio-pci by address (`driver_override`), for
/// functions whose vendor:device another function the host keeps shares.
pub const UDEV_VFIO_OVERRIDE: &str = "/etc/udev/rules.d/99-passthru-vfio-override.rules";
/// The initramfs-tools hook that copies [`UDEV_VFIO_OVERRIDE`] into the image.
pub const INITRAMFS_TOOLS_OVERRIDE_HOOK: &str =
    passthru_iommu_groups::boot::INITRAMFS_TOOLS_OVERRIDE_HOOK;
/// Debian's `/etc/modules` (read, never written).
pub const ETC_MODULES: &str = "/etc/modules";
/// initramfs-tools' module list.
pub const INITRAMFS_TOOLS_MODULES: &str = "/etc/initramfs-tools/modules";
/// mkinitcpio drop-in (mkinitcpio.conf(5): drop-ins in /etc/mkinitcpio.conf.d override the main file).
pub const MKINITCPIO_DROPIN: &str = "/etc/mkinitcpio.conf.d/vfio.conf";
/// mkinitcpio's main file (read for HOOKS).
pub const MKINITCPIO_CONF: &str = "/etc/mkinitcpio.conf";
/// dracut drop-in (dracut only reads `*.conf` there).
pub const DRACUT_DROPIN: &str = "/etc/dracut.conf.d/vfio.conf";

/// A kernel parameter passthru wants, with the reason written next to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WantedParam {
    /// The token.
    pub token: String,
    /// Why it is there.
    pub why: String,
}

/// The host side of a plan.
#[derive(Debug, Default)]
pub struct HostPlan {
    /// Wanted kernel parameters with reasons (present or not).
    pub wanted: Vec<WantedParam>,
    /// The merge against the current command line.
    pub planned: Planned,
    /// Files to write (content may equal the current one).
    pub files: Vec<FileChange>,
    /// Commands to run after writing, in order.
    pub commands: Vec<String>,
    /// Warnings.
    pub warnings: Vec<Warning>,
    /// Conflicts with the user's own lines that passthru will not override (each with
    /// its fix); a plan with any is not applied.
    pub refusals: Vec<Warning>,
}

fn describe(d: &DeviceFacts) -> String {
    match &d.name {
        Some(n) => format!("{} {}:{} {}", d.bdf, d.vendor, d.device, n),
        None if d.class.is_vga() => format!("{} {}:{} VGA", d.bdf, d.vendor, d.device),
        None if d.class.is_display() => format!("{} {}:{} display", d.bdf, d.vendor, d.device),
        None if d.class.is_audio() => format!("{} {}:{} audio", d.bdf, d.vendor, d.device),
        None => format!("{} {}:{} class {}", d.bdf, d.vendor, d.device, d.class),
    }
}

/// Module names of the host drivers that would claim `d` if vfio-pci did not first.
pub fn competing_modules(d: &DeviceFacts) -> Vec<String> {
    let mut m: Vec<String> = Vec::new();
    if d.class.is_display() {
        match d.vendor {
            VendorId::AMD_ATI => m.extend(["amdgpu".into(), "radeon".into()]),
            VendorId::NVIDIA => m.extend(["nouveau".into(), "nvidia".into()]),
            VendorId::INTEL => m.extend(["i915".into(), "xe".into()]),
            _ => {}
        }
    }
    if d.class.is_audio() {
        m.push("snd_hda_intel".into());
    }
    if let Some(drv) = &d.driver {
        let module = match drv.as_str() {
            "vfio-pci" | "pci-stub" => None,
            "xhci_hcd" => Some("xhci_pci".to_string()),
            "nvidia-gpu" => Some("i2c_nvidia_gpu".to_string()),
            other => Some(other.replace('-', "_")),
        };
        m.extend(module);
    }
    let mut seen = BTreeSet::new();
    m.retain(|x| seen.insert(x.clone()));
    m
}

/// A `/etc/default/grub.d/*.cfg` that assigns `GRUB_CMDLINE_LINUX_DEFAULT` without
/// extending the value it had replaces what passthru writes to `/etc/default/grub`:
/// say so (the drop-in is the user's, left alone).
fn grub_dropin_warnings(facts: &HostFacts, w: &mut Vec<Warning>) {
    let prefix = format!("{GRUB_DROPIN_DIR}/");
    for (path, text) in facts.files.range(prefix.clone()..) {
        if !path.starts_with(&prefix) {
            break;
        }
        if !path.ends_with(".cfg") {
            continue;
        }
        match grub::extends_previous(text, grub::VAR) {
            Ok(true) => {}
            Ok(false) => w.push(warning(ConfigCode::GrubDropinOverride, format!("{path} sets {} and grub-mkconfig (Debian, Ubuntu) reads it after {GRUB_DEFAULT}: the parameters written there would not reach the kernel; add them to {path} by hand, or make it extend the value (\"${} ...\")", grub::VAR, grub::VAR)).with_evidence([format!("{path}: sets {} without extending ${}", grub::VAR, grub::VAR)])),
            Err(e) => {
                let line = text[..e.0.min(text.len())].matches('\n').count() + 1;
                w.push(warning(ConfigCode::GrubDropinOverride, format!("{path}:{line}: {} (grub-mkconfig reads it after {GRUB_DEFAULT} and it may replace {}: check it by hand)", e.1, grub::VAR)).with_evidence([format!("{path}:{line}: {}", e.1)]));
            }
        }
    }
}

/// The current kernel command line tokens held by `bootloader`'s file, and the file's path.
fn current_cmdline(
    facts: &HostFacts,
    bootloader: Bootloader,
) -> Result<(Vec<String>, Option<&'static str>)> {
    match bootloader {
        Bootloader::Grub => {
            // Both variables end up on the normal boot entry: GRUB_CMDLINE_LINUX first.
            let text = facts.files.get(GRUB_DEFAULT).map_or("", String::as_str);
            let mut toks = grub::tokens_of(text, "GRUB_CMDLINE_LINUX")
                .map_err(|e| grub::to_error(GRUB_DEFAULT, text, e))?;
            toks.extend(
                grub::current_tokens(text).map_err(|e| grub::to_error(GRUB_DEFAULT, text, e))?,
            );
            Ok((toks, Some(GRUB_DEFAULT)))
        }
        Bootloader::SystemdBoot => {
            let text = facts.files.get(KERNEL_CMDLINE).map_or("", String::as_str);
            Ok((
                cmdline::split(text).into_iter().map(String::from).collect(),
                Some(KERNEL_CMDLINE),
            ))
        }
        Bootloader::Kernelstub => {
            let Some(text) = facts.files.get(KERNELSTUB_CONFIG) else {
                return Ok((Vec::new(), None));
            };
            let v: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Syntax {
                path: KERNELSTUB_CONFIG.into(),
                line: e.line(),
                message: e.to_string(),
            })?;
            let opts = v
                .get("user")
                .and_then(|u| u.get("kernel_options"))
                .and_then(|o| o.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            Ok((opts, Some(KERNELSTUB_CONFIG)))
        }
    }
}

fn vfio_modules(facts: &HostFacts) -> Vec<(&'static str, &'static str)> {
    let mut m = vec![
        ("vfio", "the VFIO core: userspace (QEMU) access to devices"),
        (
            "vfio_iommu_type1",
            "the IOMMU backend that maps guest memory for device DMA",
        ),
        (
            "vfio_pci",
            "the driver that claims the passed-through functions",
        ),
    ];
    if facts.kernel.is_some_and(|k| !k.at_least(6, 2)) {
        m.push((
            "vfio_virqfd",
            "interrupt forwarding; a separate module before kernel 6.2 (part of vfio since)",
        ));
    }
    m
}

/// Build the host side of the plan for the expanded device list `devs`.
///
/// `removed` are the functions of the slots the request takes off vfio-pci
/// (`Request::remove`); every other id bound before (passthru's earlier runs, the
/// user's own `options vfio-pci ids=`) stays bound.
///
/// # Errors
///
/// Error::Param for a kernel parameter of the request that passthru will not write;
/// Error::Syntax (with file and line) when a GRUB or kernel command line file of the facts
/// cannot be parsed or edited.
pub fn plan(
    facts: &HostFacts,
    req: &Request,
    devs: &[&DeviceFacts],
    removed: &[&DeviceFacts],
    guests_use_x_vga: bool,
) -> Result<HostPlan> {
    let mut hp = HostPlan::default();
    let w = &mut hp.warnings;

    // ---- kernel parameters -------------------------------------------------------------
    let mut wanted = Vec::new();
    match facts.cpu {
        CpuVendor::Intel => {
            if facts.intel_iommu_default_on == Some(true) {
                // The kernel's config turns VT-d on: nothing to add.
            } else {
                let why = match facts.intel_iommu_default_on {
                    Some(false) => "this kernel is built without CONFIG_INTEL_IOMMU_DEFAULT_ON, so VT-d stays off unless asked",
                    _ => "turns Intel VT-d on; this kernel's config could not be read, and distribution kernels often leave it off",
                };
                wanted.push(WantedParam {
                    token: "intel_iommu=on".into(),
                    why: why.into(),
                });
            }
        }
        CpuVendor::Amd => {}
        CpuVendor::Other => w.push(warning(
            ConfigCode::CpuUnknown,
            "the CPU vendor is neither Intel nor AMD: no IOMMU parameter is generated",
        )),
    }
    if req.iommu_pt {
        wanted.push(WantedParam {
            token: "iommu=pt".into(),
            why: "identity-maps DMA of devices the host keeps (no translation cost); passed-through devices still get their own translated domain".into(),
        });
    }
    // The firmware framebuffer: sysfb_init registers it from 5.15 on
    // (drivers/firmware/sysfb.c), efifb/vesafb claim it before; only the parameters
    // that act on the running kernel are written.
    let fb = devs
        .iter()
        .find(|d| d.boot_vga || facts.framebuffer_devices.contains(&d.bdf));
    if let Some(d) = fb {
        let version = facts.kernel.map(|k| (k.major, k.minor));
        let cause = if d.boot_vga {
            "is the boot display (boot_vga=1)"
        } else {
            "holds the boot framebuffer in a BAR (/proc/iomem)"
        };
        for token in passthru_iommu_groups::verdict::framebuffer_params(version) {
            let why = match (version, *token) {
                (Some(_), "initcall_blacklist=sysfb_init") => format!("{} {cause}: on 5.15+ kernels sysfb_init registers the firmware framebuffer for simpledrm/efifb; skipping it keeps the framebuffer off the GPU so vfio-pci can claim it", d.bdf),
                (Some(_), _) => format!("{} {cause}: before 5.15 efifb/vesafb take the firmware framebuffer; this turns that driver off so vfio-pci can claim the GPU", d.bdf),
                (None, _) => format!("{} {cause}: the kernel release is unknown, so both the 5.15+ (initcall_blacklist=sysfb_init) and the older (video=...:off) parameters", d.bdf),
            };
            wanted.push(WantedParam {
                token: (*token).into(),
                why,
            });
        }
    }
    // ---- which ids vfio-pci binds: what binds already, plus the request, minus --remove
    let bootloader = req.bootloader.or(facts.bootloader);
    let (current, cmdline_path) = match bootloader {
        Some(b) => current_cmdline(facts, b)?,
        None => (Vec::new(), None),
    };
    let ids_lines = vfio_ids_lines(facts);
    let requested: BTreeSet<String> = devs.iter().map(|d| id_of(d)).collect();
    let removed_ids: BTreeSet<String> = removed
        .iter()
        .map(|d| id_of(d))
        .filter(|i| !requested.contains(i))
        .collect();
    let mut need: BTreeSet<String> = requested.clone();
    // passthru's own earlier runs, and the ids= modprobe uses today (the last line).
    need.extend(
        ids_lines
            .iter()
            .filter(|l| l.ours)
            .flat_map(|l| l.ids.iter().cloned()),
    );
    let users_line = ids_lines.iter().rfind(|l| !l.ours);
    if let Some(l) = users_line {
        need.extend(l.ids.iter().cloned());
    }
    let early_tokens: Vec<&String> = current
        .iter()
        .filter(|t| cmdline::param_name(t) == "vfio_pci.ids")
        .collect();
    // A kernel without loadable modules never reads modprobe.d: vfio-pci (built in)
    // takes its options from the command line only.
    let no_modules = facts.loadable_modules == Some(false);
    let early = req.early_ids || no_modules;
    if early {
        for t in &early_tokens {
            need.extend(
                t.split_once('=')
                    .map_or("", |(_, v)| v)
                    .split(',')
                    .filter(|i| !i.is_empty())
                    .map(str::to_ascii_lowercase),
            );
        }
    }
    for r in &removed_ids {
        need.remove(r);
    }
    // Identical functions the host keeps: those go by address, their id leaves ids=
    // (unless the user's own line binds it: never dropped).
    let by_address = bind_by_address(facts, devs, removed, users_line);
    for b in by_address.keys() {
        if let Some(d) = facts.devices.iter().find(|h| h.bdf == *b) {
            let id = id_of(d);
            if !users_line.is_some_and(|l| l.ids.contains(&id)) {
                need.remove(&id);
            }
        }
    }
    let ids: Vec<String> = need.iter().cloned().collect();
    let mut replaced_early: Vec<String> = Vec::new();
    // The functions vfio-pci ends up claiming: the requested ones and every function
    // whose id was bound before and stays (softdeps and comments cover them all). A
    // host function sharing a requested id is claimed too, and flagged below.
    let mut claimed: Vec<&DeviceFacts> = devs.to_vec();
    for h in &facts.devices {
        let id = id_of(h);
        if need.contains(&id)
            && !requested.contains(&id)
            && !claimed.iter().any(|d| d.bdf == h.bdf)
            && !removed.iter().any(|d| d.bdf == h.bdf)
        {
            claimed.push(h);
        }
    }
    // Functions an earlier run bound by address stay claimed.
    for h in &facts.devices {
        if by_address.contains_key(&h.bdf) && !claimed.iter().any(|d| d.bdf == h.bdf) {
            claimed.push(h);
        }
    }
    claimed.sort_by_key(|d| d.bdf);
    // What earlier runs chose in passthru's own block stays chosen: a block with ids but
    // no disable_vga=1 was written for an x-vga guest, and its blacklist lines were asked for.
    let ours: Vec<&str> = facts
        .files
        .get(MODPROBE_VFIO)
        .and_then(|t| block::find(t).ok().flatten().map(|(a, b)| &t[a..b]))
        .map(|b| b.lines().collect())
        .unwrap_or_default();
    let earlier_x_vga = ours.iter().any(|l| l.starts_with(NO_DISABLE_VGA))
        || ours.iter().any(|l| vfio_pci_options(l).is_some())
            && !ours
                .iter()
                .any(|l| vfio_pci_options(l).is_some_and(|o| o.contains(&"disable_vga=1")));
    let disable_vga = !guests_use_x_vga && !earlier_x_vga && !claimed.is_empty();
    // The `d3cold` finding: idle devices stay powered (D3hot at most) under vfio-pci.
    let d3cold: Vec<&str> = facts
        .findings
        .iter()
        .filter(|w| w.code == ConfigCode::Check(Code::D3cold))
        .filter_map(|w| w.message.split_once(": ").map(|(b, _)| b))
        .collect();
    let disable_idle_d3 = !d3cold.is_empty() && !claimed.is_empty();
    let no_modules_why = || {
        format!(
            "this kernel loads no modules ({}: CONFIG_MODULES is not set), so /etc/modprobe.d is never read: vfio-pci, built in, takes its options from the kernel command line only",
            facts.kernel_config_path.as_deref().unwrap_or("the kernel config")
        )
    };
    if early && !ids.is_empty() {
        let token = format!("vfio-pci.ids={}", ids.join(","));
        // The same parameter with fewer ids is replaced by the union (nothing it bound
        // is dropped, except what --remove names).
        for t in &early_tokens {
            if !cmdline::same_token(t, &token) {
                replaced_early.push((*t).clone());
            }
        }
        wanted.push(WantedParam {
            token,
            why: if no_modules {
                format!("binds the functions to vfio-pci: {}", no_modules_why())
            } else {
                "binds the functions to vfio-pci as early as the kernel command line allows (vfio-pci built in or in the initramfs)".into()
            },
        });
    }
    if no_modules && disable_vga {
        wanted.push(WantedParam {
            token: "vfio-pci.disable_vga=1".into(),
            why: format!("no generated guest uses x-vga, so vfio-pci opts these GPUs out of VGA arbitration; on the command line because {}", no_modules_why()),
        });
    }
    if no_modules && disable_idle_d3 {
        wanted.push(WantedParam {
            token: "vfio-pci.disable_idle_d3=1".into(),
            why: format!("check's d3cold finding ({}): no FLR, so vfio-pci must not let an idle device lose power; on the command line because {}", d3cold.join(", "), no_modules_why()),
        });
    }
    if let Some(v) = &req.acs_override {
        cmdline::check_acs_override(v)?;
        if facts.acs_override_patch == Some(true) {
            wanted.push(WantedParam {
                token: format!("pcie_acs_override={v}"),
                why: "requested: splits IOMMU groups by pretending devices isolate (out-of-tree patch)".into(),
            });
            w.push(warning(ConfigCode::Check(Code::AcsOverride), "pcie_acs_override makes the kernel treat devices as isolated when the hardware does not promise it: a passed-through device may reach the memory of devices left on the host. Use it only when you accept that risk."));
        } else {
            w.push(warning(ConfigCode::AcsOverrideUnsupported, "pcie_acs_override was requested but this kernel is not known to carry the out-of-tree ACS override patch (mainline ignores the parameter): not added"));
        }
    }
    for r in &req.remove_params {
        cmdline::check_token(r)?;
        // Removing what passthru would add: iommu=pt is optional (the removal wins);
        // the others are what the request needs, so both at once is refused.
        if let Some(i) = wanted.iter().position(|p| cmdline::same_token(&p.token, r)) {
            if wanted[i].token != "iommu=pt" {
                return Err(Error::Param {
                    param: r.clone(),
                    message: format!(
                        "passthru adds it for this request ({}): it cannot be removed at the same time",
                        wanted[i].why
                    ),
                });
            }
            wanted.remove(i);
        }
    }
    for p in &wanted {
        cmdline::check_token(&p.token)?;
    }
    if bootloader.is_none() {
        w.push(warning(ConfigCode::NoBootloader, "no GRUB (/etc/default/grub), systemd-boot (/etc/kernel/cmdline) or kernelstub configuration found: pass --bootloader; kernel parameters are listed but not written").with_evidence([GRUB_DEFAULT, KERNEL_CMDLINE, KERNELSTUB_CONFIG].map(|f| format!("{f}: absent"))));
    }
    for t in &current {
        if cmdline::same_token(t, "amd_iommu=on")
            && !req.remove_params.iter().any(|r| cmdline::same_token(r, t))
        {
            w.push(warning(ConfigCode::UndocumentedParam, format!("{}: amd_iommu=on is not a documented value (the AMD IOMMU is on whenever the firmware enables it; a 6.12 kernel logs \"AMD-Vi: Unknown option - 'on'\"); pass --remove-param amd_iommu=on to drop it", cmdline_path.unwrap_or("kernel command line"))).with_evidence([format!("{}: {t}", cmdline_path.unwrap_or("kernel command line"))]));
        }
        if cmdline::param_name(t) == "pcie_acs_override" && req.acs_override.is_none() {
            w.push(warning(ConfigCode::Check(Code::AcsOverride), format!("{}: {t} is set: it exists only in patched kernels and makes the kernel treat devices as isolated when the hardware does not promise it; a passed-through device may then reach memory of devices left on the host", cmdline_path.unwrap_or("kernel command line"))).with_evidence([format!("{}: {t}", cmdline_path.unwrap_or("kernel command line"))]));
        }
    }
    let edit = ParamEdit {
        add: wanted.iter().map(|p| p.token.clone()).collect(),
        remove: req
            .remove_params
            .iter()
            .chain(&replaced_early)
            .cloned()
            .collect(),
    };
    let mut planned = cmdline::plan(&current, &edit);
    for r in &req.remove_params {
        if !planned.remove.iter().any(|x| cmdline::same_token(x, r)) {
            w.push(warning(
                ConfigCode::RemoveAbsent,
                format!(
                    "{}: {r} is not on the kernel command line: nothing to remove",
                    cmdline_path.unwrap_or("kernel command line")
                ),
            ));
        }
    }
    if bootloader == Some(Bootloader::Grub) {
        // Only GRUB_CMDLINE_LINUX_DEFAULT is edited; a token to remove that lives in
        // GRUB_CMDLINE_LINUX stays, with a warning.
        let text = facts.files.get(GRUB_DEFAULT).map_or("", String::as_str);
        let editable =
            grub::editable_tokens(text).map_err(|e| grub::to_error(GRUB_DEFAULT, text, e))?;
        planned.remove.retain(|r| {
            let here = editable.iter().any(|t| cmdline::same_token(r, t));
            if !here {
                w.push(warning(ConfigCode::RemoveByHand, format!("{GRUB_DEFAULT}: {r} is not written literally in the last GRUB_CMDLINE_LINUX_DEFAULT assignment (the only value passthru edits): remove it by hand")).with_evidence([format!("{GRUB_DEFAULT}: {} has no literal {r}", grub::VAR)]));
            }
            here
        });
    }
    for c in &planned.conflicts {
        w.push(warning(
            ConfigCode::ParamConflict,
            format!(
                "the command line already has {} where passthru would add {}: left as is",
                c.theirs, c.ours
            ),
        ));
    }
    let fresh: Vec<(&str, String)> = wanted
        .iter()
        .filter(|p| !planned.conflicts.iter().any(|c| c.ours == p.token))
        .map(|p| (p.token.as_str(), format!("{}: {}", p.token, p.why)))
        .collect();
    // Comments of earlier runs stay while their token stays on the command line (a
    // removed token takes its comment along); this run's reasons replace theirs.
    let previous = match bootloader {
        Some(Bootloader::Grub) => {
            let text = facts.files.get(GRUB_DEFAULT).map_or("", String::as_str);
            grub::current_comments(text).map_err(|e| grub::to_error(GRUB_DEFAULT, text, e))?
        }
        _ => Vec::new(),
    };
    let stays = |tok: &str| {
        planned.add.iter().any(|t| cmdline::same_token(t, tok))
            || current.iter().any(|t| {
                cmdline::same_token(t, tok)
                    && !planned.remove.iter().any(|r| cmdline::same_token(r, t))
            })
    };
    let mut comments: Vec<String> = Vec::new();
    for c in &previous {
        let tok = c.split_once(": ").map_or(c.as_str(), |(t, _)| t);
        if let Some((_, line)) = fresh.iter().find(|(t, _)| cmdline::same_token(t, tok)) {
            comments.push(line.clone());
        } else if stays(tok) {
            comments.push(c.clone());
        }
    }
    for (t, line) in &fresh {
        if !previous
            .iter()
            .any(|c| cmdline::same_token(c.split_once(": ").map_or(c.as_str(), |(x, _)| x), t))
        {
            comments.push(line.clone());
        }
    }
    match bootloader {
        Some(Bootloader::Grub) => {
            let old = facts.files.get(GRUB_DEFAULT);
            let text = old.map_or("", String::as_str);
            let new = grub::edit(text, &planned, &comments).map_err(|e| grub::to_error(GRUB_DEFAULT, text, e))?;
            hp.files.push(FileChange::new(GRUB_DEFAULT, old.cloned(), new));
            grub_dropin_warnings(facts, &mut hp.warnings);
            hp.commands.push(match facts.grub_flavor {
                GrubFlavor::UpdateGrub => "update-grub".into(),
                GrubFlavor::Grub2Mkconfig => "grub2-mkconfig -o /boot/grub2/grub.cfg".into(),
                GrubFlavor::GrubMkconfig => "grub-mkconfig -o /boot/grub/grub.cfg".into(),
            });
            // Boot Loader Specification entries (Fedora, RHEL 8+) each carry their own
            // `options` line: grubby changes the existing ones (`--update-kernel=ALL
            // --args/--remove-args`), /etc/default/grub the ones made later.
            let bls = grub::tokens_of(text, "GRUB_ENABLE_BLSCFG")
                .is_ok_and(|t| t.iter().any(|v| v == "true"));
            if bls {
                if !planned.add.is_empty() {
                    hp.commands.push(format!(
                        "grubby --update-kernel=ALL --args=\"{}\"",
                        planned.add.join(" ")
                    ));
                }
                if !planned.remove.is_empty() {
                    hp.commands.push(format!(
                        "grubby --update-kernel=ALL --remove-args=\"{}\"",
                        planned.remove.join(" ")
                    ));
                }
            }
        }
        Some(Bootloader::SystemdBoot) => match facts.files.get(KERNEL_CMDLINE) {
            Some(old) => {
                let new = cmdline::edit_plain(old, &planned).map_err(|m| Error::Syntax {
                    path: KERNEL_CMDLINE.into(),
                    line: 1,
                    message: m,
                })?;
                hp.files.push(FileChange::new(KERNEL_CMDLINE, Some(old.clone()), new));
                hp.commands.push(if facts.proxmox_boot_tool {
                    "proxmox-boot-tool refresh".into()
                } else {
                    "kernel-install add \"$(uname -r)\" \"/usr/lib/modules/$(uname -r)/vmlinuz\"".into()
                });
            }
            None => w.push(warning(ConfigCode::NoCmdlineFile, "/etc/kernel/cmdline does not exist; creating it with only these parameters would drop root= and make the system unbootable. Create it from /proc/cmdline first (without BOOT_IMAGE=), then run passthru config again").with_evidence([format!("{KERNEL_CMDLINE}: absent")])),
        },
        Some(Bootloader::Kernelstub) => {
            if !planned.add.is_empty() {
                hp.commands.push(format!("kernelstub --add-options \"{}\"", planned.add.join(" ")));
            }
            if !planned.remove.is_empty() {
                hp.commands.push(format!("kernelstub --delete-options \"{}\"", planned.remove.join(" ")));
            }
        }
        None => {}
    }
    hp.wanted = wanted;
    hp.planned = planned;

    // ---- modprobe.d ----------------------------------------------------------------------
    let mut body = String::new();
    // Every claimed function by address, then ids bound for no function on this host.
    let mut named: Vec<String> = claimed
        .iter()
        .filter(|d| need.contains(&id_of(d)))
        .map(|d| describe(d))
        .collect();
    named.extend(
        ids.iter()
            .filter(|id| !claimed.iter().any(|d| id_of(d) == **id))
            .map(|id| format!("{id} (no such function on this host)")),
    );
    // On a kernel without modules nothing of this file is read: the options went to the
    // command line above, and the user's ids= lines bind nothing either.
    match users_line.filter(|_| !no_modules) {
        Some(l) => {
            // Never a second ids= over the user's: modprobe keeps only the last one.
            let mut missing: Vec<&String> = need.iter().filter(|i| !l.ids.contains(i)).collect();
            missing.sort();
            let extra: Vec<&String> = l.ids.iter().filter(|i| removed_ids.contains(*i)).collect();
            if !missing.is_empty() || !extra.is_empty() {
                let mut fixed: Vec<String> = l
                    .ids
                    .iter()
                    .filter(|i| !removed_ids.contains(*i))
                    .cloned()
                    .collect();
                fixed.extend(missing.iter().map(|i| (*i).clone()));
                let mut what = Vec::new();
                for (list, label, tail) in [
                    (&missing, "it lacks", ""),
                    (&extra, "it still lists", ", which --remove takes off"),
                ] {
                    if !list.is_empty() {
                        let l: Vec<&str> = list.iter().map(|i| i.as_str()).collect();
                        what.push(format!("{label} {}{tail}", l.join(",")));
                    }
                }
                hp.refusals.push(warning(ConfigCode::IdsConflict, format!("{}:{}: `{}` is the vfio-pci ids= modprobe uses (the last one wins) and passthru does not write a second ids= over yours; {}: change that line to `{}`, then run passthru config again", l.path, l.line, l.text.trim(), what.join(" and "), l.with_ids(&fixed))).with_evidence([format!("{}:{}: {}", l.path, l.line, l.text.trim())]));
            }
            if !named.is_empty() {
                body.push_str(&format!(
                    "# ids: vfio-pci ids= stay on {}:{}, the last ids= modprobe reads (passthru writes no second one): {}\n",
                    l.path,
                    l.line,
                    named.join("; ")
                ));
            }
        }
        None if !ids.is_empty() && !no_modules => {
            body.push_str(&format!(
                "# ids: vfio-pci claims every function of the requested slots and every one bound before ({}); sorted, deduplicated\n",
                named.join("; ")
            ));
            body.push_str(&format!("options vfio-pci ids={}\n", ids.join(",")));
        }
        None => {}
    }
    let earlier_blacklist: BTreeSet<String> = ours
        .iter()
        .filter_map(|l| l.strip_prefix("blacklist "))
        .map(|m| m.trim().to_string())
        .collect();
    if !guests_use_x_vga && earlier_x_vga && !claimed.is_empty() {
        hp.warnings.push(warning(ConfigCode::XVgaKept, format!("{MODPROBE_VFIO}: an earlier run wrote passthru's block without disable_vga=1 (for an x-vga guest): kept that way so that guest keeps its VGA region; pass --x-vga to say so, or remove the block's options lines by hand to get disable_vga=1")).with_evidence([format!("{MODPROBE_VFIO}: passthru's block has no disable_vga=1")]));
    }
    if (guests_use_x_vga || earlier_x_vga) && !claimed.is_empty() {
        body.push_str(&format!("{NO_DISABLE_VGA} a guest uses x-vga, which needs the VGA region disable_vga=1 would remove\n"));
    }
    if disable_vga && !no_modules {
        body.push_str("# disable_vga=1: no generated guest uses x-vga, so vfio-pci opts these GPUs out of VGA arbitration (x-vga would need the VGA region this removes)\n");
        body.push_str("options vfio-pci disable_vga=1\n");
    }
    if disable_idle_d3 && !no_modules {
        body.push_str(&format!(
            "# disable_idle_d3=1: check's d3cold finding ({}): no FLR, so vfio-pci must not let runtime power management cut an idle device's power (D3cold), from which it may not come back\n",
            d3cold.join(", ")
        ));
        body.push_str("options vfio-pci disable_idle_d3=1\n");
    }
    let mut mods: BTreeSet<String> = BTreeSet::new();
    for d in &claimed {
        mods.extend(competing_modules(d));
    }
    for m in &mods {
        let which: Vec<String> = claimed
            .iter()
            .filter(|d| competing_modules(d).contains(m))
            .map(|d| d.bdf.to_string())
            .collect();
        body.push_str(&format!(
            "# softdep: loading {m} first loads vfio-pci, so vfio-pci claims {} before {m} can\n",
            which.join(", ")
        ));
        body.push_str(&format!("softdep {m} pre: vfio-pci\n"));
    }
    for m in mods
        .iter()
        .filter(|m| req.blacklist || earlier_blacklist.contains(*m))
    {
        body.push_str(&format!("# blacklist (requested): {m} is not auto-loaded at all, for every device on this host, not only the passed-through ones\n"));
        body.push_str(&format!("blacklist {m}\n"));
    }
    if no_modules {
        // softdep orders module loads; built-in drivers bind in link order instead.
        let holders: Vec<String> = claimed
            .iter()
            .filter(|d| !competing_modules(d).is_empty())
            .map(|d| format!("{} ({})", d.bdf, competing_modules(d).join(", ")))
            .collect();
        let mut msg = format!(
            "{}: CONFIG_MODULES is not set: this kernel loads no modules, so passthru writes nothing to /etc/modprobe.d, /etc/modules-load.d or the initramfs module lists (they would do nothing) and puts vfio-pci's options on the kernel command line",
            facts.kernel_config_path.as_deref().unwrap_or("the kernel config")
        );
        if !holders.is_empty() {
            msg.push_str(&format!("; no softdep can hold back a built-in driver: if one of {} is built into this kernel it may bind first, so build the kernel without it", holders.join("; ")));
        }
        let config = facts
            .kernel_config_path
            .as_deref()
            .unwrap_or("the kernel config");
        hp.warnings.push(
            warning(ConfigCode::NoModules, msg)
                .with_evidence([format!("{config}: CONFIG_MODULES is not set")]),
        );
    } else {
        hp.files.push(put_block_file(facts, MODPROBE_VFIO, &body)?);
    }
    vendor_reset_rule(facts, devs, &mut hp)?;
    let rule_written = override_rule(facts, devs, &by_address, &mut hp)?;
    // Host-side sharers of an id vfio-pci ids= still binds (the user's line lists it).
    for h in &facts.devices {
        if claimed.iter().any(|d| d.bdf == h.bdf) || !need.contains(&id_of(h)) {
            continue;
        }
        if claimed.iter().any(|d| id_of(d) == id_of(h)) {
            hp.warnings.push(warning(ConfigCode::IdShared, format!("{} has the same id {}:{} as a function vfio-pci claims: vfio-pci ids= will claim it too", h.bdf, h.vendor, h.device)).for_device(h.bdf));
        }
    }
    let w = &mut hp.warnings;
    // An earlier user ids= overridden by a later one: what it lists alone does not bind.
    let last = ids_lines.last();
    for l in ids_lines.iter().filter(|l| !l.ours) {
        let Some(eff) = last.filter(|e| (e.path.as_str(), e.line) != (l.path.as_str(), l.line))
        else {
            continue;
        };
        let lost: Vec<&str> = l
            .ids
            .iter()
            .filter(|i| !eff.ids.contains(i))
            .map(String::as_str)
            .collect();
        if !lost.is_empty() && !eff.ours {
            w.push(warning(ConfigCode::IdsOverride, format!("{}:{}: this vfio-pci ids= is overridden by {}:{} (modprobe applies every options line, files in name order, and the last ids= wins), so {} listed only here do not bind to vfio-pci: merge the lines by hand", l.path, l.line, eff.path, eff.line, lost.join(","))).with_evidence([format!("{}:{}: {}", l.path, l.line, l.text.trim()), format!("{}:{}: {}", eff.path, eff.line, eff.text.trim())]));
        }
    }
    for (path, text) in facts
        .files
        .iter()
        .filter(|(p, _)| p.starts_with("/etc/modprobe.d/"))
    {
        let lines = if path == MODPROBE_VFIO {
            block::outside(text)
        } else {
            text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect()
        };
        for (n, line) in lines {
            if vfio_pci_options(line).is_some_and(|o| o.contains(&"disable_vga=1"))
                && guests_use_x_vga
            {
                w.push(warning(ConfigCode::VgaConflict, format!("{path}:{n}: disable_vga=1 contradicts x-vga (vfio-pci then exposes no VGA region and QEMU refuses x-vga): remove it by hand")).with_evidence([format!("{path}:{n}: {}", line.trim())]));
            }
        }
    }
    // Partial blacklists (docs/rules.md: blacklisting only radeon leaves amdgpu free to grab Fiji).
    let blacklisted: BTreeSet<String> = facts
        .files
        .iter()
        .filter(|(p, _)| p.starts_with("/etc/modprobe.d/"))
        .flat_map(|(_, t)| {
            t.lines()
                .filter_map(|l| {
                    l.strip_prefix("blacklist ")
                        .map(|m| m.trim().replace('-', "_"))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if !blacklisted.is_empty() {
        for d in devs {
            let comp = competing_modules(d);
            let missing: Vec<&String> = comp.iter().filter(|m| !blacklisted.contains(*m)).collect();
            if comp.iter().any(|m| blacklisted.contains(m)) && !missing.is_empty() {
                w.push(warning(ConfigCode::PartialBlacklist, format!("{}: /etc/modprobe.d blacklists {} but not {}, which can also drive it; the softdep lines make vfio-pci claim it first anyway", d.bdf, comp.iter().filter(|m| blacklisted.contains(*m)).cloned().collect::<Vec<_>>().join(", "), missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))).for_device(d.bdf));
            }
        }
    }

    if no_modules {
        // No module to load, none to put in an initramfs.
        return Ok(hp);
    }

    // ---- module loading --------------------------------------------------------------------
    let mods = vfio_modules(facts);
    let mut body = String::new();
    for (m, why) in &mods {
        body.push_str(&format!("# {m}: {why}\n{m}\n"));
    }
    hp.files
        .push(put_block_file(facts, MODULES_LOAD_VFIO, &body)?);
    if facts.kernel.is_some_and(|k| k.at_least(6, 2)) {
        for (path, text) in facts.files.iter().filter(|(p, _)| {
            *p == ETC_MODULES
                || p.starts_with("/etc/modules-load.d/")
                || *p == INITRAMFS_TOOLS_MODULES
        }) {
            for (n, line) in block::outside(text) {
                if line.trim() == "vfio_virqfd" {
                    hp.warnings.push(warning(ConfigCode::ObsoleteModule, format!("{path}:{n}: vfio_virqfd is part of vfio since kernel 6.2; loading it fails on this kernel: remove the line by hand")).with_evidence([format!("{path}:{n}: vfio_virqfd")]));
                }
            }
        }
    }

    // ---- initramfs -------------------------------------------------------------------------
    // The override rule acts before the host driver binds only where udev reads it:
    // initramfs tools copy the udev rules they name, not /etc/udev/rules.d as a whole
    // (dracut's 95udev-rules, mkinitcpio's udev hook, initramfs-tools' udev hook), so
    // the rule is added by name where the tool has a setting for extra files.
    let rule_early = rule_written;
    match req.initramfs.or(facts.initramfs) {
        Some(Initramfs::InitramfsTools) => {
            let mut body = String::new();
            for (m, why) in &mods {
                body.push_str(&format!("# {m}: in the initramfs and loaded there, before the GPU drivers ({why})\n{m}\n"));
            }
            hp.files.push(put_block_file(facts, INITRAMFS_TOOLS_MODULES, &body)?);
            hp.commands.insert(0, "update-initramfs -u -k all".into());
            if rule_early {
                // initramfs-tools has no setting for extra files: a hook script adds
                // them (initramfs-tools(7)), run as a program, so made executable.
                let old = facts.files.get(INITRAMFS_TOOLS_OVERRIDE_HOOK);
                let new = block::put(Some(old.map_or("#!/bin/sh\n", String::as_str)), &override_hook_body())
                    .map_err(|(line, message)| Error::Syntax { path: INITRAMFS_TOOLS_OVERRIDE_HOOK.into(), line, message })?;
                hp.files.push(FileChange::new(INITRAMFS_TOOLS_OVERRIDE_HOOK, old.cloned(), new));
                hp.commands.insert(0, format!("chmod 0755 {INITRAMFS_TOOLS_OVERRIDE_HOOK}"));
            }
        }
        Some(Initramfs::Mkinitcpio) => {
            let names: Vec<&str> = std::iter::once("vfio_pci").chain(mods.iter().map(|m| m.0).filter(|m| *m != "vfio_pci")).collect();
            let mut body = format!("# MODULES+=: put the VFIO modules in the initramfs and load them before the GPU drivers (mkinitcpio.conf(5): drop-ins add to the main file)\nMODULES+=({})\n", names.join(" "));
            if rule_early {
                body.push_str(&format!("# FILES+=: the vfio-pci override rule, so the initramfs's udev binds those functions by address before a GPU driver loaded there can\nFILES+=({UDEV_VFIO_OVERRIDE})\n"));
            }
            hp.files.push(put_block_file(facts, MKINITCPIO_DROPIN, &body)?);
            hp.commands.insert(0, "mkinitcpio -P".into());
            if let Some(conf) = facts.files.get(MKINITCPIO_CONF) {
                let hooks = conf.lines().rfind(|l| l.trim_start().starts_with("HOOKS="));
                if hooks.is_some_and(|h| !h.contains("modconf")) {
                    hp.warnings.push(warning(ConfigCode::ModconfMissing, format!("{MKINITCPIO_CONF}: HOOKS has no modconf: the initramfs will not carry /etc/modprobe.d, so vfio-pci ids= and the softdeps do not apply early")).with_evidence(hooks.map(|h| format!("{MKINITCPIO_CONF}: {}", h.trim()))));
                }
            }
        }
        Some(Initramfs::Dracut) => {
            let names: Vec<&str> = std::iter::once("vfio_pci").chain(mods.iter().map(|m| m.0).filter(|m| *m != "vfio_pci")).collect();
            let mut body = format!("# force_drivers+=: load the VFIO modules from the initramfs before udev probes the GPU (dracut.conf(5); the spaces inside the quotes are required)\nforce_drivers+=\" {} \"\n", names.join(" "));
            if rule_early {
                body.push_str(&format!("# install_items+=: the vfio-pci override rule, so the initramfs's udev binds those functions by address before a GPU driver loaded there can (dracut.conf(5))\ninstall_items+=\" {UDEV_VFIO_OVERRIDE} \"\n"));
            }
            hp.files.push(put_block_file(facts, DRACUT_DROPIN, &body)?);
            hp.commands.insert(0, "dracut -f".into());
        }
        None => hp.warnings.push(warning(ConfigCode::NoInitramfs, "no initramfs-tools, mkinitcpio or dracut found: pass --initramfs; the VFIO modules may then load too late to win over the GPU driver")),
    }
    Ok(hp)
}

/// The comment passthru's modprobe block carries instead of `disable_vga=1` when a guest
/// uses x-vga (later runs keep that choice).
const NO_DISABLE_VGA: &str = "# no disable_vga=1:";

/// `vendor:device` as vfio-pci's `ids=` takes it (lower-case hex).
fn id_of(d: &DeviceFacts) -> String {
    format!("{}:{}", d.vendor, d.device).to_ascii_lowercase()
}

/// The options of an `options vfio-pci ...` (or `vfio_pci`) line, if it is one.
fn vfio_pci_options(line: &str) -> Option<Vec<&str>> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    (toks.first() == Some(&"options")
        && toks
            .get(1)
            .is_some_and(|m| m.replace('-', "_") == "vfio_pci"))
    .then(|| toks[2..].to_vec())
}

/// One `options vfio-pci ... ids=...` line of `/etc/modprobe.d`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdsLine {
    /// The file (system path).
    pub path: String,
    /// 1-based line number.
    pub line: usize,
    /// The ids it lists, in its order, lower-cased.
    pub ids: Vec<String>,
    /// The whole line as written.
    pub text: String,
    /// Whether it sits in passthru's own block.
    pub ours: bool,
}

impl IdsLine {
    /// The line with its `ids=` value replaced by `ids` (every other option kept).
    pub fn with_ids(&self, ids: &[String]) -> String {
        self.text
            .split_whitespace()
            .map(|t| {
                if t.starts_with("ids=") {
                    format!("ids={}", ids.join(","))
                } else {
                    t.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Every `options vfio-pci ids=` line of `/etc/modprobe.d/*.conf` in the order modprobe
/// reads them (files by name, then lines): the last one is the one that binds.
pub fn vfio_ids_lines(facts: &HostFacts) -> Vec<IdsLine> {
    let mut out = Vec::new();
    for (path, text) in facts
        .files
        .iter()
        .filter(|(p, _)| p.starts_with("/etc/modprobe.d/") && p.ends_with(".conf"))
    {
        let inside = if path == MODPROBE_VFIO {
            block::find(text).ok().flatten()
        } else {
            None
        };
        let mut off = 0;
        for (n, raw) in text.split_inclusive('\n').enumerate() {
            let ours = inside.is_some_and(|(a, b)| off >= a && off < b);
            off += raw.len();
            let line = raw.trim_end_matches(['\n', '\r']);
            let Some(opts) = vfio_pci_options(line) else {
                continue;
            };
            for o in opts {
                if let Some(v) = o.strip_prefix("ids=") {
                    out.push(IdsLine {
                        path: path.clone(),
                        line: n + 1,
                        ids: v
                            .split(',')
                            .filter(|i| !i.is_empty())
                            .map(str::to_ascii_lowercase)
                            .collect(),
                        text: line.to_string(),
                        ours,
                    });
                }
            }
        }
    }
    out
}

/// The udev rule that makes the kernel use vendor-reset for the requested GPUs of
/// families it covers: since 5.15 a device-specific reset is used only when
/// `reset_method` selects it (drivers/pci/pci.c reset_method_store), and vendor-reset's
/// README gives this rule, ids in lowercase hex. Written in passthru's block; nothing
/// for a request without such a GPU.
fn vendor_reset_rule(facts: &HostFacts, devs: &[&DeviceFacts], hp: &mut HostPlan) -> Result<()> {
    let mut ids: BTreeSet<(String, String, &'static str)> = BTreeSet::new();
    for d in devs {
        if let Some((fam, true)) =
            passthru_iommu_groups::verdict::amd_reset_bug(d.vendor, d.device.0)
        {
            ids.insert((d.vendor.to_string(), d.device.to_string(), fam));
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    let mut body = String::new();
    for (v, d, fam) in &ids {
        body.push_str(&format!("# AMD {fam} has the AMD reset bug: vendor-reset (out of tree, dkms) resets it, and since kernel 5.15 only when reset_method selects device_specific\n"));
        body.push_str(&format!("ACTION==\"add\", SUBSYSTEM==\"pci\", ATTR{{vendor}}==\"0x{v}\", ATTR{{device}}==\"0x{d}\", ATTR{{reset_method}}=\"device_specific\"\n"));
    }
    hp.files
        .push(put_block_file(facts, UDEV_VENDOR_RESET, &body)?);
    hp.warnings.push(warning(
        ConfigCode::VendorReset,
        format!("{UDEV_VENDOR_RESET} selects vendor-reset's reset for the requested AMD GPUs; install vendor-reset (dkms) and load it before vfio-pci (add vendor-reset to the modules the initramfs loads), or the rule selects a reset nobody provides"),
    ));
    Ok(())
}

/// The functions vfio-pci takes by address, each with the comment its rule carries:
/// a requested function whose vendor:device another function shares that stays on the
/// host (not requested, not on vfio-pci already), unless the user's own `ids=` line
/// binds that id anyway; and every address passthru's rule bound before, unless
/// `--remove` takes its slot off.
fn bind_by_address(
    facts: &HostFacts,
    devs: &[&DeviceFacts],
    removed: &[&DeviceFacts],
    users_line: Option<&IdsLine>,
) -> BTreeMap<Bdf, String> {
    let mut out = BTreeMap::new();
    for d in devs {
        let id = id_of(d);
        if users_line.is_some_and(|l| l.ids.contains(&id)) {
            continue;
        }
        let keepers: Vec<String> = facts
            .devices
            .iter()
            .filter(|h| h.bdf != d.bdf && id_of(h) == id)
            .filter(|h| !devs.iter().any(|x| x.bdf == h.bdf))
            .filter(|h| h.driver.as_deref() != Some("vfio-pci"))
            .map(|h| h.bdf.to_string())
            .collect();
        if !keepers.is_empty() {
            out.insert(d.bdf, format!("{}: {id} is also {}, which stays on the host, so vfio-pci takes this function by its address (driver_override) and ids= does not list {id}", describe(d), keepers.join(", ")));
        }
    }
    let earlier = facts
        .files
        .get(UDEV_VFIO_OVERRIDE)
        .map(|t| override_addresses(t))
        .unwrap_or_default();
    for b in earlier {
        if out.contains_key(&b) || removed.iter().any(|r| r.bdf == b) {
            continue;
        }
        let what = facts
            .devices
            .iter()
            .find(|h| h.bdf == b)
            .map_or(format!("{b} (no such function on this host)"), |h| {
                describe(h)
            });
        out.insert(b, format!("{what}: bound by address by an earlier run"));
    }
    out
}

/// The addresses of the `KERNEL=="…"` matches in passthru's block of the override rule.
fn override_addresses(text: &str) -> Vec<Bdf> {
    let Some((a, b)) = block::find(text).ok().flatten() else {
        return Vec::new();
    };
    text[a..b]
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split("KERNEL==\"").nth(1))
        .filter_map(|r| r.split('"').next())
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// The udev rule binding `by_address` to vfio-pci: on the device's `add` event it sets
/// `driver_override` (only vfio-pci may then bind it; drivers/pci/pci-driver.c
/// `pci_match_device`) and asks the bus to probe it, since writing `driver_override`
/// binds nothing by itself (Documentation/ABI/testing/sysfs-bus-pci): vfio-pci takes
/// it now if loaded, else when it loads. udev(7): `ATTR{file}="value"` writes the
/// event device's sysfs attribute while the rules are processed, `RUN` programs run
/// after every rule (so after 80-drivers.rules asked for the GPU driver, which may no
/// longer bind it). A request that drops the last address leaves an empty block.
/// Whether the rule file is written.
fn override_rule(
    facts: &HostFacts,
    devs: &[&DeviceFacts],
    by_address: &BTreeMap<Bdf, String>,
    hp: &mut HostPlan,
) -> Result<bool> {
    let had = facts
        .files
        .get(UDEV_VFIO_OVERRIDE)
        .is_some_and(|t| block::find(t).ok().flatten().is_some());
    if by_address.is_empty() && !had {
        return Ok(false);
    }
    let mut body = String::new();
    for (b, why) in by_address {
        body.push_str(&format!("# {why}\n"));
        body.push_str(&format!("ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"{b}\", ATTR{{driver_override}}=\"vfio-pci\", RUN+=\"/bin/sh -c 'echo %k > /sys/bus/pci/drivers_probe'\"\n"));
    }
    hp.files
        .push(put_block_file(facts, UDEV_VFIO_OVERRIDE, &body)?);
    let fresh: Vec<&DeviceFacts> = devs
        .iter()
        .copied()
        .filter(|d| by_address.contains_key(&d.bdf))
        .collect();
    if !fresh.is_empty() {
        let addrs: Vec<String> = fresh.iter().map(|d| d.bdf.to_string()).collect();
        let driverctl: Vec<String> = addrs
            .iter()
            .map(|a| format!("driverctl set-override {a} vfio-pci"))
            .collect();
        hp.warnings.push(warning(ConfigCode::BindByAddress, format!("{}: another function with the same vendor:device stays on the host, so vfio-pci ids= would take it too: {UDEV_VFIO_OVERRIDE} binds these by address instead (driver_override at boot). Alternative: driverctl, which saves the override under /etc/driverctl.d and sets it again from its own udev rule at every boot: `{}`", addrs.join(", "), driverctl.join("; "))).with_evidence(fresh.iter().map(|d| format!("{} [{}:{}]: bound by address", d.bdf, d.vendor, d.device))));
    }
    Ok(true)
}

/// The initramfs-tools hook's block: hook scripts answer `prereqs` (naming the hooks
/// to run first: udev's, which sets up the image's rules directories) and then add
/// files under `$DESTDIR` (initramfs-tools(7), "Hook scripts").
fn override_hook_body() -> String {
    format!(
        "# PREREQ: run after initramfs-tools' udev hook\n\
         PREREQ=\"udev\"\n\
         # prereqs: update-initramfs asks each hook for the hooks it needs first\n\
         prereqs() {{ echo \"$PREREQ\"; }}\n\
         # answer that question and stop\n\
         case \"$1\" in prereqs) prereqs; exit 0 ;; esac\n\
         # copy the vfio-pci override rule into the image, where its udev reads it before a GPU driver loaded there can bind those functions\n\
         mkdir -p \"$DESTDIR/etc/udev/rules.d\"\n\
         # (the rule file passthru writes next to this hook)\n\
         cp -p {UDEV_VFIO_OVERRIDE} \"$DESTDIR/etc/udev/rules.d/\"\n"
    )
}

fn put_block_file(facts: &HostFacts, path: &str, body: &str) -> Result<FileChange> {
    let old = facts.files.get(path);
    let new =
        block::put(old.map(String::as_str), body).map_err(|(line, message)| Error::Syntax {
            path: path.into(),
            line,
            message,
        })?;
    Ok(FileChange::new(path, old.cloned(), new))
}
