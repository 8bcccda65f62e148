//! Generated config spaces for fuzzers and property tests (features `arbitrary` and
//! `proptest`): [`GenDevice`] describes a valid-but-varied PCI function (a type 0 or
//! type 1 header, a capability chain drawn from PM, MSI, MSI-X, PCI Express, Advanced
//! Features and vendor-specific, and for PCI Express devices an extended chain drawn
//! from ACS, AER, ARI, ATS, SR-IOV, Resizable BAR, DSN, PASID, PRI, DPC, LTR and L1 PM
//! substates), and [`GenDevice::config`] builds its bytes with
//! [`ConfigBuilder`].
//!
//! "Valid" means what a device that follows the PCI and PCIe specifications could
//! show: a vendor id that is not 0x0000 or 0xffff; bus numbers with primary <
//! secondary <= subordinate; each capability at most once; a PCI Express port type that
//! matches the header type (endpoints on type 0, ports and bridges on type 1); slots
//! only on root and downstream ports; PM whenever there is a PCI Express capability;
//! extended capabilities only on PCI Express devices (4096-byte config space) and only
//! those their kind may have (SR-IOV, ARI, ATS, PASID, PRI and Resizable BAR on
//! endpoints, DPC on root and downstream ports); MSI-X tables and PBAs in a BAR the
//! header has, without overlapping; ACS control bits a subset of its capability bits.
//! Everything fits, so building never fails (this crate's tests check that every
//! generated device builds and decodes back to what was asked).
//!
//! Both features draw from the same generator, [`GenDevice::generate`], through a
//! [`Choices`] source: `arbitrary::Unstructured` bytes ([`FromUnstructured`]) or a list
//! of numbers a proptest strategy shrinks toward zero ([`FromWords`]; zero choices give
//! the simplest device: an endpoint without capabilities).
//!
//! A fuzz target of another project (cargo-fuzz with `libfuzzer-sys`; depend on this
//! crate with `features = ["arbitrary"]`) takes a device as its input:
//!
//! ```ignore
//! #![no_main]
//! use libfuzzer_sys::fuzz_target;
//! use passthru_pci_ids::generate::GenDevice;
//!
//! fuzz_target!(|dev: GenDevice| {
//!     let bytes = dev.config().expect("generated devices always build");
//!     my_vmm::pci::parse_config_space(&bytes); // the code under test
//! });
//! ```
//!
//! which is, for each input the fuzzer makes:
//!
//! ```
//! # #[cfg(feature = "arbitrary")] {
//! use arbitrary::{Arbitrary, Unstructured};
//! use passthru_pci_ids::generate::GenDevice;
//! use passthru_pci_ids::ConfigSpace;
//!
//! let fuzzer_bytes = [0x5a_u8; 200];
//! let dev = GenDevice::arbitrary(&mut Unstructured::new(&fuzzer_bytes)).unwrap();
//! let bytes = dev.config().unwrap();
//! let cfg = ConfigSpace::new_checked(&bytes[..]).unwrap();
//! assert_eq!(cfg.vendor_id(), dev.vendor);
//! # }
//! ```
//!
//! A property test of another project (`features = ["proptest"]`) draws devices with
//! `any::<GenDevice>()` (or `generate::strategy()`); failures shrink toward fewer capabilities:
//!
//! ```
//! # #[cfg(feature = "proptest")] {
//! use passthru_pci_ids::generate::GenDevice;
//! use passthru_pci_ids::ConfigSpace;
//! use proptest::prelude::*;
//! use proptest::test_runner::TestRunner;
//!
//! // In a test file this is `proptest! { #[test] fn walks_end(dev in any::<GenDevice>()) { .. } }`.
//! TestRunner::default()
//!     .run(&any::<GenDevice>(), |dev| {
//!         let bytes = dev.config().unwrap();
//!         let cfg = ConfigSpace::new_checked(&bytes[..]).unwrap();
//!         prop_assert!(cfg.capabilities().all(|c| c.is_ok()));
//!         Ok(())
//!     })
//!     .unwrap();
//! # }
//! ```

