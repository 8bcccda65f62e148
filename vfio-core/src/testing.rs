//! A fake kernel for downstream tests (the `testing` feature): [`FakeVfio`].
//!
//! It answers the VFIO and iommufd calls a VMM makes with the shapes the real kernel
//! uses, keeps the books (open fds, DMA mappings, `VFIO_DEVICE_SET_IRQS` requests), and
//! never reaches a kernel, so nothing it "maps" is mapped for any device. That makes it
//! a [`TrustedVfioSys`](crate::sys::TrustedVfioSys): the owned DMA mappings work over
//! it, unlike over the mockall mock (whose closures could forward to the real kernel).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};

use vm_memory::{FileOffset, MmapRegion};

use crate::sys::{DmaMapRequest, Fd, IovaRange, IovaRangesAnswer, IrqSet, RawIrqInfo, VfioSys};

/// The fake kernel's state.
#[derive(Debug, Default)]
struct State {
    next_fd: i32,
    open: BTreeSet<i32>,
    /// DMA mappings by IOVA: size (one table for containers and IOASes alike).
    mapped: BTreeMap<u64, u64>,
    irq_sets: Vec<Vec<u8>>,
    next_id: u32,
}

/// A fake VFIO/iommufd kernel: one PCI device per group, type1v2 with 4 KiB pages and
/// no reported IOVA ranges, `RESET | PCI` device flags with 9 regions and 5 IRQ indexes.
///
/// Every device has the regions vfio-pci reported for an e1000e (82574L) in a 6.12
/// guest (tests/data/captures/tcg-amd/vfiotest-0000:06:00.0.txt in the repository):
///
/// | index | region | size | flags |
/// |---|---|---|---|
/// | 0, 1 | BAR0, BAR1 (memory) | 0x20000 | read, write, mmap |
/// | 2 | BAR2 (I/O ports) | 0x20 | read, write |
/// | 3 | BAR3 (MSI-X table at 0, PBA at 0x2000) | 0x4000 | read, write, mmap, sparse mmap |
/// | 4, 5 | absent | 0 | none |
/// | 6 | ROM | 0x40000 | read |
/// | 7 | config space | 0x1000 | read, write |
///
/// at offset `index << 40` of the device fd (`VFIO_PCI_OFFSET_SHIFT`). The capture's
/// kernel let BAR3 be mapped whole (`MSIX_MAPPABLE`); this fake answers as vfio-pci does
/// where the MSI-X table may not be mapped: one sparse-mmap area `[0x1000, 0x4000)`
/// around the table's page (vfio_pci_core.c, the sparse-mmap capability of
/// `VFIO_DEVICE_GET_REGION_INFO`), so the table is reachable only through
/// `pread`/`pwrite`. The config region starts with the 82574L's real config space (the
/// same capture, read through VFIO); writes to it are stored as written (the real
/// kernel virtualizes parts of it). Each region is backed by its own memfd, shared by
/// every device and every mapping of the fake: bytes written through an `mmap` are
/// read back by `pread`, and the other way round.
#[derive(Debug, Default)]
pub struct FakeVfio {
    state: Mutex<State>,
    regions: OnceLock<Vec<FakeRegion>>,
}

/// `VFIO_PCI_OFFSET_SHIFT` (drivers/vfio/pci/vfio_pci_priv.h): region `i` lives at
/// device-fd offset `i << 40`.
const REGION_SHIFT: u32 = 40;
/// `VFIO_REGION_INFO_FLAG_READ`, `_WRITE`, `_MMAP`, `_CAPS` (include/uapi/linux/vfio.h).
const R: u32 = 1;
const W: u32 = 2;
const MMAP: u32 = 4;
const CAPS: u32 = 8;
/// The 82574L's config space as read through VFIO (see [`FakeVfio`]).
const E1000E_CONFIG: &[u8] = include_bytes!("../tests/data/tcg-amd/0000-06-00.0.via-vfio.bin");

