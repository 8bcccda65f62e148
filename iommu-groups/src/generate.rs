//! Generated host trees for fuzzers and property tests (features `arbitrary` and
//! `proptest`): [`GenHost`] is a [`Fixture`] built with this crate's fixture builder
//! from choices, with the facts it was built from.
//!
//! A generated host has a host bridge at 00:00.0, up to four PCIe root ports on bus 0
//! (each bridging to its own bus, with one to four functions below it, multifunction
//! when more than one), and up to two root-bus integrated endpoints. Every function's
//! config space is a [`GenDevice`] endpoint (valid-but-varied capability chains; see
//! `passthru_pci_ids::generate`). The CPU vendor and IOMMU vary (the vendor's IOMMU,
//! none, or only its firmware table); with an IOMMU, each port and integrated endpoint
//! has its own group, and the functions below a port share one group or have one each
//! (what a port without or with ACS on multifunction devices gives). Drivers,
//! `reset_method`, `boot_vga` for display functions and the kernel command line vary
//! too. [`Fixture::write`] lays it out; [`Host::load`](crate::Host::load) reads it.
//!
//! A fuzz target of another project (cargo-fuzz; `features = ["arbitrary"]`):
//!
//! ```ignore
//! #![no_main]
//! use libfuzzer_sys::fuzz_target;
//! use passthru_iommu_groups::generate::GenHost;
//!
//! fuzz_target!(|host: GenHost| {
//!     let dir = tempfile::tempdir().unwrap();
//!     host.fixture.write(dir.path()).unwrap();
//!     my_tool::scan_sysfs(dir.path()); // the code under test
//! });
//! ```
//!
//! and a property test (`features = ["proptest"]`):
//!
//! ```
//! # #[cfg(feature = "proptest")] {
//! use passthru_iommu_groups::generate::GenHost;
//! use passthru_iommu_groups::Host;
//! use proptest::prelude::*;
//! use proptest::test_runner::{Config, TestRunner};
//!
//! // In a test file: `proptest! { #[test] fn loads(host in any::<GenHost>()) { .. } }`.
//! TestRunner::new(Config::with_cases(8))
//!     .run(&any::<GenHost>(), |host| {
//!         let dir = tempfile::tempdir().unwrap();
//!         host.fixture.write(dir.path()).unwrap();
//!         let model = Host::load(dir.path()).unwrap();
//!         prop_assert_eq!(model.devices.len(), host.functions.len());
//!         Ok(())
//!     })
//!     .unwrap();
//! # }
//! ```

use passthru_pci_ids::builder::BuildError;
use passthru_pci_ids::generate::{Choices, GenDevice, GenHeader};
use passthru_pci_ids::{Bdf, ClassCode, DeviceId, VendorId};

use crate::fixture::{Fixture, FixtureDevice, IommuKind};
use crate::model::CpuVendor;

/// One function of a generated host, as generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenFunction {
    /// Address.
    pub bdf: Bdf,
    /// The bridge above it (`None`: on the root bus).
    pub parent: Option<Bdf>,
    /// Its IOMMU group (`None` without an active IOMMU).
    pub group: Option<u32>,
    /// Bound driver.
    pub driver: Option<String>,
    /// Its config space (`None` for the fixture's own presets: host bridge, root ports).
    pub device: Option<GenDevice>,
}

/// A generated host: the fixture to write and the functions it holds.
#[derive(Debug, Clone)]
pub struct GenHost {
    /// The host, ready for [`Fixture::write`].
    pub fixture: Fixture,
    /// Every function of [`GenHost::fixture`], in the order added.
    pub functions: Vec<GenFunction>,
}

const DRIVERS: [Option<&str>; 7] = [
    None,
    Some("vfio-pci"),
    Some("nvidia"),
    Some("amdgpu"),
    Some("snd_hda_intel"),
    Some("nvme"),
    Some("xhci_hcd"),
];
const RESETS: [&str; 3] = ["flr", "pm", "bus"];
const CMDLINE: [&str; 6] = [
    "quiet",
    "intel_iommu=on",
    "amd_iommu=on",
    "iommu=pt",
    "vfio-pci.ids=10de:1b80,10de:10f0",
    "pcie_acs_override=downstream,multifunction",
];

fn bdf(bus: u8, dev: u8, func: u8) -> Bdf {
    Bdf {
        domain: 0,
        bus,
        device: dev,
        function: func,
    }
}