use alloc::vec::Vec;

use crate::builder::{BuildError, ConfigBuilder};
use crate::caps::{AcsFlags, CapabilityId, ExtCapabilityId, PortType};
use crate::{ClassCode, DeviceId, VendorId};

/// Where a generator's choices come from.
pub trait Choices {
    /// A number in `0..n` (`n > 0`); 0 once the source is exhausted.
    fn below(&mut self, n: u32) -> u32;

    /// A coin flip (`false` once exhausted).
    fn flip(&mut self) -> bool {
        self.below(2) == 1
    }

    /// Any `u16`.
    fn u16(&mut self) -> u16 {
        self.below(1 << 16) as u16
    }

    /// Any `u32` (two draws).
    fn u32(&mut self) -> u32 {
        (self.below(1 << 16) << 16) | self.below(1 << 16)
    }

    /// The items of `all` that a coin flip keeps, in an order the source picks.
    fn subset<T: Copy>(&mut self, all: &[T]) -> Vec<T> {
        let mut out: Vec<T> = all.iter().copied().filter(|_| self.flip()).collect();
        for i in (1..out.len()).rev() {
            let j = self.below(i as u32 + 1) as usize;
            out.swap(i, j);
        }
        out
    }
}

/// Choices read from a list of numbers, each taken modulo the range asked for; zeros
/// after the end. What a proptest strategy over `Vec<u32>` feeds the generator.
#[derive(Debug)]
pub struct FromWords<'a> {
    words: &'a [u32],
    at: usize,
}

impl<'a> FromWords<'a> {
    /// Choices from `words`, first to last.
    pub fn new(words: &'a [u32]) -> Self {
        FromWords { words, at: 0 }
    }
}

impl Choices for FromWords<'_> {
    fn below(&mut self, n: u32) -> u32 {
        let w = self.words.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        w % n.max(1)
    }
}

/// Choices from a seed (splitmix64): the same seed gives the same device, for
/// deterministic tests that need many varied devices without a fuzzer.
#[derive(Debug, Clone)]
pub struct FromSeed(u64);

impl FromSeed {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        FromSeed(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `n` bytes of the stream: fuzzer-like input for `arbitrary::Unstructured`.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }
}

impl Choices for FromSeed {
    fn below(&mut self, n: u32) -> u32 {
        (self.next() >> 32) as u32 % n.max(1)
    }
}

/// Choices read from a fuzzer's bytes (`arbitrary::Unstructured`); 0 once they run out.
#[cfg(feature = "arbitrary")]
#[derive(Debug)]
pub struct FromUnstructured<'a, 'b>(pub &'b mut arbitrary::Unstructured<'a>);

#[cfg(feature = "arbitrary")]
impl Choices for FromUnstructured<'_, '_> {
    fn below(&mut self, n: u32) -> u32 {
        self.0.int_in_range(0..=n.max(1) - 1).unwrap_or(0)
    }
}

/// The header of a generated device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenHeader {
    /// Type 0 with its class code (never a PCI-to-PCI bridge class).
    Endpoint(ClassCode),
    /// Type 1 (class 0604) with its bus numbers: primary < secondary <= subordinate.
    Bridge {
        /// Primary bus.
        primary: u8,
        /// Secondary bus.
        secondary: u8,
        /// Subordinate bus.
        subordinate: u8,
    },
}

/// A standard capability of a generated device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenCap {
    /// Power Management, with or without No_Soft_Reset.
    Pm {
        /// PMCSR No_Soft_Reset.
        no_soft_reset: bool,
    },
    /// MSI with `2^vectors_log2` vectors (0..=5).
    Msi {
        /// Multiple Message Capable.
        vectors_log2: u8,
        /// 64-bit addresses.
        is_64bit: bool,
    },
    /// MSI-X: table and PBA in BARs the header has, not overlapping.
    MsiX {
        /// Entries (1..=2048).
        table_size: u16,
        /// Table BIR.
        table_bar: u8,
        /// Table offset (4 KiB aligned).
        table_offset: u32,
        /// PBA BIR.
        pba_bar: u8,
        /// PBA offset (4 KiB aligned).
        pba_offset: u32,
    },
    /// PCI Express, with a port type that matches the header.
    Pcie {
        /// Device/port type.
        port_type: PortType,
        /// Function Level Reset (endpoints only).
        flr: bool,
        /// Slot number and hot-plug (root and downstream ports only).
        slot: Option<(u16, bool)>,
        /// ARI Forwarding Supported (root and downstream ports only).
        ari_forwarding: bool,
    },
    /// Advanced Features.
    Af {
        /// Transactions Pending.
        tp: bool,
        /// FLR.
        flr: bool,
    },
    /// Vendor-specific, `length` bytes (3..=32).
    VendorSpecific {
        /// Length byte.
        length: u8,
    },
}

