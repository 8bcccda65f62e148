//! A VFIO device fd: info, regions, IRQs, config space, reset and hot reset.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use bitflags::bitflags;
use vm_memory::{MmapRegion, VolatileMemory};

use crate::error::{Error, HostPath, Result};
use crate::group::Group;
use crate::handle::Handle;
use crate::info::{self, DeviceInfo, HotResetInfo, RegionInfo};
use crate::iommufd::{Ioas, Iommufd};
use crate::sys::{Fd, IrqAction, IrqSet, RealSys, VfioSys};

/// Region index of PCI config space (`VFIO_PCI_CONFIG_REGION_INDEX`).
pub const CONFIG_REGION: u32 = 7;
/// Region index of the legacy VGA ranges (`VFIO_PCI_VGA_REGION_INDEX`).
pub const VGA_REGION: u32 = 8;

bitflags! {
    /// `VFIO_IRQ_INFO_*` (unknown bits kept).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct IrqFlags: u32 {
        /// `VFIO_IRQ_INFO_EVENTFD`.
        const EVENTFD = 1 << 0;
        /// `VFIO_IRQ_INFO_MASKABLE`.
        const MASKABLE = 1 << 1;
        /// `VFIO_IRQ_INFO_AUTOMASKED`.
        const AUTOMASKED = 1 << 2;
        /// `VFIO_IRQ_INFO_NORESIZE`.
        const NORESIZE = 1 << 3;
        const _ = !0;
    }
}

/// The IRQ indexes of a vfio-pci device (`VFIO_PCI_*_IRQ_INDEX`, include/uapi/linux/vfio.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IrqIndex {
    /// `VFIO_PCI_INTX_IRQ_INDEX` (0): the legacy pin interrupt, one vector.
    Intx,
    /// `VFIO_PCI_MSI_IRQ_INDEX` (1).
    Msi,
    /// `VFIO_PCI_MSIX_IRQ_INDEX` (2).
    Msix,
    /// `VFIO_PCI_ERR_IRQ_INDEX` (3): AER error notification.
    Err,
    /// `VFIO_PCI_REQ_IRQ_INDEX` (4): the host asks for the device back.
    Req,
    /// Any other index (device-specific, or another bus's).
    Other(u32),
}

impl From<IrqIndex> for u32 {
    fn from(i: IrqIndex) -> u32 {
        i.raw()
    }
}

impl IrqIndex {
    /// The raw index.
    pub fn raw(self) -> u32 {
        match self {
            IrqIndex::Intx => 0,
            IrqIndex::Msi => 1,
            IrqIndex::Msix => 2,
            IrqIndex::Err => 3,
            IrqIndex::Req => 4,
            IrqIndex::Other(n) => n,
        }
    }
}

/// `VFIO_DEVICE_GET_IRQ_INFO` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqInfo {
    /// IRQ index (PCI: 0 INTx, 1 MSI, 2 MSI-X, 3 ERR, 4 REQ).
    pub index: u32,
    /// Flags.
    pub flags: IrqFlags,
    /// Vectors.
    pub count: u32,
}

impl IrqInfo {
    /// The index can be wired to eventfds (`VFIO_IRQ_INFO_EVENTFD`).
    pub fn eventfd(&self) -> bool {
        self.flags.contains(IrqFlags::EVENTFD)
    }
    /// Mask and unmask work on it (`VFIO_IRQ_INFO_MASKABLE`: INTx only in vfio-pci).
    pub fn maskable(&self) -> bool {
        self.flags.contains(IrqFlags::MASKABLE)
    }
    /// The kernel masks it when it fires, so the user must unmask it
    /// (`VFIO_IRQ_INFO_AUTOMASKED`: level-triggered INTx).
    pub fn automasked(&self) -> bool {
        self.flags.contains(IrqFlags::AUTOMASKED)
    }
    /// The vector count cannot change while enabled: to add vectors, disable and
    /// enable again (`VFIO_IRQ_INFO_NORESIZE`). vfio-pci sets it for MSI, ERR and REQ,
    /// and for MSI-X only where the platform cannot allocate MSI-X vectors dynamically:
    /// a 6.12 guest reported MSI-X with `EVENTFD` alone (tests/data/captures/tcg-amd).
    pub fn noresize(&self) -> bool {
        self.flags.contains(IrqFlags::NORESIZE)
    }
}

/// One mmapped area of a region (the whole region, or one sparse-mmap area of it);
/// unmapped on drop.
#[derive(Debug)]
pub struct MappedArea {
    map: MmapRegion<()>,
    region_offset: u64,
}

impl MappedArea {
    /// Offset of this area within the region.
    pub fn region_offset(&self) -> u64 {
        self.region_offset
    }

    /// Length of the area.
    pub fn len(&self) -> usize {
        self.map.size()
    }

    /// Whether the area is empty (never, for a mapping that succeeded).
    pub fn is_empty(&self) -> bool {
        self.map.size() == 0
    }

    /// Host address of the area's first byte: what a VMM gives KVM as the
    /// `userspace_addr` of a memory slot, so the guest reaches the BAR directly. Valid
    /// while this area (its [`RegionMap`]) lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }
}

/// A region's mmappable areas, all mapped; unmapped on drop.
#[derive(Debug)]
pub struct RegionMap {
    areas: Vec<MappedArea>,
    /// Region index.
    pub index: u32,
    /// Mapped writable (the region has `VFIO_REGION_INFO_FLAG_WRITE`); the write
    /// methods refuse otherwise, since a store to a read-only mapping would fault.
    pub writable: bool,
}

impl RegionMap {
    /// The mapped areas, by region offset (one for a region without sparse areas).
    pub fn areas(&self) -> &[MappedArea] {
        &self.areas
    }

    /// Total bytes mapped.
    pub fn len(&self) -> usize {
        self.areas.iter().map(MappedArea::len).sum()
    }

