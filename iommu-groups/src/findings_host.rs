//! Host-wide findings (`no-intremap`, `no-kvm`, `in-vm`, `lockdown`, `phys-bits`)
//! and the per-device findings that rest on host facts (`framebuffer`,
//! `device-busy`). Rules and their sources: docs/host-findings.md.

use crate::load_host::IomemRange;
use crate::model::{system_path, Device, Host, Resource};
use crate::verdict::{Code, Finding, Severity};

fn finding(code: Code, severity: Severity, message: String, evidence: Vec<String>) -> Finding {
    Finding::new(code, severity, message).with_evidence(evidence)
}

/// The kernel release's major and minor numbers (`6.8.12-4-pve` gives 6, 8).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// The kernel parameters that keep the firmware framebuffer off a GPU, for a kernel
/// `version` (unknown: both kinds). From 5.15 the firmware framebuffer is a platform
/// device `sysfb_init` registers (drivers/firmware/sysfb.c) for simpledrm, simplefb,
/// efifb or vesafb, so `video=efifb:off` alone leaves simpledrm on it; blacklisting that
/// initcall registers no framebuffer device at all. Before 5.15 efifb or vesafb
/// claim it, and `video=<driver>:off` turns each off (drivers/video/fbdev/efifb.c,
/// vesafb.c).
pub fn framebuffer_params(version: Option<(u32, u32)>) -> &'static [&'static str] {
    match version {
        Some(v) if v >= (5, 15) => &["initcall_blacklist=sysfb_init"],
        Some(_) => &["video=efifb:off", "video=vesafb:off"],
        None => &[
            "initcall_blacklist=sysfb_init",
            "video=efifb:off",
            "video=vesafb:off",
        ],
    }
}

/// [`framebuffer_params`] for the host's kernel, as a sentence part.
fn framebuffer_fix(host: &Host) -> String {
    let v = host.kernel.as_deref().and_then(kernel_version);
    let params = framebuffer_params(v)
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(" ");
    let why = match v {
        Some(v) if v >= (5, 15) => "this kernel (5.15 or later) registers the framebuffer in sysfb_init, so `video=efifb:off` would not stop simpledrm",
        Some(_) => "this kernel (before 5.15) hands the framebuffer to efifb or vesafb",
        None => "the kernel release is unknown, so both the 5.15+ and the older parameters",
    };
    format!("add {params} to the kernel command line ({why}); `passthru config` with the device writes it")
}

/// What the boot-vga finding says about the firmware framebuffer: the parameters
/// for this kernel ([`framebuffer_params`]), or that they are already set.
pub(crate) fn boot_vga_framebuffer_advice(host: &Host) -> String {
    let v = host.kernel.as_deref().and_then(kernel_version);
    let params = framebuffer_params(v);
    let set = |p: &str| cmd_word(host, |w| w == p).is_some();
    if params.iter().all(|p| set(p)) {
        let list = params.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>();
        return format!("{} already on the command line.", list.join(" "));
    }
    let stale = v.is_some_and(|v| v >= (5, 15)) && set("video=efifb:off");
    let mut s = String::new();
    if stale {
        s.push_str(
            "`video=efifb:off` is on the command line but does not stop simpledrm on this 5.15+ \
             kernel. ",
        );
    }
    let fix = framebuffer_fix(host);
    if stale {
        // "add ..." as a sentence of its own.
        s.push('A');
        s.push_str(fix.strip_prefix('a').unwrap_or(&fix));
    } else {
        s.push_str("Otherwise ");
        s.push_str(&fix);
    }
    s.push('.');
    s
}

fn cmd_word(host: &Host, pred: impl Fn(&str) -> bool) -> Option<&str> {
    host.cmdline
        .as_deref()?
        .split_whitespace()
        .find(|w| pred(w))
}

