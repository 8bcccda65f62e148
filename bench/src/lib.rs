//! Synthetic host trees for passthru's benchmarks.
//!
//! [`synthetic_host`] describes a server with exactly `n` PCI functions, a
//! realistic mix repeated in a fixed (deterministic) pattern:
//!
//! | block            | functions | buses | IOMMU groups                                  |
//! |------------------|-----------|-------|-----------------------------------------------|
//! | GPU              | 3         | 1     | root port; GPU + HDMI audio together          |
//! | NVMe             | 2         | 1     | root port; the drive                          |
//! | NIC with SR-IOV  | 11        | 1     | root port; each PF (ACS, ARI); each VF        |
//! | switch with ACS  | 10        | 6     | every port and endpoint alone                 |
//! | switch, no ACS   | 8         | 5     | root port; everything below it in one group   |
//!
//! The cycle is GPU, NVMe, NIC, switch (ACS), GPU, NVMe, switch (no ACS), GPU:
//! 42 functions, 8 root ports, 17 buses. Each PCI domain starts with a host
//! bridge at `00:00.0`; a new domain starts when its 255 buses or 248 root-port
//! slots run out. The last functions are filled with NVMe blocks and empty root
//! ports so the total is exactly `n`.
//!
//! The tree is laid out by [`passthru_iommu_groups::fixture::Fixture::write`]
//! (including the SR-IOV `physfn` / `virtfnN` links); [`write_host`] then adds an
//! `irq` attribute per function, as the kernel has and lspci reads.

#![forbid(unsafe_code)]

use passthru_iommu_groups::fixture::{Fixture, FixtureDevice, IommuKind};
use passthru_iommu_groups::CpuVendor;
use passthru_pci_ids::builder::ConfigBuilder;
use passthru_pci_ids::caps::{AcsFlags, PortType};
use passthru_pci_ids::{Bdf, ClassCode, DeviceId, VendorId};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What [`synthetic_host`] generated, for checking the loaded model against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// PCI functions.
    pub devices: usize,
    /// Distinct IOMMU groups.
    pub groups: usize,
    /// Display-class (03xx) functions: what `passthru check` looks at by default.
    pub gpus: usize,
    /// PCI domains (segments).
    pub domains: usize,
    /// Switches (upstream ports).
    pub switches: usize,
    /// SR-IOV virtual functions.
    pub vfs: usize,
}

/// A generated host: the fixture description and the counts.
#[derive(Debug, Clone)]
pub struct SyntheticHost {
    /// The fixture (topology, groups, drivers, kernel command line, modules).
    pub fixture: Fixture,
    /// Counts.
    pub stats: Stats,
}

const AMD: VendorId = VendorId(0x1022);
const BLOCK_PATTERN: [Block; 8] = [
    Block::Gpu,
    Block::Nvme,
    Block::Nic,
    Block::SwitchAcs,
    Block::Gpu,
    Block::Nvme,
    Block::SwitchNoAcs,
    Block::Gpu,
];
/// Root-port slots on bus 0 of a domain (devices 1..=31, 8 functions each).
const ROOT_PORTS_PER_DOMAIN: usize = 31 * 8;
/// VFs enabled per physical function.
const VFS_PER_PF: u16 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Gpu,
    Nvme,
    Nic,
    SwitchAcs,
    SwitchNoAcs,
    EmptyPort,
}

impl Block {
    fn functions(self) -> usize {
        match self {
            Block::Gpu => 3,
            Block::Nvme => 2,
            Block::Nic => 3 + 2 * usize::from(VFS_PER_PF),
            Block::SwitchAcs => 10,
            Block::SwitchNoAcs => 8,
            Block::EmptyPort => 1,
        }
    }
    fn buses(self) -> usize {
        match self {
            Block::Gpu | Block::Nvme | Block::Nic => 1,
            Block::SwitchAcs => 6,
            Block::SwitchNoAcs => 5,
            Block::EmptyPort => 0,
        }
    }
}

fn acs_all() -> AcsFlags {
    AcsFlags::SV | AcsFlags::RR | AcsFlags::CR | AcsFlags::UF
}

fn bdf(domain: u16, bus: u8, dev: u8, func: u8) -> Bdf {
    // Callers keep dev < 32 and func < 8.
    Bdf::new(domain, bus, dev, func)
        .unwrap_or_else(|| panic!("generator address {domain:04x}:{bus:02x}:{dev:02x}.{func}"))
}