/// One region of the fake device.
#[derive(Debug)]
struct FakeRegion {
    flags: u32,
    size: u64,
    /// Sparse-mmap areas (offset, size), when the region has them.
    sparse: Vec<(u64, u64)>,
    /// Backing store (absent for a region of size 0).
    file: Option<File>,
}

impl FakeRegion {
    fn new(flags: u32, size: u64, sparse: Vec<(u64, u64)>, init: &[u8]) -> io::Result<Self> {
        let file = if size == 0 {
            None
        } else {
            let fd =
                rustix::fs::memfd_create("passthru-fake-region", rustix::fs::MemfdFlags::CLOEXEC)?;
            let file = File::from(fd);
            file.set_len(size)?;
            file.write_all_at(&init[..init.len().min(size as usize)], 0)?;
            Some(file)
        };
        Ok(FakeRegion {
            flags,
            size,
            sparse,
            file,
        })
    }

    /// `struct vfio_region_info` for region `index`, with its sparse-mmap capability
    /// (header id 1 version 1, `nr_areas`, reserved, then `{offset, size}` per area).
    fn info(&self, index: u32) -> Vec<u8> {
        let mut v = Vec::new();
        let caps = !self.sparse.is_empty();
        let flags = self.flags | if caps { CAPS } else { 0 };
        for x in [0, flags, index, if caps { 32 } else { 0 }] {
            v.extend_from_slice(&x.to_ne_bytes());
        }
        v.extend_from_slice(&self.size.to_ne_bytes());
        v.extend_from_slice(&(u64::from(index) << REGION_SHIFT).to_ne_bytes());
        if caps {
            v.extend_from_slice(&1u16.to_ne_bytes());
            v.extend_from_slice(&1u16.to_ne_bytes());
            v.extend_from_slice(&0u32.to_ne_bytes());
            v.extend_from_slice(&(self.sparse.len() as u32).to_ne_bytes());
            v.extend_from_slice(&0u32.to_ne_bytes());
            for &(o, s) in &self.sparse {
                v.extend_from_slice(&o.to_ne_bytes());
                v.extend_from_slice(&s.to_ne_bytes());
            }
        }
        let len = v.len() as u32;
        v[..4].copy_from_slice(&len.to_ne_bytes());
        v
    }
}

fn errno<T>(e: i32) -> io::Result<T> {
    Err(io::Error::from_raw_os_error(e))
}

impl FakeVfio {
    /// A fresh fake kernel.
    pub fn new() -> Self {
        FakeVfio::default()
    }

    /// The device regions (made on first use).
    fn regions(&self) -> io::Result<&[FakeRegion]> {
        if let Some(r) = self.regions.get() {
            return Ok(r);
        }
        // The MSI-X table's page [0, 0x1000) is the hole: 5 vectors of 16 bytes at 0.
        let regions = vec![
            FakeRegion::new(R | W | MMAP, 0x20000, vec![], &[])?,
            FakeRegion::new(R | W | MMAP, 0x20000, vec![], &[])?,
            FakeRegion::new(R | W, 0x20, vec![], &[])?,
            FakeRegion::new(R | W | MMAP, 0x4000, vec![(0x1000, 0x3000)], &[])?,
            FakeRegion::new(0, 0, vec![], &[])?,
            FakeRegion::new(0, 0, vec![], &[])?,
            FakeRegion::new(R, 0x40000, vec![], &[])?,
            FakeRegion::new(R | W, 0x1000, vec![], E1000E_CONFIG)?,
        ];
        Ok(self.regions.get_or_init(|| regions))
    }