/// In a virtual machine whose firmware announced no IOMMU, the fix is in the outer
/// hypervisor (a virtual IOMMU), not in a firmware setup: the advice that replaces
/// "enable VT-d / AMD-Vi in the firmware" there.
pub(crate) fn nested_iommu_advice(host: &Host) -> Option<String> {
    let off_param = cmd_word(host, |w| {
        matches!(w, "intel_iommu=off" | "amd_iommu=off" | "iommu=off")
    });
    if !host.platform.in_vm || host.iommu.dmar_table || host.iommu.ivrs_table || off_param.is_some()
    {
        return None;
    }
    let viommu = match host.cpu_vendor {
        crate::model::CpuVendor::Amd => {
            "QEMU q35 `-device amd-iommu,intremap=on` (libvirt `<iommu model='amd'>`), or \
             `-device virtio-iommu-pci`; the kernel here turns AMD-Vi on by itself"
        }
        _ => {
            "QEMU q35 `-device intel-iommu,intremap=on,caching-mode=on` with \
             `kernel-irqchip=split` (libvirt `<iommu model='intel'>`), or `-device \
             virtio-iommu-pci`; for the Intel one add `intel_iommu=on` here"
        }
    };
    Some(format!(
        "no IOMMU is active and this host is a virtual machine (cpuinfo flag hypervisor) whose \
         firmware announced none: enabling VT-d/AMD-Vi in a firmware setup does not apply; give \
         this VM a virtual IOMMU in the outer hypervisor ({viommu}), and pass the device to this \
         VM first"
    ))
}

/// The host-wide findings of the platform facts.
pub(crate) fn host_findings(host: &Host) -> Vec<Finding> {
    let mut out = Vec::new();
    let p = &host.platform;
    if host.iommu.active() {
        no_intremap(host, &mut out);
        phys_bits(host, &mut out);
    }
    no_kvm(host, &mut out);
    if p.in_vm {
        out.push(finding(
            Code::InVm,
            Severity::Info,
            "this host is itself a virtual machine: passing a device on (nested passthrough) \
             needs the outer hypervisor to give this VM a virtual IOMMU with interrupt remapping \
             and caching mode (QEMU `-device intel-iommu,intremap=on,caching-mode=on` on q35, or \
             `-device virtio-iommu-pci`) and nested virtualization"
                .into(),
            vec!["/proc/cpuinfo: flags has hypervisor".into()],
        ));
    }
    lockdown(host, &mut out);
    out
}

fn no_intremap(host: &Host, out: &mut Vec<Finding>) {
    let p = &host.platform;
    let mut ev = Vec::new();
    let mut off = false;
    let remapped = p.irq_remapped();
    if let Some(w) = cmd_word(host, |w| w == "intremap=off" || w == "nointremap") {
        ev.push(format!("/proc/cmdline: {w}"));
        off = true;
    }
    let units: Vec<_> = p.dmar.iter().filter(|u| u.intremap().is_some()).collect();
    if !units.is_empty() && units.iter().all(|u| u.intremap() == Some(false)) {
        for u in &units {
            ev.push(format!(
                "/sys/class/iommu/{}/intel-iommu/ecap: {:x} (bit 3, interrupt remapping, clear)",
                u.name,
                u.ecap.unwrap_or(0)
            ));
        }
        off = true;
    }
    match remapped {
        Some(true) => return,
        Some(false) => {
            let chips: Vec<&str> = p.irq_chips.iter().flatten().map(String::as_str).collect();
            ev.push(format!(
                "{}: chips {} and no IR- chip",
                system_path(crate::load_host::INTERRUPTS),
                chips.join(", ")
            ));
            off = true;
        }
        None => {}
    }
    if !off {
        return;
    }
    let unsafe_ok = p.allow_unsafe_interrupts == Some(true);
    ev.push(format!(
        "{}: {}",
        system_path(crate::load_host::ALLOW_UNSAFE_INTERRUPTS),
        match p.allow_unsafe_interrupts {
            Some(true) => "Y",
            Some(false) => "N",
            None => "absent",
        }
    ));
    let fix = match cmd_word(host, |w| w == "intremap=off" || w == "nointremap") {
        Some(w) => format!(
            "turn interrupt remapping on: remove `{w}` from the kernel command line \
             (`passthru config DEVICE --remove-param {w}` writes that)"
        ),
        None => "turn interrupt remapping on in the firmware setup (VT-d or AMD-Vi with x2APIC; \
                 some boards call it \"Interrupt Remapping\")"
            .to_string(),
    };
    if unsafe_ok {
        out.push(finding(
            Code::NoIntremap,
            Severity::Warn,
            format!(
                "interrupt remapping is off and vfio_iommu_type1 has allow_unsafe_interrupts=Y, so \
                 devices attach but a guest's device can forge interrupts (MSI writes) aimed at the \
                 host: not safe with untrusted guests; {fix}"
            ),
            ev,
        ));
    } else {
        out.push(finding(
            Code::NoIntremap,
            Severity::Fail,
            format!(
                "interrupt remapping is off, so vfio_iommu_type1 refuses to attach devices (\"No \
                 interrupt remapping support\") unless loaded with allow_unsafe_interrupts=1; {fix}. \
                 Only where the platform has none, `options vfio_iommu_type1 \
                 allow_unsafe_interrupts=1` in /etc/modprobe.d accepts that a guest can forge interrupts"
            ),
            ev,
        ));
    }
}