    /// Whether nothing is mapped (never, for a mapping that succeeded).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The area holding `len` bytes at region offset `offset`, and the offset within it.
    fn find(&self, offset: u64, len: usize) -> Option<(&MappedArea, usize)> {
        self.areas.iter().find_map(|a| {
            let at = usize::try_from(offset.checked_sub(a.region_offset)?).ok()?;
            (at.checked_add(len)? <= a.len()).then_some((a, at))
        })
    }

    /// A volatile 32-bit read at region offset `offset` (`None` outside the mapped
    /// areas, e.g. in the MSI-X table hole of a sparse BAR).
    pub fn read_u32(&self, offset: u64) -> Option<u32> {
        let (a, at) = self.find(offset, 4)?;
        a.map.get_ref::<u32>(at).ok().map(|r| r.load())
    }

    /// A volatile 32-bit write at region offset `offset` (`None` outside the mapped areas
    /// or when the region is not writable).
    pub fn write_u32(&self, offset: u64, value: u32) -> Option<()> {
        if !self.writable {
            return None;
        }
        let (a, at) = self.find(offset, 4)?;
        a.map.get_ref::<u32>(at).ok().map(|r| r.store(value))
    }

    /// Volatile copy of `buf.len()` bytes from region offset `offset` (`None` unless they
    /// lie inside one mapped area).
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Option<()> {
        let (a, at) = self.find(offset, buf.len())?;
        a.map.get_slice(at, buf.len()).ok()?.copy_to(buf);
        Some(())
    }

    /// Volatile copy of `data` to region offset `offset` (`None` unless it lies inside
    /// one mapped area of a writable region).
    pub fn write(&self, offset: u64, data: &[u8]) -> Option<()> {
        if !self.writable {
            return None;
        }
        let (a, at) = self.find(offset, data.len())?;
        a.map.get_slice(at, data.len()).ok()?.copy_from(data);
        Some(())
    }
}

/// An open device; closed when the last clone drops. Clones share the fd and the
/// cached region information; `Send + Sync` when the seam is.
#[derive(Debug)]
pub struct Device<S: VfioSys + ?Sized = RealSys> {
    inner: Arc<DeviceInner<S>>,
}

#[derive(Debug)]
struct DeviceInner<S: VfioSys + ?Sized> {
    // Dropped first: the device fd closes before the group it came from may be unset.
    handle: Handle<S>,
    name: String,
    regions: Mutex<BTreeMap<u32, RegionInfo>>,
    _group: Option<Group<S>>,
}

impl<S: VfioSys + ?Sized> Clone for Device<S> {
    fn clone(&self) -> Self {
        Device {
            inner: self.inner.clone(),
        }
    }
}

impl<S: VfioSys + ?Sized> Device<S> {
    pub(crate) fn from_fd(sys: &Arc<S>, fd: Fd, name: String, group: Option<Group<S>>) -> Self {
        Device {
            inner: Arc::new(DeviceInner {
                handle: Handle::new(sys, fd, format!("device {name}")),
                name,
                regions: Mutex::new(BTreeMap::new()),
                _group: group,
            }),
        }
    }

    /// Open a device cdev (`/dev/vfio/devices/vfioX`, or a [`HostPath`] under a root:
    /// errors then name its system path) for use with iommufd.
    ///
    /// # Errors
    ///
    /// Error::Open naming `path` (its system path) with the errno.
    pub fn open_cdev(sys: &Arc<S>, path: impl Into<HostPath>, name: &str) -> Result<Self> {
        let path: HostPath = path.into();
        let fd = sys.open(&path.full()).map_err(|e| Error::open(path, e))?;
        Ok(Device::from_fd(sys, fd, name.to_owned(), None))
    }

    /// A device fd opened elsewhere (a cdev or `VFIO_GROUP_GET_DEVICE_FD` answer passed
    /// by libvirt, Kata or a parent process), owned from now on; `name` is its BDF.
    ///
    /// # Errors
    ///
    /// Error::Open naming the device when the seam refuses to adopt the fd.
    pub fn from_owned_fd(sys: &Arc<S>, fd: OwnedFd, name: &str) -> Result<Self> {
        let fd = Handle::adopt(sys, fd, &format!("device {name}"))?;
        Ok(Device::from_fd(sys, fd, name.to_owned(), None))
    }

    fn sys(&self) -> &Arc<S> {
        &self.inner.handle.sys
    }

    /// The device's name (its BDF).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The device fd.
    pub fn fd(&self) -> Fd {
        self.inner.handle.fd
    }

    /// A duplicate of the device fd, owned by the caller (for KVM's VFIO device in
    /// cdev mode).
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the device when the seam cannot duplicate the fd.
    pub fn try_clone_fd(&self) -> Result<OwnedFd> {
        self.inner.handle.dup()
    }

    fn target(&self) -> String {
        self.inner.handle.target.clone()
    }

    fn err(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |e| Error::ioctl(op, self.target(), e)
    }

