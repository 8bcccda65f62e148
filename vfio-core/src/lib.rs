//! Safe wrappers over the VFIO ioctls (container/group and iommufd), DMA mapping
//! guards, a vfio-pci binding guard, and `verify`: the sequence a VMM runs on a
//! device, reported as data.
//!
//! Layers, bottom up:
//! - [`sys`]: the kernel seam. One trait, [`VfioSys`], with a method per kernel call
//!   (open, ioctl, pread/pwrite, close); [`RealSys`] is the only `unsafe` code.
//! - [`info`]: pure, bounded parsers of the kernel's variable-size answers.
//! - [`container`], [`group`], [`device`], [`iommufd`]: typed, `Arc`-shared handles
//!   (clone to share; `Send + Sync` when the seam is) that close their fds when the
//!   last clone drops.
//! - [`dma`]: DMA spaces that own the memory they map, by IOVA, and unmap on drop.
//! - [`bind`]: `driver_override` binding that restores the original driver.
//! - [`verify`](mod@verify): the whole sequence, as a serializable report.
//!
//! ```no_run
//! use passthru_vfio_core::{verify, RealSys, SysfsRoot, VerifyOptions};
//! let root = std::path::Path::new("/");
//! let opts = VerifyOptions::new(root, "0000:0b:00.0".parse().unwrap());
//! let sys = std::sync::Arc::new(RealSys::new());
//! let report = verify::verify(&sys, &SysfsRoot::new(root), &opts).unwrap();
//! println!("dma map: {}, reset: {}", report.dma_map, report.reset.device_reset);
//! ```
#![deny(unsafe_code)]

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
pub mod sys;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod verify;

pub use bind::{BindGuard, PciSysfs, RestoreFailure, RestoreLog, SysfsRoot};
pub use container::{Container, Extension, Extensions, Type1Space};
pub use device::{Device, IrqFlags, IrqIndex, IrqInfo, MappedArea, RegionMap};
pub use dma::{DmaMemory, DmaRange, DmaSpace, OwnedDma};
pub use error::{Blocker, Error, Result};
pub use group::{Group, GroupFlags, GroupStatus};
pub use iommufd::{Ioas, Iommufd};
#[cfg(feature = "testing")]
pub use sys::MockVfioSys;
pub use sys::{
    EventFd, Fd, IovaRange, IrqAction, IrqData, IrqSet, RealSys, TrustedVfioSys, VfioSys,
};
pub use verify::{
    verify, Api, ApiChoice, Finding, ResetReport, Severity, VerifyOptions, VerifyReport,
};