impl GenHost {
    /// Generate a host from `c` (all-zero choices: an AMD host with its IOMMU, a host
    /// bridge and nothing else).
    ///
    /// # Errors
    ///
    /// A config builder's error ([`FixtureDevice::from_builder`]); never for the devices
    /// `passthru_pci_ids` generates (they always fit), but reported rather than a panic.
    pub fn generate(c: &mut impl Choices) -> Result<GenHost, BuildError> {
        let cpu = if c.flip() {
            CpuVendor::Intel
        } else {
            CpuVendor::Amd
        };
        let iommu = match (c.below(4), cpu) {
            (2, _) => IommuKind::None,
            (3, _) => IommuKind::FirmwareOnly,
            (_, CpuVendor::Intel) => IommuKind::Intel,
            _ => IommuKind::Amd,
        };
        let grouped = matches!(iommu, IommuKind::Intel | IommuKind::Amd);
        let mut next_group = 0u32;
        let mut new_group = || {
            let g = next_group;
            next_group += 1;
            grouped.then_some(g)
        };
        let mut functions = Vec::new();
        let mut devices = Vec::new();
        let mut push = |f: GenFunction, mut d: FixtureDevice| {
            if let Some(g) = f.group {
                d = d.group(g);
            }
            if let Some(p) = f.parent {
                d = d.parent(p);
            }
            if let Some(drv) = &f.driver {
                d = d.driver(drv);
            }
            devices.push(d);
            functions.push(f);
        };

        let host_bridge = passthru_pci_ids::builder::ConfigBuilder::endpoint(
            VendorId(if cpu == CpuVendor::Intel {
                0x8086
            } else {
                0x1022
            }),
            DeviceId(0x1480),
            ClassCode::from_u32(0x060000),
        );
        let hb = bdf(0, 0, 0);
        push(
            GenFunction {
                bdf: hb,
                parent: None,
                group: new_group(),
                driver: None,
                device: None,
            },
            FixtureDevice::from_builder(hb, &host_bridge)?,
        );

        for port in 0..c.below(5) as u8 {
            let at = bdf(0, port + 1, 0);
            let secondary = port + 1;
            push(
                GenFunction {
                    bdf: at,
                    parent: None,
                    group: new_group(),
                    driver: Some("pcieport".into()),
                    device: None,
                },
                FixtureDevice::root_port(at, secondary),
            );
            let n = 1 + c.below(4) as u8;
            let shared = (n > 1 && c.flip()).then(&mut new_group);
            for func in 0..n {
                let mut dev = GenDevice::generate_endpoint(c);
                dev.multifunction = n > 1;
                let group = match shared {
                    Some(g) => g,
                    None => new_group(),
                };
                let (f, d) = function(c, bdf(secondary, 0, func), Some(at), group, dev)?;
                push(f, d);
            }
        }
        for k in 0..c.below(3) as u8 {
            let dev = GenDevice::generate_endpoint(c);
            let group = new_group();
            let (f, d) = function(c, bdf(0, 0x10 + k, 0), None, group, dev)?;
            push(f, d);
        }

        let mut cmdline = String::from("root=/dev/sda1 ro");
        for t in c.subset(&CMDLINE) {
            cmdline.push(' ');
            cmdline.push_str(t);
        }
        let mut fixture = Fixture::new(cpu, iommu).cmdline(&cmdline);
        fixture.devices = devices;
        Ok(GenHost { fixture, functions })
    }
}

/// One generated endpoint with the attributes a host gives it.
fn function(
    c: &mut impl Choices,
    at: Bdf,
    parent: Option<Bdf>,
    group: Option<u32>,
    dev: GenDevice,
) -> Result<(GenFunction, FixtureDevice), BuildError> {
    let driver = DRIVERS[c.below(DRIVERS.len() as u32) as usize].map(String::from);
    let mut d = FixtureDevice::from_builder(at, &dev.builder())?;
    let resets = c.subset(&RESETS);
    if !resets.is_empty() {
        d = d.reset_method(&resets.join(" "));
    }
    if matches!(dev.header, GenHeader::Endpoint(class) if class.class == 0x03) {
        d = d.boot_vga(c.flip());
    }
    let f = GenFunction {
        bdf: at,
        parent,
        group,
        driver,
        device: Some(dev),
    };
    Ok((f, d))
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for GenHost {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        GenHost::generate(&mut passthru_pci_ids::generate::FromUnstructured(u))
            .map_err(|_| arbitrary::Error::IncorrectFormat)
    }
}

/// The proptest strategy: numbers a shrinker drives toward zero (fewer ports,
/// functions and capabilities), fed to [`GenHost::generate`].
#[cfg(feature = "proptest")]
pub fn strategy() -> impl proptest::strategy::Strategy<Value = GenHost> + Clone {
    use passthru_pci_ids::generate::FromWords;
    use proptest::strategy::Strategy;
    proptest::collection::vec(proptest::num::u32::ANY, 0..1200)
        .prop_filter_map("a builder error (never for generated devices)", |w| {
            GenHost::generate(&mut FromWords::new(&w)).ok()
        })
}

#[cfg(feature = "proptest")]
impl proptest::arbitrary::Arbitrary for GenHost {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<GenHost>;
    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::strategy::Strategy;
        strategy().boxed()
    }
}
