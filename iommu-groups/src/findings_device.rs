//! Per-device findings that a host only shows in its details: a function that no
//! longer answers (`unresponsive`), a bridge asked for as if it were an endpoint
//! (`not-endpoint`), a firmware-demanded identity mapping (`direct-mapping`), idle
//! power-off without a function reset (`d3cold`), BARs larger than the guest
//! firmware's 64-bit window (`bar-window`), an MSI-X table or PBA QEMU cannot lay
//! out (`msix-relocation`) and GPUs without display outputs (`no-display-output`).
//!
//! Each rule and the public source it follows is described in `docs/findings.md`.
//! Everything here reads the model only; the one new file these checks need, a
//! group's `reserved_regions`, is read once by the loader (`load.rs`), through this module.

use crate::facts::PortType;
use crate::load::Loader;
use crate::model::{system_path, Device, Host, ReservedRegion, Resource};
use crate::reset::{ResetAnalysis, ResetMethod};
use crate::verdict::{Add, Code, Severity};
use passthru_pci_ids::caps::{CapabilityId, MsiX};
use passthru_pci_ids::{Bdf, ConfigSpace};
use std::collections::BTreeSet;
use std::path::Path;

/// OVMF's default 64-bit PCI MMIO window: `PcdPciMmio64Size` is `0x800000000`
/// (32 GiB) in edk2's `OvmfPkg/OvmfPkgX64.dsc`.
pub const OVMF_MMIO64_DEFAULT: u64 = 32 << 30;

/// `IORESOURCE_MEM` (include/linux/ioport.h): the resource is memory space.
const IORESOURCE_MEM: u64 = 0x0000_0200;
/// `IORESOURCE_PREFETCH`.
const IORESOURCE_PREFETCH: u64 = 0x0000_2000;
/// `IORESOURCE_MEM_64`.
const IORESOURCE_MEM_64: u64 = 0x0010_0000;

/// Read `dir/reserved_regions` (an IOMMU group directory): `0xSTART 0xEND type`
/// lines. Absent when the file is missing; a note for each line that is not of
/// that form, and for an unreadable file.
pub(crate) fn load_reserved_regions(l: &mut Loader, dir: &Path) -> Option<Vec<ReservedRegion>> {
    let path = dir.join("reserved_regions");
    let text = l.text(&path, crate::sysfs::TEXT_LIMIT)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_region(line) {
            Some(r) => out.push(r),
            None => l.note(
                &path,
                format!(
                    "line {}: not `0xSTART 0xEND type`: ignored ({:?})",
                    i + 1,
                    line.chars().take(64).collect::<String>()
                ),
            ),
        }
    }
    Some(out)
}

fn parse_region(line: &str) -> Option<ReservedRegion> {
    let mut w = line.split_whitespace();
    let hex = |s: &str| u64::from_str_radix(s.strip_prefix("0x")?, 16).ok();
    let start = hex(w.next()?)?;
    let end = hex(w.next()?)?;
    let kind = w.next()?;
    if w.next().is_some() || end < start || !kind.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    Some(ReservedRegion {
        start,
        end,
        kind: kind.to_string(),
    })
}

/// Add the findings of this module for `d` (checked as part of `request`).
pub(crate) fn device_findings(
    host: &Host,
    d: &Device,
    request: &BTreeSet<Bdf>,
    ra: &ResetAnalysis,
    add: &mut Add<'_>,
) {
    unresponsive(d, add);
    not_endpoint(d, add);
    direct_mapping(host, d, add);
    d3cold(host, d, ra, add);
    bar_window(host, d, request, add);
    msix_relocation(d, add);
    no_display_output(host, d, add);
}

fn cfg_path(d: &Device) -> String {
    format!("{}/config", system_path(&d.sysfs_path))
}