    /// The region a device-fd span `[offset, offset + len)` lies in, and the offset in it.
    fn region_at(&self, offset: u64, len: usize) -> io::Result<(&FakeRegion, u64)> {
        let index = usize::try_from(offset >> REGION_SHIFT).unwrap_or(usize::MAX);
        let at = offset & ((1 << REGION_SHIFT) - 1);
        let r = self
            .regions()?
            .get(index)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        if at.saturating_add(len as u64) > r.size || r.file.is_none() {
            return errno(libc::EINVAL);
        }
        Ok((r, at))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live DMA mappings: (IOVA, size), by IOVA.
    pub fn mapped(&self) -> Vec<(u64, u64)> {
        self.state().mapped.iter().map(|(&i, &s)| (i, s)).collect()
    }

    /// How many fds are open.
    pub fn open_fds(&self) -> usize {
        self.state().open.len()
    }

    /// The bytes of every `VFIO_DEVICE_SET_IRQS` request, in order.
    pub fn irq_sets(&self) -> Vec<Vec<u8>> {
        self.state().irq_sets.clone()
    }

    fn new_fd(&self) -> Fd {
        let mut s = self.state();
        s.next_fd += 1;
        let fd = 1000 + s.next_fd;
        s.open.insert(fd);
        Fd(fd)
    }

    fn check(&self, fd: Fd) -> io::Result<()> {
        if self.state().open.contains(&fd.0) {
            Ok(())
        } else {
            errno(libc::EBADF)
        }
    }

    fn map(&self, fd: Fd, req: &DmaMapRequest) -> io::Result<()> {
        let mut s = self.state();
        if !s.open.contains(&fd.0) {
            return errno(libc::EBADF);
        }
        let end = req.iova().saturating_add(req.size());
        // Mappings never overlap: one at or above the end of the last needs no search.
        let above_all = s
            .mapped
            .last_key_value()
            .is_none_or(|(&at, &len)| at.saturating_add(len) <= req.iova());
        if !above_all {
            if let Some((&at, &len)) = s.mapped.range(..end).next_back() {
                if at.saturating_add(len) > req.iova() {
                    return errno(libc::EEXIST);
                }
            }
        }
        s.mapped.insert(req.iova(), req.size());
        Ok(())
    }

    /// Type1v2 semantics: every mapping inside the range goes; one that straddles an
    /// end makes the call fail (`EINVAL`) and unmaps nothing.
    fn unmap(&self, fd: Fd, iova: u64, size: u64) -> io::Result<u64> {
        self.check(fd)?;
        let mut s = self.state();
        let end = iova.saturating_add(size);
        // Mappings never overlap, so walking back from `end` the first one that ends at
        // or before `iova` ends the hits (a lookup, not a scan of the whole table).
        let hit: Vec<(u64, u64)> = s
            .mapped
            .range(..end)
            .rev()
            .take_while(|(&at, &len)| at.saturating_add(len) > iova)
            .map(|(&a, &l)| (a, l))
            .collect();
        if hit
            .iter()
            .any(|&(at, len)| at < iova || at.saturating_add(len) > end)
        {
            return errno(libc::EINVAL);
        }
        for (at, _) in &hit {
            s.mapped.remove(at);
        }
        Ok(hit.iter().map(|&(_, l)| l).sum())
    }
}

fn put32(buf: &mut [u8], at: usize, v: u32) {
    if let Some(b) = buf.get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_ne_bytes());
    }
}

