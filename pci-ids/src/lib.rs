//! PCI identifiers, config-space and capability decoding, and `pci.ids` lookup.
//!
//! `#![no_std]` and allocation-free by default; the `alloc` feature adds an index
//! for fast `pci.ids` lookups and the `std` feature adds a loader for the
//! database file. Every parser here takes untrusted bytes: after its length
//! check no accessor panics, and every walk is bounded.
//!
//! ```
//! use passthru_pci_ids::Bdf;
//! let bdf: Bdf = "0b:00.0".parse().unwrap();
//! assert_eq!(bdf.to_string(), "0000:0b:00.0");
//! ```
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod ids;

pub use ids::{Bdf, ClassCode, DeviceId, IdError, Slot, VendorId};
