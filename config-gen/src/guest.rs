//! Guest configuration for each device set: Proxmox `qm` lines, a libvirt `<hostdev>`
//! block, QEMU arguments and cloud-hypervisor `--device` arguments.
//!
//! Every function of a set's slot goes to one guest slot, function numbers kept,
//! function 0 marked multifunction, so the guest sees the GPU and its audio as one
//! device, as on the host. Proxmox rules (docs/rules.md): `hostpciN: <slot>` without a
//! function passes all functions; `pcie=1` needs `machine: q35`; GPU guests use
//! `bios: ovmf` (with an `efidisk0`) and `cpu: host`.

use crate::model::{warning, ConfigCode, DeviceFacts, GuestKind, HostFacts, Warning};
use passthru_iommu_groups::findings_device;
use passthru_pci_ids::{Bdf, Slot, VendorId};

/// One guest's devices: the slots of one set and their functions.
#[derive(Debug, Clone)]
pub struct GuestSet<'a> {
    /// The slots, in request order.
    pub slots: Vec<Slot>,
    /// All functions of those slots, sorted by address.
    pub functions: Vec<&'a DeviceFacts>,
}

fn label(d: &DeviceFacts) -> String {
    match &d.name {
        Some(n) => format!("{} {}:{} {}", d.bdf, d.vendor, d.device, n),
        None => format!("{} {}:{}", d.bdf, d.vendor, d.device),
    }
}

fn fns_of<'a>(set: &GuestSet<'a>, slot: Slot) -> Vec<&'a DeviceFacts> {
    set.functions
        .iter()
        .copied()
        .filter(|d| d.bdf.slot() == slot)
        .collect()
}

/// The OVMF 64-bit MMIO window a set needs (`X-PciMmio64Mb`, MiB) and its BAR total,
/// when its 64-bit prefetchable BARs reach OVMF's default window (the `bar-window`
/// finding's rule, docs/findings.md).
pub fn mmio64_window(set: &GuestSet<'_>) -> Option<(u64, u64)> {
    let total = set
        .functions
        .iter()
        .map(|d| d.bars64)
        .fold(0u64, u64::saturating_add);
    (total >= findings_device::OVMF_MMIO64_DEFAULT)
        .then(|| (findings_device::mmio64_mb(total), total))
}

fn fw_cfg_arg(mb: u64) -> String {
    format!("-fw_cfg name=opt/ovmf/X-PciMmio64Mb,string={mb}")
}

fn mmio64_why(mb: u64, total: u64) -> String {
    format!(
        "check's bar-window finding: {} MiB of 64-bit prefetchable BARs do not fit OVMF's default 32 GiB 64-bit MMIO window; a {mb} MiB window holds them",
        total >> 20
    )
}

fn msix_why(d: &DeviceFacts, bar: u8) -> String {
    format!(
        "check's msix-relocation finding on {}: QEMU moves its MSI-X table and PBA into BAR {bar}, which the device does not use",
        d.bdf
    )
}

fn wants_x_vga(fns: &[&DeviceFacts], x_vga: bool) -> bool {
    x_vga && fns.iter().any(|d| d.class.is_vga())
}