/// A device of the synthetic host: its builders are this file's fixed shapes, which
/// fit, so a build error is a bug here.
fn fixture_dev(at: Bdf, cfg: &ConfigBuilder) -> FixtureDevice {
    FixtureDevice::from_builder(at, cfg).unwrap_or_else(|e| panic!("synthetic host {at}: {e}"))
}

fn bus_u8(b: usize) -> u8 {
    u8::try_from(b).unwrap_or_else(|_| panic!("generator bus {b} out of range"))
}

fn endpoint(vendor: u16, device: u16, class: u32) -> ConfigBuilder {
    ConfigBuilder::endpoint(
        VendorId(vendor),
        DeviceId(device),
        ClassCode::from_u32(class),
    )
    .with_subsystem(VendorId(vendor), DeviceId(device))
}

struct Gen {
    f: Fixture,
    stats: Stats,
    group: u32,
    domain: u16,
    next_bus: usize,
    next_port: usize,
    gpu_seq: usize,
}

impl Gen {
    fn new_group(&mut self) -> u32 {
        let g = self.group;
        self.group += 1;
        self.stats.groups += 1;
        g
    }

    fn push(&mut self, d: FixtureDevice) {
        if d.ids.is_some_and(|(_, _, c, _)| c.class == 0x03) {
            self.stats.gpus += 1;
        }
        self.stats.devices += 1;
        self.f.devices.push(d);
    }

    fn start_domain(&mut self, domain: u16) {
        self.domain = domain;
        self.next_bus = 1;
        self.next_port = 0;
        self.stats.domains += 1;
        let g = self.new_group();
        let hb = fixture_dev(
            bdf(domain, 0, 0, 0),
            &ConfigBuilder::endpoint(AMD, DeviceId(0x1480), ClassCode::from_u32(0x060000))
                .with_subsystem(AMD, DeviceId(0x1480)),
        )
        .group(g);
        self.push(hb);
    }

    fn fits(&self, b: Block) -> bool {
        self.next_port < ROOT_PORTS_PER_DOMAIN && self.next_bus + b.buses() <= 256
    }

    /// A root port on bus 0 bridging to `secondary..=subordinate`.
    fn root_port(&mut self, secondary: u8, subordinate: u8) -> Bdf {
        let k = self.next_port;
        self.next_port += 1;
        let at = bdf(self.domain, 0, (k / 8 + 1) as u8, (k % 8) as u8);
        let cfg = ConfigBuilder::bridge(AMD, DeviceId(0x1483), 0, secondary, subordinate)
            .with_pm(false)
            .with_msi(0, true)
            .with_pcie(PortType::RootPort, false)
            .with_pcie_slot(k as u16, true)
            .with_aer()
            .with_acs(acs_all(), acs_all());
        let g = self.new_group();
        self.push(fixture_dev(at, &cfg).group(g).driver("pcieport"));
        at
    }

    fn take_buses(&mut self, n: usize) -> usize {
        let b = self.next_bus;
        self.next_bus += n;
        b
    }

    fn block(&mut self, b: Block) {
        match b {
            Block::Gpu => self.gpu(),
            Block::Nvme => self.nvme(),
            Block::Nic => self.nic(),
            Block::SwitchAcs => self.switch(true),
            Block::SwitchNoAcs => self.switch(false),
            Block::EmptyPort => {
                // An empty hot-plug slot: secondary bus number assigned, nothing below.
                let bus = bus_u8(self.next_bus.min(255));
                self.root_port(bus, bus);
            }
        }
    }

    fn gpu(&mut self) {
        let bus = bus_u8(self.take_buses(1));
        let rp = self.root_port(bus, bus);
        let g = self.new_group();
        let d = self.domain;
        let seq = self.gpu_seq;
        self.gpu_seq += 1;
        // (vendor, vga id, audio id, vga driver, audio driver, reset_method of fn 0)
        let (v, vga, audio, dv, da, rm) = match seq % 4 {
            0 => (0x10de, 0x2684, 0x22ba, "nvidia", "snd_hda_intel", "bus"),
            1 => (0x1002, 0x744c, 0xab30, "amdgpu", "snd_hda_intel", "bus"),
            2 => (0x10de, 0x2204, 0x1aef, "vfio-pci", "vfio-pci", "bus"),
            _ => (0x1002, 0x73bf, 0xab28, "vfio-pci", "vfio-pci", "bus"),
        };
        let vga_cfg = endpoint(v, vga, 0x030000)
            .with_revision(0xa1)
            .with_multifunction()
            .with_bar64(0, 0xf000_0000 + (seq as u64 % 16) * 0x100_0000, false)
            .with_pm(false)
            .with_msi(0, true)
            .with_pcie(PortType::LegacyEndpoint, false)
            .with_aer()
            .with_rebar(1, 0x3f00, 8);
        let audio_cfg = endpoint(v, audio, 0x040300)
            .with_revision(0xa1)
            .with_multifunction()
            .with_pm(false)
            .with_msi(0, true)
            .with_pcie(PortType::Endpoint, false)
            .with_aer();
        self.push(
            fixture_dev(bdf(d, bus, 0, 0), &vga_cfg)
                .parent(rp)
                .group(g)
                .driver(dv)
                .reset_method(rm)
                .boot_vga(seq == 0)
                .rom()
                .attr("resource1_resize", "0000000000003f00\n"),
        );
        self.push(
            fixture_dev(bdf(d, bus, 0, 1), &audio_cfg)
                .parent(rp)
                .group(g)
                .driver(da),
        );
    }