fn no_kvm(host: &Host, out: &mut Vec<Finding>) {
    let p = &host.platform;
    let mut ev = Vec::new();
    let mut what = Vec::new();
    if p.cpu_flags_known && p.cpu_virt.is_none() {
        ev.push("/proc/cpuinfo: flags has neither vmx nor svm".to_string());
        what.push(if p.in_vm {
            "the CPU offers no VT-x/AMD-V: enable nested virtualization in the outer hypervisor"
        } else {
            "the CPU offers no VT-x/AMD-V: enable it in the firmware setup"
        });
    }
    let loaded = host
        .modules
        .as_ref()
        .map(|m| m.iter().any(|x| x == "kvm"))
        .unwrap_or(false)
        || host.sys_module.iter().any(|x| x == "kvm");
    if host.modules.is_some() && !loaded {
        ev.push("/proc/modules, /sys/module: no kvm".to_string());
        what.push("load kvm_intel or kvm_amd (modprobe)");
    }
    if !p.dev_kvm {
        ev.push(format!(
            "{}: absent",
            system_path(crate::load_host::DEV_KVM)
        ));
        if what.is_empty() {
            what.push(
                "/dev/kvm is missing although KVM is loaded: check udev and the kvm module's log",
            );
        }
    }
    if what.is_empty() {
        return;
    }
    out.push(finding(
        Code::NoKvm,
        Severity::Warn,
        format!(
            "KVM is not usable, so guests run emulated (slow) and passthrough is impractical: {}",
            what.join("; ")
        ),
        ev,
    ));
}

fn lockdown(host: &Host, out: &mut Vec<Finding>) {
    let p = &host.platform;
    let mode = p.lockdown.as_deref().filter(|m| *m != "none");
    if mode.is_none() && p.secure_boot != Some(true) {
        return;
    }
    let mut ev = Vec::new();
    if let Some(m) = &p.lockdown {
        ev.push(format!(
            "{}: [{m}]",
            system_path(crate::load_host::LOCKDOWN)
        ));
    }
    if let Some(s) = p.secure_boot {
        ev.push(format!(
            "{}: {}",
            system_path(crate::load_host::SECURE_BOOT),
            if s { "1 (enabled)" } else { "0" }
        ));
    }
    out.push(finding(
        Code::Lockdown,
        Severity::Info,
        "Secure Boot / kernel lockdown is on: out-of-tree modules (vendor-reset, NVIDIA's) load \
         only when signed with a key the firmware or MOK list trusts (enrol it with mokutil), and \
         raw config-space writes from userspace (setpci-style workarounds) are refused"
            .into(),
        ev,
    ));
}

fn phys_bits(host: &Host, out: &mut Vec<Finding>) {
    let p = &host.platform;
    let (Some(bits), Some(cpu), Some((_, unit))) =
        (host.guest_phys_bits(), p.phys_bits, p.iommu_addr_bits())
    else {
        return;
    };
    out.push(finding(
        Code::PhysBits,
        Severity::Warn,
        format!(
            "the IOMMU maps only {bits}-bit addresses but the CPU has {cpu} physical address bits: \
             guest RAM or 64-bit BARs the guest places above 2^{bits} fail to map (VFIO_MAP_DMA \
             returns EINVAL). Limit the guest's address width to {bits}: QEMU \
             `-cpu host,host-phys-bits=on,host-phys-bits-limit={bits}`, libvirt \
             `<maxphysaddr mode='passthrough' limit='{bits}'/>`, Proxmox `cpu: host,phys-bits={bits}` \
             (`passthru config DEVICE` writes it in each guest format, `--guest KIND` for one)"
        ),
        vec![
            format!("/proc/cpuinfo: address sizes {cpu} bits physical"),
            unit,
        ],
    ));
}

/// `IORESOURCE_MEM` (include/linux/ioport.h).
const IORESOURCE_MEM: u64 = 0x200;