/// Proxmox VE config lines (for `/etc/pve/qemu-server/<vmid>.conf`), one comment line above each.
pub fn proxmox(set: &GuestSet<'_>, x_vga: bool) -> String {
    let mut s = String::new();
    s.push_str("# machine: q35: a PCIe machine; pcie=1 below requires it\nmachine: q35\n");
    s.push_str("# bios: ovmf: UEFI firmware, which modern GPU option ROMs expect; add an EFI vars disk: qm set <vmid> --efidisk0 <storage>:1,efitype=4m\nbios: ovmf\n");
    s.push_str(PROXMOX_CPU);
    let mut qm = String::from(PROXMOX_QM);
    for (i, slot) in set.slots.iter().enumerate() {
        let fns = fns_of(set, *slot);
        let names: Vec<String> = fns.iter().map(|d| label(d)).collect();
        let xv = wants_x_vga(&fns, x_vga);
        s.push_str(&format!(
            "# hostpci{i}: {slot} without a function passes all its functions ({}); pcie=1 puts it on a PCIe port{}\n",
            names.join("; "),
            if xv { "; x-vga=1 makes it the primary display (requested)" } else { "" }
        ));
        let value = format!("{slot},pcie=1{}", if xv { ",x-vga=1" } else { "" });
        s.push_str(&format!("hostpci{i}: {value}\n"));
        qm.push_str(&format!(" --hostpci{i} {value}"));
    }
    // One `args:` line carries every extra QEMU argument (Proxmox takes one).
    let mut args: Vec<(String, String)> = Vec::new();
    if let Some((mb, total)) = mmio64_window(set) {
        args.push((fw_cfg_arg(mb), mmio64_why(mb, total)));
    }
    for (i, slot) in set.slots.iter().enumerate() {
        let fns = fns_of(set, *slot);
        let multi = fns.len() > 1;
        for (j, d) in fns.iter().enumerate() {
            if let Some(bar) = d.msix_relocation {
                // Proxmox names the QEMU device hostpciN, hostpciN.J for each function of a multifunction slot.
                let id = if multi {
                    format!("hostpci{i}.{j}")
                } else {
                    format!("hostpci{i}")
                };
                args.push((
                    format!("-set device.{id}.x-msix-relocation=bar{bar}"),
                    msix_why(d, bar),
                ));
            }
        }
    }
    if !args.is_empty() {
        for (_, why) in &args {
            s.push_str(&format!("# args: {why}\n"));
        }
        let line: Vec<&str> = args.iter().map(|(a, _)| a.as_str()).collect();
        s.push_str(&format!("args: {}\n", line.join(" ")));
        qm.push_str(&format!(" --args '{}'", line.join(" ")));
    }
    // The same settings through Proxmox's own tool (qm(1): `qm set <vmid> --<key> <value>`
    // writes the same lines into the VM's config).
    s.push_str(&format!(
        "# the same with qm on the Proxmox host (VMID: the VM's id):\n# {qm}\n"
    ));
    s
}

/// Index of the first pcie-root-port controller passthru adds in libvirt XML; high
/// enough not to collide with the ports libvirt numbers from 1.
pub const LIBVIRT_PORT_BASE: u32 = 0x10;

/// libvirt domain XML fragment: one `pcie-root-port` controller per slot and one
/// `<hostdev>` per function, all functions of a slot on one guest slot.
pub fn libvirt(set: &GuestSet<'_>, set_index: usize) -> String {
    let mut s = String::new();
    for (i, slot) in set.slots.iter().enumerate() {
        let port = LIBVIRT_PORT_BASE + (set_index as u32) * 8 + i as u32;
        s.push_str(&format!(
            "<!-- a PCIe root port for {slot}: the guest bus its functions sit on -->\n"
        ));
        s.push_str(&format!(
            "<controller type='pci' index='{port}' model='pcie-root-port'/>\n"
        ));
        let fns = fns_of(set, *slot);
        let multi = fns.len() > 1;
        for d in fns {
            s.push_str("<hostdev mode='subsystem' type='pci' managed='yes'>\n");
            s.push_str(&format!(
                "  <!-- {}: managed='yes' lets libvirt bind it to vfio-pci while the guest runs -->\n",
                label(d)
            ));
            s.push_str("  <driver name='vfio'/>\n  <source>\n");

            s.push_str(&format!(
                "    <address domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/>\n",
                d.bdf.domain, d.bdf.bus, d.bdf.device, d.bdf.function
            ));
            s.push_str("  </source>\n");
            if d.msix_relocation.is_some() {
                s.push_str(&format!(
                    "  <!-- a user alias, so the qemu:commandline below can -set this device's properties -->\n  <alias name='{}'/>\n",
                    libvirt_alias(d)
                ));
            }
            s.push_str(&format!(
                "  <!-- same function number on the guest's slot{} -->\n",
                if multi && d.bdf.function == 0 {
                    "; function 0 declares multifunction so the guest scans the others"
                } else {
                    ""
                }
            ));
            s.push_str(&format!(
                "  <address type='pci' domain='0x0000' bus='0x{port:02x}' slot='0x00' function='0x{:x}'{}/>\n",
                d.bdf.function,
                if multi && d.bdf.function == 0 { " multifunction='on'" } else { "" }
            ));
            s.push_str("</hostdev>\n");
        }
    }
    let mut args: Vec<(String, String)> = Vec::new();
    if let Some((mb, total)) = mmio64_window(set) {
        args.push((fw_cfg_arg(mb), mmio64_why(mb, total)));
    }
    for d in &set.functions {
        if let Some(bar) = d.msix_relocation {
            args.push((
                format!(
                    "-set device.{}.x-msix-relocation=bar{bar}",
                    libvirt_alias(d)
                ),
                msix_why(d, bar),
            ));
        }
    }
    if !args.is_empty() {
        s.push_str("<!-- directly under <domain>, which must declare xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0' -->\n<qemu:commandline>\n");
        for (a, why) in &args {
            s.push_str(&format!("  <!-- {why} -->\n"));
            for w in a.splitn(2, ' ') {
                s.push_str(&format!("  <qemu:arg value='{w}'/>\n"));
            }
        }
        s.push_str("</qemu:commandline>\n");
    }
    s
}