    fn nvme_at(&mut self, at: Bdf, parent: Bdf, group: u32) {
        let cfg = endpoint(0x144d, 0xa80a, 0x010802)
            .with_pm(false)
            .with_msix(130, 0, 0x3000, 0, 0x2000)
            .with_pcie(PortType::Endpoint, true)
            .with_aer()
            .with_dsn(0x0025_3852_0000_0000 | u64::from(at.routing_id()))
            .with_l1pm(0x1f);
        self.push(
            fixture_dev(at, &cfg)
                .parent(parent)
                .group(group)
                .driver("nvme")
                .reset_method("flr bus"),
        );
    }

    fn nvme(&mut self) {
        let bus = bus_u8(self.take_buses(1));
        let rp = self.root_port(bus, bus);
        let g = self.new_group();
        self.nvme_at(bdf(self.domain, bus, 0, 0), rp, g);
    }

    /// A dual-port X550 with ARI and ACS, 4 VFs per PF at routing offset 0x80.
    fn nic(&mut self) {
        let bus = bus_u8(self.take_buses(1));
        let rp = self.root_port(bus, bus);
        let d = self.domain;
        for pf_fn in 0u8..2 {
            let pf = bdf(d, bus, 0, pf_fn);
            let first_vf = 0x80 - u16::from(pf_fn) + u16::from(pf_fn) * VFS_PER_PF;
            let cfg = endpoint(0x8086, 0x1563, 0x020000)
                .with_revision(0x01)
                .with_multifunction()
                .with_pm(false)
                .with_msix(64, 3, 0, 3, 0x2000)
                .with_pcie(PortType::Endpoint, true)
                .with_aer()
                .with_ari(if pf_fn == 0 { 1 } else { 0 })
                .with_acs(acs_all(), acs_all())
                .with_sriov(63, VFS_PER_PF, first_vf, 1, DeviceId(0x1565));
            let g = self.new_group();
            self.push(
                fixture_dev(pf, &cfg)
                    .parent(rp)
                    .group(g)
                    .driver("ixgbe")
                    .reset_method("flr bus")
                    .attr("sriov_totalvfs", "63\n")
                    .attr("sriov_numvfs", format!("{VFS_PER_PF}\n"))
                    .attr("sriov_drivers_autoprobe", "1\n"),
            );
            for i in 0..VFS_PER_PF {
                // Routing ID = PF's + offset + i * stride, on the same bus here.
                let devfn = u16::from(pf_fn) + first_vf + i;
                let vf = bdf(d, bus, (devfn >> 3) as u8, (devfn & 7) as u8);
                let vcfg = endpoint(0x8086, 0x1565, 0x020000)
                    .with_revision(0x01)
                    .with_msix(3, 0, 0, 3, 0x2000)
                    .with_pcie(PortType::Endpoint, true)
                    .with_aer()
                    .with_ari(0);
                let g = self.new_group();
                let drv = if i % 2 == 0 { "vfio-pci" } else { "ixgbevf" };
                self.push(
                    fixture_dev(vf, &vcfg)
                        .parent(rp)
                        .physfn(pf)
                        .group(g)
                        .driver(drv)
                        .reset_method("flr"),
                );
                self.stats.vfs += 1;
            }
        }
    }

