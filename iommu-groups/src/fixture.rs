//! Build host trees for tests and benchmarks: describe a topology (root ports,
//! switches, PCIe-to-PCI bridges, multifunction devices), its IOMMU groups,
//! drivers, kernel command line, CPU vendor and `/etc` files, and
//! [`Fixture::write`] lays out a `sys`/`proc`/`etc`/`dev` tree that
//! [`Host::load`](crate::Host::load) reads like a live machine: real relative
//! symlinks (`bus/pci/devices` -> `../../../devices/pci0000:00/...`,
//! `iommu_group`, `driver`) and binary `config` (from
//! [`passthru_pci_ids::builder::ConfigBuilder`] or real dumps).
//!
//! ```
//! use passthru_iommu_groups::fixture::{Fixture, FixtureDevice, IommuKind};
//! use passthru_iommu_groups::{CpuVendor, Host};
//!
//! let root_port = FixtureDevice::root_port("00:01.0".parse().unwrap(), 0x01).group(1);
//! let gpu = FixtureDevice::gpu("01:00.0".parse().unwrap(), 0x1002, 0x7300)
//!     .parent("00:01.0".parse().unwrap())
//!     .group(2)
//!     .driver("vfio-pci");
//! let dir = tempfile::tempdir().unwrap();
//! Fixture::new(CpuVendor::Amd, IommuKind::Amd)
//!     .device(root_port)
//!     .device(gpu)
//!     .write(dir.path())
//!     .unwrap();
//! let host = Host::load(dir.path()).unwrap();
//! assert_eq!(host.group_of("01:00.0".parse().unwrap()).unwrap().id.0, 2);
//! ```

use crate::error::{Error, Result};
use crate::model::CpuVendor;
use passthru_pci_ids::builder::ConfigBuilder;
use passthru_pci_ids::caps::{AcsFlags, PortType};
use passthru_pci_ids::{Bdf, ClassCode, DeviceId, VendorId};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Which IOMMU the fixture host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IommuKind {
    /// None active and no firmware table.
    None,
    /// None active, but the firmware table for the CPU vendor exists (DMAR or IVRS).
    FirmwareOnly,
    /// Intel VT-d: `sys/class/iommu/dmar0`, ACPI `DMAR`.
    Intel,
    /// AMD-Vi: `sys/class/iommu/ivhd0`, ACPI `IVRS`.
    Amd,
}

/// One PCI function of a fixture host.
#[derive(Debug, Clone)]
pub struct FixtureDevice {
    /// Address.
    pub bdf: Bdf,
    /// Parent bridge (`None`: on the root bus).
    pub parent: Option<Bdf>,
    /// The binary `config` file (64, 256 or 4096 bytes; any bytes for hostile tests).
    pub config: Vec<u8>,
    /// `vendor`, `device`, `class` and `revision` text attributes; `None` writes none.
    pub ids: Option<(VendorId, DeviceId, ClassCode, u8)>,
    /// IOMMU group.
    pub group: Option<u32>,
    /// Bound driver.
    pub driver: Option<String>,
    /// `reset_method` text (as the kernel probed it), `None`: no file.
    pub reset_method: Option<String>,
    /// `boot_vga`.
    pub boot_vga: Option<bool>,
    /// Whether a `rom` attribute exists.
    pub rom: bool,
    /// For an SR-IOV virtual function: its physical function (`physfn` link; the PF
    /// gets `virtfnN` links, N counting its VFs in order).
    pub physfn: Option<Bdf>,
    /// Extra attribute files (name, bytes), written last (may overwrite).
    pub attrs: Vec<(String, Vec<u8>)>,
}

/// A preset or scenario device from a builder this module wrote: its capabilities
/// are fixed and fit (the builder's own tests cover the layout), so a failure is a bug
/// in this module, not bad input.
fn preset(bdf: Bdf, b: &ConfigBuilder) -> FixtureDevice {
    FixtureDevice::from_builder(bdf, b).unwrap_or_else(|e| panic!("fixture preset {bdf}: {e}"))
}