/// The user alias passthru gives a hostdev that needs QEMU properties (`-set device.<alias>`).
fn libvirt_alias(d: &DeviceFacts) -> String {
    format!(
        "ua-pt-{:04x}-{:02x}-{:02x}-{:x}",
        d.bdf.domain, d.bdf.bus, d.bdf.device, d.bdf.function
    )
}

/// QEMU `-device` arguments for one set (root port first, then one vfio-pci per function).
pub fn qemu_args(set: &GuestSet<'_>, set_index: usize, x_vga: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, slot) in set.slots.iter().enumerate() {
        let n = set_index * 8 + i + 1;
        let port = format!("pt-rp{n}");
        out.push((
            format!("-device pcie-root-port,id={port},bus=pcie.0,chassis={n}"),
            format!(
                "a PCIe root port (q35) for {slot}; chassis numbers must be unique in the guest"
            ),
        ));
        let fns = fns_of(set, *slot);
        let multi = fns.len() > 1;
        let xv = wants_x_vga(&fns, x_vga);
        for d in fns {
            let mut a = format!(
                "-device vfio-pci,host={},bus={port},addr=00.{}",
                d.bdf, d.bdf.function
            );
            let mut why = format!("{} on the port's slot, same function number", label(d));
            if multi && d.bdf.function == 0 {
                a.push_str(",multifunction=on");
                why.push_str("; multifunction=on so the guest scans its other functions");
            }
            if let Some(bar) = d.msix_relocation {
                a.push_str(&format!(",x-msix-relocation=bar{bar}"));
                why.push_str(&format!(
                    "; x-msix-relocation=bar{bar}: {}",
                    msix_why(d, bar)
                ));
            }
            if xv && d.class.is_vga() && d.bdf.function == 0 {
                a.push_str(",x-vga=on");
                why.push_str("; x-vga=on forwards legacy VGA (requested; needs vfio-pci without disable_vga=1)");
            }
            out.push((a, why));
        }
    }
    if let Some((mb, total)) = mmio64_window(set) {
        out.push((fw_cfg_arg(mb), mmio64_why(mb, total)));
    }
    out
}

/// QEMU arguments rendered as a bash array with a comment above each argument.
pub fn qemu(set: &GuestSet<'_>, set_index: usize, x_vga: bool) -> String {
    let mut s = String::from("# use with: qemu-system-x86_64 -machine q35,accel=kvm ... \"${PASSTHRU_ARGS[@]}\"\nPASSTHRU_ARGS=(\n");
    for (arg, why) in qemu_args(set, set_index, x_vga) {
        let (flag, val) = arg.split_once(' ').unwrap_or((&arg, ""));
        s.push_str(&format!("  # {why}\n  {flag} {val}\n"));
    }
    s.push_str(")\n");
    s
}