    /// A switch: upstream port, downstream ports, one endpoint below each.
    /// With ACS every port and endpoint has its own group; without, everything
    /// below the root port shares one.
    fn switch(&mut self, acs: bool) {
        let ports: u8 = if acs { 4 } else { 3 };
        // The upstream port's bus, the downstream ports' bus, one bus per endpoint.
        let up_bus = self.take_buses(2 + usize::from(ports));
        let (up_bus, sub) = (bus_u8(up_bus), bus_u8(up_bus + 1 + usize::from(ports)));
        let rp = self.root_port(up_bus, sub);
        let d = self.domain;
        let shared = (!acs).then(|| self.new_group());
        let grp = |s: &mut Gen| shared.unwrap_or_else(|| s.new_group());
        let (sv, usp_id, dsp_id) = if acs {
            (0x1000u16, 0xc010u16, 0xc010u16) // Broadcom PEX880xx
        } else {
            (0x1b21, 0x2824, 0x2824) // ASMedia ASM2824
        };
        let usp = bdf(d, up_bus, 0, 0);
        let ucfg = ConfigBuilder::bridge(VendorId(sv), DeviceId(usp_id), up_bus, up_bus + 1, sub)
            .with_pm(false)
            .with_msi(0, true)
            .with_pcie(PortType::UpstreamPort, false)
            .with_aer();
        let g = grp(self);
        self.push(
            fixture_dev(usp, &ucfg)
                .parent(rp)
                .group(g)
                .driver("pcieport"),
        );
        self.stats.switches += 1;
        let dsp_bus = up_bus + 1;
        for p in 0..ports {
            let dsp = bdf(d, dsp_bus, p, 0);
            let below = dsp_bus + 1 + p;
            let mut dcfg =
                ConfigBuilder::bridge(VendorId(sv), DeviceId(dsp_id), dsp_bus, below, below)
                    .with_pm(false)
                    .with_msi(0, true)
                    .with_pcie(PortType::DownstreamPort, false)
                    .with_pcie_slot(u16::from(p) + 1, false)
                    .with_aer();
            if acs {
                dcfg = dcfg.with_acs(acs_all(), acs_all());
            }
            let g = grp(self);
            self.push(
                fixture_dev(dsp, &dcfg)
                    .parent(usp)
                    .group(g)
                    .driver("pcieport"),
            );
            let ep = bdf(d, below, 0, 0);
            let g = grp(self);
            match (acs, p) {
                (true, 0 | 1) | (false, 0) => {
                    if acs {
                        self.nvme_at(ep, dsp, g);
                    } else {
                        // ASMedia ASM1164 SATA.
                        let cfg = endpoint(0x1b21, 0x1164, 0x010601)
                            .with_pm(false)
                            .with_msi(0, true)
                            .with_pcie(PortType::LegacyEndpoint, false)
                            .with_aer();
                        self.push(
                            fixture_dev(ep, &cfg)
                                .parent(dsp)
                                .group(g)
                                .driver("ahci")
                                .reset_method("pm bus"),
                        );
                    }
                }
                (true, 2) | (false, 1) => {
                    let (v, id, drv) = if acs {
                        (0x8086, 0x1533, "igb") // I210
                    } else {
                        (0x10ec, 0x8125, "r8169") // RTL8125
                    };
                    let cfg = endpoint(v, id, 0x020000)
                        .with_pm(false)
                        .with_msi(0, true)
                        .with_msix(5, 3, 0, 3, 0x2000)
                        .with_pcie(PortType::Endpoint, acs)
                        .with_aer()
                        .with_dsn(0x00a0_c9ff_ff00_0000 | u64::from(ep.routing_id()));
                    self.push(
                        fixture_dev(ep, &cfg)
                            .parent(dsp)
                            .group(g)
                            .driver(drv)
                            .reset_method(if acs { "flr pm bus" } else { "pm bus" }),
                    );
                }
                _ => {
                    // Renesas uPD720201 USB 3.0.
                    let cfg = endpoint(0x1912, 0x0014, 0x0c0330)
                        .with_pm(false)
                        .with_msi(0, true)
                        .with_msix(8, 0, 0, 0, 0x1000)
                        .with_pcie(PortType::Endpoint, false)
                        .with_aer();
                    self.push(
                        fixture_dev(ep, &cfg)
                            .parent(dsp)
                            .group(g)
                            .driver("xhci_hcd")
                            .reset_method("pm bus"),
                    );
                }
            }
        }
    }
}