impl FixtureDevice {
    /// A device from raw config bytes; ids/class/revision are read from them when
    /// at least 64 bytes long.
    pub fn from_config(bdf: Bdf, config: Vec<u8>) -> FixtureDevice {
        let ids = (config.len() >= 64).then(|| {
            (
                VendorId(u16::from_le_bytes([config[0], config[1]])),
                DeviceId(u16::from_le_bytes([config[2], config[3]])),
                ClassCode::from_u32(
                    u32::from(config[0x0b]) << 16
                        | u32::from(config[0x0a]) << 8
                        | u32::from(config[0x09]),
                ),
                config[0x08],
            )
        });
        FixtureDevice {
            bdf,
            parent: None,
            config,
            ids,
            group: None,
            driver: None,
            reset_method: None,
            boot_vga: None,
            rom: false,
            physfn: None,
            attrs: Vec::new(),
        }
    }

    /// A device from a config builder.
    ///
    /// # Errors
    ///
    /// The builder's error when it holds one (a capability that does not fit, a bad
    /// config length), so generated or fuzzed builders are reported, never a panic.
    pub fn from_builder(
        bdf: Bdf,
        b: &ConfigBuilder,
    ) -> std::result::Result<FixtureDevice, passthru_pci_ids::builder::BuildError> {
        Ok(FixtureDevice::from_config(bdf, b.bytes()?.to_vec()))
    }

    /// A PCIe root port (1022:1483 style) with ACS enabled, bridging to `secondary`.
    /// (This and the other device presets are built with [`ConfigBuilder`] too.)
    pub fn root_port(bdf: Bdf, secondary: u8) -> FixtureDevice {
        let b = ConfigBuilder::bridge(
            VendorId(0x1022),
            DeviceId(0x1483),
            bdf.bus,
            secondary,
            secondary,
        )
        .with_pm(false)
        .with_pcie(PortType::RootPort, false)
        .with_acs(acs_all(), acs_all());
        preset(bdf, &b)
    }

    /// A PCIe endpoint display device (class 0300, PM with NoSoftRst clear, no FLR).
    pub fn gpu(bdf: Bdf, vendor: u16, device: u16) -> FixtureDevice {
        let b = ConfigBuilder::endpoint(
            VendorId(vendor),
            DeviceId(device),
            ClassCode::from_u32(0x030000),
        )
        .with_multifunction()
        .with_pm(false)
        .with_pcie(PortType::LegacyEndpoint, false);
        preset(bdf, &b).boot_vga(false)
    }

    /// A PCIe endpoint HD audio function (class 0403, PM with NoSoftRst clear, no FLR).
    pub fn hdmi_audio(bdf: Bdf, vendor: u16, device: u16) -> FixtureDevice {
        let b = ConfigBuilder::endpoint(
            VendorId(vendor),
            DeviceId(device),
            ClassCode::from_u32(0x040300),
        )
        .with_multifunction()
        .with_pm(false)
        .with_pcie(PortType::Endpoint, false);
        preset(bdf, &b)
    }

    /// Set the parent bridge.
    pub fn parent(mut self, p: Bdf) -> FixtureDevice {
        self.parent = Some(p);
        self
    }
    /// Set the IOMMU group.
    pub fn group(mut self, g: u32) -> FixtureDevice {
        self.group = Some(g);
        self
    }
    /// Set the bound driver.
    pub fn driver(mut self, d: &str) -> FixtureDevice {
        self.driver = Some(d.to_string());
        self
    }
    /// Set the `reset_method` text.
    pub fn reset_method(mut self, r: &str) -> FixtureDevice {
        self.reset_method = Some(r.to_string());
        self
    }
    /// Set `boot_vga`.
    pub fn boot_vga(mut self, v: bool) -> FixtureDevice {
        self.boot_vga = Some(v);
        self
    }
    /// Add a `rom` attribute.
    pub fn rom(mut self) -> FixtureDevice {
        self.rom = true;
        self
    }
    /// Make this an SR-IOV virtual function of `pf`.
    pub fn physfn(mut self, pf: Bdf) -> FixtureDevice {
        self.physfn = Some(pf);
        self
    }
    /// Add or replace an attribute file.
    pub fn attr(mut self, name: &str, bytes: impl Into<Vec<u8>>) -> FixtureDevice {
        self.attrs.push((name.to_string(), bytes.into()));
        self
    }
}

