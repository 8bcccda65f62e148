//! passthru: will this PCI device pass through cleanly, and what must I configure?
//!
//! A facade over the workspace's layers:
//! [`pci_ids`] (identifiers, config space, pci.ids), [`iommu_groups`] (host model and
//! verdicts), [`vfio_core`] (VFIO verification) and [`config_gen`] (configuration).
#![forbid(unsafe_code)]

pub use passthru_config_gen as config_gen;
pub use passthru_iommu_groups as iommu_groups;
pub use passthru_pci_ids as pci_ids;
pub use passthru_vfio_core as vfio_core;

pub mod decode;
pub mod trial;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