/// cloud-hypervisor `--device` arguments, one per function, in the form of its VFIO
/// HOWTO (docs/vfio.md: `--device path=/sys/bus/pci/devices/0000:01:00.0/`).
pub fn cloud_hypervisor(set: &GuestSet<'_>) -> String {
    let mut s = String::from(
        "# cloud-hypervisor takes the sysfs path of each function already bound to vfio-pci\n",
    );
    for d in &set.functions {
        s.push_str(&format!(
            "# {}\n--device path=/sys/bus/pci/devices/{}/\n",
            label(d),
            d.bdf
        ));
    }
    s
}

/// `text` (the rendered `kind` output) with the guest's physical address width
/// limited to `bits` (the IOMMU's address width, when below the CPU's): guest RAM and
/// BARs placed above it would fail VFIO_MAP_DMA. QEMU's `host-phys-bits-limit`
/// (target/i386/cpu.c; a later `-cpu` replaces an earlier one), libvirt's
/// `<maxphysaddr>` in `<cpu>` (formatdomain, CPU model), Proxmox's `phys-bits` of
/// `cpu:` (which replaces the plain `cpu: host`). Unchanged without a limit.
pub fn with_phys_bits(kind: GuestKind, text: String, bits: Option<u8>) -> String {
    let Some(b) = bits else {
        return text;
    };
    let why = format!(
        "the IOMMU maps only {b}-bit addresses, fewer than the CPU's physical address bits: \
         keep guest RAM and BARs below 2^{b}"
    );
    match kind {
        GuestKind::Proxmox => text
            .replace(
                PROXMOX_CPU,
                &format!("# cpu: host: expose the real CPU model to the guest GPU driver; phys-bits={b}: {why}\ncpu: host,phys-bits={b}\n"),
            )
            .replace(PROXMOX_QM, &format!("{PROXMOX_QM},phys-bits={b}")),
        GuestKind::Libvirt => format!(
            "{text}<!-- {why}: merge into the domain's <cpu> -->\n<cpu mode='host-passthrough'>\n  <maxphysaddr mode='passthrough' limit='{b}'/>\n</cpu>\n"
        ),
        GuestKind::Qemu => format!(
            "{text}# {why} (a later -cpu replaces an earlier one)\nPASSTHRU_ARGS+=(-cpu host,host-phys-bits=on,host-phys-bits-limit={b})\n"
        ),
        GuestKind::CloudHypervisor => format!(
            "{text}# {why}: cloud-hypervisor has no option for it; keep the guest's memory below 2^{b} bytes\n"
        ),
        GuestKind::Kubevirt => format!(
            "{text}# {why}: KubeVirt's VM spec has no field for it; keep the guest's memory below 2^{b} bytes\n"
        ),
        GuestKind::ProxmoxMapping => text.replace(
            PROXMOX_CPU,
            &format!("# cpu: host: expose the real CPU model to the guest GPU driver; phys-bits={b}: {why}\ncpu: host,phys-bits={b}\n"),
        ),
    }
}

/// The start of the `qm set` command [`proxmox`] writes (its `--cpu` value last).
const PROXMOX_QM: &str = "qm set VMID --machine q35 --bios ovmf --cpu host";

/// The `cpu:` line [`proxmox`] writes (with its comment).
const PROXMOX_CPU: &str =
    "# cpu: host: expose the real CPU model to the guest GPU driver\ncpu: host\n";