    fn malformed(&self, op: &'static str) -> impl FnOnce(info::ParseError) -> Error + '_ {
        move |source| Error::Malformed {
            op,
            target: self.target(),
            source,
        }
    }

    /// Call a variable-size info ioctl, asking again with the `argsz` the kernel needs.
    fn sized<F>(&self, op: &'static str, min: usize, mut call: F) -> Result<Vec<u8>>
    where
        F: FnMut(&mut [u8]) -> std::io::Result<()>,
    {
        let mut len = min;
        for _ in 0..4 {
            let mut buf = vec![0u8; len];
            call(&mut buf).map_err(self.err(op))?;
            let need = info::argsz(&buf).unwrap_or(0) as usize;
            if need > len && need <= 1 << 20 {
                len = need;
                continue;
            }
            return Ok(buf);
        }
        Err((self.malformed(op))(info::ParseError {
            kind: info::ParseErrorKind::Truncated,
            offset: 0,
        }))
    }

    /// `VFIO_DEVICE_GET_INFO`.
    ///
    /// # Errors
    ///
    /// Error::Ioctl with the kernel's errno, or Error::Malformed when the answer cannot be
    /// parsed.
    #[doc(alias = "VFIO_DEVICE_GET_INFO")]
    pub fn info(&self) -> Result<DeviceInfo> {
        let buf = self.sized("VFIO_DEVICE_GET_INFO", info::DEVICE_INFO_LEN, |b| {
            self.sys().device_get_info(self.fd(), b)
        })?;
        info::parse_device_info(&buf).map_err(self.malformed("VFIO_DEVICE_GET_INFO"))
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` with its capabilities (sparse mmap, MSI-X, type),
    /// asked once per region and cached (a region's layout is fixed while the device
    /// is open).
    ///
    /// # Errors
    ///
    /// Error::Ioctl with the kernel's errno (`EINVAL` for an index the device does not
    /// have), or Error::Malformed when the answer cannot be parsed.
    #[doc(alias = "VFIO_DEVICE_GET_REGION_INFO")]
    pub fn region_info(&self, index: u32) -> Result<RegionInfo> {
        if let Some(r) = self.regions().get(&index) {
            return Ok(r.clone());
        }
        let buf = self.sized("VFIO_DEVICE_GET_REGION_INFO", info::REGION_INFO_LEN, |b| {
            self.sys().device_get_region_info(self.fd(), index, b)
        })?;
        let r =
            info::parse_region_info(&buf).map_err(self.malformed("VFIO_DEVICE_GET_REGION_INFO"))?;
        self.regions().insert(index, r.clone());
        Ok(r)
    }

    fn regions(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, RegionInfo>> {
        // Inserts only: a poisoned cache is still a consistent cache.
        self.inner.regions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO`.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno (`EINVAL` for an
    /// index the device does not have).
    #[doc(alias = "VFIO_DEVICE_GET_IRQ_INFO")]
    pub fn irq_info(&self, index: u32) -> Result<IrqInfo> {
        let raw = self
            .sys()
            .device_get_irq_info(self.fd(), index)
            .map_err(self.err("VFIO_DEVICE_GET_IRQ_INFO"))?;
        Ok(IrqInfo {
            index,
            flags: IrqFlags::from_bits_retain(raw.flags),
            count: raw.count,
        })
    }

    /// `VFIO_DEVICE_SET_IRQS` with `req`; errors name the index.
    fn set_irqs(&self, req: &IrqSet) -> Result<()> {
        self.sys().device_set_irqs(self.fd(), req).map_err(|e| {
            Error::ioctl(
                "VFIO_DEVICE_SET_IRQS",
                format!("device {} irq index {}", self.name(), req.index()),
                e,
            )
        })
    }

    /// Wire vectors `start..start + fds.len()` of `index` to eventfds
    /// (`DATA_EVENTFD | ACTION_TRIGGER`); `None` detaches a vector (`-1`).
    ///
    /// When the index is off, the kernel enables it with `start + fds.len()` vectors
    /// (MSI/MSI-X; INTx takes exactly `start` 0 and one fd); when it is already on, the
    /// kernel swaps the eventfds of those vectors only (drivers/vfio/pci/vfio_pci_intrs.c,
    /// `vfio_pci_set_msi_trigger`); vectors past the enabled count are added only when
    /// the index is not [`IrqInfo::noresize`] (else disable first). Another index being
    /// on is `EINVAL`.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno (`EINVAL` for a span
    /// past the index's count or while another index is on).
    #[doc(alias = "VFIO_DEVICE_SET_IRQS")]
    pub fn set_irq_eventfds(
        &self,
        index: IrqIndex,
        start: u32,
        fds: &[Option<BorrowedFd<'_>>],
    ) -> Result<()> {
        let req = IrqSet::eventfds(index.raw(), start, IrqAction::Trigger, fds)
            .map_err(|e| Error::ioctl("VFIO_DEVICE_SET_IRQS", self.target(), e))?;
        self.set_irqs(&req)
    }

    /// Turn `index` off (`DATA_NONE | ACTION_TRIGGER`, count 0): every vector is
    /// detached and the device's MSI/MSI-X capability disabled.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno.
    pub fn disable_irq(&self, index: IrqIndex) -> Result<()> {
        self.set_irqs(&IrqSet::none(index.raw(), 0, 0, IrqAction::Trigger))
    }

    /// Signal the eventfds of vectors `start..start + count` from the kernel
    /// (`DATA_NONE | ACTION_TRIGGER`), as if the device had raised them: a loopback test.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno.
    pub fn trigger_irq(&self, index: IrqIndex, start: u32, count: u32) -> Result<()> {
        self.set_irqs(&IrqSet::none(index.raw(), start, count, IrqAction::Trigger))
    }

    /// Apply `action` to the vectors from `start` whose flag in `which` is set
    /// (`DATA_BOOL`, one byte per vector): e.g. signal a chosen subset of MSI-X vectors.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno.
    pub fn irq_action_where(
        &self,
        index: IrqIndex,
        start: u32,
        action: IrqAction,
        which: &[bool],
    ) -> Result<()> {
        let req = IrqSet::bools(index.raw(), start, action, which)
            .map_err(|e| Error::ioctl("VFIO_DEVICE_SET_IRQS", self.target(), e))?;
        self.set_irqs(&req)
    }

    /// Mask vectors `start..start + count` (`DATA_NONE | ACTION_MASK`). vfio-pci masks
    /// only INTx (start 0, count 1); for MSI and MSI-X it answers `ENOTTY`
    /// (vfio_pci_intrs.c has no mask handler for them), so check
    /// [`IrqInfo::maskable`] first.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno (`ENOTTY` for MSI
    /// and MSI-X in vfio-pci).
    pub fn mask_irq(&self, index: IrqIndex, start: u32, count: u32) -> Result<()> {
        self.set_irqs(&IrqSet::none(index.raw(), start, count, IrqAction::Mask))
    }

    /// Unmask vectors `start..start + count` (`DATA_NONE | ACTION_UNMASK`); as
    /// [`Device::mask_irq`], INTx only in vfio-pci.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno (`ENOTTY` for MSI
    /// and MSI-X in vfio-pci).
    pub fn unmask_irq(&self, index: IrqIndex, start: u32, count: u32) -> Result<()> {
        self.set_irqs(&IrqSet::none(index.raw(), start, count, IrqAction::Unmask))
    }

    /// Have the kernel unmask vector `start` of `index` whenever `fd` is signalled
    /// (`DATA_EVENTFD | ACTION_UNMASK`, count 1): the resample eventfd a VMM gives KVM's
    /// irqfd for level-triggered INTx. `None` removes it (`-1`).
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno.
    pub fn set_irq_unmask_eventfd(
        &self,
        index: IrqIndex,
        start: u32,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        let req = IrqSet::eventfds(index.raw(), start, IrqAction::Unmask, &[fd])
            .map_err(|e| Error::ioctl("VFIO_DEVICE_SET_IRQS", self.target(), e))?;
        self.set_irqs(&req)
    }

    /// Enable INTx signalling `trigger`; with `resample`, the kernel also unmasks the
    /// (automasked) line whenever `resample` is signalled. Two calls, as QEMU makes them.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno; when the resample
    /// eventfd is refused, INTx is disabled again.
    pub fn enable_intx(
        &self,
        trigger: BorrowedFd<'_>,
        resample: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        self.set_irq_eventfds(IrqIndex::Intx, 0, &[Some(trigger)])?;
        if let Some(r) = resample {
            if let Err(e) = self.set_irq_unmask_eventfd(IrqIndex::Intx, 0, Some(r)) {
                let _ = self.disable_irq(IrqIndex::Intx);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Enable MSI with one eventfd per vector (`None`: vector allocated, not wired).
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno (`EINVAL` while INTx
    /// or MSI-X is on).
    pub fn enable_msi(&self, fds: &[Option<BorrowedFd<'_>>]) -> Result<()> {
        self.set_irq_eventfds(IrqIndex::Msi, 0, fds)
    }

    /// Enable MSI-X with one eventfd per vector (`None`: vector allocated, not wired).
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno (`EINVAL` while INTx
    /// or MSI is on).
    pub fn enable_msix(&self, fds: &[Option<BorrowedFd<'_>>]) -> Result<()> {
        self.set_irq_eventfds(IrqIndex::Msix, 0, fds)
    }

    /// The file offset of `len` bytes at `offset` in region `index`, and how many of
    /// them the region holds (short at its end).
    fn span(&self, index: u32, offset: u64, len: usize, op: &'static str) -> Result<(u64, usize)> {
        let r = self.region_info(index)?;
        let avail = r.size.saturating_sub(offset);
        let n = len.min(usize::try_from(avail).unwrap_or(usize::MAX));
        let at = r.offset.checked_add(offset).ok_or_else(|| {
            Error::ioctl(
                op,
                self.region_target(index),
                std::io::Error::from_raw_os_error(libc::EINVAL),
            )
        })?;
        Ok((at, n))
    }

    fn region_target(&self, index: u32) -> String {
        if index == CONFIG_REGION {
            format!("config region of device {}", self.name())
        } else {
            format!("region {index} of device {}", self.name())
        }
    }

    /// Read region `index` (BAR, ROM, config, device-specific) through the device fd
    /// (`pread`), any size: repeated until `buf` is full or the region ends; returns the
    /// bytes read (short at the region's end).
    ///
    /// # Errors
    ///
    /// As Device::region_info; Error::Ioctl naming `pread` and the region when `offset`
    /// lies outside the region or the kernel refuses the read.
    pub fn read_region(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (at, n) = self.span(index, offset, buf.len(), "pread")?;
        let mut done = 0;
        while done < n {
            let got = self
                .sys()
                .pread(self.fd(), &mut buf[done..n], at + done as u64)
                .map_err(|e| Error::ioctl("pread", self.region_target(index), e))?;
            if got == 0 {
                break;
            }
            done += got;
        }
        Ok(done)
    }

    /// Write region `index` through the device fd (`pwrite`), any size: repeated until
    /// all of `data` is written or the region ends; returns the bytes written.
    ///
    /// # Errors
    ///
    /// As Device::region_info; Error::Ioctl naming `pwrite` and the region when `offset`
    /// lies outside the region or the kernel refuses the write.
    pub fn write_region(&self, index: u32, offset: u64, data: &[u8]) -> Result<usize> {
        let (at, n) = self.span(index, offset, data.len(), "pwrite")?;
        let mut done = 0;
        while done < n {
            let put = self
                .sys()
                .pwrite(self.fd(), &data[done..n], at + done as u64)
                .map_err(|e| Error::ioctl("pwrite", self.region_target(index), e))?;
            if put == 0 {
                break;
            }
            done += put;
        }
        Ok(done)
    }

    /// Read config space through the VFIO config region; returns bytes read (short at
    /// the end of the region).
    ///
    /// # Errors
    ///
    /// As Device::read_region.
    pub fn read_config(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.read_region(CONFIG_REGION, offset, buf)
    }

    /// Write config space through the VFIO config region.
    ///
    /// # Errors
    ///
    /// As Device::write_region.
    pub fn write_config(&self, offset: u64, data: &[u8]) -> Result<usize> {
        self.write_region(CONFIG_REGION, offset, data)
    }

    /// The vendor id read through VFIO (0xffff: the device does not answer).
    ///
    /// # Errors
    ///
    /// As Device::read_config.
    pub fn vendor_id(&self) -> Result<u16> {
        let mut b = [0u8; 2];
        let n = self.read_config(0, &mut b)?;
        if n < 2 {
            return Ok(0xffff);
        }
        Ok(u16::from_le_bytes(b))
    }

    /// mmap region `index` (needs `VFIO_REGION_INFO_FLAG_MMAP`): the whole region, or
    /// every sparse-mmap area the kernel lists (a BAR holding the MSI-X table has a hole
    /// there, which stays reachable through [`Device::read_region`]).
    ///
    /// # Errors
    ///
    /// As Device::region_info; Error::Ioctl naming `mmap` and the region with `EINVAL` when
    /// the region is not mmappable, empty or lists an area outside itself, or with the
    /// kernel's errno when an mmap fails (the areas mapped before it are unmapped).
    pub fn mmap_region(&self, index: u32) -> Result<RegionMap> {
        let r = self.region_info(index)?;
        let einval = || {
            Error::ioctl(
                "mmap",
                self.region_target(index),
                std::io::Error::from_raw_os_error(libc::EINVAL),
            )
        };
        if !r.flags.contains(info::RegionFlags::MMAP) || r.size == 0 {
            return Err(einval());
        }
        let spans: Vec<(u64, u64)> = match r.sparse_mmap.as_deref() {
            Some(areas) => areas
                .iter()
                .filter(|a| a.size > 0)
                .map(|a| (a.offset, a.size))
                .collect(),
            None => vec![(0, r.size)],
        };
        if spans.is_empty() {
            return Err(einval());
        }
        let writable = r.flags.contains(info::RegionFlags::WRITE);
        let mut areas = Vec::with_capacity(spans.len());
        for (off, len) in spans {
            if off.checked_add(len).is_none_or(|end| end > r.size) {
                return Err(einval());
            }
            let at = r.offset.checked_add(off).ok_or_else(einval)?;
            let len = usize::try_from(len).map_err(|_| einval())?;
            let map = self
                .sys()
                .mmap(self.fd(), at, len, writable)
                .map_err(|e| Error::ioctl("mmap", self.region_target(index), e))?;
            areas.push(MappedArea {
                map,
                region_offset: off,
            });
        }
        areas.sort_by_key(|a| a.region_offset);
        Ok(RegionMap {
            areas,
            index,
            writable,
        })
    }

    /// `VFIO_DEVICE_RESET`, returning the kernel's error (`EINVAL` without the RESET flag).
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno (`EINVAL` without
    /// the RESET flag).
    #[doc(alias = "VFIO_DEVICE_RESET")]
    pub fn reset(&self) -> Result<()> {
        self.sys()
            .device_reset(self.fd())
            .map_err(self.err("VFIO_DEVICE_RESET"))
    }

    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: which devices (and groups) a bus/slot
    /// reset touches. Asks with the header only, then again with room for the count
    /// the kernel answered with `ENOSPC`.
    ///
    /// # Errors
    ///
    /// Error::Ioctl with the kernel's errno, or Error::Malformed when the answer cannot be
    /// parsed or keeps growing.
    #[doc(alias = "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO")]
    pub fn hot_reset_info(&self) -> Result<HotResetInfo> {
        const OP: &str = "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO";
        let mut len = info::HOT_RESET_INFO_LEN;
        for _ in 0..4 {
            let mut buf = vec![0u8; len];
            match self
                .sys()
                .device_get_pci_hot_reset_info(self.fd(), &mut buf)
            {
                Ok(()) => return info::parse_hot_reset_info(&buf).map_err(self.malformed(OP)),
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    let h = info::parse_hot_reset_info(&buf).map_err(self.malformed(OP))?;
                    let need = (h.count as usize)
                        .checked_mul(8)
                        .and_then(|n| n.checked_add(info::HOT_RESET_INFO_LEN))
                        .filter(|&n| n > len && n <= 1 << 20);
                    match need {
                        Some(n) => len = n,
                        None => return Err(Error::ioctl(OP, self.target(), e)),
                    }
                }
                Err(e) => return Err(Error::ioctl(OP, self.target(), e)),
            }
        }
        Err((self.malformed(OP))(info::ParseError {
            kind: info::ParseErrorKind::Truncated,
            offset: 8,
        }))
    }

    /// `VFIO_DEVICE_PCI_HOT_RESET` with every affected group (legacy mode).
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno (`EPERM` when a
    /// group of the reset is missing, `EBUSY` when a device of it is in use).
    #[doc(alias = "VFIO_DEVICE_PCI_HOT_RESET")]
    pub fn hot_reset(&self, groups: &[&Group<S>]) -> Result<()> {
        let fds: Vec<Fd> = groups.iter().map(|g| g.fd()).collect();
        self.sys()
            .device_pci_hot_reset(self.fd(), &fds)
            .map_err(self.err("VFIO_DEVICE_PCI_HOT_RESET"))
    }

    /// `VFIO_DEVICE_PCI_HOT_RESET` in cdev mode: no group fds, ownership via iommufd.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno.
    pub fn hot_reset_cdev(&self) -> Result<()> {
        self.sys()
            .device_pci_hot_reset(self.fd(), &[])
            .map_err(self.err("VFIO_DEVICE_PCI_HOT_RESET"))
    }

    /// Set the VF token of an SR-IOV PF (`VFIO_DEVICE_FEATURE_PCI_VF_TOKEN`, SET).
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno.
    #[doc(alias = "VFIO_DEVICE_FEATURE")]
    pub fn set_vf_token(&self, uuid: [u8; 16]) -> Result<()> {
        // include/uapi/linux/vfio.h: VFIO_DEVICE_FEATURE_SET (1 << 17),
        // VFIO_DEVICE_FEATURE_PCI_VF_TOKEN (0). (1 is MIGRATION: a 6.12 kernel answers
        // that with ENOTTY on a device without migration support.)
        const SET: u32 = 1 << 17;
        const PCI_VF_TOKEN: u32 = 0;
        let mut data = uuid;
        self.sys()
            .device_feature(self.fd(), SET | PCI_VF_TOKEN, &mut data)
            .map(|_| ())
            .map_err(self.err("VFIO_DEVICE_FEATURE"))
    }

    /// `VFIO_DEVICE_BIND_IOMMUFD` (cdev mode); returns the iommufd device id.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno.
    #[doc(alias = "VFIO_DEVICE_BIND_IOMMUFD")]
    pub fn bind_iommufd(&self, iommufd: &Iommufd<S>, vf_token: Option<[u8; 16]>) -> Result<u32> {
        self.sys()
            .device_bind_iommufd(self.fd(), iommufd.fd(), vf_token)
            .map_err(self.err("VFIO_DEVICE_BIND_IOMMUFD"))
    }

    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT` to an IOAS; returns the id of the hardware page
    /// table the kernel attached (one it made for the IOAS: not the IOAS id).
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the device and the kernel's errno.
    #[doc(alias = "VFIO_DEVICE_ATTACH_IOMMUFD_PT")]
    pub fn attach_ioas(&self, ioas: &Ioas<S>) -> Result<u32> {
        self.sys()
            .device_attach_iommufd_pt(self.fd(), ioas.id())
            .map_err(self.err("VFIO_DEVICE_ATTACH_IOMMUFD_PT"))
    }
}

impl<S: VfioSys + ?Sized> AsRawFd for Device<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd().0
    }
}

#[cfg(test)]
mod irq_tests {
    //! `VFIO_DEVICE_SET_IRQS` through the seam: the exact bytes of `struct vfio_irq_set`
    //! each call hands the kernel. Expected values come from include/uapi/linux/vfio.h:
    //! the header is five `__u32` (argsz, flags, index, start, count) followed by
    //! `__u8 data[]`; `VFIO_IRQ_SET_DATA_NONE` 1 << 0, `DATA_BOOL` 1 << 1,
    //! `DATA_EVENTFD` 1 << 2, `ACTION_MASK` 1 << 3, `ACTION_UNMASK` 1 << 4,
    //! `ACTION_TRIGGER` 1 << 5; eventfd data is one `__s32` per vector, -1 to detach.
    //! The kernel's rules quoted in the test names are vfio_pci_intrs.c's.
    use super::*;
    use crate::sys::{EventFd, MockVfioSys};
    use std::os::fd::{AsFd, AsRawFd};
    use std::sync::{Arc, Mutex};

    const DATA_NONE: u32 = 1;
    const DATA_EVENTFD: u32 = 1 << 2;
    const ACTION_MASK: u32 = 1 << 3;
    const ACTION_UNMASK: u32 = 1 << 4;
    const ACTION_TRIGGER: u32 = 1 << 5;

    /// The expected `struct vfio_irq_set`, word by word.
    fn words(argsz: u32, flags: u32, index: u32, start: u32, count: u32, data: &[i32]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [argsz, flags, index, start, count] {
            v.extend_from_slice(&w.to_ne_bytes());
        }
        for d in data {
            v.extend_from_slice(&d.to_ne_bytes());
        }
        assert_eq!(v.len(), argsz as usize, "argsz is the whole structure");
        v
    }

    type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

    /// A device on a mock kernel that records the bytes of every SET_IRQS call and
    /// answers with `answer(flags, index)`.
    fn device(
        answer: impl Fn(u32, u32) -> std::io::Result<()> + Send + 'static,
    ) -> (MockVfioSys, Seen) {
        let seen: Seen = Arc::default();
        let mut m = MockVfioSys::new();
        let s = seen.clone();
        m.expect_device_set_irqs()
            .returning(move |fd, req: &IrqSet| {
                assert_eq!(fd, Fd(9));
                s.lock().unwrap().push(req.to_bytes());
                answer(req.flags(), req.index())
            });
        m.expect_close().returning(|_| Ok(()));
        (m, seen)
    }

    #[test]
    fn msix_enable_with_three_eventfds_and_a_hole() {
        let (m, seen) = device(|_, _| Ok(()));
        let dev = Device::from_fd(&Arc::new(m), Fd(9), "0000:06:00.0".into(), None);
        let (a, c) = (EventFd::new().unwrap(), EventFd::new().unwrap());
        dev.enable_msix(&[Some(a.as_fd()), None, Some(c.as_fd())])
            .unwrap();
        // argsz 20 + 3 * 4 = 32; flags DATA_EVENTFD | ACTION_TRIGGER = 0x24; index 2.
        let want = words(
            32,
            DATA_EVENTFD | ACTION_TRIGGER,
            2,
            0,
            3,
            &[a.as_raw_fd(), -1, c.as_raw_fd()],
        );
        assert_eq!(seen.lock().unwrap()[..], [want]);
    }

    #[test]
    fn msi_vector_update_uses_start_and_count_of_the_slice() {
        let (m, seen) = device(|_, _| Ok(()));
        let dev = Device::from_fd(&Arc::new(m), Fd(9), "0000:06:00.0".into(), None);
        let e = EventFd::new().unwrap();
        dev.set_irq_eventfds(IrqIndex::Msi, 5, &[Some(e.as_fd())])
            .unwrap();
        let want = words(24, 0x24, 1, 5, 1, &[e.as_raw_fd()]);
        assert_eq!(seen.lock().unwrap()[..], [want]);
    }

    #[test]
    fn disable_is_data_none_trigger_with_count_zero() {
        let (m, seen) = device(|_, _| Ok(()));
        let dev = Device::from_fd(&Arc::new(m), Fd(9), "0000:06:00.0".into(), None);
        dev.disable_irq(IrqIndex::Msix).unwrap();
        dev.disable_irq(IrqIndex::Intx).unwrap();
        assert_eq!(
            seen.lock().unwrap()[..],
            [
                words(20, DATA_NONE | ACTION_TRIGGER, 2, 0, 0, &[]),
                words(20, DATA_NONE | ACTION_TRIGGER, 0, 0, 0, &[]),
            ]
        );
    }

    #[test]
    fn intx_with_resample_sets_trigger_then_unmask_eventfd() {
        let (m, seen) = device(|_, _| Ok(()));
        let dev = Device::from_fd(&Arc::new(m), Fd(9), "0000:06:00.0".into(), None);
        let (t, r) = (EventFd::new().unwrap(), EventFd::new().unwrap());
        dev.enable_intx(t.as_fd(), Some(r.as_fd())).unwrap();
        dev.mask_irq(IrqIndex::Intx, 0, 1).unwrap();
        dev.unmask_irq(IrqIndex::Intx, 0, 1).unwrap();
        dev.set_irq_unmask_eventfd(IrqIndex::Intx, 0, None).unwrap();
        dev.trigger_irq(IrqIndex::Intx, 0, 1).unwrap();
        assert_eq!(
            seen.lock().unwrap()[..],
            [
                // vfio_pci_set_intx_trigger: start 0, count 1, one eventfd.
                words(24, DATA_EVENTFD | ACTION_TRIGGER, 0, 0, 1, &[t.as_raw_fd()]),
                // vfio_pci_set_intx_unmask with DATA_EVENTFD: a virqfd on the fd.
                words(24, DATA_EVENTFD | ACTION_UNMASK, 0, 0, 1, &[r.as_raw_fd()]),
                words(20, DATA_NONE | ACTION_MASK, 0, 0, 1, &[]),
                words(20, DATA_NONE | ACTION_UNMASK, 0, 0, 1, &[]),
                // fd -1 removes the unmask virqfd.
                words(24, DATA_EVENTFD | ACTION_UNMASK, 0, 0, 1, &[-1]),
                words(20, DATA_NONE | ACTION_TRIGGER, 0, 0, 1, &[]),
            ]
        );
    }

    // DATA_BOOL: one __u8 per vector after the header, argsz not padded.
    #[test]
    fn bool_data_is_one_byte_per_vector() {
        let (m, seen) = device(|_, _| Ok(()));
        let dev = Device::from_fd(&Arc::new(m), Fd(9), "0000:06:00.0".into(), None);
        dev.irq_action_where(IrqIndex::Msix, 1, IrqAction::Trigger, &[true, false, true])
            .unwrap();
        // argsz 20 + 3; flags VFIO_IRQ_SET_DATA_BOOL (1 << 1) | ACTION_TRIGGER; index 2.
        let mut want = Vec::new();
        for w in [23u32, (1 << 1) | ACTION_TRIGGER, 2, 1, 3] {
            want.extend_from_slice(&w.to_ne_bytes());
        }
        want.extend_from_slice(&[1, 0, 1]);
        assert_eq!(seen.lock().unwrap()[..], [want]);
    }

    // vfio_pci_set_irqs_ioctl has no MASK/UNMASK handler for MSI and MSI-X: ENOTTY.
    #[test]
    fn msix_mask_enotty_is_reported_with_its_meaning() {
        let (m, _) = device(|flags, index| {
            if index == 2 && flags & (ACTION_MASK | ACTION_UNMASK) != 0 {
                Err(std::io::Error::from_raw_os_error(libc::ENOTTY))
            } else {
                Ok(())
            }
        });
        let dev = Device::from_fd(&Arc::new(m), Fd(9), "0000:06:00.0".into(), None);
        let e = dev.mask_irq(IrqIndex::Msix, 0, 1).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOTTY));
        let msg = e.to_string();
        assert!(
            msg.contains("VFIO_DEVICE_SET_IRQS on device 0000:06:00.0 irq index 2")
                && msg.contains("only INTx"),
            "{msg}"
        );
    }

    // A failed resample hookup leaves INTx off again, not half wired.
    #[test]
    fn intx_resample_failure_disables_intx_again() {
        let (m, seen) = device(|flags, _| {
            if flags & ACTION_UNMASK != 0 {
                Err(std::io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                Ok(())
            }
        });
        let dev = Device::from_fd(&Arc::new(m), Fd(9), "0000:06:00.0".into(), None);
        let (t, r) = (EventFd::new().unwrap(), EventFd::new().unwrap());
        assert!(dev.enable_intx(t.as_fd(), Some(r.as_fd())).is_err());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2], words(20, DATA_NONE | ACTION_TRIGGER, 0, 0, 0, &[]));
    }

    #[test]
    fn eventfd_counts_signals() {
        let e = EventFd::new().unwrap();
        assert_eq!(e.read().unwrap(), 0);
        e.write(2).unwrap();
        e.write(1).unwrap();
        assert_eq!(e.read().unwrap(), 3);
        assert_eq!(e.read().unwrap(), 0);
    }
}

#[cfg(test)]
mod region_tests {
    //! Region access through the seam: every sparse-mmap area mapped, reads and writes
    //! of any size through pread/pwrite, region info asked once.
    use super::*;
    use crate::info::testdata;
    use crate::sys::{MockVfioSys, RealSys};
    use std::sync::Mutex;

    fn answer(full: Vec<u8>) -> impl Fn(Fd, u32, &mut [u8]) -> std::io::Result<()> {
        move |_, _, buf: &mut [u8]| {
            let n = buf.len().min(full.len());
            buf[..n].copy_from_slice(&full[..n]);
            if n < full.len() {
                buf[..4].copy_from_slice(&(full.len() as u32).to_ne_bytes());
            }
            Ok(())
        }
    }

    #[test]
    fn every_sparse_area_is_mapped_and_the_hole_is_not() {
        let mut m = MockVfioSys::new();
        m.expect_close().returning(|_| Ok(()));
        m.expect_device_get_region_info()
            .returning(answer(testdata::region_bar3_sparse()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        m.expect_mmap().returning(move |_, off, len, w| {
            s.lock().unwrap().push((off, len, w));
            Ok(MmapRegion::<()>::new(len).unwrap())
        });
        let d = Device::from_fd(&Arc::new(m), Fd(5), "0000:06:00.0".into(), None);
        let map = d.mmap_region(3).unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [(0x30000000000, 0x1000, true), (0x30000003000, 0x1000, true)]
        );
        let offsets: Vec<u64> = map.areas().iter().map(|a| a.region_offset()).collect();
        assert_eq!(offsets, [0, 0x3000]);
        assert_eq!(map.len(), 0x2000);
        assert!(map.areas().iter().all(|a| !a.as_ptr().is_null()));
        // Region offsets reach the right area; the MSI-X hole is not mapped.
        assert_eq!(map.write_u32(0x3ffc, 0xdead_beef), Some(()));
        assert_eq!(map.read_u32(0x3ffc), Some(0xdead_beef));
        assert_eq!(map.read_u32(0x1000), None);
        assert_eq!(map.read_u32(0x0ffe), None, "straddles the end of an area");
        let mut b = [0u8; 4];
        map.read(0x3ffc, &mut b).unwrap();
        assert_eq!(u32::from_ne_bytes(b), 0xdead_beef);
        map.write(0x10, &[1, 2, 3]).unwrap();
        let mut b = [0u8; 3];
        map.read(0x10, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3]);
        // A read-only region is mapped PROT_READ: writes are refused, not attempted.
        let ro = RegionMap {
            areas: Vec::new(),
            index: 3,
            writable: false,
        };
        assert_eq!(ro.write_u32(0, 1), None);
        assert_eq!(ro.write(0, &[1]), None);
    }

    // pread/pwrite may return short (a BAR access is split into 1/2/4/8-byte accesses by
    // vfio_pci_core_do_io_rw): the wrappers repeat until done; region info is asked once.
    #[test]
    fn reads_and_writes_of_any_size_repeat_short_calls_and_info_is_cached() {
        let mut m = MockVfioSys::new();
        m.expect_close().returning(|_| Ok(()));
        m.expect_device_get_region_info()
            .times(1)
            .returning(answer(testdata::region_config()));
        let space = Arc::new(Mutex::new(vec![0u8; 0x1000]));
        let s = space.clone();
        // Config region at fd offset 0x70000000000: at most 3 bytes per call.
        m.expect_pread().returning(move |_, buf: &mut [u8], off| {
            let at = (off - 0x70000000000) as usize;
            let n = buf.len().min(3);
            buf[..n].copy_from_slice(&s.lock().unwrap()[at..at + n]);
            Ok(n)
        });
        let s = space.clone();
        m.expect_pwrite().returning(move |_, data: &[u8], off| {
            let at = (off - 0x70000000000) as usize;
            let n = data.len().min(3);
            s.lock().unwrap()[at..at + n].copy_from_slice(&data[..n]);
            Ok(n)
        });
        let d = Device::from_fd(&Arc::new(m), Fd(5), "0000:06:00.0".into(), None);
        let data: Vec<u8> = (1..=10).collect();
        assert_eq!(d.write_region(CONFIG_REGION, 0x40, &data).unwrap(), 10);
        let mut back = [0u8; 10];
        assert_eq!(d.read_config(0x40, &mut back).unwrap(), 10);
        assert_eq!(back[..], data[..]);
        // At the region's end: short, not an error; past it: nothing.
        assert_eq!(d.write_config(0xffe, &[9, 9, 9, 9]).unwrap(), 2);
        assert_eq!(d.read_config(0x1000, &mut back).unwrap(), 0);
        assert_eq!(space.lock().unwrap()[0xffe..], [9, 9]);
    }

    // A device fd handed over by another process (libvirt, Kata): RealSys adopts it,
    // uses it, duplicates it, and closes it once when the last handle drops.
    #[test]
    fn an_adopted_fd_is_used_duplicated_and_closed_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dev");
        std::fs::write(&p, b"abcdef").unwrap();
        let owned = OwnedFd::from(std::fs::File::open(&p).unwrap());
        let sys = Arc::new(RealSys::new());
        let d = Device::from_owned_fd(&sys, owned, "0000:06:00.0").unwrap();
        let mut b = [0u8; 3];
        assert_eq!(sys.pread(d.fd(), &mut b, 2).unwrap(), 3);
        assert_eq!(&b, b"cde");
        let dup = d.try_clone_fd().unwrap();
        assert_ne!(dup.as_raw_fd(), d.as_raw_fd());
        let fd = d.fd();
        let d2 = d.clone();
        drop(d);
        assert!(sys.pread(fd, &mut b, 0).is_ok(), "a clone keeps it open");
        drop(d2);
        assert_eq!(
            sys.pread(fd, &mut b, 0).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        // The duplicate is the caller's and still reads the file.
        let f = std::fs::File::from(dup);
        assert_eq!(
            std::os::unix::fs::FileExt::read_at(&f, &mut b, 0).unwrap(),
            3
        );
    }

    #[test]
    fn handles_and_spaces_are_send_and_sync() {
        fn both<T: Send + Sync>() {}
        both::<Device>();
        both::<crate::Container>();
        both::<crate::Group>();
        both::<crate::Iommufd>();
        both::<crate::Type1Space>();
        both::<crate::Ioas>();
        both::<RegionMap>();
    }
}