impl Host {
    /// The boot framebuffer `/proc/iomem` shows inside one of `d`'s memory BARs, with
    /// that BAR (`None` when none does or the addresses were hidden).
    pub fn framebuffer_in_bars<'a>(
        &'a self,
        d: &'a Device,
    ) -> Option<(&'a IomemRange, &'a Resource)> {
        let iomem = self.platform.iomem.as_ref().filter(|i| !i.zeroed)?;
        iomem.framebuffers.iter().find_map(|fb| {
            let r = d.resources.iter().find(|r| {
                r.index < 6
                    && r.size() > 0
                    && r.flags & IORESOURCE_MEM != 0
                    && fb.start >= r.start
                    && fb.end <= r.end
            })?;
            Some((fb, r))
        })
    }

    /// The guest physical address width to set when the IOMMU's is below the CPU's
    /// (the `phys-bits` finding), `None` otherwise or when unknown.
    pub fn guest_phys_bits(&self) -> Option<u8> {
        let cpu = self.platform.phys_bits?;
        let (bits, _) = self.platform.iommu_addr_bits()?;
        (self.iommu.active() && bits < cpu).then_some(bits)
    }
}

/// The finding functions `add` takes (as the verdict's).
pub(crate) type Add<'a> = dyn FnMut(Code, Severity, String, Vec<String>) + 'a;

/// Per-device findings resting on host facts.
pub(crate) fn device_findings(host: &Host, d: &Device, add: &mut Add<'_>) {
    framebuffer(host, d, add);
    device_busy(host, d, add);
}

fn framebuffer(host: &Host, d: &Device, add: &mut Add<'_>) {
    let p = &host.platform;
    let Some(iomem) = &p.iomem else { return };
    if iomem.zeroed {
        if d.boot_vga == Some(true) {
            add(
                Code::Framebuffer,
                Severity::Warn,
                format!(
                    "this GPU is the boot display and /proc/iomem hides its addresses (not read as \
                     root), so whether a boot framebuffer sits in its BARs is unknown (partial: {}); \
                     to be safe {}",
                    host.root_advice(),
                    framebuffer_fix(host)
                ),
                vec![format!("{}: addresses read as zero", system_path(crate::load_host::IOMEM))],
            );
        }
        return;
    }
    if let Some((fb, r)) = host.framebuffer_in_bars(d) {
        let mut ev = vec![
            format!(
                "{}: {:x}-{:x} : {}",
                system_path(crate::load_host::IOMEM),
                fb.start,
                fb.end,
                fb.name
            ),
            format!(
                "{}/resource: BAR {} {:#x}-{:#x}",
                system_path(&d.sysfs_path),
                r.index,
                r.start,
                r.end
            ),
        ];
        for n in &p.fb_platform {
            ev.push(format!("/sys/bus/platform/devices/{n}: present"));
        }
        for g in p
            .graphics
            .iter()
            .filter(|g| g.device.contains("framebuffer"))
        {
            ev.push(format!("{} -> {}", g.node, g.device));
        }
        add(
            Code::Framebuffer,
            Severity::Warn,
            format!(
                "the firmware's boot framebuffer ({}) lies in BAR {} of this device: the host's \
                 framebuffer driver keeps that memory busy, so vfio-pci's BAR mapping fails \
                 (\"BAR {} can't reserve\") or the guest driver finds the card in use; {}",
                fb.name,
                r.index,
                r.index,
                framebuffer_fix(host)
            ),
            ev,
        );
    }
}

