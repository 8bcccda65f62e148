//! A VMM's use of `passthru-vfio-core`, written as a crate outside the workspace would
//! write it, with no `unsafe` code at all (`forbid`): open the container or iommufd, the
//! group and the device, read region information, mmap every mmappable area of the BARs
//! and hand their host addresses to KVM, map guest memory for DMA into a space that owns
//! it, wire the MSI-X vectors to eventfds, reset, and drop everything in any order.
//!
//! It needs no `unsafe` because guest memory is mapped through the owned DMA API
//! ([`OwnedDma::map`] of an `Arc<GuestRegionMmap>`): the DMA space keeps the memory alive
//! until the kernel has unmapped it. The one DMA call with a safety contract,
//! `passthru_vfio_core::dma::map_raw` (an `unsafe fn` for host addresses the caller
//! answers for), is not needed for guest RAM. A VMM that must map memory it does not own
//! in Rust (a buffer from a C library, a shared-memory segment) would call it, under
//! `#![deny(unsafe_code)]` with one `#[allow(unsafe_code)]` at that call and a
//! `// SAFETY:` line saying who keeps the memory mapped until the unmap.
//!
//! The crate's tests run this sequence against vfio-core's fake kernel
//! (`passthru_vfio_core::testing::FakeVfio`, feature `testing`); [`RealSys`] is the
//! default seam for the real kernel.
//!
//! [`RealSys`]: passthru_vfio_core::RealSys
#![forbid(unsafe_code)]

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;

use passthru_vfio_core::info::RegionFlags;
use passthru_vfio_core::{
    Container, Device, EventFd, Extension, Group, HostPath, Ioas, Iommufd, IrqIndex, OwnedDma,
    RealSys, RegionMap, TrustedVfioSys, Type1Space,
};
use vm_memory::{GuestMemoryRegion, GuestRegionMmap};

/// What can go wrong: a VFIO call, or making an eventfd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A VFIO or iommufd call.
    #[error(transparent)]
    Vfio(#[from] passthru_vfio_core::Error),
    /// `eventfd(2)`.
    #[error("cannot make an eventfd for MSI-X vector {vector}: {source}")]
    EventFd {
        /// The vector.
        vector: u32,
        /// The errno.
        source: std::io::Error,
    },
}

/// The DMA side of an assigned device: a type1 container, or an iommufd IOAS.
#[derive(Debug)]
pub enum Dma<S: TrustedVfioSys + ?Sized = RealSys> {
    /// Legacy container/group API.
    Type1 {
        /// The container (`/dev/vfio/vfio`).
        container: Container<S>,
        /// The device's group (`/dev/vfio/N`).
        group: Group<S>,
        /// The container's type1 DMA space.
        space: Type1Space<S>,
    },
    /// iommufd with the device cdev.
    Iommufd {
        /// The IOAS the device is attached to (it keeps the iommufd open).
        ioas: Ioas<S>,
    },
}

impl<S: TrustedVfioSys + ?Sized> Dma<S> {
    /// Map `mem` at `iova`, owned by the space until it unmaps.
    fn map(&self, mem: Arc<GuestRegionMmap>, iova: u64) -> Result<(), Error> {
        match self {
            Dma::Type1 { space, .. } => space.map(mem, iova, true)?,
            Dma::Iommufd { ioas } => ioas.map(mem, iova, true)?,
        }
        Ok(())
    }

    /// Map `len` bytes of the guest RAM region `mem` from `offset` at `iova`, as a guest
    /// behind a vIOMMU asks for page by page; the space keeps one clone of `mem` for all
    /// the parts of it that are mapped.
    ///
    /// # Errors
    ///
    /// A part outside `mem`, or what the space's checks or the kernel refuse.
    pub fn map_page(
        &self,
        mem: &Arc<GuestRegionMmap>,
        offset: usize,
        len: usize,
        iova: u64,
    ) -> Result<(), Error> {
        match self {
            Dma::Type1 { space, .. } => space.map_part(mem, offset, len, iova, true)?,
            Dma::Iommufd { ioas } => ioas.map_part(mem, offset, len, iova, true)?,
        }
        Ok(())
    }

    /// Unmap the page mapped at `iova`; the size unmapped.
    ///
    /// # Errors
    ///
    /// No mapping starts at `iova`, or the kernel refuses.
    pub fn unmap_page(&self, iova: u64) -> Result<u64, Error> {
        Ok(match self {
            Dma::Type1 { space, .. } => space.unmap_drop(iova)?,
            Dma::Iommufd { ioas } => ioas.unmap_drop(iova)?,
        })
    }

    /// The mappings the space owns: (IOVA, size).
    pub fn mapped(&self) -> Vec<(u64, u64)> {
        match self {
            Dma::Type1 { space, .. } => space.mapped(),
            Dma::Iommufd { ioas } => ioas.mapped(),
        }
    }
}

/// One KVM memory slot for a mapped BAR area: what `KVM_SET_USER_MEMORY_REGION` needs
/// besides the slot number and the BAR's guest address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarSlot {
    /// The BAR's region index.
    pub region: u32,
    /// Where the area starts within the BAR (`guest_phys_addr` = BAR address + this).
    pub region_offset: u64,
    /// `userspace_addr`.
    pub host_addr: usize,
    /// `memory_size`.
    pub len: u64,
}