/// An extended capability of a generated PCI Express device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenExtCap {
    /// ACS; `control` is a subset of `capability`.
    Acs {
        /// ACS Capability register.
        capability: AcsFlags,
        /// ACS Control register.
        control: AcsFlags,
    },
    /// AER.
    Aer,
    /// ARI.
    Ari {
        /// Next Function Number.
        next_function: u8,
    },
    /// ATS.
    Ats,
    /// SR-IOV; `num_vfs <= total_vfs`, offset and stride at least 1.
    SrIov {
        /// TotalVFs (1..=256).
        total_vfs: u16,
        /// NumVFs.
        num_vfs: u16,
        /// First VF Offset.
        first_vf_offset: u16,
        /// VF Stride.
        vf_stride: u16,
        /// VF Device ID.
        vf_device: DeviceId,
    },
    /// Resizable BAR with one entry; `current` is one of the supported sizes.
    Rebar {
        /// BAR index.
        bar: u8,
        /// Supported sizes (bit n: 1 MiB << n), not empty.
        supported_mib_mask: u32,
        /// Current size (log2 MiB).
        current: u8,
    },
    /// Device Serial Number.
    Dsn(u64),
    /// PASID.
    Pasid {
        /// Max PASID Width (0..=20).
        max_width: u8,
    },
    /// PRI.
    Pri {
        /// Outstanding Page Request Capacity.
        capacity: u32,
    },
    /// DPC (root and downstream ports only).
    Dpc,
    /// LTR.
    Ltr {
        /// Max Snoop Latency (value and scale).
        snoop: u16,
        /// Max No-Snoop Latency.
        no_snoop: u16,
    },
    /// L1 PM Substates.
    L1pm {
        /// L1 PM Substates Capabilities register.
        capabilities: u32,
    },
}

/// A generated PCI function: see the [module documentation](self) for what "valid"
/// means here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenDevice {
    /// Vendor id (never 0x0000 or 0xffff).
    pub vendor: VendorId,
    /// Device id (never 0xffff).
    pub device: DeviceId,
    /// Revision.
    pub revision: u8,
    /// Multifunction bit.
    pub multifunction: bool,
    /// Header type and its fields.
    pub header: GenHeader,
    /// The capability chain, in order.
    pub caps: Vec<GenCap>,
    /// The extended capability chain, in order (empty unless there is a PCI Express
    /// capability).
    pub ext_caps: Vec<GenExtCap>,
}

const STD_KINDS: [u8; 6] = [0, 1, 2, 3, 4, 5];
const EXT_KINDS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

impl GenDevice {
    /// Generate a device from `c` (all-zero choices: an endpoint without capabilities).
    pub fn generate(c: &mut impl Choices) -> GenDevice {
        GenDevice::generate_inner(c, true)
    }

    /// Generate a device with a type 0 header (a function, not a bridge): what sits
    /// below a root port in a generated host.
    pub fn generate_endpoint(c: &mut impl Choices) -> GenDevice {
        GenDevice::generate_inner(c, false)
    }