fn device_busy(host: &Host, d: &Device, add: &mut Add<'_>) {
    let p = &host.platform;
    let h = &p.holders;
    if !h.scanned {
        return;
    }
    let name = d.bdf.to_string();
    let group_node = d.iommu_group.map(|g| format!("/dev/vfio/{g}"));
    let nvidia = d.vendor.0 == 0x10de && d.class.is_display();
    let mine = |node: &str| {
        p.graphics
            .iter()
            .any(|g| g.node == node && g.device == name)
            || group_node.as_deref() == Some(node)
            || (nvidia && node.starts_with("/dev/nvidia"))
    };
    let held: Vec<_> = h.holders.iter().filter(|x| mine(&x.node)).collect();
    let partial = h.unreadable > 0 || h.truncated;
    if held.is_empty() {
        if partial {
            add(
                Code::DeviceBusy,
                Severity::Info,
                format!(
                    "no process was seen holding this device, but the open files of {} \
                     processes could not be read{}, so the check is partial: {}",
                    h.unreadable,
                    if h.truncated {
                        " and the scan stopped at its bound"
                    } else {
                        ""
                    },
                    host.root_advice()
                ),
                vec![format!(
                    "/proc/*/fd: {} processes unreadable{}",
                    h.unreadable,
                    if h.truncated { ", scan truncated" } else { "" }
                )],
            );
        }
        return;
    }
    let list = held
        .iter()
        .map(|x| {
            format!(
                "{} ({}) holds {}",
                x.pid,
                x.comm.as_deref().unwrap_or("?"),
                x.node
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    add(
        Code::DeviceBusy,
        Severity::Fail,
        format!(
            "a host process has this device open: {list}. Stop it (a display manager, a compositor, \
             nvidia-persistenced, a running VM) before the device can be unbound and given to a \
             guest{}",
            if partial {
                format!(
                    "; other processes' open files could not all be read, so there may be more ({})",
                    host.root_advice()
                )
            } else {
                String::new()
            }
        ),
        held.iter()
            .map(|x| format!("/proc/{}/fd -> {} (comm {})", x.pid, x.node, x.comm.as_deref().unwrap_or("?")))
            .collect(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Fixture, IommuKind};
    use crate::model::CpuVendor;

    fn host(kernel: &str, cmdline: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        Fixture::new(CpuVendor::Intel, IommuKind::Intel)
            .kernel(kernel)
            .cmdline(cmdline)
            .write(dir.path())
            .unwrap();
        Host::load(dir.path()).unwrap()
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.8.12-4-pve"), Some((6, 8)));
        assert_eq!(kernel_version("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(kernel_version("5.10.0-28-amd64"), Some((5, 10)));
        assert_eq!(kernel_version("6"), None);
        assert_eq!(kernel_version("fixture"), None);
    }

    /// The boot-vga advice: nothing to add when this kernel's parameters are set,
    /// `video=efifb:off` called insufficient on 5.15+, the old pair before.
    #[test]
    fn boot_vga_advice_by_kernel() {
        let a = boot_vga_framebuffer_advice(&host("6.8.12", "ro initcall_blacklist=sysfb_init"));
        assert_eq!(
            a,
            "`initcall_blacklist=sysfb_init` already on the command line."
        );
        let a = boot_vga_framebuffer_advice(&host("6.8.12", "ro video=efifb:off"));
        assert!(a.starts_with("`video=efifb:off` is on the command line but does not stop"));
        assert!(a.contains("Add `initcall_blacklist=sysfb_init`"), "{a}");
        let a = boot_vga_framebuffer_advice(&host("5.10.0", "ro video=efifb:off"));
        assert!(
            a.contains("add `video=efifb:off` `video=vesafb:off`"),
            "{a}"
        );
        assert!(!a.contains("initcall_blacklist"), "{a}");
        let a = boot_vga_framebuffer_advice(&host("5.10.0", "video=efifb:off video=vesafb:off"));
        assert!(a.contains("already on the command line"), "{a}");
    }

    /// Processes whose open files could not be read make device-busy partial: an
    /// info finding says so when no holder was seen; a holder seen is a failure
    /// that also says more may exist.
    #[test]
    fn device_busy_partial() {
        let mut h = host("6.8.12", "ro");
        let d = crate::fixture::FixtureDevice::gpu("0000:01:00.0".parse().unwrap(), 0x10de, 0x2503);
        let dir = tempfile::tempdir().unwrap();
        Fixture::new(CpuVendor::Intel, IommuKind::Intel)
            .device(d)
            .write(dir.path())
            .unwrap();
        h.devices = Host::load(dir.path()).unwrap().devices;
        let dev = h.devices.values().next().unwrap().clone();
        let run = |h: &Host| {
            let mut out = Vec::new();
            device_busy(h, &dev, &mut |c, s, m, _| out.push((c, s, m)));
            out
        };
        h.platform.holders.scanned = true;
        assert!(run(&h).is_empty());
        h.platform.holders.unreadable = 3;
        let f = run(&h);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].0, f[0].1), (Code::DeviceBusy, Severity::Info));
        assert!(f[0].2.contains("3 processes"), "{}", f[0].2);
        h.platform.holders.holders.push(crate::load_host::Holder {
            pid: 7,
            comm: Some("nvidia-persiste".into()),
            node: "/dev/nvidia0".into(),
        });
        let f = run(&h);
        assert_eq!((f[0].0, f[0].1), (Code::DeviceBusy, Severity::Fail));
        assert!(f[0].2.contains("7 (nvidia-persiste) holds /dev/nvidia0"));
        assert!(f[0].2.contains("there may be more"));
    }

    /// No IOMMU unit facts: no no-intremap, no phys-bits, whatever the CPU says.
    #[test]
    fn absent_facts_give_no_finding() {
        let h = host("6.8.12", "ro");
        let f = host_findings(&h);
        assert!(f
            .iter()
            .all(|x| !matches!(x.code, Code::NoIntremap | Code::PhysBits)));
        assert_eq!(h.guest_phys_bits(), None);
    }
}