/// SV | RR | CR | UF: what the kernel enables on an ACS-capable port.
fn acs_all() -> AcsFlags {
    AcsFlags::SV | AcsFlags::RR | AcsFlags::CR | AcsFlags::UF
}

/// A host description; [`Fixture::write`] lays it out as a root tree.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// CPU vendor (`proc/cpuinfo`).
    pub cpu: CpuVendor,
    /// CPU model name (`proc/cpuinfo`).
    pub cpu_model: String,
    /// IOMMU.
    pub iommu: IommuKind,
    /// Kernel release (`proc/sys/kernel/osrelease`).
    pub kernel: String,
    /// Kernel command line (`proc/cmdline`).
    pub cmdline: String,
    /// Loaded modules (`proc/modules`).
    pub modules: Vec<String>,
    /// vfio-pci parameters (`sys/module/vfio_pci/parameters/*`); written when vfio_pci is loaded.
    pub vfio_pci_params: BTreeMap<String, String>,
    /// IOMMU group default domain types (`type`); groups not listed get `DMA`.
    pub group_types: BTreeMap<u32, String>,
    /// Other files (path relative to the root, contents): `etc/...`, `usr/bin/pveversion`.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// Directories to create (`etc/pve`), each with an empty `.keep` file.
    pub dirs: Vec<PathBuf>,
    /// The PCI functions.
    pub devices: Vec<FixtureDevice>,
}

impl Fixture {
    /// An empty host with this CPU vendor and IOMMU.
    pub fn new(cpu: CpuVendor, iommu: IommuKind) -> Fixture {
        Fixture {
            cpu,
            cpu_model: "Fixture CPU".into(),
            iommu,
            kernel: "6.12.0-fixture".into(),
            cmdline: "root=/dev/sda1 ro quiet".into(),
            modules: Vec::new(),
            vfio_pci_params: BTreeMap::new(),
            group_types: BTreeMap::new(),
            files: Vec::new(),
            dirs: Vec::new(),
            devices: Vec::new(),
        }
    }
    /// Add a device.
    pub fn device(mut self, d: FixtureDevice) -> Fixture {
        self.devices.push(d);
        self
    }
    /// Set the kernel command line.
    pub fn cmdline(mut self, c: &str) -> Fixture {
        self.cmdline = c.to_string();
        self
    }
    /// Set the kernel release.
    pub fn kernel(mut self, k: &str) -> Fixture {
        self.kernel = k.to_string();
        self
    }
    /// Add a file (path relative to the root).
    pub fn file(mut self, path: &str, text: &str) -> Fixture {
        self.files
            .push((PathBuf::from(path), text.as_bytes().to_vec()));
        self
    }

    /// A synthetic host with `n` GPUs (GPU + HDMI audio), each behind its own
    /// root port with its own group per function: for benchmarks and scale tests.
    pub fn many_gpus(n: usize) -> Fixture {
        let mut f = Fixture::new(CpuVendor::Amd, IommuKind::Amd);
        let mut group = 0u32;
        for i in 0..n {
            // Root ports at 00:01.0..00:1f.7, then further domains.
            let domain = (i / 248) as u16;
            let k = i % 248;
            let (dev, func) = ((k / 8 + 1) as u8, (k % 8) as u8);
            let bus = (k + 1) as u8;
            let (Some(rp), Some(g0), Some(g1)) = (
                Bdf::new(domain, 0, dev, func),
                Bdf::new(domain, bus, 0, 0),
                Bdf::new(domain, bus, 0, 1),
            ) else {
                continue;
            };
            f = f
                .device(
                    FixtureDevice::root_port(rp, bus)
                        .group(group)
                        .driver("pcieport"),
                )
                .device(
                    FixtureDevice::gpu(g0, 0x1002, 0x73bf)
                        .parent(rp)
                        .group(group + 1)
                        .driver("vfio-pci"),
                )
                .device(
                    FixtureDevice::hdmi_audio(g1, 0x1002, 0xab28)
                        .parent(rp)
                        .group(group + 2)
                        .driver("vfio-pci"),
                );
            group += 3;
        }
        f
    }