    fn generate_inner(c: &mut impl Choices, allow_bridge: bool) -> GenDevice {
        let vendor = VendorId(1 + c.below(0xfffe) as u16);
        let device = DeviceId(c.below(0xffff) as u16);
        let revision = c.below(256) as u8;
        let multifunction = c.flip();
        let header = if allow_bridge && c.below(4) == 3 {
            let primary = c.below(255) as u8;
            let secondary = primary + 1 + c.below(u32::from(254 - primary) + 1) as u8;
            let subordinate = secondary + c.below(u32::from(255 - secondary) + 1) as u8;
            GenHeader::Bridge {
                primary,
                secondary,
                subordinate,
            }
        } else {
            let class = c.below(0x13) as u8;
            let mut subclass = c.below(0x10) as u8;
            if class == 0x06 && matches!(subclass, 0x04 | 0x09) {
                subclass = 0x80; // a bridge class belongs to a type 1 header
            }
            GenHeader::Endpoint(ClassCode {
                class,
                subclass,
                prog_if: c.below(256) as u8,
            })
        };
        let bridge = matches!(header, GenHeader::Bridge { .. });
        // A type 1 header has BAR0 and BAR1 only.
        let bars = if bridge { 2 } else { 6 };

        let mut kinds = c.subset(&STD_KINDS);
        // PCI Express functions must have PM (PCIe base spec, 7.5.2).
        if kinds.contains(&3) && !kinds.contains(&0) {
            kinds.push(0);
        }
        let mut port = None;
        let caps: Vec<GenCap> = kinds
            .into_iter()
            .map(|k| match k {
                0 => GenCap::Pm {
                    no_soft_reset: c.flip(),
                },
                1 => GenCap::Msi {
                    vectors_log2: c.below(6) as u8,
                    is_64bit: c.flip(),
                },
                2 => {
                    let table_size = 1 + c.below(2048) as u16;
                    let table_bar = c.below(bars) as u8;
                    let table_offset = c.below(64) * 0x1000;
                    let table_pages = (u32::from(table_size) * 16).div_ceil(0x1000);
                    let pba_bar = c.below(bars) as u8;
                    let pba_offset = if pba_bar == table_bar {
                        table_offset + (table_pages + c.below(4)) * 0x1000
                    } else {
                        c.below(64) * 0x1000
                    };
                    GenCap::MsiX {
                        table_size,
                        table_bar,
                        table_offset,
                        pba_bar,
                        pba_offset,
                    }
                }
                3 => {
                    let types: &[PortType] = if bridge {
                        &[
                            PortType::RootPort,
                            PortType::UpstreamPort,
                            PortType::DownstreamPort,
                            PortType::PcieToPciBridge,
                            PortType::PciToPcieBridge,
                        ]
                    } else {
                        &[
                            PortType::Endpoint,
                            PortType::LegacyEndpoint,
                            PortType::RcIntegratedEndpoint,
                            PortType::RcEventCollector,
                        ]
                    };
                    let port_type = types[c.below(types.len() as u32) as usize];
                    port = Some(port_type);
                    let downstream =
                        matches!(port_type, PortType::RootPort | PortType::DownstreamPort);
                    GenCap::Pcie {
                        port_type,
                        flr: !bridge && c.flip(),
                        slot: (downstream && c.flip()).then(|| (c.below(0x2000) as u16, c.flip())),
                        ari_forwarding: downstream && c.flip(),
                    }
                }
                4 => GenCap::Af {
                    tp: c.flip(),
                    flr: c.flip(),
                },
                _ => GenCap::VendorSpecific {
                    length: 3 + c.below(30) as u8,
                },
            })
            .collect();

        let ext_caps = match port {
            None => Vec::new(),
            Some(port) => {
                let allowed: Vec<u8> = EXT_KINDS
                    .iter()
                    .copied()
                    .filter(|k| match k {
                        // ARI, ATS, SR-IOV, Resizable BAR, PASID, PRI: functions.
                        2..=5 | 7 | 8 => !bridge,
                        9 => matches!(port, PortType::RootPort | PortType::DownstreamPort),
                        _ => true,
                    })
                    .collect();
                c.subset(&allowed)
                    .into_iter()
                    .map(|k| match k {
                        0 => {
                            let capability = AcsFlags::from_bits_truncate(c.below(0x80) as u16);
                            let control =
                                capability & AcsFlags::from_bits_truncate(c.below(0x80) as u16);
                            GenExtCap::Acs {
                                capability,
                                control,
                            }
                        }
                        1 => GenExtCap::Aer,
                        2 => GenExtCap::Ari {
                            next_function: c.below(256) as u8,
                        },
                        3 => GenExtCap::Ats,
                        4 => {
                            let total_vfs = 1 + c.below(256) as u16;
                            GenExtCap::SrIov {
                                total_vfs,
                                num_vfs: c.below(u32::from(total_vfs) + 1) as u16,
                                first_vf_offset: 1 + c.below(255) as u16,
                                vf_stride: 1 + c.below(16) as u16,
                                vf_device: DeviceId(c.below(0xffff) as u16),
                            }
                        }
                        5 => {
                            let supported_mib_mask = 1 + c.below(0x0fff_ffff);
                            let set: Vec<u8> = (0..28)
                                .filter(|n| supported_mib_mask & (1 << n) != 0)
                                .collect();
                            GenExtCap::Rebar {
                                bar: c.below(6) as u8,
                                supported_mib_mask,
                                current: set[c.below(set.len() as u32) as usize],
                            }
                        }
                        6 => GenExtCap::Dsn((u64::from(c.u32()) << 32) | u64::from(c.u32())),
                        7 => GenExtCap::Pasid {
                            max_width: c.below(21) as u8,
                        },
                        8 => GenExtCap::Pri { capacity: c.u32() },
                        9 => GenExtCap::Dpc,
                        10 => GenExtCap::Ltr {
                            snoop: c.below(0x2000) as u16,
                            no_snoop: c.below(0x2000) as u16,
                        },
                        _ => GenExtCap::L1pm {
                            capabilities: c.below(1 << 24),
                        },
                    })
                    .collect()
            }
        };
        GenDevice {
            vendor,
            device,
            revision,
            multifunction,
            header,
            caps,
            ext_caps,
        }
    }