/// An assigned device: the handles, the DMA space owning guest memory, the mapped BARs
/// and the MSI-X eventfds, in one struct (nothing in it borrows anything else).
#[derive(Debug)]
pub struct Assigned<S: TrustedVfioSys + ?Sized = RealSys> {
    /// The device.
    pub device: Device<S>,
    /// Its DMA space.
    pub dma: Dma<S>,
    /// The mapped BARs (unmapped on drop).
    pub bars: Vec<RegionMap>,
    /// One eventfd per MSI-X vector (each goes to `KVM_IRQFD`).
    pub msix: Vec<EventFd>,
}

/// The BAR region indexes of a vfio-pci device (`VFIO_PCI_BAR0_REGION_INDEX` to
/// `VFIO_PCI_BAR5_REGION_INDEX`).
const BARS: std::ops::RangeInclusive<u32> = 0..=5;

impl<S: TrustedVfioSys + ?Sized> Assigned<S> {
    /// Open device `bdf` of group `group_id` through a new type1v2 container, everything
    /// under `root` (`/` on a host).
    ///
    /// # Errors
    ///
    /// The first VFIO call that fails (opening a node, attaching the group, setting the
    /// IOMMU type, getting the device fd).
    pub fn open_type1(sys: &Arc<S>, root: &Path, group_id: u32, bdf: &str) -> Result<Self, Error> {
        let container = Container::open(sys, HostPath::new(root, "dev/vfio/vfio"))?;
        let group = Group::open(sys, root, group_id)?;
        group.set_container(&container)?;
        container.set_iommu(Extension::Type1v2)?;
        let space = container.dma_space()?;
        let device = group.device(bdf)?;
        Ok(Assigned {
            device,
            dma: Dma::Type1 {
                container,
                group,
                space,
            },
            bars: Vec::new(),
            msix: Vec::new(),
        })
    }

    /// Open device `bdf` through its cdev (`ROOT/dev/vfio/devices/vfioX`), bound to a new
    /// iommufd and attached to a new IOAS.
    ///
    /// # Errors
    ///
    /// The first VFIO or iommufd call that fails.
    pub fn open_iommufd(sys: &Arc<S>, root: &Path, cdev: &str, bdf: &str) -> Result<Self, Error> {
        let iommufd = Iommufd::open(sys, HostPath::new(root, "dev/iommu"))?;
        let ioas = iommufd.alloc_ioas()?;
        let device = Device::open_cdev(
            sys,
            HostPath::new(root, Path::new("dev/vfio/devices").join(cdev)),
            bdf,
        )?;
        device.bind_iommufd(&iommufd, None)?;
        device.attach_ioas(&ioas)?;
        Ok(Assigned {
            device,
            dma: Dma::Iommufd { ioas },
            bars: Vec::new(),
            msix: Vec::new(),
        })
    }

    /// Map every guest RAM region for DMA at IOVA = its guest physical address; the DMA
    /// space keeps a clone of each `Arc` until it has unmapped it.
    ///
    /// # Errors
    ///
    /// The first mapping the kernel (or the space's own checks: alignment, IOVA ranges,
    /// overlap) refuses; the regions mapped before it stay mapped.
    pub fn map_guest_memory(&self, regions: &[Arc<GuestRegionMmap>]) -> Result<(), Error> {
        for r in regions {
            self.dma.map(r.clone(), r.start_addr().0)?;
        }
        Ok(())
    }

    /// mmap every mmappable area of every BAR (each sparse-mmap area of a BAR with a hole,
    /// such as an MSI-X table that may not be mapped) and return the KVM memory slots
    /// they make. BARs without `VFIO_REGION_INFO_FLAG_MMAP` (I/O ports) stay reachable
    /// through [`Device::read_region`]/[`Device::write_region`].
    ///
    /// # Errors
    ///
    /// A region-info call or an mmap the kernel refuses.
    pub fn map_bars(&mut self) -> Result<Vec<BarSlot>, Error> {
        let mut slots = Vec::new();
        for index in BARS {
            let info = self.device.region_info(index)?;
            if info.size == 0 || !info.flags.contains(RegionFlags::MMAP) {
                continue;
            }
            let map = self.device.mmap_region(index)?;
            for area in map.areas() {
                slots.push(BarSlot {
                    region: index,
                    region_offset: area.region_offset(),
                    host_addr: area.as_ptr() as usize,
                    len: area.len() as u64,
                });
            }
            self.bars.push(map);
        }
        Ok(slots)
    }

    /// Wire every MSI-X vector the device has to a new eventfd (`VFIO_DEVICE_SET_IRQS`,
    /// `DATA_EVENTFD | ACTION_TRIGGER`); returns the vector count.
    ///
    /// # Errors
    ///
    /// `VFIO_DEVICE_GET_IRQ_INFO` or `VFIO_DEVICE_SET_IRQS` failing, or no eventfd.
    pub fn wire_msix(&mut self) -> Result<u32, Error> {
        let count = self.device.irq_info(IrqIndex::Msix.raw())?.count;
        let fds = (0..count)
            .map(|vector| EventFd::new().map_err(|source| Error::EventFd { vector, source }))
            .collect::<Result<Vec<_>, _>>()?;
        let borrowed: Vec<_> = fds.iter().map(|e| Some(e.as_fd())).collect();
        self.device.enable_msix(&borrowed)?;
        self.msix = fds;
        Ok(count)
    }

    /// `VFIO_DEVICE_RESET`.
    ///
    /// # Errors
    ///
    /// The kernel's answer (`EINVAL` for a device without a reset method).
    pub fn reset(&self) -> Result<(), Error> {
        Ok(self.device.reset()?)
    }
}