    fn dev_dir(by: &BTreeMap<Bdf, &FixtureDevice>, bdf: Bdf) -> Result<PathBuf> {
        let mut chain = vec![bdf];
        let mut cur = bdf;
        while let Some(p) = by.get(&cur).and_then(|d| d.parent) {
            if chain.contains(&p) || chain.len() > 64 {
                return Err(Error::Write {
                    path: PathBuf::from(bdf.to_string()),
                    source: std::io::Error::other("parent chain loops"),
                });
            }
            chain.push(p);
            cur = p;
        }
        let top = *chain.last().unwrap_or(&bdf);
        let mut p =
            PathBuf::from("sys/devices").join(format!("pci{:04x}:{:02x}", top.domain, top.bus));
        for b in chain.iter().rev() {
            p.push(b.to_string());
        }
        Ok(p)
    }

    /// Write the tree under `root` (created if needed; existing files are replaced).
    ///
    /// # Errors
    ///
    /// [`Error::Write`] naming the file or directory that could not be created or written
    /// (also when the topology's parent chain loops).
    pub fn write(&self, root: &Path) -> Result<()> {
        let w = Writer { root };
        // proc
        let vendor_id = match self.cpu {
            CpuVendor::Intel => "GenuineIntel",
            CpuVendor::Amd => "AuthenticAMD",
            CpuVendor::Other => "Other",
        };
        w.file(
            "proc/cpuinfo",
            format!(
                "processor\t: 0\nvendor_id\t: {vendor_id}\nmodel name\t: {}\n\n",
                self.cpu_model
            ),
        )?;
        w.file("proc/cmdline", format!("{}\n", self.cmdline))?;
        w.file("proc/sys/kernel/osrelease", format!("{}\n", self.kernel))?;
        let mut modules = String::new();
        for m in &self.modules {
            modules.push_str(&format!("{m} 16384 0 - Live 0x0000000000000000\n"));
        }
        w.file("proc/modules", modules)?;
        for m in &self.modules {
            w.file(&format!("sys/module/{m}/initstate"), "live\n")?;
        }
        // With KVM loaded, udev makes its node (a presence-only file here).
        if self.modules.iter().any(|m| m == "kvm") {
            w.file("dev/kvm", "")?;
        }
        if self.modules.iter().any(|m| m == "vfio_pci") {
            w.dir("sys/module/vfio_pci/parameters")?;
            for (k, v) in &self.vfio_pci_params {
                w.file(
                    &format!("sys/module/vfio_pci/parameters/{k}"),
                    format!("{v}\n"),
                )?;
            }
        }
        // IOMMU
        w.dir("sys/class/iommu")?;
        w.dir("sys/kernel/iommu_groups")?;
        w.dir("sys/firmware/acpi/tables")?;
        let table = match self.cpu {
            CpuVendor::Intel => Some("DMAR"),
            CpuVendor::Amd => Some("IVRS"),
            CpuVendor::Other => None,
        };
        let unit = match self.iommu {
            IommuKind::Intel => Some(("dmar0", "DMAR")),
            IommuKind::Amd => Some(("ivhd0", "IVRS")),
            _ => None,
        };
        if let Some((u, t)) = unit {
            w.file(&format!("sys/devices/virtual/iommu/{u}/uevent"), "")?;
            w.link(
                &format!("sys/class/iommu/{u}"),
                &format!("../../devices/virtual/iommu/{u}"),
            )?;
            // A stub: the model only looks at the table's presence.
            w.file(&format!("sys/firmware/acpi/tables/{t}"), t)?;
            w.dir("dev/vfio")?;
            w.file("dev/vfio/vfio", "")?;
        } else if self.iommu == IommuKind::FirmwareOnly {
            if let Some(t) = table {
                w.file(&format!("sys/firmware/acpi/tables/{t}"), t)?;
            }
        }
        // PCI
        w.dir("sys/bus/pci/devices")?;
        w.dir("sys/bus/pci/drivers")?;
        let iommu_on = matches!(self.iommu, IommuKind::Intel | IommuKind::Amd);
        let by: BTreeMap<Bdf, &FixtureDevice> = self.devices.iter().map(|d| (d.bdf, d)).collect();
        let mut vf_index: BTreeMap<Bdf, usize> = BTreeMap::new();
        for d in &self.devices {
            let dir = Self::dev_dir(&by, d.bdf)?;
            let ds = dir.to_string_lossy().into_owned();
            w.dir(&ds)?;
            let up_to_sys = "../".repeat(dir.components().count() - 1);
            w.link(
                &format!("sys/bus/pci/devices/{}", d.bdf),
                &format!(
                    "../../../{}",
                    dir.strip_prefix("sys").unwrap_or(&dir).display()
                ),
            )?;
            if let Some((v, i, c, r)) = d.ids {
                let (sv, sd) = if d.config.len() >= 0x30 {
                    (
                        u16::from_le_bytes([d.config[0x2c], d.config[0x2d]]),
                        u16::from_le_bytes([d.config[0x2e], d.config[0x2f]]),
                    )
                } else {
                    (0, 0)
                };
                w.file(&format!("{ds}/vendor"), format!("0x{:04x}\n", v.0))?;
                w.file(&format!("{ds}/device"), format!("0x{:04x}\n", i.0))?;
                w.file(&format!("{ds}/subsystem_vendor"), format!("0x{sv:04x}\n"))?;
                w.file(&format!("{ds}/subsystem_device"), format!("0x{sd:04x}\n"))?;
                w.file(&format!("{ds}/class"), format!("0x{:06x}\n", c.to_u32()))?;
                w.file(&format!("{ds}/revision"), format!("0x{r:02x}\n"))?;
                let c = c.to_u32();
                w.file(
                    &format!("{ds}/modalias"),
                    format!(
                        "pci:v{:08X}d{:08X}sv{sv:08X}sd{sd:08X}bc{:02X}sc{:02X}i{:02X}\n",
                        v.0,
                        i.0,
                        c >> 16,
                        (c >> 8) & 0xff,
                        c & 0xff
                    ),
                )?;
            }
            w.file(&format!("{ds}/config"), &d.config)?;
            let lines = if d.config.get(0x0e).is_some_and(|h| h & 0x7f == 1) {
                17
            } else {
                13
            };
            w.file(
                &format!("{ds}/resource"),
                "0x0000000000000000 0x0000000000000000 0x0000000000000000\n".repeat(lines),
            )?;
            w.file(&format!("{ds}/driver_override"), "(null)\n")?;
            w.file(&format!("{ds}/numa_node"), "-1\n")?;
            w.file(&format!("{ds}/d3cold_allowed"), "1\n")?;
            w.file(&format!("{ds}/power_state"), "D0\n")?;
            if let Some(r) = &d.reset_method {
                w.file(&format!("{ds}/reset_method"), format!("{r}\n"))?;
                w.file(&format!("{ds}/reset"), "")?;
            }
            if let Some(b) = d.boot_vga {
                w.file(&format!("{ds}/boot_vga"), if b { "1\n" } else { "0\n" })?;
            }
            if d.rom {
                w.file(&format!("{ds}/rom"), "")?;
            }
            if let Some(drv) = &d.driver {
                w.dir(&format!("sys/bus/pci/drivers/{drv}"))?;
                w.link(
                    &format!("{ds}/driver"),
                    &format!("{up_to_sys}bus/pci/drivers/{drv}"),
                )?;
                w.link(
                    &format!("sys/bus/pci/drivers/{drv}/{}", d.bdf),
                    &format!(
                        "../../../../{}",
                        dir.strip_prefix("sys").unwrap_or(&dir).display()
                    ),
                )?;
            }
            if let (Some(g), true) = (d.group, iommu_on) {
                let gd = format!("sys/kernel/iommu_groups/{g}");
                w.dir(&format!("{gd}/devices"))?;
                let ty = self.group_types.get(&g).map_or("DMA", String::as_str);
                w.file(&format!("{gd}/type"), format!("{ty}\n"))?;
                w.link(
                    &format!("{gd}/devices/{}", d.bdf),
                    &format!(
                        "../../../../{}",
                        dir.strip_prefix("sys").unwrap_or(&dir).display()
                    ),
                )?;
                w.link(
                    &format!("{ds}/iommu_group"),
                    &format!("{up_to_sys}kernel/iommu_groups/{g}"),
                )?;
            }
            if let Some(pf) = d.physfn {
                let pdir = Self::dev_dir(&by, pf)?;
                w.link(&format!("{ds}/physfn"), &relative(&dir, &pdir))?;
                let i = vf_index.entry(pf).or_default();
                w.link(
                    &format!("{}/virtfn{i}", pdir.display()),
                    &relative(&pdir, &dir),
                )?;
                *i += 1;
            }
            for (n, b) in &d.attrs {
                w.file(&format!("{ds}/{n}"), b)?;
            }
        }
        for d in &self.dirs {
            // A file inside, so the directory survives version control.
            w.file(&format!("{}/.keep", d.to_string_lossy()), "")?;
        }
        for (p, b) in &self.files {
            w.file(&p.to_string_lossy(), b)?;
        }
        Ok(())
    }
}