impl VfioSys for FakeVfio {
    fn open(&self, path: &Path) -> io::Result<Fd> {
        let _ = path;
        Ok(self.new_fd())
    }
    fn close(&self, fd: Fd) -> io::Result<()> {
        if self.state().open.remove(&fd.0) {
            Ok(())
        } else {
            errno(libc::EBADF)
        }
    }
    fn pread(&self, fd: Fd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.check(fd)?;
        let (r, at) = self.region_at(offset, buf.len())?;
        if r.flags & R == 0 {
            return errno(libc::EINVAL);
        }
        r.file
            .as_ref()
            .map_or(errno(libc::EINVAL), |f| f.read_at(buf, at))
    }
    fn pwrite(&self, fd: Fd, data: &[u8], offset: u64) -> io::Result<usize> {
        self.check(fd)?;
        let (r, at) = self.region_at(offset, data.len())?;
        if r.flags & W == 0 {
            return errno(libc::EINVAL);
        }
        r.file
            .as_ref()
            .map_or(errno(libc::EINVAL), |f| f.write_at(data, at))
    }
    fn mmap(&self, fd: Fd, offset: u64, len: usize, writable: bool) -> io::Result<MmapRegion<()>> {
        self.check(fd)?;
        let (r, at) = self.region_at(offset, len)?;
        // vfio_pci_core_mmap: only MMAP regions, and never over the MSI-X table's hole.
        let inside = |&(o, s): &(u64, u64)| at >= o && at + len as u64 <= o + s;
        if r.flags & MMAP == 0
            || (writable && r.flags & W == 0)
            || (!r.sparse.is_empty() && !r.sparse.iter().any(inside))
        {
            return errno(libc::EINVAL);
        }
        let file = r
            .file
            .as_ref()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?
            .try_clone()?;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        MmapRegion::build(Some(FileOffset::new(file, at)), len, prot, libc::MAP_SHARED)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }
    fn get_api_version(&self, fd: Fd) -> io::Result<i32> {
        self.check(fd).map(|_| 0)
    }
    fn check_extension(&self, fd: Fd, extension: u32) -> io::Result<i32> {
        // VFIO_TYPE1_IOMMU 1, VFIO_TYPE1v2_IOMMU 3, VFIO_UNMAP_ALL 9.
        self.check(fd)
            .map(|_| i32::from(matches!(extension, 1 | 3 | 9)))
    }
    fn set_iommu(&self, fd: Fd, _: u32) -> io::Result<()> {
        self.check(fd)
    }
    fn iommu_get_info(&self, fd: Fd, buf: &mut [u8]) -> io::Result<()> {
        self.check(fd)?;
        // struct vfio_iommu_type1_info: argsz 24, flags VFIO_IOMMU_INFO_PGSIZES, 4 KiB.
        put32(buf, 0, 24);
        put32(buf, 4, 1);
        if let Some(b) = buf.get_mut(8..16) {
            b.copy_from_slice(&0x1000u64.to_ne_bytes());
        }
        Ok(())
    }
    fn iommu_map_dma(&self, container: Fd, req: &DmaMapRequest) -> io::Result<()> {
        self.map(container, req)
    }
    fn iommu_unmap_dma(&self, container: Fd, iova: u64, size: u64, flags: u32) -> io::Result<u64> {
        if flags & (1 << 1) != 0 {
            // VFIO_DMA_UNMAP_FLAG_ALL
            self.check(container)?;
            let mut s = self.state();
            let n = s.mapped.values().sum();
            s.mapped.clear();
            return Ok(n);
        }
        self.unmap(container, iova, size)
    }
    fn group_get_status(&self, fd: Fd) -> io::Result<u32> {
        self.check(fd).map(|_| 1)
    }
    fn group_set_container(&self, group: Fd, container: Fd) -> io::Result<()> {
        self.check(group)?;
        self.check(container)
    }
    fn group_unset_container(&self, group: Fd) -> io::Result<()> {
        self.check(group)
    }
    fn group_get_device_fd(&self, group: Fd, _: &str) -> io::Result<Fd> {
        self.check(group)?;
        Ok(self.new_fd())
    }
    fn device_get_info(&self, device: Fd, buf: &mut [u8]) -> io::Result<()> {
        self.check(device)?;
        // struct vfio_device_info: argsz 24, RESET | PCI, 9 regions, 5 irqs.
        for (i, v) in [24, 0x3, 9, 5].into_iter().enumerate() {
            put32(buf, 4 * i, v);
        }
        Ok(())
    }
    fn device_get_region_info(&self, device: Fd, index: u32, buf: &mut [u8]) -> io::Result<()> {
        self.check(device)?;
        // Index 8 (VGA) and beyond: EINVAL, as the capture's kernel answered region 8.
        let r = self
            .regions()?
            .get(index as usize)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let answer = r.info(index);
        // As vfio_pci_ioctl_get_region_info: when the caller's buffer is too small for
        // the capability chain, the header comes back with the argsz needed and no chain.
        let n = if buf.len() < answer.len() {
            32
        } else {
            answer.len()
        };
        let n = n.min(buf.len());
        buf[..n].copy_from_slice(&answer[..n]);
        if n < answer.len() {
            put32(buf, 12, 0);
        }
        Ok(())
    }
    fn device_get_irq_info(&self, device: Fd, index: u32) -> io::Result<RawIrqInfo> {
        self.check(device)?;
        // As a 6.12 guest's vfio-pci answered for an e1000e
        // (tests/data/captures/tcg-amd/vfiotest-0000:01:00.0.txt): INTx 0x7
        // (EVENTFD | MASKABLE | AUTOMASKED), MSI 0x9 (EVENTFD | NORESIZE), MSI-X 0x1 with
        // 5 vectors (dynamic MSI-X: no NORESIZE), ERR and REQ 0x9.
        let (flags, count) = match index {
            0 => (0x7, 1),
            1 | 3 | 4 => (0x9, 1),
            2 => (0x1, 5),
            _ => return errno(libc::EINVAL),
        };
        Ok(RawIrqInfo { flags, count })
    }
    fn device_set_irqs(&self, device: Fd, req: &IrqSet) -> io::Result<()> {
        self.check(device)?;
        self.state().irq_sets.push(req.to_bytes());
        Ok(())
    }
    fn device_reset(&self, device: Fd) -> io::Result<()> {
        self.check(device)
    }
    fn device_get_pci_hot_reset_info(&self, device: Fd, _: &mut [u8]) -> io::Result<()> {
        self.check(device)?;
        errno(libc::ENODEV)
    }
    fn device_pci_hot_reset(&self, device: Fd, _: &[Fd]) -> io::Result<()> {
        self.check(device)?;
        errno(libc::ENODEV)
    }
    fn device_feature(&self, device: Fd, _: u32, _: &mut [u8]) -> io::Result<i32> {
        self.check(device)?;
        errno(libc::ENOTTY)
    }
    fn device_bind_iommufd(&self, device: Fd, iommufd: Fd, _: Option<[u8; 16]>) -> io::Result<u32> {
        self.check(device)?;
        self.check(iommufd)?;
        let mut s = self.state();
        s.next_id += 1;
        Ok(s.next_id)
    }
    fn device_attach_iommufd_pt(&self, device: Fd, pt_id: u32) -> io::Result<u32> {
        self.check(device).map(|_| pt_id)
    }
    fn iommufd_ioas_alloc(&self, iommufd: Fd) -> io::Result<u32> {
        self.check(iommufd)?;
        let mut s = self.state();
        s.next_id += 1;
        Ok(s.next_id)
    }
    fn iommufd_destroy(&self, iommufd: Fd, _: u32) -> io::Result<()> {
        self.check(iommufd)
    }
    fn iommufd_ioas_iova_ranges(
        &self,
        iommufd: Fd,
        _: u32,
        _: &mut [IovaRange],
    ) -> io::Result<IovaRangesAnswer> {
        self.check(iommufd)?;
        Ok(IovaRangesAnswer {
            num_iovas: 0,
            alignment: 4096,
        })
    }
    fn iommufd_ioas_map(&self, iommufd: Fd, _: u32, req: &DmaMapRequest) -> io::Result<()> {
        self.map(iommufd, req)
    }
    fn iommufd_ioas_unmap(&self, iommufd: Fd, _: u32, iova: u64, length: u64) -> io::Result<u64> {
        self.unmap(iommufd, iova, length)
    }
}