    /// Whether the device has a PCI Express capability (and so 4096 bytes of config
    /// space).
    pub fn is_pcie(&self) -> bool {
        self.caps.iter().any(|c| matches!(c, GenCap::Pcie { .. }))
    }

    /// The capability ids of [`GenDevice::caps`], in chain order.
    pub fn cap_ids(&self) -> Vec<CapabilityId> {
        self.caps
            .iter()
            .map(|c| match c {
                GenCap::Pm { .. } => CapabilityId::PowerManagement,
                GenCap::Msi { .. } => CapabilityId::Msi,
                GenCap::MsiX { .. } => CapabilityId::MsiX,
                GenCap::Pcie { .. } => CapabilityId::PciExpress,
                GenCap::Af { .. } => CapabilityId::AdvancedFeatures,
                GenCap::VendorSpecific { .. } => CapabilityId::VendorSpecific,
            })
            .collect()
    }

    /// The extended capability ids of [`GenDevice::ext_caps`], in chain order.
    pub fn ext_cap_ids(&self) -> Vec<ExtCapabilityId> {
        self.ext_caps
            .iter()
            .map(|c| match c {
                GenExtCap::Acs { .. } => ExtCapabilityId::Acs,
                GenExtCap::Aer => ExtCapabilityId::Aer,
                GenExtCap::Ari { .. } => ExtCapabilityId::Ari,
                GenExtCap::Ats => ExtCapabilityId::Ats,
                GenExtCap::SrIov { .. } => ExtCapabilityId::SrIov,
                GenExtCap::Rebar { .. } => ExtCapabilityId::ResizableBar,
                GenExtCap::Dsn(_) => ExtCapabilityId::Dsn,
                GenExtCap::Pasid { .. } => ExtCapabilityId::Pasid,
                GenExtCap::Pri { .. } => ExtCapabilityId::Pri,
                GenExtCap::Dpc => ExtCapabilityId::Dpc,
                GenExtCap::Ltr { .. } => ExtCapabilityId::Ltr,
                GenExtCap::L1pm { .. } => ExtCapabilityId::L1PmSubstates,
            })
            .collect()
    }