/// The relative link target from directory `from` to `to` (both under the root).
fn relative(from: &Path, to: &Path) -> String {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out.to_string_lossy().into_owned()
}

struct Writer<'a> {
    root: &'a Path,
}

impl Writer<'_> {
    fn werr(path: PathBuf) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Write { path, source }
    }
    fn dir(&self, rel: &str) -> Result<()> {
        let p = self.root.join(rel);
        fs::create_dir_all(&p).map_err(Self::werr(p))
    }
    fn file(&self, rel: &str, bytes: impl AsRef<[u8]>) -> Result<()> {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(Self::werr(parent.to_path_buf()))?;
        }
        fs::write(&p, bytes).map_err(Self::werr(p))
    }
    fn link(&self, rel: &str, target: &str) -> Result<()> {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(Self::werr(parent.to_path_buf()))?;
        }
        if fs::symlink_metadata(&p).is_ok() {
            fs::remove_file(&p).map_err(Self::werr(p.clone()))?;
        }
        symlink(target, &p).map_err(Self::werr(p))
    }
}

fn bdf(s: &str) -> Bdf {
    // Only called with the literal addresses below.
    s.parse()
        .unwrap_or_else(|e| panic!("fixture address {s:?}: {e}"))
}

/// The repository's committed fixture roots (`tests/fixtures`: real-kernel snapshots and
/// the generated scenarios), or `None` when the crate is built from its published package,
/// which does not carry them. In the repository (a workspace `Cargo.toml` one level up) the
/// path is returned even when missing, so a test walking it fails there instead of skipping.
#[cfg(test)]
pub(crate) fn workspace_fixtures() -> Option<PathBuf> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = crate_dir.parent()?;
    workspace
        .join("Cargo.toml")
        .is_file()
        .then(|| workspace.join("tests/fixtures"))
}