/// Describe a host with exactly `n` PCI functions (`n` >= 1).
pub fn synthetic_host(n: usize) -> SyntheticHost {
    let mut f = Fixture::new(CpuVendor::Amd, IommuKind::Amd);
    f.cpu_model = "AMD EPYC 9654 96-Core Processor".into();
    f.kernel = "6.12.0-synthetic".into();
    f.cmdline = "BOOT_IMAGE=/boot/vmlinuz-6.12.0 root=/dev/nvme0n1p2 ro quiet iommu=pt".into();
    f.modules = [
        "vfio_pci",
        "vfio_pci_core",
        "vfio_iommu_type1",
        "vfio",
        "irqbypass",
        "nvidia",
        "amdgpu",
        "snd_hda_intel",
        "nvme",
        "ixgbe",
        "ixgbevf",
        "igb",
        "r8169",
        "ahci",
        "xhci_pci",
        "kvm_amd",
        "kvm",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    f.vfio_pci_params.insert(
        "ids".into(),
        "10de:2204,10de:1aef,1002:73bf,1002:ab28".into(),
    );
    f.vfio_pci_params.insert("disable_vga".into(), "N".into());
    f = f.file(
        "etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
    );
    let mut g = Gen {
        f,
        stats: Stats::default(),
        group: 0,
        domain: 0,
        next_bus: 1,
        next_port: 0,
        gpu_seq: 0,
    };
    if n == 0 {
        return SyntheticHost {
            fixture: g.f,
            stats: g.stats,
        };
    }
    g.start_domain(0);
    let mut i = 0usize;
    while g.stats.devices < n {
        let left = n - g.stats.devices;
        let mut b = BLOCK_PATTERN[i % BLOCK_PATTERN.len()];
        if b.functions() > left {
            b = if left >= Block::Nvme.functions() {
                Block::Nvme
            } else {
                Block::EmptyPort
            };
        }
        if !g.fits(b) {
            let next = g.domain + 1;
            g.start_domain(next);
            continue;
        }
        g.block(b);
        i += 1;
    }
    SyntheticHost {
        fixture: g.f,
        stats: g.stats,
    }
}

/// The device directory (relative to `root`) that `sys/bus/pci/devices/<bdf>` points at.
fn device_dir(root: &Path, b: Bdf) -> io::Result<PathBuf> {
    let link = root.join("sys/bus/pci/devices").join(b.to_string());
    let target = fs::read_link(&link)?;
    // "../../../devices/..." relative to sys/bus/pci/devices.
    let rel = target
        .strip_prefix("../../../")
        .map_err(|_| io::Error::other(format!("{}: unexpected target", link.display())))?;
    Ok(PathBuf::from("sys").join(rel))
}

/// Write `h` under `root` (which should be empty or absent): the fixture tree,
/// then an `irq` attribute per function.
///
/// # Errors
///
/// The I/O error of the first directory, file or link that cannot be made under `root`.
pub fn write_host(h: &SyntheticHost, root: &Path) -> io::Result<()> {
    h.fixture
        .write(root)
        .map_err(|e| io::Error::other(error_chain(&e)))?;
    for (n, d) in h.fixture.devices.iter().enumerate() {
        let dir = device_dir(root, d.bdf)?;
        fs::write(root.join(&dir).join("irq"), format!("{}\n", 32 + n % 200))?;
    }
    Ok(())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_counts_and_unique_addresses() {
        for n in [1, 2, 3, 41, 42, 43, 100, 1000, 10_000] {
            let h = synthetic_host(n);
            assert_eq!(h.stats.devices, n, "n = {n}");
            assert_eq!(h.fixture.devices.len(), n);
            let mut seen = std::collections::BTreeSet::new();
            for d in &h.fixture.devices {
                assert!(seen.insert(d.bdf), "duplicate {}", d.bdf);
                if let Some(p) = d.parent {
                    assert!(seen.contains(&p), "{} before its parent {p}", d.bdf);
                }
            }
            let groups: std::collections::BTreeSet<u32> =
                h.fixture.devices.iter().filter_map(|d| d.group).collect();
            assert_eq!(groups.len(), h.stats.groups);
        }
    }

    #[test]
    fn loads_back() {
        let h = synthetic_host(100);
        let dir = std::env::temp_dir().join(format!("passthru-bench-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        write_host(&h, &dir).unwrap();
        let host = passthru_iommu_groups::Host::load(&dir).unwrap();
        assert_eq!(host.devices.len(), 100);
        assert_eq!(host.groups.len(), h.stats.groups);
        assert_eq!(host.display_devices().len(), h.stats.gpus);
        let vfs = host.devices.values().filter(|d| d.physfn.is_some()).count();
        assert_eq!(vfs, h.stats.vfs);
        fs::remove_dir_all(&dir).unwrap();
    }
}
