//! The kernel seam: every VFIO and iommufd open, ioctl, pread, pwrite and close.
//!
//! [`VfioSys`] is one narrow trait at the syscall level, one method per kernel call, so
//! tests substitute a mock and downstream crates can supply their own implementation
//! (calls added later are provided methods: see the trait's stability rule).
//! [`RealSys`] is the implementation over the running kernel and holds every `unsafe`
//! block of the workspace, with the `unsafe` traits the DMA API rests on
//! ([`TrustedVfioSys`], [`DmaMemory`]) and the raw mapping call ([`map_raw`]).
//!
//! # What [`RealSys`] trusts the kernel to do
//!
//! - Each VFIO/iommufd ioctl reads and writes only the structure passed to it, and
//!   never more than the `argsz`/`size` written in that structure's first field.
//!   Variable-size answers (`*_GET_INFO`, `GET_REGION_INFO`, hot-reset info) are
//!   passed as a byte buffer whose length is written as `argsz`, so the kernel's
//!   writes stay inside the buffer.
//! - `IOMMU_IOAS_IOVA_RANGES` writes at most `num_iovas` entries at `allowed_iovas`.
//! - `pread`/`pwrite` touch at most `buf.len()` bytes.
//! - `mmap` of a device region either fails or maps `len` bytes that stay valid until
//!   unmapped (vm-memory's `MmapRegion` unmaps on drop and reads them volatile).
//! - `VFIO_IOMMU_MAP_DMA` / `IOMMU_IOAS_MAP` pin the pages they map: nothing in this
//!   process is freed under the device, and an unmap that answers success leaves no
//!   part of the range mapped. Only this crate builds a [`DmaMapRequest`]: from
//!   [`DmaMemory`] that a DMA space owns until the kernel has unmapped it, or from the
//!   address the caller of the `unsafe` [`map_raw`] vouches for.
//! - A file descriptor returned by `open` or `VFIO_GROUP_GET_DEVICE_FD` is owned by
//!   the caller until passed to [`VfioSys::close`]; the wrappers close each exactly once.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vfio_bindings::bindings::vfio as b;
use vm_memory::{FileOffset, MmapRegion};

/// A raw file descriptor handed out by a [`VfioSys`]; the safe wrappers own and close it.
///
/// A plain number, not a borrow: anyone holding it can pass it back to the seam (and
/// [`VfioSys::close`] it), so it promises nothing about the file staying open. To hand
/// a handle's file to another API (KVM's `KVM_DEV_VFIO_FILE_ADD`, a child process) use
/// the handle's `try_clone_fd`, a duplicate [`OwnedFd`] that stays valid on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fd(pub i32);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// One IOVA range, both ends inclusive (`vfio_iova_range`, `iommu_iova_range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[repr(C)]
pub struct IovaRange {
    /// First usable IOVA.
    pub start: u64,
    /// Last usable IOVA (inclusive).
    pub end: u64,
}

/// The answer of `IOMMU_IOAS_IOVA_RANGES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IovaRangesAnswer {
    /// How many ranges the IOAS has (may exceed the buffer passed: ask again).
    pub num_iovas: u32,
    /// The IOVA alignment the kernel requires for mappings.
    pub alignment: u64,
}

/// The answer of `VFIO_DEVICE_GET_IRQ_INFO` (`struct vfio_irq_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawIrqInfo {
    /// `VFIO_IRQ_INFO_*` flags.
    pub flags: u32,
    /// Number of vectors.
    pub count: u32,
}

/// What a `VFIO_DEVICE_SET_IRQS` call does (`VFIO_IRQ_SET_ACTION_*`, include/uapi/linux/vfio.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IrqAction {
    /// `VFIO_IRQ_SET_ACTION_MASK` (1 << 3).
    Mask,
    /// `VFIO_IRQ_SET_ACTION_UNMASK` (1 << 4).
    Unmask,
    /// `VFIO_IRQ_SET_ACTION_TRIGGER` (1 << 5).
    Trigger,
}

impl IrqAction {
    /// The flag bit.
    pub fn flag(self) -> u32 {
        match self {
            IrqAction::Mask => b::VFIO_IRQ_SET_ACTION_MASK,
            IrqAction::Unmask => b::VFIO_IRQ_SET_ACTION_UNMASK,
            IrqAction::Trigger => b::VFIO_IRQ_SET_ACTION_TRIGGER,
        }
    }
}

/// The payload of a `VFIO_DEVICE_SET_IRQS` call (`VFIO_IRQ_SET_DATA_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IrqData {
    /// `VFIO_IRQ_SET_DATA_NONE`: no array; the action applies to `count` vectors.
    None,
    /// `VFIO_IRQ_SET_DATA_BOOL`: one byte per vector, the action applies where it is set.
    Bool(Vec<bool>),
    /// `VFIO_IRQ_SET_DATA_EVENTFD`: one `__s32` per vector; `-1` detaches that vector.
    /// The numbers are eventfds borrowed for the call the [`IrqSet`] is passed to.
    Eventfds(Vec<i32>),
}

/// A `VFIO_DEVICE_SET_IRQS` request (`struct vfio_irq_set`).
///
/// Only this crate builds one, from [`BorrowedFd`]s that stay borrowed for the whole
/// [`VfioSys::device_set_irqs`] call it is passed to: an implementation may hand the
/// eventfd numbers to the kernel during that call (and must not keep them after it).
#[derive(Debug, PartialEq, Eq)]
pub struct IrqSet {
    index: u32,
    start: u32,
    count: u32,
    action: IrqAction,
    data: IrqData,
}

/// Size of `struct vfio_irq_set` without its data array: five `__u32`
/// (argsz, flags, index, start, count), include/uapi/linux/vfio.h.
pub const IRQ_SET_HEADER_LEN: usize = 20;

impl IrqSet {
    /// An action with no data on `count` vectors from `start`.
    pub(crate) fn none(index: u32, start: u32, count: u32, action: IrqAction) -> Self {
        IrqSet {
            index,
            start,
            count,
            action,
            data: IrqData::None,
        }
    }