    /// The device as a [`ConfigBuilder`] (4096 bytes for a PCI Express device, else
    /// 256).
    pub fn builder(&self) -> ConfigBuilder {
        let mut b = match self.header {
            GenHeader::Endpoint(class) => ConfigBuilder::endpoint(self.vendor, self.device, class),
            GenHeader::Bridge {
                primary,
                secondary,
                subordinate,
            } => ConfigBuilder::bridge(self.vendor, self.device, primary, secondary, subordinate),
        }
        .with_revision(self.revision);
        if self.multifunction {
            b = b.with_multifunction();
        }
        for cap in &self.caps {
            b = match *cap {
                GenCap::Pm { no_soft_reset } => b.with_pm(no_soft_reset),
                GenCap::Msi {
                    vectors_log2,
                    is_64bit,
                } => b.with_msi(vectors_log2, is_64bit),
                GenCap::MsiX {
                    table_size,
                    table_bar,
                    table_offset,
                    pba_bar,
                    pba_offset,
                } => b.with_msix(table_size, table_bar, table_offset, pba_bar, pba_offset),
                GenCap::Pcie {
                    port_type,
                    flr,
                    slot,
                    ari_forwarding,
                } => {
                    let mut b = b.with_pcie(port_type, flr);
                    if let Some((n, hot_plug)) = slot {
                        b = b.with_pcie_slot(n, hot_plug);
                    }
                    b.with_ari_forwarding(ari_forwarding)
                }
                GenCap::Af { tp, flr } => b.with_af(tp, flr),
                GenCap::VendorSpecific { length } => b.with_vendor_specific(length),
            };
        }
        for ext in &self.ext_caps {
            b = match *ext {
                GenExtCap::Acs {
                    capability,
                    control,
                } => b.with_acs(capability, control),
                GenExtCap::Aer => b.with_aer(),
                GenExtCap::Ari { next_function } => b.with_ari(next_function),
                GenExtCap::Ats => b.with_ats(),
                GenExtCap::SrIov {
                    total_vfs,
                    num_vfs,
                    first_vf_offset,
                    vf_stride,
                    vf_device,
                } => b.with_sriov(total_vfs, num_vfs, first_vf_offset, vf_stride, vf_device),
                GenExtCap::Rebar {
                    bar,
                    supported_mib_mask,
                    current,
                } => b.with_rebar(bar, supported_mib_mask, current),
                GenExtCap::Dsn(s) => b.with_dsn(s),
                GenExtCap::Pasid { max_width } => b.with_pasid(max_width),
                GenExtCap::Pri { capacity } => b.with_pri(capacity),
                GenExtCap::Dpc => b.with_dpc(),
                GenExtCap::Ltr { snoop, no_snoop } => b.with_ltr(snoop, no_snoop),
                GenExtCap::L1pm { capabilities } => b.with_l1pm(capabilities),
            };
        }
        b.with_config_len(if self.is_pcie() { 4096 } else { 256 })
    }

    /// The config space bytes.
    ///
    /// # Errors
    ///
    /// The builder's error; never for a device [`GenDevice::generate`] made (every
    /// chain it generates fits), only for one edited by hand.
    pub fn config(&self) -> Result<Vec<u8>, BuildError> {
        self.builder().bytes().map(<[u8]>::to_vec)
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for GenDevice {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(GenDevice::generate(&mut FromUnstructured(u)))
    }
}

/// The proptest strategy: numbers a shrinker drives toward zero (fewer, simpler
/// capabilities), fed to [`GenDevice::generate`].
#[cfg(feature = "proptest")]
pub fn strategy() -> impl proptest::strategy::Strategy<Value = GenDevice> + Clone {
    use proptest::strategy::Strategy;
    proptest::collection::vec(proptest::num::u32::ANY, 0..160)
        .prop_map(|w| GenDevice::generate(&mut FromWords::new(&w)))
}

#[cfg(feature = "proptest")]
impl proptest::arbitrary::Arbitrary for GenDevice {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<GenDevice>;
    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::strategy::Strategy;
        strategy().boxed()
    }
}
