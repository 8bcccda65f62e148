//! PCI identifiers, config-space and capability decoding, and `pci.ids` lookup.
//!
//! `#![no_std]` and allocation-free by default; the `alloc` feature adds an index
//! for fast `pci.ids` lookups and the `std` feature adds a loader for the
//! database file. Every parser here takes untrusted bytes: after its length
//! check no accessor panics, and every walk is bounded.
//!
//! # API map
//!
//! - [`ids`]: [`Bdf`], [`Slot`], [`VendorId`], [`DeviceId`], [`ClassCode`] (`FromStr`/`Display`).
//! - [`config`]: [`ConfigSpace`] view over 64/256/4096 bytes (`new_checked`, lenient
//!   `new_prefix`) and its owned form [`config::HeaderRepr`] (`parse`/`emit`): header fields, [`config::Command`]/[`config::Status`]/
//!   [`config::BridgeControl`] bitflags, BARs, bridge buses, and the facts a
//!   passthrough check needs: [`ConfigSpace::flr`], [`ConfigSpace::af_flr`],
//!   [`ConfigSpace::pm_no_soft_reset`], [`ConfigSpace::pcie_port_type`],
//!   [`ConfigSpace::acs`], plus `find_capability`/`find_ext_capability`.
//! - [`caps`]: bounded walks ([`caps::Capabilities`], [`caps::ExtCapabilities`]) with
//!   errors as values, capability ids with `Unknown(raw)`, and one decoder per
//!   capability (PM, MSI, MSI-X, PCIe, AF, vendor-specific, EA, AER, ACS, ARI, ATS,
//!   SR-IOV, Resizable BAR, PASID, PRI, DPC, LTR, L1 PM substates, DSN, VSEC, DVSEC).
//! - [`builder`]: [`builder::ConfigBuilder`] makes synthetic config spaces.
//! - [`db`]: `pci.ids` parser over `&str` ([`db::PciIds`]), index with `alloc`
//!   (`db::PciIdsIndex`), file loader with `std` (`db::Database`, honouring
//!   `PASSTHRU_PCI_IDS`).
//! - [`dump`]: reader ([`dump::Dump`]) and writer ([`dump::write_device`]) of
//!   `lspci -x/-xxx/-xxxx` text dumps, the format `lspci -F` reads.
//! - `report` (feature `alloc`): the one `report::Severity` and `report::Finding`
//!   every passthru report uses. With `serde`, [`Bdf`] and the ids serialize as their
//!   lowercase text; with `schemars`, they and the report types have JSON Schemas.
//!
//! ```
//! use passthru_pci_ids::{Bdf, ConfigSpace};
//! let bdf: Bdf = "0b:00.0".parse().unwrap();
//! assert_eq!(bdf.to_string(), "0000:0b:00.0");
//!
//! // A real root port from a QEMU q35 guest (4096 bytes, as root reads sysfs `config`).
//! let bytes = include_bytes!("../tests/data/tcg-amd/0000-00-02.0.bin");
//! let cfg = ConfigSpace::new_checked(&bytes[..]).unwrap();
//! assert_eq!(cfg.vendor_id().to_string(), "1b36");
//! for cap in cfg.capabilities() {
//!     let cap = cap.unwrap();
//!     println!("{:#x} {}", cap.offset, cap.id.name());
//! }
//! ```
#![no_std]
#![forbid(unsafe_code)]
// Every public fallible function documents when it fails and when it panics.

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod builder;
pub mod caps;
pub mod config;
pub mod db;
pub mod dump;
#[cfg(any(feature = "arbitrary", feature = "proptest"))]
pub mod generate;
pub mod ids;
#[cfg(feature = "alloc")]
pub mod report;
#[cfg(feature = "serde")]
mod ser;

pub use config::{ConfigError, ConfigSpace};
pub use ids::{Bdf, ClassCode, DeviceId, IdError, Slot, VendorId};