/// Config space answers all ones (the vendor id reads `ffff`) though the kernel
/// enumerated the device with a real vendor id. A VF's vendor and device id
/// registers read `ffff` by design (SR-IOV), so VFs are left out.
fn unresponsive(d: &Device, add: &mut Add<'_>) {
    let Some(b) = d.config.as_deref().filter(|b| b.len() >= 4) else {
        return;
    };
    if d.physfn.is_some() || d.vendor.0 == 0xffff {
        return;
    }
    let vendor = u16::from_le_bytes([b[0], b[1]]);
    if vendor != 0xffff {
        return;
    }
    let ones = b.iter().filter(|x| **x == 0xff).count();
    add(
        Code::Unresponsive,
        Severity::Fail,
        format!(
            "the device does not answer: its config space reads all ones though the kernel \
             enumerated it as {}:{}. It has dropped off the bus (link down, lost power, or stuck \
             in D3cold) and neither vfio-pci nor a guest can use it. Look for AER or 'device \
             inaccessible' lines in `dmesg`; try `echo 1 > /sys/bus/pci/devices/{}/remove` then \
             `echo 1 > /sys/bus/pci/rescan`, and if it stays dead power the host off (not a \
             reboot) and check the slot, riser and power cables",
            d.vendor, d.device, d.bdf
        ),
        vec![
            format!(
                "{}: vendor ffff ({ones} of {} bytes read 0xff)",
                cfg_path(d),
                b.len()
            ),
            format!(
                "{}/vendor: {:#06x} (as enumerated)",
                system_path(&d.sysfs_path),
                d.vendor.0
            ),
        ],
    );
}

/// A bridge of any kind, a host bridge, or a PCIe port: not something VFIO assigns.
fn not_endpoint(d: &Device, add: &mut Add<'_>) {
    let header = d.facts.as_ref().map(|f| f.header_layout);
    let port = d
        .facts
        .as_ref()
        .and_then(|f| f.pcie)
        .map(|p| p.port_type)
        .filter(|t| {
            matches!(
                t,
                PortType::RootPort
                    | PortType::UpstreamPort
                    | PortType::DownstreamPort
                    | PortType::PcieToPciBridge
                    | PortType::PciToPcieBridge
            )
        });
    let host_bridge = d.class.class == 0x06 && d.class.subclass == 0x00;
    let bridge_header = header.is_some_and(|h| h != 0);
    if !(bridge_header || port.is_some() || host_bridge || d.is_bridge()) {
        return;
    }
    // An unresponsive function's header reads 0x7f: said by `unresponsive` instead.
    if d.config
        .as_deref()
        .is_some_and(|b| b.len() >= 2 && b[0] == 0xff && b[1] == 0xff)
    {
        return;
    }
    let mut ev = vec![format!(
        "{}/class: 0x{}",
        system_path(&d.sysfs_path),
        d.class
    )];
    if let Some(h) = header {
        ev.push(format!(
            "{}: header type {h} (0 is an endpoint)",
            cfg_path(d)
        ));
    }
    if let Some(t) = port {
        ev.push(format!(
            "{}: PCI Express port type {}",
            cfg_path(d),
            t.name()
        ));
    }
    let what = if let Some(t) = port {
        format!("a PCI Express {}", t.name())
    } else if host_bridge {
        "the host bridge (the root complex itself)".to_string()
    } else {
        "a bridge".to_string()
    };
    let below = if host_bridge {
        ""
    } else {
        " Pass the endpoint(s) below it instead (`passthru list` shows them)."
    };
    add(
        Code::NotEndpoint,
        Severity::Fail,
        format!(
            "{} is {what}, not an endpoint: vfio-pci refuses any function whose header type is \
             not 0, and libvirt refuses non-endpoint devices.{below}",
            d.bdf
        ),
        ev,
    );
}