/// Render `kind` for every set, each under a header naming the set.
pub fn render(kind: GuestKind, sets: &[GuestSet<'_>], x_vga: bool) -> String {
    if kind == GuestKind::Kubevirt {
        // One document set for all guests; names from pci.ids: [`crate::kubevirt::render`].
        return crate::kubevirt::render(sets, &Default::default());
    }
    let mut s = String::new();
    for (i, set) in sets.iter().enumerate() {
        let slots: Vec<String> = set.slots.iter().map(|x| x.to_string()).collect();
        let (open, close) = if kind == GuestKind::Libvirt {
            ("<!-- ", " -->")
        } else {
            ("# ", "")
        };
        if sets.len() > 1 || kind != GuestKind::Libvirt {
            s.push_str(&format!(
                "{open}guest {}: {}{close}\n",
                i + 1,
                slots.join(" ")
            ));
        }
        s.push_str(&match kind {
            GuestKind::Proxmox => proxmox(set, x_vga),
            GuestKind::Libvirt => libvirt(set, i),
            GuestKind::Qemu => qemu(set, i, x_vga),
            GuestKind::CloudHypervisor => cloud_hypervisor(set),
            GuestKind::Kubevirt => unreachable!("rendered above"),
            GuestKind::ProxmoxMapping => {
                // One mapping per slot, under passthru's default id.
                let ids: Vec<String> = set
                    .slots
                    .iter()
                    .filter_map(|s| fns_of(set, *s).first().copied())
                    .map(|d| crate::mapping::default_id(d.vendor, d.device))
                    .collect();
                crate::mapping::guest(&ids)
            }
        });
    }
    s
}

/// NVIDIA consumer GPUs: drivers before R465 stop with Code 43 inside a VM.
pub fn code43(d: &DeviceFacts) -> bool {
    let pro = d.name.as_deref().is_some_and(|n| {
        ["Quadro", "Tesla", "GRID", "RTX A", "A100", "H100", "L40"]
            .iter()
            .any(|p| n.contains(p))
    });
    d.vendor == VendorId::NVIDIA && d.class.is_display() && !pro
}

/// Existing Proxmox VMs (`/etc/pve/qemu-server/*.conf`) that pass a requested slot with
/// `x-vga=1`. Returns whether one of them needs vfio-pci's VGA region (a SeaBIOS guest:
/// then `disable_vga=1` must go) and a warning per such line. docs/rules.md: with OVMF
/// Proxmox does not give QEMU `x-vga=on`, so there the two do not collide.
pub fn proxmox_x_vga(facts: &HostFacts, slots: &[Slot]) -> (bool, Vec<Warning>) {
    let mut needs_vga = false;
    let mut out = Vec::new();
    for (path, text) in facts
        .files
        .iter()
        .filter(|(p, _)| p.starts_with("/etc/pve/qemu-server/"))
    {
        // The current config ends where the first snapshot section starts.
        let current: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .take_while(|(_, l)| !l.starts_with('['))
            .collect();
        let ovmf = current.iter().any(|(_, l)| {
            l.split_once(':')
                .is_some_and(|(k, v)| k.trim() == "bios" && v.trim() == "ovmf")
        });
        for (n, line) in &current {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            if !key.starts_with("hostpci") {
                continue;
            }
            let mut fields = value.trim().split(',');
            let host = fields.next().unwrap_or("").trim_start_matches("host=");
            let opts: Vec<&str> = fields.collect();
            let x_vga = opts.iter().any(|o| *o == "x-vga=1" || *o == "x-vga=on");
            let hits = host.split(';').any(|h| {
                let slot = h
                    .parse::<Bdf>()
                    .map(|b| b.slot())
                    .or_else(|_| h.parse::<Slot>());
                slot.is_ok_and(|s| slots.contains(&s))
            });
            if !(x_vga && hits) {
                continue;
            }
            if ovmf {
                out.push(warning(ConfigCode::XVgaOvmf, format!("{path}:{n}: {key} passes {host} with x-vga=1 in an OVMF guest: Proxmox does not give QEMU x-vga=on for OVMF, so disable_vga=1 is kept")).with_evidence([format!("{path}:{n}: {}", line.trim())]));
            } else {
                needs_vga = true;
                out.push(warning(ConfigCode::VgaConflict, format!("{path}:{n}: {key} passes {host} with x-vga=1 in a SeaBIOS guest, which needs vfio-pci's VGA region: disable_vga=1 is left out")).with_evidence([format!("{path}:{n}: {}", line.trim())]));
            }
        }
    }
    (needs_vga, out)
}
