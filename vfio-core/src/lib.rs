//! Safe wrappers over the VFIO ioctls (container/group and iommufd): owned DMA
//! mappings, interrupts through eventfds, device regions, a vfio-pci binding guard, and
//! `verify`: the sequence a VMM runs on a device, reported as data.
//!
//! Layers, bottom up:
//! - [`sys`]: the kernel seam. One trait, [`VfioSys`], with a method per kernel call
//!   (open, ioctl, pread/pwrite, close); [`RealSys`] is the only `unsafe` code. Calls
//!   added later are provided methods (answering `ENOTTY`), so implementations outside
//!   this crate keep compiling.
//! - [`info`]: pure, bounded parsers of the kernel's variable-size answers.
//! - [`container`], [`group`], [`device`], [`iommufd`]: typed, `Arc`-shared handles
//!   (clone to share; `Send + Sync` when the seam is) that close their fds when the
//!   last clone drops.
//! - [`dma`]: DMA spaces that own the memory they map, by IOVA, and unmap on drop.
//! - [`bind`]: `driver_override` binding that restores the original driver.
//! - [`verify`](mod@verify): the whole sequence, as a serializable report.
//! - `kvm` (feature `kvm`): KVM's VFIO pseudo-device on a VM fd the caller owns.
//! - `testing` (feature `testing`): a mockall mock of the seam and a fake kernel,
//!   `FakeVfio`, for downstream tests.
//!
//! ```no_run
//! use passthru_vfio_core::{verify, RealSys, SysfsRoot, VerifyOptions};
//! let root = std::path::Path::new("/");
//! let opts = VerifyOptions::new(root, "0000:0b:00.0".parse().unwrap());
//! let sys = std::sync::Arc::new(RealSys::new());
//! let report = verify::verify(&sys, &SysfsRoot::new(root), &opts).unwrap();
//! println!("dma map: {}, reset: {}", report.dma_map, report.reset.device_reset);
//! ```
//!
//! A VMM keeps the handles and its DMA mappings in its own structs (nothing borrows),
//! wires MSI-X to eventfds and hands BAR mappings to KVM:
//!
//! ```no_run
//! use std::os::fd::AsFd;
//! use std::sync::Arc;
//! use passthru_vfio_core::{
//!     Container, Device, EventFd, Extension, Group, IrqIndex, OwnedDma, RealSys, RegionMap,
//!     Type1Space,
//! };
//! use vm_memory::MmapRegion;
//!
//! /// One assigned device: the handles keep each other open; the space owns the
//! /// mapped guest memory until it has unmapped it.
//! struct Assigned {
//!     device: Device,
//!     dma: Type1Space,
//!     msix: Vec<EventFd>,
//!     bar0: RegionMap,
//! }
//!
//! fn assign(
//!     group_id: u32,
//!     bdf: &str,
//!     guest_ram: Arc<MmapRegion<()>>,
//! ) -> Result<Assigned, Box<dyn std::error::Error>> {
//!     let sys = Arc::new(RealSys::new());
//!     let root = std::path::Path::new("/");
//!     let container = Container::open(&sys, &root.join("dev/vfio/vfio"))?;
//!     let group = Group::open(&sys, root, group_id)?;
//!     group.set_container(&container)?;
//!     container.set_iommu(Extension::Type1v2)?;
//!     let dma = container.dma_space()?;
//!     dma.map(guest_ram, 0, true)?; // guest RAM at IOVA = guest physical address 0
//!     let device = group.device(bdf)?;
//!     let vectors = device.irq_info(IrqIndex::Msix.raw())?.count;
//!     let msix = (0..vectors).map(|_| EventFd::new()).collect::<Result<Vec<_>, _>>()?;
//!     let fds: Vec<_> = msix.iter().map(|e| Some(e.as_fd())).collect();
//!     device.enable_msix(&fds)?; // each eventfd then goes to KVM_IRQFD
//!     let bar0 = device.mmap_region(0)?;
//!     for area in bar0.areas() {
//!         // KVM_SET_USER_MEMORY_REGION: userspace_addr = area.as_ptr(), memory_size =
//!         // area.len(), at the BAR's guest address + area.region_offset().
//!         let _ = (area.as_ptr(), area.len(), area.region_offset());
//!     }
//!     Ok(Assigned { device, dma, msix, bar0 })
//! }
//! ```
#![deny(unsafe_code)]

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod bind;
pub mod container;
pub mod device;
pub mod dma;
pub mod error;
pub mod group;
mod handle;
pub mod host;
pub mod info;
pub mod iommufd;
#[cfg(feature = "kvm")]
pub mod kvm;
pub mod sys;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod verify;

pub use bind::{BindGuard, PciSysfs, RestoreFailure, RestoreLog, SysfsRoot};
pub use container::{Container, Extension, Extensions, Type1Space};
pub use device::{Device, IrqFlags, IrqIndex, IrqInfo, MappedArea, RegionMap};
pub use dma::{DmaMemory, DmaRange, DmaSpace, OwnedDma};
pub use error::{Blocker, Error, HostPath, Result};
pub use group::{Group, GroupFlags, GroupStatus};
pub use iommufd::{Ioas, Iommufd};
#[cfg(feature = "testing")]
pub use sys::MockVfioSys;
pub use sys::{
    EventFd, Fd, IovaRange, IrqAction, IrqData, IrqSet, RealSys, TrustedVfioSys, VfioSys,
};
pub use verify::{
    verify, Api, ApiChoice, Finding, ResetReport, Severity, VerifyCode, VerifyOptions, VerifyReport,
};