    /// An action with one eventfd (or `None`: `-1`) per vector from `start`.
    pub(crate) fn eventfds(
        index: u32,
        start: u32,
        action: IrqAction,
        fds: &[Option<BorrowedFd<'_>>],
    ) -> io::Result<Self> {
        let count =
            u32::try_from(fds.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let raw = fds
            .iter()
            .map(|f| f.as_ref().map_or(-1, |f| f.as_raw_fd()))
            .collect();
        Ok(IrqSet {
            index,
            start,
            count,
            action,
            data: IrqData::Eventfds(raw),
        })
    }

    /// An action on the vectors from `start` whose flag is set (one byte each).
    pub(crate) fn bools(
        index: u32,
        start: u32,
        action: IrqAction,
        flags: &[bool],
    ) -> io::Result<Self> {
        let count =
            u32::try_from(flags.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(IrqSet {
            index,
            start,
            count,
            action,
            data: IrqData::Bool(flags.to_vec()),
        })
    }

    /// The IRQ index (vfio-pci: 0 INTx, 1 MSI, 2 MSI-X, 3 ERR, 4 REQ).
    pub fn index(&self) -> u32 {
        self.index
    }
    /// First vector.
    pub fn start(&self) -> u32 {
        self.start
    }
    /// Number of vectors (0 with [`IrqData::None`] and [`IrqAction::Trigger`]: disable).
    pub fn count(&self) -> u32 {
        self.count
    }
    /// The action.
    pub fn action(&self) -> IrqAction {
        self.action
    }
    /// The payload.
    pub fn data(&self) -> &IrqData {
        &self.data
    }

    /// `flags`: one `VFIO_IRQ_SET_DATA_*` bit and one `VFIO_IRQ_SET_ACTION_*` bit.
    pub fn flags(&self) -> u32 {
        let data = match self.data {
            IrqData::None => b::VFIO_IRQ_SET_DATA_NONE,
            IrqData::Bool(_) => b::VFIO_IRQ_SET_DATA_BOOL,
            IrqData::Eventfds(_) => b::VFIO_IRQ_SET_DATA_EVENTFD,
        };
        data | self.action.flag()
    }

    /// The bytes of `struct vfio_irq_set` the kernel reads: the header with
    /// `argsz` = the whole length, then the data array (`__u8` per vector for
    /// bools, `__s32` per vector for eventfds), native-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(IRQ_SET_HEADER_LEN + 4 * self.count as usize);
        v.extend_from_slice(&[0; 4]);
        for x in [self.flags(), self.index, self.start, self.count] {
            v.extend_from_slice(&x.to_ne_bytes());
        }
        match &self.data {
            IrqData::None => {}
            IrqData::Bool(b) => v.extend(b.iter().map(|&x| u8::from(x))),
            IrqData::Eventfds(fds) => {
                for fd in fds {
                    v.extend_from_slice(&fd.to_ne_bytes());
                }
            }
        }
        let argsz = v.len() as u32;
        v[..4].copy_from_slice(&argsz.to_ne_bytes());
        v
    }
}

/// A non-blocking, close-on-exec eventfd (`eventfd(2)`) to wire interrupts to.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`.
    ///
    /// # Errors
    ///
    /// The errno of `eventfd(2)` (`EMFILE` when the process is out of file descriptors).
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; it returns a new descriptor or -1.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `fd` was just returned by eventfd and belongs to nothing else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Read and reset the counter: how many times it was signalled since the last read
    /// (`Ok(0)` when it was not: the read would block).
    ///
    /// # Errors
    ///
    /// The errno of `read(2)` on the eventfd, other than `EAGAIN` (which is `Ok(0)`).
    pub fn read(&self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        match (&std::fs::File::from(self.0.try_clone()?)).read(&mut b) {
            Ok(8) => Ok(u64::from_ne_bytes(b)),
            Ok(_) => Err(io::Error::from_raw_os_error(libc::EINVAL)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Add `n` to the counter (signal it).
    ///
    /// # Errors
    ///
    /// The errno of `write(2)` on the eventfd (`EAGAIN` when the counter would overflow).
    pub fn write(&self, n: u64) -> io::Result<()> {
        (&std::fs::File::from(self.0.try_clone()?)).write_all(&n.to_ne_bytes())
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

fn enotty() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOTTY)
}

/// A DMA map request: host virtual address, IOVA, size and direction.
///
/// Only this crate builds one, from [`DmaMemory`] a DMA space owns for the whole life
/// of the mapping (or for [`map_raw`], whose caller vouches for the memory);
/// implementors of [`VfioSys`] read it.
#[derive(Debug, PartialEq, Eq)]
pub struct DmaMapRequest {
    vaddr: u64,
    iova: u64,
    size: u64,
    readable: bool,
    writable: bool,
}

impl DmaMapRequest {
    pub(crate) fn new(vaddr: u64, iova: u64, size: u64, readable: bool, writable: bool) -> Self {
        DmaMapRequest {
            vaddr,
            iova,
            size,
            readable,
            writable,
        }
    }
    /// Host virtual address of the first byte.
    pub fn vaddr(&self) -> u64 {
        self.vaddr
    }
    /// IOVA the device will use.
    pub fn iova(&self) -> u64 {
        self.iova
    }
    /// Length in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The device may read the memory.
    pub fn readable(&self) -> bool {
        self.readable
    }
    /// The device may write the memory.
    pub fn writable(&self) -> bool {
        self.writable
    }
}

/// Every kernel call vfio-core makes: opens, VFIO/iommufd ioctls, pread/pwrite, close.
///
/// Errors are the kernel's `errno` as [`io::Error`]; buffer-taking calls write
/// `argsz = buf.len()` into the buffer's first four bytes before the call, and the
/// kernel's answer (including a header filled on `ENOSPC`) is left in the buffer.
///
/// # Stability: how the seam grows
///
/// The methods of the first release are required. Every kernel call added later is a
/// *provided* method whose default answers `ENOTTY`, the errno of a kernel that lacks
/// the ioctl ([`VfioSys::device_set_irqs`] is the first). So an implementation written
/// against an older release keeps compiling, and the wrappers report the call as
/// unsupported, as an older kernel would. Requests that carry host pointers or file
/// descriptors ([`DmaMapRequest`], [`IrqSet`]) are built only by this crate, so an
/// implementation may pass them to the kernel as they are.
///
/// With the `testing` feature, `MockVfioSys` (a mockall mock of this trait) is public,
/// for downstream tests of code built on the wrappers, and so is a fake kernel,
/// `testing::FakeVfio`, that the owned DMA mappings accept.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
pub trait VfioSys {
    /// `open(path, O_RDWR | O_CLOEXEC)`.
    ///
    /// # Errors
    ///
    /// The errno of `open(2)`.
    fn open(&self, path: &Path) -> io::Result<Fd>;
    /// `close(fd)`.
    ///
    /// # Errors
    ///
    /// The errno of `close(2)`; `EBADF` for an fd this implementation does not hold.
    fn close(&self, fd: Fd) -> io::Result<()>;
    /// `pread(fd, buf, offset)`.
    ///
    /// # Errors
    ///
    /// The errno of `pread(2)`; `EBADF` for an fd this implementation does not hold.
    fn pread(&self, fd: Fd, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// `pwrite(fd, buf, offset)`.
    ///
    /// # Errors
    ///
    /// The errno of `pwrite(2)`; `EBADF` for an fd this implementation does not hold.
    fn pwrite(&self, fd: Fd, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// `mmap(NULL, len, PROT_READ[|PROT_WRITE], MAP_SHARED, fd, offset)` of a device
    /// region; the mapping is unmapped when the returned region drops.
    ///
    /// # Errors
    ///
    /// The errno of `mmap(2)` (`EINVAL` for a region or span vfio-pci does not let be
    /// mapped).
    fn mmap(&self, fd: Fd, offset: u64, len: usize, writable: bool) -> io::Result<MmapRegion<()>>;
    /// `VFIO_GET_API_VERSION` on a container.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn get_api_version(&self, container: Fd) -> io::Result<i32>;
    /// `VFIO_CHECK_EXTENSION`: the kernel's answer (0 = no).
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn check_extension(&self, container: Fd, extension: u32) -> io::Result<i32>;
    /// `VFIO_SET_IOMMU`.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn set_iommu(&self, container: Fd, iommu_type: u32) -> io::Result<()>;
    /// `VFIO_IOMMU_GET_INFO` into `buf` (`struct vfio_iommu_type1_info` and caps).
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn iommu_get_info(&self, container: Fd, buf: &mut [u8]) -> io::Result<()>;
    /// `VFIO_IOMMU_MAP_DMA`.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn iommu_map_dma(&self, container: Fd, req: &DmaMapRequest) -> io::Result<()>;
    /// `VFIO_IOMMU_UNMAP_DMA`; returns the size the kernel unmapped.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn iommu_unmap_dma(&self, container: Fd, iova: u64, size: u64, flags: u32) -> io::Result<u64>;
    /// `VFIO_GROUP_GET_STATUS`: the flags.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn group_get_status(&self, group: Fd) -> io::Result<u32>;
    /// `VFIO_GROUP_SET_CONTAINER`.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn group_set_container(&self, group: Fd, container: Fd) -> io::Result<()>;
    /// `VFIO_GROUP_UNSET_CONTAINER`.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn group_unset_container(&self, group: Fd) -> io::Result<()>;
    /// `VFIO_GROUP_GET_DEVICE_FD` with a device name (`BDF` or `BDF vf_token=UUID`).
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn group_get_device_fd(&self, group: Fd, name: &str) -> io::Result<Fd>;
    /// `VFIO_DEVICE_GET_INFO` into `buf` (`struct vfio_device_info` and caps).
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn device_get_info(&self, device: Fd, buf: &mut [u8]) -> io::Result<()>;
    /// `VFIO_DEVICE_GET_REGION_INFO` of region `index` into `buf`.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn device_get_region_info(&self, device: Fd, index: u32, buf: &mut [u8]) -> io::Result<()>;
    /// `VFIO_DEVICE_GET_IRQ_INFO` of irq `index`.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn device_get_irq_info(&self, device: Fd, index: u32) -> io::Result<RawIrqInfo>;
    /// `VFIO_DEVICE_SET_IRQS` with the request's bytes ([`IrqSet::to_bytes`]).
    ///
    /// Provided: answers `ENOTTY`, as a kernel without the ioctl would (see the trait's
    /// stability rule).
    ///
    /// # Errors
    ///
    /// `ENOTTY` from this default; else the kernel's errno (`EINVAL` for a request the
    /// index does not support).
    fn device_set_irqs(&self, device: Fd, req: &IrqSet) -> io::Result<()> {
        let _ = (device, req);
        Err(enotty())
    }
    /// Take ownership of a VFIO or iommufd file opened elsewhere (passed by libvirt,
    /// Kata or a parent process) and return the [`Fd`] this implementation knows it by.
    ///
    /// Provided: answers `ENOTTY` (and closes `fd`).
    ///
    /// # Errors
    ///
    /// `ENOTTY` from this default; else the errno of `fcntl(2)` or of checking the fd.
    fn adopt_fd(&self, fd: OwnedFd) -> io::Result<Fd> {
        drop(fd);
        Err(enotty())
    }
    /// A duplicate (`F_DUPFD_CLOEXEC`) of one of this implementation's fds, owned by
    /// the caller.
    ///
    /// Provided: answers `ENOTTY`.
    ///
    /// # Errors
    ///
    /// `ENOTTY` from this default; else the errno of `fcntl(F_DUPFD_CLOEXEC)` (`EBADF` for
    /// an fd this implementation does not hold).
    fn dup_fd(&self, fd: Fd) -> io::Result<OwnedFd> {
        let _ = fd;
        Err(enotty())
    }
    /// `KVM_CREATE_DEVICE` on the caller's VM fd `vm`: `struct kvm_create_device` with
    /// `type = kind` and flags 0 ([`kvm::create_device_bytes`]); returns the new KVM
    /// device fd, owned by this implementation from then on. Feature `kvm`.
    ///
    /// Provided: answers `ENOTTY`, as a kernel without KVM's device API would.
    ///
    /// # Errors
    ///
    /// `ENOTTY` from this default; else KVM's errno (`ENODEV` for a device type KVM was
    /// built without, `EEXIST` for a second VFIO device on the same VM).
    #[cfg(feature = "kvm")]
    fn kvm_create_device<'a>(&self, vm: BorrowedFd<'a>, kind: u32) -> io::Result<Fd> {
        let _ = (vm, kind);
        Err(enotty())
    }
    /// `KVM_SET_DEVICE_ATTR` on a KVM device fd of this implementation with an
    /// attribute whose data is one `__s32` file descriptor, `file`, also one of this
    /// implementation's fds: `struct kvm_device_attr` with flags 0, `group`, `attr`,
    /// and `addr` pointing at the fd number ([`kvm::device_attr_bytes`]). Feature `kvm`.
    ///
    /// Provided: answers `ENOTTY`.
    ///
    /// # Errors
    ///
    /// `ENOTTY` from this default; else KVM's errno (`EBADF` for a file that is not a
    /// VFIO group or device, `EEXIST` for one already added, `ENOENT` deleting one that
    /// was not).
    #[cfg(feature = "kvm")]
    fn kvm_set_device_attr_fd(
        &self,
        device: Fd,
        group: u32,
        attr: u64,
        file: Fd,
    ) -> io::Result<()> {
        let _ = (device, group, attr, file);
        Err(enotty())
    }
    /// `VFIO_DEVICE_RESET`.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn device_reset(&self, device: Fd) -> io::Result<()>;
    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` into `buf`.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn device_get_pci_hot_reset_info(&self, device: Fd, buf: &mut [u8]) -> io::Result<()>;
    /// `VFIO_DEVICE_PCI_HOT_RESET` with the group fds (empty in cdev/iommufd mode).
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn device_pci_hot_reset(&self, device: Fd, group_fds: &[Fd]) -> io::Result<()>;
    /// `VFIO_DEVICE_FEATURE` with `flags` and the feature payload `data`.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn device_feature(&self, device: Fd, flags: u32, data: &mut [u8]) -> io::Result<i32>;
    /// `VFIO_DEVICE_BIND_IOMMUFD` (cdev); returns the device id.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn device_bind_iommufd(
        &self,
        device: Fd,
        iommufd: Fd,
        vf_token: Option<[u8; 16]>,
    ) -> io::Result<u32>;
    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT`; returns the page table id the kernel chose.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn device_attach_iommufd_pt(&self, device: Fd, pt_id: u32) -> io::Result<u32>;
    /// `IOMMU_IOAS_ALLOC`; returns the IOAS id.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn iommufd_ioas_alloc(&self, iommufd: Fd) -> io::Result<u32>;
    /// `IOMMU_DESTROY` of an iommufd object.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn iommufd_destroy(&self, iommufd: Fd, id: u32) -> io::Result<()>;
    /// `IOMMU_IOAS_IOVA_RANGES` into `out`; `EMSGSIZE` is answered as `Ok` with
    /// `num_iovas > out.len()`.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EMSGSIZE` (more ranges than `out` holds) is not an error.
    fn iommufd_ioas_iova_ranges(
        &self,
        iommufd: Fd,
        ioas: u32,
        out: &mut [IovaRange],
    ) -> io::Result<IovaRangesAnswer>;
    /// `IOMMU_IOAS_MAP` at a fixed IOVA.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn iommufd_ioas_map(&self, iommufd: Fd, ioas: u32, req: &DmaMapRequest) -> io::Result<()>;
    /// `IOMMU_IOAS_UNMAP`; returns the length unmapped.
    ///
    /// # Errors
    ///
    /// The kernel's errno; `EBADF` for an fd this implementation does not hold.
    fn iommufd_ioas_unmap(&self, iommufd: Fd, ioas: u32, iova: u64, length: u64)
        -> io::Result<u64>;
}

/// A [`VfioSys`] whose answers about DMA mappings are true: the owned-mapping API
/// ([`crate::dma::OwnedDma`]) frees memory only on its word.
///
/// # Safety
///
/// Implementors promise that `iommu_map_dma` / `iommufd_ioas_map` answering `Err` left
/// nothing mapped, and that `iommu_unmap_dma` / `iommufd_ioas_unmap` of exactly the
/// range of an earlier successful map answering `Ok` left none of that map's memory
/// mapped for any device: after that answer the memory may be freed. [`RealSys`] keeps
/// the promise because the kernel does (drivers/vfio/vfio_iommu_type1.c
/// `vfio_dma_do_unmap`: v2 removes every mapping inside the range and refuses to bisect
/// one; v1 removes a mapping whose first IOVA the range covers, never part of one;
/// drivers/iommu/iommufd/io_pagetable.c `iopt_unmap_iova_range` removes the areas
/// inside the range and fails on one it would cut). A safe [`VfioSys`] implementation
/// cannot be trusted this way, since it can forward a map to [`RealSys`] and then
/// answer an unmap with `Ok` without making it.
pub unsafe trait TrustedVfioSys: VfioSys {}

// SAFETY: RealSys issues the ioctls as asked and reports the kernel's answer, and the
// kernel's map/unmap answers are as the trait requires (see above).
unsafe impl TrustedVfioSys for RealSys {}

// SAFETY: test builds of this crate only (the `testing` feature's public mock is not
// trusted: a downstream test could forward its calls to RealSys). The crate's own tests
// never reach the kernel through the mock, so nothing it "maps" is mapped.
#[cfg(test)]
unsafe impl TrustedVfioSys for MockVfioSys {}

// SAFETY: FakeVfio reaches no kernel: nothing it answers about is mapped for any
// device, so freeing memory on its word is always sound.
#[cfg(any(test, feature = "testing"))]
unsafe impl TrustedVfioSys for crate::testing::FakeVfio {}

/// Memory a device may be given for DMA, owned (or shared through an [`Arc`]) by the
/// value: the owned-mapping API moves it into the DMA space and drops it only after
/// the kernel has unmapped it.
///
/// # Safety
///
/// Implementors promise that:
/// - `[dma_ptr(), dma_ptr() + dma_len())` is memory mapped in this process, valid for
///   reads and writes, that stays mapped at that address for as long as the value (or,
///   for shared memory, any clone of it) lives, whatever is done with the value (moved,
///   swapped): it is unmapped or freed only by the value's drop;
/// - every call returns the same pointer and length;
/// - no safe code holds a Rust reference (`&[u8]`, `&mut [u8]`) to it: it is reached only
///   through raw pointers or volatile accesses, since the device may write it at any time.
///
/// vm-memory's [`MmapRegion`] and [`vm_memory::GuestRegionMmap`] keep these promises
/// (they own an mmap, unmap it on drop, and hand out only volatile accesses), as does an
/// [`Arc`] or [`Box`] of memory that does, and a [`DmaRange`] of one.
pub unsafe trait DmaMemory: Send + Sync + 'static {
    /// Host address of the first byte.
    fn dma_ptr(&self) -> *mut u8;
    /// Length in bytes.
    fn dma_len(&self) -> usize;
}

// SAFETY: an MmapRegion owns its mapping (safe constructors) or was built with the
// unsafe `build_raw`, whose caller promised the memory outlives it; it is unmapped only
// on drop, its pointer and size are fixed at construction, and it gives out only
// volatile slices and raw pointers.
unsafe impl<B: vm_memory::bitmap::Bitmap + Send + Sync + 'static> DmaMemory for MmapRegion<B> {
    fn dma_ptr(&self) -> *mut u8 {
        self.as_ptr()
    }
    fn dma_len(&self) -> usize {
        self.size()
    }
}

// SAFETY: a GuestRegionMmap is an MmapRegion plus a guest address (see above).
unsafe impl<B: vm_memory::bitmap::Bitmap + Send + Sync + 'static> DmaMemory
    for vm_memory::GuestRegionMmap<B>
{
    fn dma_ptr(&self) -> *mut u8 {
        self.as_ptr()
    }
    fn dma_len(&self) -> usize {
        self.size()
    }
}

// SAFETY: the Arc keeps the memory alive while any clone lives; it forwards to `T`.
unsafe impl<T: DmaMemory + ?Sized> DmaMemory for Arc<T> {
    fn dma_ptr(&self) -> *mut u8 {
        (**self).dma_ptr()
    }
    fn dma_len(&self) -> usize {
        (**self).dma_len()
    }
}

// SAFETY: the Box owns `T`, and moving the Box does not move `T`'s memory.
unsafe impl<T: DmaMemory + ?Sized> DmaMemory for Box<T> {
    fn dma_ptr(&self) -> *mut u8 {
        (**self).dma_ptr()
    }
    fn dma_len(&self) -> usize {
        (**self).dma_len()
    }
}

/// A sub-range of shared DMA memory (a part of a guest region, a chunk of a buffer),
/// keeping the whole memory alive.
#[derive(Debug)]
pub struct DmaRange<M: DmaMemory + ?Sized> {
    mem: Arc<M>,
    offset: usize,
    len: usize,
}

impl<M: DmaMemory + ?Sized> DmaRange<M> {
    /// `len` bytes of `mem` from `offset`; `None` when that is not inside `mem`.
    pub fn new(mem: Arc<M>, offset: usize, len: usize) -> Option<Self> {
        let end = offset.checked_add(len)?;
        (end <= mem.dma_len()).then_some(DmaRange { mem, offset, len })
    }

    /// A range the caller has already checked lies inside `mem`.
    pub(crate) fn part(mem: Arc<M>, offset: usize, len: usize) -> Self {
        debug_assert!(offset
            .checked_add(len)
            .is_some_and(|end| end <= mem.dma_len()));
        DmaRange { mem, offset, len }
    }

    /// The whole memory.
    pub fn memory(&self) -> &Arc<M> {
        &self.mem
    }
}

// SAFETY: `offset + len <= mem.dma_len()` (checked in `new`), so the range lies inside
// memory that the Arc keeps valid (M's promises).
unsafe impl<M: DmaMemory + ?Sized> DmaMemory for DmaRange<M> {
    fn dma_ptr(&self) -> *mut u8 {
        self.mem.dma_ptr().wrapping_add(self.offset)
    }
    fn dma_len(&self) -> usize {
        self.len
    }
}

/// Map `size` bytes at host address `vaddr` for the device at `iova`, outside the
/// owned-mapping API: nothing keeps the memory alive, and nothing unmaps it on drop
/// (unmap it with [`crate::dma::DmaSpace::unmap_raw`]). Alignment and the IOVA ranges
/// are checked as for owned mappings.
///
/// # Safety
///
/// The caller promises that `[vaddr, vaddr + size)` is memory of this process that stays
/// mapped and is not freed or reused until the kernel has unmapped this IOVA range (by
/// `unmap_raw`, by dropping the space, or by closing the container or iommufd), and that
/// the device writing it at any time (when `writable`) does not break what Rust code
/// assumes about it: no `&`/`&mut` reference to it is used meanwhile.
///
/// # Errors
///
/// Error::Unaligned when `vaddr`, `iova` or `size` is not page aligned,
/// Error::IovaOutOfRange when the span is outside the reported ranges, and Error::Ioctl
/// with the kernel's errno when it refuses the mapping.
pub unsafe fn map_raw<D: crate::dma::DmaSpace + ?Sized>(
    space: &D,
    vaddr: u64,
    iova: u64,
    size: u64,
    writable: bool,
) -> crate::Result<()> {
    crate::dma::map_checked(space, vaddr, iova, size, writable)
}

/// ioctl numbers: every VFIO and iommufd ioctl is `_IO(';', nr)` (include/uapi/linux/vfio.h, iommufd.h).
pub mod nr {
    const fn io(nr: u64) -> u64 {
        ((b';' as u64) << 8) | nr
    }
    /// `VFIO_GET_API_VERSION`.
    pub const VFIO_GET_API_VERSION: u64 = io(100);
    /// `VFIO_CHECK_EXTENSION`.
    pub const VFIO_CHECK_EXTENSION: u64 = io(101);
    /// `VFIO_SET_IOMMU`.
    pub const VFIO_SET_IOMMU: u64 = io(102);
    /// `VFIO_GROUP_GET_STATUS`.
    pub const VFIO_GROUP_GET_STATUS: u64 = io(103);
    /// `VFIO_GROUP_SET_CONTAINER`.
    pub const VFIO_GROUP_SET_CONTAINER: u64 = io(104);
    /// `VFIO_GROUP_UNSET_CONTAINER`.
    pub const VFIO_GROUP_UNSET_CONTAINER: u64 = io(105);
    /// `VFIO_GROUP_GET_DEVICE_FD`.
    pub const VFIO_GROUP_GET_DEVICE_FD: u64 = io(106);
    /// `VFIO_DEVICE_GET_INFO`.
    pub const VFIO_DEVICE_GET_INFO: u64 = io(107);
    /// `VFIO_DEVICE_GET_REGION_INFO`.
    pub const VFIO_DEVICE_GET_REGION_INFO: u64 = io(108);
    /// `VFIO_DEVICE_GET_IRQ_INFO`.
    pub const VFIO_DEVICE_GET_IRQ_INFO: u64 = io(109);
    /// `VFIO_DEVICE_SET_IRQS`.
    pub const VFIO_DEVICE_SET_IRQS: u64 = io(110);
    /// `VFIO_DEVICE_RESET`.
    pub const VFIO_DEVICE_RESET: u64 = io(111);
    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`.
    pub const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: u64 = io(112);
    /// `VFIO_IOMMU_GET_INFO` (same number, container fd).
    pub const VFIO_IOMMU_GET_INFO: u64 = io(112);
    /// `VFIO_DEVICE_PCI_HOT_RESET`.
    pub const VFIO_DEVICE_PCI_HOT_RESET: u64 = io(113);
    /// `VFIO_IOMMU_MAP_DMA` (same number, container fd).
    pub const VFIO_IOMMU_MAP_DMA: u64 = io(113);
    /// `VFIO_IOMMU_UNMAP_DMA`.
    pub const VFIO_IOMMU_UNMAP_DMA: u64 = io(114);
    /// `VFIO_DEVICE_FEATURE`.
    pub const VFIO_DEVICE_FEATURE: u64 = io(117);
    /// `VFIO_DEVICE_BIND_IOMMUFD`.
    pub const VFIO_DEVICE_BIND_IOMMUFD: u64 = io(118);
    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT`.
    pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: u64 = io(119);
    /// `IOMMU_DESTROY`.
    pub const IOMMU_DESTROY: u64 = io(0x80);
    /// `IOMMU_IOAS_ALLOC`.
    pub const IOMMU_IOAS_ALLOC: u64 = io(0x81);
    /// `IOMMU_IOAS_IOVA_RANGES`.
    pub const IOMMU_IOAS_IOVA_RANGES: u64 = io(0x84);
    /// `IOMMU_IOAS_MAP`.
    pub const IOMMU_IOAS_MAP: u64 = io(0x85);
    /// `IOMMU_IOAS_UNMAP`.
    pub const IOMMU_IOAS_UNMAP: u64 = io(0x86);
    /// `KVM_CREATE_DEVICE`: `_IOWR(KVMIO, 0xe0, struct kvm_create_device)` (feature `kvm`).
    #[cfg(feature = "kvm")]
    pub const KVM_CREATE_DEVICE: u64 = kvm(3, 0xe0, super::kvm::CREATE_DEVICE_LEN);
    /// `KVM_SET_DEVICE_ATTR`: `_IOW(KVMIO, 0xe1, struct kvm_device_attr)` (feature `kvm`).
    #[cfg(feature = "kvm")]
    pub const KVM_SET_DEVICE_ATTR: u64 = kvm(1, 0xe1, super::kvm::DEVICE_ATTR_LEN);
    /// The generic `_IOC(dir, KVMIO, nr, size)` encoding (include/uapi/asm-generic/ioctl.h:
    /// nr bits 0-7, type 8-15, size 16-29, direction 30-31; write 1, read 2).
    #[cfg(feature = "kvm")]
    const fn kvm(dir: u64, nr: u64, size: usize) -> u64 {
        (dir << 30) | ((size as u64) << 16) | (0xae << 8) | nr
    }
}

/// KVM's VFIO pseudo-device, in the kernel's words (include/uapi/linux/kvm.h): the
/// constants and the exact bytes of the two structures the `kvm` calls pass.
#[cfg(feature = "kvm")]
pub mod kvm {
    /// `KVM_DEV_TYPE_VFIO` (`enum kvm_device_type`: FSL_MPIC_20 = 1, FSL_MPIC_42,
    /// XICS, VFIO).
    pub const DEV_TYPE_VFIO: u32 = 4;
    /// `KVM_DEV_VFIO_FILE`, a group or device file (alias `KVM_DEV_VFIO_GROUP`).
    pub const DEV_VFIO_FILE: u32 = 1;
    /// `KVM_DEV_VFIO_FILE_ADD` (alias `KVM_DEV_VFIO_GROUP_ADD`).
    pub const DEV_VFIO_FILE_ADD: u64 = 1;
    /// `KVM_DEV_VFIO_FILE_DEL` (alias `KVM_DEV_VFIO_GROUP_DEL`).
    pub const DEV_VFIO_FILE_DEL: u64 = 2;
    /// `sizeof(struct kvm_create_device)`: `__u32 type, fd, flags`.
    pub const CREATE_DEVICE_LEN: usize = 12;
    /// `sizeof(struct kvm_device_attr)`: `__u32 flags, group; __u64 attr, addr`.
    pub const DEVICE_ATTR_LEN: usize = 24;

    /// `struct kvm_create_device` as `KVM_CREATE_DEVICE` takes it: `type`, `fd` 0 (the
    /// kernel's answer goes there), `flags` 0 (not `KVM_CREATE_DEVICE_TEST`).
    pub fn create_device_bytes(kind: u32) -> [u8; CREATE_DEVICE_LEN] {
        let mut b = [0u8; CREATE_DEVICE_LEN];
        b[0..4].copy_from_slice(&kind.to_ne_bytes());
        b
    }

    /// `struct kvm_device_attr` with flags 0, `group`, `attr` and `addr`.
    pub fn device_attr_bytes(group: u32, attr: u64, addr: u64) -> [u8; DEVICE_ATTR_LEN] {
        let mut b = [0u8; DEVICE_ATTR_LEN];
        b[4..8].copy_from_slice(&group.to_ne_bytes());
        b[8..16].copy_from_slice(&attr.to_ne_bytes());
        b[16..24].copy_from_slice(&addr.to_ne_bytes());
        b
    }
}

// iommufd structures (include/uapi/linux/iommufd.h); vfio-bindings 0.7 lacks them.
#[repr(C)]
#[derive(Default)]
struct IommuDestroy {
    size: u32,
    id: u32,
}
#[repr(C)]
#[derive(Default)]
struct IommuIoasAlloc {
    size: u32,
    flags: u32,
    out_ioas_id: u32,
}
#[repr(C)]
#[derive(Default)]
struct IommuIoasIovaRanges {
    size: u32,
    ioas_id: u32,
    num_iovas: u32,
    reserved: u32,
    allowed_iovas: u64,
    out_iova_alignment: u64,
}
#[repr(C)]
#[derive(Default)]
struct IommuIoasMap {
    size: u32,
    flags: u32,
    ioas_id: u32,
    reserved: u32,
    user_va: u64,
    length: u64,
    iova: u64,
}
#[repr(C)]
#[derive(Default)]
struct IommuIoasUnmap {
    size: u32,
    ioas_id: u32,
    iova: u64,
    length: u64,
}
const IOMMU_IOAS_MAP_FIXED_IOVA: u32 = 1;
const IOMMU_IOAS_MAP_WRITEABLE: u32 = 1 << 1;
const IOMMU_IOAS_MAP_READABLE: u32 = 1 << 2;

/// The running kernel.
///
/// I/O safety: a `RealSys` only ever touches file descriptors it opened itself (by
/// `open` or `VFIO_GROUP_GET_DEVICE_FD`) and has not closed yet; any other [`Fd`] is
/// answered with `EBADF`, so a forged or stale `Fd` cannot close or map someone else's
/// file.
///
///
/// The fds it owns are tracked in a bitmap for fds below 1024 (one atomic load checks
/// one, on the path of every ioctl) and in a locked vector above (a process with more
/// than a thousand files open). The DMA benchmark (BENCHMARKS.md) measured the check: a locked
/// hashed set cost 20% of an empty `VFIO_IOMMU_UNMAP_DMA` under TCG.
#[derive(Debug, Default)]
pub struct RealSys {
    small: [AtomicU64; SMALL_FDS / 64],
    big: Mutex<Vec<i32>>,
}

/// Fds below this are tracked in [`RealSys`]' bitmap.
const SMALL_FDS: usize = 1024;

fn size_u32<T>() -> u32 {
    // Every structure here is a few dozen bytes.
    std::mem::size_of::<T>() as u32
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Write `argsz = buf.len()` at the start of `buf`; refuse buffers shorter than `min`.
fn set_argsz(buf: &mut [u8], min: usize) -> io::Result<()> {
    let len = u32::try_from(buf.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    if buf.len() < min {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    buf[..4].copy_from_slice(&len.to_ne_bytes());
    Ok(())
}

impl RealSys {
    /// A new handle on the running kernel, owning no fds yet.
    pub fn new() -> Self {
        RealSys::default()
    }

    fn big(&self) -> std::sync::MutexGuard<'_, Vec<i32>> {
        // A poisoned vector is still a valid vector of ints.
        self.big.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bitmap word and bit of a small fd.
    fn slot(fd: i32) -> Option<(usize, u64)> {
        let i = usize::try_from(fd).ok().filter(|&i| i < SMALL_FDS)?;
        Some((i / 64, 1u64 << (i % 64)))
    }

    /// Record `fd` as ours.
    fn adopt(&self, fd: i32) {
        match Self::slot(fd) {
            Some((w, bit)) => {
                self.small[w].fetch_or(bit, Ordering::AcqRel);
            }
            None => self.big().push(fd),
        }
    }

    /// Forget `fd`; whether it was ours.
    fn release(&self, fd: i32) -> bool {
        match Self::slot(fd) {
            Some((w, bit)) => self.small[w].fetch_and(!bit, Ordering::AcqRel) & bit != 0,
            None => {
                let mut big = self.big();
                match big.iter().position(|&o| o == fd) {
                    Some(i) => {
                        big.swap_remove(i);
                        true
                    }
                    None => false,
                }
            }
        }
    }

    /// `Ok` when `fd` is one of ours, else `EBADF`.
    fn mine(&self, fd: Fd) -> io::Result<Fd> {
        let ours = match Self::slot(fd.0) {
            Some((w, bit)) => self.small[w].load(Ordering::Acquire) & bit != 0,
            None => self.big().contains(&fd.0),
        };
        if ours {
            Ok(fd)
        } else {
            Err(io::Error::from_raw_os_error(libc::EBADF))
        }
    }

    /// ioctl with no argument or an integer argument.
    fn ioctl_val(&self, fd: Fd, req: u64, arg: libc::c_ulong) -> io::Result<libc::c_int> {
        let fd = self.mine(fd)?;
        // SAFETY: the request takes an integer argument (or none); no memory is passed.
        check(unsafe { libc::ioctl(fd.0, req as _, arg) })
    }

    /// ioctl whose argument is a pointer to a byte buffer of `buf.len()` bytes.
    fn ioctl_buf(&self, fd: Fd, req: u64, buf: &mut [u8]) -> io::Result<libc::c_int> {
        let fd = self.mine(fd)?;
        // SAFETY: `buf` is valid for reads and writes of `buf.len()` bytes and its
        // first field (argsz) holds that length; the kernel stays within argsz.
        check(unsafe { libc::ioctl(fd.0, req as _, buf.as_mut_ptr()) })
    }

    /// ioctl whose argument is a pointer to one `#[repr(C)]` structure.
    fn ioctl_struct<T>(&self, fd: Fd, req: u64, arg: &mut T) -> io::Result<libc::c_int> {
        let fd = self.mine(fd)?;
        // SAFETY: `arg` is a valid, exclusively borrowed `T` of the layout the kernel
        // expects for `req`, with its size in its first field.
        check(unsafe { libc::ioctl(fd.0, req as _, arg as *mut T) })
    }
}

impl VfioSys for RealSys {
    fn open(&self, path: &Path) -> io::Result<Fd> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        let fd = f.into_raw_fd();
        self.adopt(fd);
        Ok(Fd(fd))
    }

    fn close(&self, fd: Fd) -> io::Result<()> {
        if !self.release(fd.0) {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // SAFETY: the fd was opened by this `RealSys` and was still in its set, which
        // it has just left: it is closed exactly once, and never used again here.
        check(unsafe { libc::close(fd.0) }).map(|_| ())
    }

    fn pread(&self, fd: Fd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let fd = self.mine(fd)?;
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::pread(fd.0, buf.as_mut_ptr().cast(), buf.len(), off) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn pwrite(&self, fd: Fd, buf: &[u8], offset: u64) -> io::Result<usize> {
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let fd = self.mine(fd)?;
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
        let n = unsafe { libc::pwrite(fd.0, buf.as_ptr().cast(), buf.len(), off) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn mmap(&self, fd: Fd, offset: u64, len: usize, writable: bool) -> io::Result<MmapRegion<()>> {
        // SAFETY: `fd` is one this RealSys opened and has not closed, and `&self` keeps
        // it from being closed during this call; the borrow ends before we return, and
        // the mapping keeps its own duplicate.
        let borrowed = unsafe { BorrowedFd::borrow_raw(self.mine(fd)?.0) };
        let file = std::fs::File::from(borrowed.try_clone_to_owned()?);
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        MmapRegion::build(
            Some(FileOffset::new(file, offset)),
            len,
            prot,
            libc::MAP_SHARED,
        )
        .map_err(|e| match e {
            vm_memory::mmap::MmapRegionError::Mmap(io) => io,
            other => io::Error::new(io::ErrorKind::InvalidInput, other),
        })
    }

    fn get_api_version(&self, container: Fd) -> io::Result<i32> {
        self.ioctl_val(container, nr::VFIO_GET_API_VERSION, 0)
    }

    fn check_extension(&self, container: Fd, extension: u32) -> io::Result<i32> {
        self.ioctl_val(
            container,
            nr::VFIO_CHECK_EXTENSION,
            libc::c_ulong::from(extension),
        )
    }

    fn set_iommu(&self, container: Fd, iommu_type: u32) -> io::Result<()> {
        self.ioctl_val(
            container,
            nr::VFIO_SET_IOMMU,
            libc::c_ulong::from(iommu_type),
        )
        .map(|_| ())
    }

    fn iommu_get_info(&self, container: Fd, buf: &mut [u8]) -> io::Result<()> {
        set_argsz(buf, std::mem::size_of::<b::vfio_iommu_type1_info>())?;
        self.ioctl_buf(container, nr::VFIO_IOMMU_GET_INFO, buf)
            .map(|_| ())
    }

    fn iommu_map_dma(&self, container: Fd, req: &DmaMapRequest) -> io::Result<()> {
        let mut flags = 0;
        if req.readable {
            flags |= b::VFIO_DMA_MAP_FLAG_READ;
        }
        if req.writable {
            flags |= b::VFIO_DMA_MAP_FLAG_WRITE;
        }
        let mut map = b::vfio_iommu_type1_dma_map {
            argsz: size_u32::<b::vfio_iommu_type1_dma_map>(),
            flags,
            vaddr: req.vaddr,
            iova: req.iova,
            size: req.size,
        };
        self.ioctl_struct(container, nr::VFIO_IOMMU_MAP_DMA, &mut map)
            .map(|_| ())
    }

    fn iommu_unmap_dma(&self, container: Fd, iova: u64, size: u64, flags: u32) -> io::Result<u64> {
        let mut unmap = b::vfio_iommu_type1_dma_unmap {
            argsz: size_u32::<b::vfio_iommu_type1_dma_unmap>(),
            flags,
            iova,
            size,
            ..Default::default()
        };
        self.ioctl_struct(container, nr::VFIO_IOMMU_UNMAP_DMA, &mut unmap)?;
        Ok(unmap.size)
    }

    fn group_get_status(&self, group: Fd) -> io::Result<u32> {
        let mut st = b::vfio_group_status {
            argsz: size_u32::<b::vfio_group_status>(),
            flags: 0,
        };
        self.ioctl_struct(group, nr::VFIO_GROUP_GET_STATUS, &mut st)?;
        Ok(st.flags)
    }

    fn group_set_container(&self, group: Fd, container: Fd) -> io::Result<()> {
        let mut fd: libc::c_int = self.mine(container)?.0;
        self.ioctl_struct(group, nr::VFIO_GROUP_SET_CONTAINER, &mut fd)
            .map(|_| ())
    }

    fn group_unset_container(&self, group: Fd) -> io::Result<()> {
        self.ioctl_val(group, nr::VFIO_GROUP_UNSET_CONTAINER, 0)
            .map(|_| ())
    }

    fn group_get_device_fd(&self, group: Fd, name: &str) -> io::Result<Fd> {
        let group = self.mine(group)?;
        let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: `name` is a NUL-terminated string that outlives the call; the
        // kernel only reads it.
        let fd = check(unsafe {
            libc::ioctl(group.0, nr::VFIO_GROUP_GET_DEVICE_FD as _, name.as_ptr())
        })?;
        self.adopt(fd);
        Ok(Fd(fd))
    }

    fn device_get_info(&self, device: Fd, buf: &mut [u8]) -> io::Result<()> {
        set_argsz(buf, std::mem::size_of::<b::vfio_device_info>())?;
        self.ioctl_buf(device, nr::VFIO_DEVICE_GET_INFO, buf)
            .map(|_| ())
    }

    fn device_get_region_info(&self, device: Fd, index: u32, buf: &mut [u8]) -> io::Result<()> {
        set_argsz(buf, std::mem::size_of::<b::vfio_region_info>())?;
        buf[8..12].copy_from_slice(&index.to_ne_bytes());
        self.ioctl_buf(device, nr::VFIO_DEVICE_GET_REGION_INFO, buf)
            .map(|_| ())
    }

    fn device_get_irq_info(&self, device: Fd, index: u32) -> io::Result<RawIrqInfo> {
        let mut info = b::vfio_irq_info {
            argsz: size_u32::<b::vfio_irq_info>(),
            flags: 0,
            index,
            count: 0,
        };
        self.ioctl_struct(device, nr::VFIO_DEVICE_GET_IRQ_INFO, &mut info)?;
        Ok(RawIrqInfo {
            flags: info.flags,
            count: info.count,
        })
    }

    fn adopt_fd(&self, fd: OwnedFd) -> io::Result<Fd> {
        let raw = fd.into_raw_fd();
        self.adopt(raw);
        Ok(Fd(raw))
    }

    fn dup_fd(&self, fd: Fd) -> io::Result<OwnedFd> {
        let fd = self.mine(fd)?;
        // SAFETY: `fd` is one this RealSys opened (or adopted) and has not closed; the
        // borrow ends with this statement, and the duplicate is a new descriptor.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd.0) };
        borrowed.try_clone_to_owned()
    }

    #[cfg(feature = "kvm")]
    fn kvm_create_device<'a>(&self, vm: BorrowedFd<'a>, kind: u32) -> io::Result<Fd> {
        let mut arg = kvm::create_device_bytes(kind);
        // SAFETY: `vm` is open for this call (a BorrowedFd); `arg` is valid for reads and
        // writes of the 12 bytes the request number encodes, and the kernel writes
        // only its `fd` field.
        check(unsafe {
            libc::ioctl(vm.as_raw_fd(), nr::KVM_CREATE_DEVICE as _, arg.as_mut_ptr())
        })?;
        let fd = i32::from_ne_bytes([arg[4], arg[5], arg[6], arg[7]]);
        self.adopt(fd);
        Ok(Fd(fd))
    }

    #[cfg(feature = "kvm")]
    fn kvm_set_device_attr_fd(
        &self,
        device: Fd,
        group: u32,
        attr: u64,
        file: Fd,
    ) -> io::Result<()> {
        let file = self.mine(file)?;
        let data: i32 = file.0;
        let mut arg = kvm::device_attr_bytes(group, attr, &data as *const i32 as u64);
        let device = self.mine(device)?;
        // SAFETY: `device` is ours and open; `arg` is valid for the 24 bytes the request
        // number encodes (the kernel only reads them), and its `addr` points at `data`,
        // an `i32` that lives past the call (the kernel reads it with get_user and takes
        // its own reference to that file).
        check(unsafe { libc::ioctl(device.0, nr::KVM_SET_DEVICE_ATTR as _, arg.as_mut_ptr()) })
            .map(|_| ())
    }

    fn device_set_irqs(&self, device: Fd, req: &IrqSet) -> io::Result<()> {
        // The eventfds in `req` stay borrowed by the caller for this call, so they are
        // open during it; the kernel takes its own reference to each (eventfd_ctx_fdget).
        let mut buf = req.to_bytes();
        self.ioctl_buf(device, nr::VFIO_DEVICE_SET_IRQS, &mut buf)
            .map(|_| ())
    }

    fn device_reset(&self, device: Fd) -> io::Result<()> {
        self.ioctl_val(device, nr::VFIO_DEVICE_RESET, 0).map(|_| ())
    }

    fn device_get_pci_hot_reset_info(&self, device: Fd, buf: &mut [u8]) -> io::Result<()> {
        set_argsz(buf, 12)?;
        self.ioctl_buf(device, nr::VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buf)
            .map(|_| ())
    }

    fn device_pci_hot_reset(&self, device: Fd, group_fds: &[Fd]) -> io::Result<()> {
        // struct vfio_pci_hot_reset { argsz, flags, count, group_fds[] }
        let mut buf = Vec::with_capacity(12 + 4 * group_fds.len());
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        let count = u32::try_from(group_fds.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        buf.extend_from_slice(&count.to_ne_bytes());
        for fd in group_fds {
            buf.extend_from_slice(&self.mine(*fd)?.0.to_ne_bytes());
        }
        set_argsz(&mut buf, 12)?;
        self.ioctl_buf(device, nr::VFIO_DEVICE_PCI_HOT_RESET, &mut buf)
            .map(|_| ())
    }

    fn device_feature(&self, device: Fd, flags: u32, data: &mut [u8]) -> io::Result<i32> {
        let mut buf = vec![0u8; 8 + data.len()];
        buf[4..8].copy_from_slice(&flags.to_ne_bytes());
        buf[8..].copy_from_slice(data);
        set_argsz(&mut buf, 8)?;
        let rc = self.ioctl_buf(device, nr::VFIO_DEVICE_FEATURE, &mut buf)?;
        data.copy_from_slice(&buf[8..]);
        Ok(rc)
    }

    fn device_bind_iommufd(
        &self,
        device: Fd,
        iommufd: Fd,
        vf_token: Option<[u8; 16]>,
    ) -> io::Result<u32> {
        let token = vf_token.unwrap_or([0; 16]);
        let mut bind = b::vfio_device_bind_iommufd {
            argsz: size_u32::<b::vfio_device_bind_iommufd>(),
            flags: if vf_token.is_some() {
                b::VFIO_DEVICE_BIND_FLAG_TOKEN
            } else {
                0
            },
            iommufd: self.mine(iommufd)?.0,
            out_devid: 0,
            token_uuid_ptr: if vf_token.is_some() {
                token.as_ptr() as u64
            } else {
                0
            },
        };
        self.ioctl_struct(device, nr::VFIO_DEVICE_BIND_IOMMUFD, &mut bind)?;
        Ok(bind.out_devid)
    }

    fn device_attach_iommufd_pt(&self, device: Fd, pt_id: u32) -> io::Result<u32> {
        // Kernels before PASID support know only the first 12 bytes.
        let mut at = b::vfio_device_attach_iommufd_pt {
            argsz: 12,
            flags: 0,
            pt_id,
            pasid: 0,
        };
        self.ioctl_struct(device, nr::VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut at)?;
        Ok(at.pt_id)
    }

    fn iommufd_ioas_alloc(&self, iommufd: Fd) -> io::Result<u32> {
        let mut a = IommuIoasAlloc {
            size: size_u32::<IommuIoasAlloc>(),
            ..Default::default()
        };
        self.ioctl_struct(iommufd, nr::IOMMU_IOAS_ALLOC, &mut a)?;
        Ok(a.out_ioas_id)
    }

    fn iommufd_destroy(&self, iommufd: Fd, id: u32) -> io::Result<()> {
        let mut d = IommuDestroy {
            size: size_u32::<IommuDestroy>(),
            id,
        };
        self.ioctl_struct(iommufd, nr::IOMMU_DESTROY, &mut d)
            .map(|_| ())
    }

    fn iommufd_ioas_iova_ranges(
        &self,
        iommufd: Fd,
        ioas: u32,
        out: &mut [IovaRange],
    ) -> io::Result<IovaRangesAnswer> {
        let mut r = IommuIoasIovaRanges {
            size: size_u32::<IommuIoasIovaRanges>(),
            ioas_id: ioas,
            num_iovas: u32::try_from(out.len())
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
            reserved: 0,
            allowed_iovas: out.as_mut_ptr() as u64,
            out_iova_alignment: 0,
        };
        // `out` is `#[repr(C)]` pairs of u64, the layout of `struct iommu_iova_range`,
        // valid for `out.len()` entries, which is what `num_iovas` says.
        match self.ioctl_struct(iommufd, nr::IOMMU_IOAS_IOVA_RANGES, &mut r) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {}
            Err(e) => return Err(e),
        }
        Ok(IovaRangesAnswer {
            num_iovas: r.num_iovas,
            alignment: r.out_iova_alignment,
        })
    }

    fn iommufd_ioas_map(&self, iommufd: Fd, ioas: u32, req: &DmaMapRequest) -> io::Result<()> {
        let mut flags = IOMMU_IOAS_MAP_FIXED_IOVA;
        if req.readable {
            flags |= IOMMU_IOAS_MAP_READABLE;
        }
        if req.writable {
            flags |= IOMMU_IOAS_MAP_WRITEABLE;
        }
        let mut m = IommuIoasMap {
            size: size_u32::<IommuIoasMap>(),
            flags,
            ioas_id: ioas,
            reserved: 0,
            user_va: req.vaddr,
            length: req.size,
            iova: req.iova,
        };
        self.ioctl_struct(iommufd, nr::IOMMU_IOAS_MAP, &mut m)
            .map(|_| ())
    }

    fn iommufd_ioas_unmap(
        &self,
        iommufd: Fd,
        ioas: u32,
        iova: u64,
        length: u64,
    ) -> io::Result<u64> {
        let mut u = IommuIoasUnmap {
            size: size_u32::<IommuIoasUnmap>(),
            ioas_id: ioas,
            iova,
            length,
        };
        self.ioctl_struct(iommufd, nr::IOMMU_IOAS_UNMAP, &mut u)?;
        Ok(u.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The numbers as include/uapi/linux/vfio.h defines them: _IO(';', VFIO_BASE + n).
    #[test]
    fn ioctl_numbers_match_the_uapi_header() {
        assert_eq!(nr::VFIO_GET_API_VERSION, 0x3b64);
        assert_eq!(nr::VFIO_GROUP_GET_STATUS, 0x3b67);
        assert_eq!(nr::VFIO_DEVICE_PCI_HOT_RESET, 0x3b71);
        assert_eq!(nr::IOMMU_IOAS_ALLOC, 0x3b81);
        // VFIO_DEVICE_SET_IRQS: _IO(VFIO_TYPE, VFIO_BASE + 10).
        assert_eq!(nr::VFIO_DEVICE_SET_IRQS, 0x3b6e);
    }

    // RealSys hands SET_IRQS to the kernel only on its own fds; a regular file answers
    // ENOTTY (not a VFIO device), a forged fd EBADF.
    #[test]
    fn real_sys_set_irqs_reaches_the_kernel_only_on_its_fds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, [0u8; 4]).unwrap();
        let s = RealSys::new();
        let fd = s.open(&p).unwrap();
        let e = EventFd::new().unwrap();
        let req = IrqSet::eventfds(2, 0, IrqAction::Trigger, &[Some(e.as_fd())]).unwrap();
        assert_eq!(
            s.device_set_irqs(fd, &req).unwrap_err().raw_os_error(),
            Some(libc::ENOTTY)
        );
        assert_eq!(
            s.device_set_irqs(Fd(0), &req).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        s.close(fd).unwrap();
    }

    // Sizes from include/uapi/linux/iommufd.h.
    #[test]
    fn iommufd_struct_sizes_match_the_uapi_header() {
        assert_eq!(std::mem::size_of::<IommuIoasIovaRanges>(), 32);
        assert_eq!(std::mem::size_of::<IommuIoasMap>(), 40);
        assert_eq!(std::mem::size_of::<IommuIoasUnmap>(), 24);
        assert_eq!(std::mem::size_of::<IommuIoasAlloc>(), 12);
        assert_eq!(std::mem::size_of::<IovaRange>(), 16);
    }

    #[test]
    fn set_argsz_refuses_short_buffers() {
        let mut b = [0u8; 8];
        assert!(set_argsz(&mut b, 12).is_err());
        let mut b = [0u8; 12];
        set_argsz(&mut b, 12).unwrap();
        assert_eq!(u32::from_ne_bytes(b[..4].try_into().unwrap()), 12);
    }

    #[test]
    fn real_sys_open_of_a_missing_node_names_enoent() {
        let e = RealSys::new()
            .open(Path::new("/nonexistent/dev/vfio/vfio"))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn real_sys_pread_pwrite_round_trip_on_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, [0u8; 16]).unwrap();
        let s = RealSys::new();
        let fd = s.open(&p).unwrap();
        assert_eq!(s.pwrite(fd, &[1, 2, 3], 4).unwrap(), 3);
        let mut b = [0u8; 8];
        assert_eq!(s.pread(fd, &mut b, 2).unwrap(), 8);
        assert_eq!(b, [0, 0, 1, 2, 3, 0, 0, 0]);
        // An ioctl on a regular file: the kernel answers ENOTTY.
        assert_eq!(
            s.get_api_version(fd).unwrap_err().raw_os_error(),
            Some(libc::ENOTTY)
        );
        s.close(fd).unwrap();
        // Closed: the fd is no longer ours, whatever the number now names.
        assert_eq!(s.close(fd).unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(
            s.pread(fd, &mut b, 0).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
    }

    // I/O safety: a forged Fd (here stdin) is never touched.
    #[test]
    fn real_sys_refuses_fds_it_did_not_open() {
        let s = RealSys::new();
        assert_eq!(
            s.close(Fd(0)).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        assert_eq!(
            s.mmap(Fd(0), 0, 4096, false).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        assert_eq!(
            s.device_reset(Fd(0)).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
    }

    /// The ownership record, in the bitmap (fds below 1024) and the vector (above, and
    /// any negative number): adopted fds are ours until released, once; neighbours and
    /// others never are.
    #[test]
    fn ownership_record_small_and_big_fds() {
        let s = RealSys::new();
        let fds = [0, 1, 63, 64, 1023, 1024, 5000, i32::MAX];
        for &fd in &fds {
            assert!(s.mine(Fd(fd)).is_err(), "{fd}");
            s.adopt(fd);
        }
        for &fd in &fds {
            assert!(s.mine(Fd(fd)).is_ok(), "{fd}");
        }
        for other in [2, 62, 65, 1022, 1025, 4999, -1, i32::MIN] {
            assert!(s.mine(Fd(other)).is_err(), "{other}");
            assert!(!s.release(other), "{other}");
        }
        for &fd in &fds {
            assert!(s.release(fd), "{fd}");
            assert!(!s.release(fd), "{fd} released twice");
            assert!(s.mine(Fd(fd)).is_err(), "{fd}");
        }
    }
}