/// The user's scenario from docs/rules.md: a Proxmox VE 8 host (Ryzen 7 3700X on an
/// X570 board, AMD-Vi on) with a GTX 760 (10de:1187 + HDMI audio 10de:0e0a at
/// 05:00, behind the chipset switch) and an R9 Fury/Nano (Fiji 1002:7300 + audio
/// 1002:aae8 at 0b:00, on a CPU root port), and the user's hand-made `/etc` files.
///
/// Hand-built, not captured. The choices, each following docs/rules.md:
/// - GK104 and Fiji have no FLR (DevCap FLReset-); the GK104 functions set PM
///   No_Soft_Reset; Fiji's VGA function is NO_PM_RESET by the kernel's ATI quirk;
///   the Fiji audio function has a usable PM reset.
/// - `reset_method` files hold what the kernel probes at enumeration, before the
///   sibling function exists: function 0 lists `bus` (stale).
/// - `pcie_acs_override=downstream,multifunction` (Proxmox kernel) gives every
///   function its own group.
/// - amdgpu grabbed Fiji (only `radeon` is blacklisted and there is no softdep),
///   snd_hda_intel its audio; the GTX 760 functions are on vfio-pci. Fiji is the
///   boot display.
/// - 06:00.0 is a Matisse USB controller (1022:149c): FLR advertised, disabled by
///   the kernel's NO_FLR quirk.
pub fn scenario_amd() -> Fixture {
    let amd = VendorId(0x1022);
    let host_bridge = |b: &str, id: u16| {
        preset(
            bdf(b),
            &ConfigBuilder::endpoint(amd, DeviceId(id), ClassCode::from_u32(0x060000)),
        )
    };
    let downstream = |b: &str, secondary: u8, id: u16| {
        preset(
            bdf(b),
            &ConfigBuilder::bridge(amd, DeviceId(id), 0x03, secondary, secondary)
                .with_pm(false)
                .with_pcie(PortType::DownstreamPort, false)
                .with_acs(acs_all(), acs_all()),
        )
        .parent(bdf("02:00.0"))
        .driver("pcieport")
    };
    let nvidia = VendorId(0x10de);
    let ati = VendorId(0x1002);
    let gtx760 = ConfigBuilder::endpoint(nvidia, DeviceId(0x1187), ClassCode::from_u32(0x030000))
        .with_subsystem(nvidia, DeviceId(0x1187))
        .with_multifunction()
        .with_pm(true)
        .with_msi(0, true)
        .with_pcie(PortType::LegacyEndpoint, false);
    let gk104_audio =
        ConfigBuilder::endpoint(nvidia, DeviceId(0x0e0a), ClassCode::from_u32(0x040300))
            .with_subsystem(nvidia, DeviceId(0x0e0a))
            .with_multifunction()
            .with_pm(true)
            .with_msi(0, true)
            .with_pcie(PortType::Endpoint, false);
    let fiji = ConfigBuilder::endpoint(ati, DeviceId(0x7300), ClassCode::from_u32(0x030000))
        .with_revision(0xc8)
        .with_subsystem(ati, DeviceId(0x0b36))
        .with_multifunction()
        .with_pm(false)
        .with_pcie(PortType::LegacyEndpoint, false)
        .with_msi(0, true)
        .with_aer();
    let fiji_audio = ConfigBuilder::endpoint(ati, DeviceId(0xaae8), ClassCode::from_u32(0x040300))
        .with_subsystem(ati, DeviceId(0xaae8))
        .with_multifunction()
        .with_pm(false)
        .with_pcie(PortType::LegacyEndpoint, false)
        .with_msi(0, true)
        .with_aer();
    let usb = ConfigBuilder::endpoint(amd, DeviceId(0x149c), ClassCode::from_u32(0x0c0330))
        .with_pm(false)
        .with_pcie(PortType::Endpoint, true)
        .with_msix(8, 0, 0, 0, 0x1000)
        .with_aer();
    let i211 = ConfigBuilder::endpoint(
        VendorId(0x8086),
        DeviceId(0x1539),
        ClassCode::from_u32(0x020000),
    )
    .with_revision(0x03)
    .with_pm(false)
    .with_pcie(PortType::Endpoint, true)
    .with_aer();

    let mut f = Fixture::new(CpuVendor::Amd, IommuKind::Amd);
    f.cpu_model = "AMD Ryzen 7 3700X 8-Core Processor".into();
    f.kernel = "6.8.12-4-pve".into();
    f.cmdline = "BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet \
                 amd_iommu=on pcie_acs_override=downstream,multifunction video=efifb:off"
        .into();
    f.modules = [
        "vfio_pci",
        "vfio_pci_core",
        "vfio_iommu_type1",
        "vfio",
        "irqbypass",
        "amdgpu",
        "snd_hda_intel",
        "igb",
        "xhci_pci",
        "kvm_amd",
        "kvm",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (k, v) in [
        ("ids", "10de:1187,10de:0e0a,1002:7300,1002:aae8"),
        ("disable_vga", "Y"),
        ("disable_idle_d3", "N"),
        ("enable_sriov", "N"),
        ("nointxmask", "N"),
        ("disable_denylist", "N"),
    ] {
        f.vfio_pci_params.insert(k.into(), v.into());
    }
    f.dirs.push("etc/pve".into());
    f = f
        .file(
            "etc/os-release",
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
             VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n",
        )
        .file("usr/bin/pveversion", "#!/usr/bin/perl\n")
        .file(
            "etc/default/grub",
            "# If you change this file, run 'update-grub' afterwards to update\n\
             # /boot/grub/grub.cfg.\n\n\
             GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n\
             GRUB_DISTRIBUTOR=\"Proxmox VE\"\n\
             GRUB_CMDLINE_LINUX_DEFAULT=\"quiet amd_iommu=on pcie_acs_override=downstream,multifunction video=efifb:off\"\n\
             GRUB_CMDLINE_LINUX=\"\"\n",
        )
        .file(
            "etc/modprobe.d/blacklist.conf",
            "blacklist radeon\nblacklist nouveau\nblacklist nvidia\n",
        )
        .file(
            "etc/modprobe.d/vfio.conf",
            "options vfio-pci ids=10de:1187,10de:0e0a,1002:7300,1002:aae8 disable_vga=1\n",
        )
        .file(
            "etc/modules",
            "# /etc/modules: kernel modules to load at boot time.\nvfio\nvfio_iommu_type1\nvfio_pci\nvfio_virqfd\n",
        );

    f.devices = vec![
        host_bridge("00:00.0", 0x1480).group(0),
        // The AMD IOMMU's own function has no group.
        preset(
            bdf("00:00.2"),
            &ConfigBuilder::endpoint(amd, DeviceId(0x1481), ClassCode::from_u32(0x080600)),
        ),
        host_bridge("00:01.0", 0x1482).group(1),
        FixtureDevice::root_port(bdf("00:01.2"), 0x02)
            .group(2)
            .driver("pcieport"),
        preset(
            bdf("02:00.0"),
            &ConfigBuilder::bridge(amd, DeviceId(0x57ad), 0x02, 0x03, 0x06)
                .with_pm(false)
                .with_pcie(PortType::UpstreamPort, false),
        )
        .parent(bdf("00:01.2"))
        .group(3)
        .driver("pcieport"),
        downstream("03:01.0", 0x04, 0x57a3).group(4),
        downstream("03:02.0", 0x05, 0x57a3).group(5),
        downstream("03:03.0", 0x06, 0x57a4).group(6),
        preset(bdf("04:00.0"), &i211)
            .parent(bdf("03:01.0"))
            .group(7)
            .driver("igb")
            .reset_method("flr pm bus"),
        preset(bdf("05:00.0"), &gtx760)
            .parent(bdf("03:02.0"))
            .group(8)
            .driver("vfio-pci")
            .reset_method("bus")
            .boot_vga(false)
            .rom(),
        preset(bdf("05:00.1"), &gk104_audio)
            .parent(bdf("03:02.0"))
            .group(9)
            .driver("vfio-pci"),
        preset(bdf("06:00.0"), &usb)
            .parent(bdf("03:03.0"))
            .group(10)
            .driver("xhci_hcd")
            .reset_method("pm bus"),
        host_bridge("00:03.0", 0x1482).group(11),
        FixtureDevice::root_port(bdf("00:03.1"), 0x0b)
            .group(12)
            .driver("pcieport"),
        preset(bdf("0b:00.0"), &fiji)
            .parent(bdf("00:03.1"))
            .group(13)
            .driver("amdgpu")
            .reset_method("bus")
            .boot_vga(true)
            .rom(),
        preset(bdf("0b:00.1"), &fiji_audio)
            .parent(bdf("00:03.1"))
            .group(14)
            .driver("snd_hda_intel")
            .reset_method("pm"),
    ];
    f
}