/// A `direct` reserved region: firmware (Intel RMRR, AMD IVMD) requires the IOMMU to
/// map that range 1:1 for the device, which a guest's address space cannot honour.
fn direct_mapping(host: &Host, d: &Device, add: &mut Add<'_>) {
    if !host.iommu.active() {
        return;
    }
    let Some(g) = host.group_of(d.bdf) else {
        return;
    };
    let Some(regions) = &g.reserved_regions else {
        return;
    };
    let direct: Vec<&ReservedRegion> = regions.iter().filter(|r| r.kind == "direct").collect();
    if direct.is_empty() {
        return;
    }
    let table = match host.cpu_vendor {
        crate::CpuVendor::Amd => "an IVMD entry of the ACPI IVRS table",
        crate::CpuVendor::Intel => "an RMRR entry of the ACPI DMAR table",
        crate::CpuVendor::Other => "an RMRR (Intel DMAR) or IVMD (AMD IVRS) entry",
    };
    add(
        Code::DirectMapping,
        Severity::Fail,
        format!(
            "the firmware reserves memory for this device's DMA with {table}: the IOMMU must keep \
             that range identity-mapped, and the kernel refuses to hand the device to VFIO \
             ('Firmware has requested this device have a 1:1 IOMMU mapping' since 6.3; \
             'Device is ineligible for IOMMU domain attach due to platform RMRR requirement' on \
             older Intel kernels). A firmware setting usually causes it: 'Pre-boot DMA \
             Protection' / 'Kernel DMA Protection' (turn it off; on AMD boards it may show only \
             once IOMMU is set to Enabled instead of Auto), HP/HPE NIC 'Shared Memory' features \
             (turn them off per NIC), legacy USB support, or the boot display's stolen memory \
             (make another GPU primary). Otherwise update the firmware or use another slot"
        ),
        direct
            .iter()
            .map(|r| {
                format!(
                    "/sys/kernel/iommu_groups/{}/reserved_regions: {:#018x} {:#018x} direct",
                    g.id, r.start, r.end
                )
            })
            .collect(),
    );
}

/// Whether runtime power management may take the device to D3cold while vfio-pci
/// holds it idle, and it has no function-level reset to bring it back cleanly.
fn d3cold(host: &Host, d: &Device, ra: &ResetAnalysis, add: &mut Add<'_>) {
    if d.d3cold_allowed != Some(true) || d.power_control.as_deref() != Some("auto") {
        return;
    }
    if ra
        .methods
        .iter()
        .any(|m| matches!(m, ResetMethod::Flr | ResetMethod::AfFlr))
    {
        return;
    }
    if ra.config_unknown {
        return;
    }
    let set = host
        .vfio_pci_params
        .get("disable_idle_d3")
        .is_some_and(|v| v == "Y" || v == "1");
    if set {
        return;
    }
    // The platform cuts a device's power through ACPI power resources for D3hot (_PR3)
    // on its own firmware node or on a bridge above it (the root port, as GPU drivers
    // check with pci_pr3_present on the parent): without any, no D3cold.
    let chain: Vec<&Device> = std::iter::once(d)
        .chain(d.upstream.iter().rev().filter_map(|b| host.devices.get(b)))
        .collect();
    let pr3 = chain.iter().find(|x| x.acpi_pr3 == Some(true));
    if pr3.is_none() && chain.iter().any(|x| x.acpi_pr3.is_some()) {
        return;
    }
    let p = system_path(&d.sysfs_path);
    let mut ev = vec![
        format!("{p}/d3cold_allowed: 1"),
        format!("{p}/power/control: auto"),
        "no FLR or AF FLR (reset analysis)".to_string(),
    ];
    ev.push(match pr3 {
        Some(x) => format!(
            "{}/firmware_node/power_resources_D3hot: present (ACPI _PR3: the platform can cut {} power)",
            system_path(&x.sysfs_path),
            if x.bdf == d.bdf { "its" } else { "the slot's" }
        ),
        None => "no firmware_node (ACPI companion) on the device or its bridges: whether the platform can cut its power (_PR3) is unknown".to_string(),
    });
    if let Some(s) = &d.power_state {
        ev.push(format!("{p}/power_state: {s}"));
    }
    ev.push(match host.vfio_pci_params.get("disable_idle_d3") {
        Some(v) => format!("/sys/module/vfio_pci/parameters/disable_idle_d3: {v}"),
        None => "/sys/module/vfio_pci/parameters/disable_idle_d3: absent".to_string(),
    });
    let now = if d.power_state.as_deref() == Some("D3cold") {
        " It is in D3cold right now."
    } else {
        ""
    };
    add(
        Code::D3cold,
        Severity::Warn,
        format!(
            "while vfio-pci holds it idle, runtime power management may power the device off \
             (D3cold), and without FLR it may not come back: QEMU then fails with 'Unable to \
             change power state from D3cold to D0, device inaccessible'.{now} Keep idle devices \
             powered with `options vfio-pci disable_idle_d3=1` in /etc/modprobe.d/vfio.conf \
             (`passthru config` writes it when this finding is present), rebuild the initramfs \
             and reboot; for now `echo on > /sys/bus/pci/devices/{}/power/control`",
            d.bdf
        ),
        ev,
    );
}

/// A BAR the guest firmware has to place above 4 GiB.
pub fn is_prefetchable_64(r: &Resource) -> bool {
    r.index < 6
        && r.flags & IORESOURCE_MEM != 0
        && r.flags & IORESOURCE_MEM_64 != 0
        && r.flags & IORESOURCE_PREFETCH != 0
}

/// The total size of the 64-bit prefetchable BARs of `d`.
pub fn bars64_total(d: &Device) -> u64 {
    bars64(d)
        .iter()
        .map(|(_, s)| *s)
        .fold(0u64, u64::saturating_add)
}

/// The 64-bit prefetchable BARs of `d` (index and size).
fn bars64(d: &Device) -> Vec<(u8, u64)> {
    d.resources
        .iter()
        .filter(|r| is_prefetchable_64(r) && r.size() > 0)
        .map(|r| (r.index, r.size()))
        .collect()
}

/// The largest `X-PciMmio64Mb` OVMF accepts: 16 TiB in MiB (edk2
/// `OvmfPkg/Library/PlatformInitLib/MemDetect.c` ignores larger values).
pub const OVMF_MMIO64_MAX_MB: u64 = 0x100_0000;

/// The `X-PciMmio64Mb` value (MiB) for BARs of `total` bytes: the next power of
/// two at or above twice the total, so the naturally aligned BARs and the guest's
/// own 64-bit devices fit; at most [`OVMF_MMIO64_MAX_MB`].
pub fn mmio64_mb(total: u64) -> u64 {
    let want = total.saturating_mul(2).max(OVMF_MMIO64_DEFAULT);
    (want.checked_next_power_of_two().unwrap_or(1 << 63) >> 20).min(OVMF_MMIO64_MAX_MB)
}

/// The total of the 64-bit prefetchable BARs of every device in `request`.
pub fn request_bars64(host: &Host, request: &BTreeSet<Bdf>) -> u64 {
    request
        .iter()
        .filter_map(|b| host.device(*b))
        .map(bars64_total)
        .fold(0u64, u64::saturating_add)
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// The guest's 64-bit prefetchable BARs do not fit OVMF's default 64-bit window.
fn bar_window(host: &Host, d: &Device, request: &BTreeSet<Bdf>, add: &mut Add<'_>) {
    let own = bars64(d);
    if own.is_empty() {
        return;
    }
    let total = request_bars64(host, request);
    if total < OVMF_MMIO64_DEFAULT {
        return;
    }
    let mb = mmio64_mb(total);
    let p = system_path(&d.sysfs_path);
    let mut ev: Vec<String> = own
        .iter()
        .map(|(i, s)| {
            let rebar = if d.rebar.contains(i) {
                format!(" (Resizable BAR: the current size; {p}/resource{i}_resize lists others)")
            } else {
                String::new()
            };
            format!(
                "{p}/resource: BAR {i} 64-bit prefetchable, {}{rebar}",
                human(*s)
            )
        })
        .collect();
    ev.push(format!(
        "64-bit prefetchable BARs of the checked devices: {} in all; OVMF's default window {}",
        human(total),
        human(OVMF_MMIO64_DEFAULT)
    ));
    add(
        Code::BarWindow,
        Severity::Warn,
        format!(
            "the guest gets {} of 64-bit prefetchable BARs, at least OVMF's default 64-bit MMIO \
             window ({}): OVMF leaves a BAR unassigned and the guest driver fails (Code 12/43, \
             'BAR ... no space'). Give OVMF a {mb} MiB window: QEMU `-fw_cfg \
             name=opt/ovmf/X-PciMmio64Mb,string={mb}` (Proxmox: `args: -fw_cfg \
             name=opt/ovmf/X-PciMmio64Mb,string={mb}`; libvirt: a <qemu:commandline> argument); \
             `passthru config` writes it. Newer OVMF sizes the window from the guest's physical \
             address bits, so `-cpu host,host-phys-bits=on` helps too",
            human(total),
            human(OVMF_MMIO64_DEFAULT)
        ),
        ev,
    );
}

/// The MSI-X capability of `d`'s config space, with its offset.
fn msix_of(d: &Device) -> Option<MsiX> {
    let b = d.config.as_deref()?;
    if b.len() < 256 {
        return None;
    }
    let cs = ConfigSpace::new_checked(b).ok()?;
    let at = cs.find_capability(CapabilityId::MsiX)?;
    MsiX::parse(b, at).ok()
}

/// Where the MSI-X table or PBA of `d` is not where QEMU can leave it (outside its
/// BAR, or in a BAR the device does not have): the evidence, and the BAR QEMU should
/// move them to (`x-msix-relocation=barN`). `None` when they are fine or unknown.
pub fn msix_relocation_bar(d: &Device) -> Option<(Vec<String>, u8)> {
    if d.physfn.is_some()
        || d.config
            .as_deref()
            .is_some_and(|b| b.first() == Some(&0xff))
    {
        return None;
    }
    let m = msix_of(d)?;
    // No BAR in `resource` (a tree that does not carry the file's values): unknown.
    if !d.resources.iter().any(|r| r.index < 6 && r.size() > 0) {
        return None;
    }
    let bar_size = |i: u8| {
        d.resources
            .iter()
            .find(|r| r.index == i && i < 6)
            .map_or(0, Resource::size)
    };
    let table_len = u64::from(m.table_size) * 16;
    let pba_len = u64::from(m.table_size).div_ceil(64) * 8;
    let mut bad = Vec::new();
    for (what, bar, off, len) in [
        ("table", m.table_bar, m.table_offset, table_len),
        ("PBA", m.pba_bar, m.pba_offset, pba_len),
    ] {
        let size = bar_size(bar);
        if bar > 5 {
            bad.push(format!(
                "{}: MSI-X {what} in BAR indicator {bar}, which is reserved",
                cfg_path(d)
            ));
        } else if size == 0 {
            bad.push(format!(
                "{}: MSI-X {what} in BAR {bar}, which {}/resource shows unused",
                cfg_path(d),
                system_path(&d.sysfs_path)
            ));
        } else if u64::from(off) + len > size {
            bad.push(format!(
                "{}: MSI-X {what} at BAR {bar} offset {off:#x} ({len} bytes) past the BAR's end ({size:#x} bytes, {}/resource)",
                cfg_path(d),
                system_path(&d.sysfs_path)
            ));
        }
    }
    if bad.is_empty() {
        return None;
    }
    // A BAR the device does not use (nor the upper half of a 64-bit one), highest first.
    let free = (0u8..6)
        .rev()
        .find(|i| bar_size(*i) == 0 && !(*i > 0 && is_upper_half(d, i - 1)))
        .unwrap_or(5);
    Some((bad, free))
}

/// The MSI-X table or PBA lies outside its BAR, or in a BAR the device does not have.
fn msix_relocation(d: &Device, add: &mut Add<'_>) {
    let Some((bad, free)) = msix_relocation_bar(d) else {
        return;
    };
    add(
        Code::MsixRelocation,
        Severity::Warn,
        format!(
            "the MSI-X table or PBA does not lie where the device says (QEMU's vfio-pci stops with \
             'MSIX PBA outside of specified BAR' unless it knows a quirk for the device). Let \
             QEMU move them into a BAR of its own: `-device vfio-pci,host={},x-msix-relocation=bar{free}` \
             (Proxmox: `args: -set device.hostpci0.x-msix-relocation=bar{free}`; libvirt: \
             <qemu:override> or a <qemu:commandline> -set); `passthru config` writes it",
            d.bdf
        ),
        bad,
    );
}

/// BAR `i` is the lower half of a 64-bit BAR (its next index is taken).
fn is_upper_half(d: &Device, i: u8) -> bool {
    d.resources
        .iter()
        .any(|r| r.index == i && r.flags & IORESOURCE_MEM_64 != 0 && r.size() > 0)
}

/// SMBIOS chassis types of portables: Portable, Laptop, Notebook, Sub Notebook,
/// Convertible, Detachable.
const PORTABLE_CHASSIS: [u32; 6] = [8, 9, 10, 14, 31, 32];

/// A GPU without display outputs: a 3D controller, or a laptop's discrete GPU.
fn no_display_output(host: &Host, d: &Device, add: &mut Add<'_>) {
    if d.class.class != 0x03 {
        return;
    }
    let three_d = d.class.subclass == 0x02;
    let laptop = host
        .chassis_type
        .filter(|c| PORTABLE_CHASSIS.contains(c))
        .filter(|_| d.boot_vga != Some(true));
    if !three_d && laptop.is_none() {
        return;
    }
    let p = system_path(&d.sysfs_path);
    let mut ev = vec![format!("{p}/class: 0x{}", d.class)];
    if let Some(c) = laptop {
        ev.push(format!(
            "/sys/class/dmi/id/chassis_type: {c} (a portable); {p}/boot_vga: {}",
            match d.boot_vga {
                Some(true) => "1",
                Some(false) => "0",
                None => "absent",
            }
        ));
    }
    if host.acpi_vfct {
        ev.push("/sys/firmware/acpi/tables/VFCT: present (the video BIOS is in ACPI)".to_string());
    }
    if !d.rom {
        ev.push(format!("{p}/rom: absent (no option ROM BAR)"));
    }
    let what = if three_d {
        "a 3D controller (class 0302)"
    } else {
        "a laptop's discrete GPU (render offload, Optimus/PRIME)"
    };
    add(
        Code::NoDisplayOutput,
        Severity::Info,
        format!(
            "this is {what}: it has no display outputs of its own, so the guest shows nothing on a \
             monitor through it. What works: use it for compute or render offload, and view the \
             guest through a virtual display (QEMU/SPICE/VNC, Looking Glass with an IVSHMEM device, \
             or a remote desktop). Its video BIOS is often only in the firmware's ACPI tables \
             (VFCT for AMD, _ROM for NVIDIA): give the guest a ROM file dumped from it (`romfile=`). \
             NVIDIA's driver reports Code 43 on laptops unless the guest sees a battery: add an \
             ACPI battery table to the guest (the SSDT 'fake battery' with `-acpitable`)"
        ),
        ev,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `reserved_regions` lines as drivers/iommu/iommu.c prints them.
    #[test]
    fn reserved_region_lines() {
        let r = parse_region("0x00000000fee00000 0x00000000feefffff msi").unwrap();
        assert_eq!(
            (r.start, r.end, r.kind.as_str()),
            (0xfee0_0000, 0xfeef_ffff, "msi")
        );
        let r = parse_region("0x000000003e2e0000 0x000000003e2fffff direct-relaxable").unwrap();
        assert_eq!(r.kind, "direct-relaxable");
        for bad in [
            "",
            "0x1 0x0 direct",
            "0x1 0x2",
            "1 2 direct",
            "0x1 0x2 direct extra",
            "0xg 0x2 msi",
        ] {
            assert!(parse_region(bad).is_none(), "{bad:?}");
        }
    }

    /// The window: at least OVMF's default, twice the BARs, a power of two.
    #[test]
    fn mmio64_window_sizes() {
        assert_eq!(mmio64_mb(1 << 30), 32768);
        assert_eq!(mmio64_mb(16 << 30), 32768);
        assert_eq!(mmio64_mb(32 << 30), 65536);
        assert_eq!(mmio64_mb((32 << 30) + (2 << 20)), 131072);
        assert_eq!(mmio64_mb(u64::MAX), OVMF_MMIO64_MAX_MB);
        assert_eq!(mmio64_mb(8 << 40), OVMF_MMIO64_MAX_MB);
    }

    /// Flags as the kernel writes them in `resource` (a 64-bit prefetchable BAR of a
    /// QEMU bochs VGA, its 32-bit MMIO BAR, the ROM).
    #[test]
    fn prefetchable_64_flags() {
        let r = |index, flags| Resource {
            index,
            start: 0x1000,
            end: 0x1fff,
            flags,
        };
        assert!(is_prefetchable_64(&r(0, 0x14220c)));
        assert!(!is_prefetchable_64(&r(2, 0x40200)));
        assert!(!is_prefetchable_64(&r(0, 0x42208)));
        assert!(!is_prefetchable_64(&r(6, 0x14220c)));
    }
}
