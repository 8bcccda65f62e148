//! A fake kernel for downstream tests (the `testing` feature): [`FakeVfio`].
//!
//! It answers the VFIO and iommufd calls a VMM makes with the shapes the real kernel
//! uses, keeps the books (open fds, DMA mappings, `VFIO_DEVICE_SET_IRQS` requests), and
//! never reaches a kernel, so nothing it "maps" is mapped for any device. That makes it
//! a [`TrustedVfioSys`](crate::sys::TrustedVfioSys): the owned DMA mappings work over
//! it, unlike over the mockall mock (whose closures could forward to the real kernel).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use vm_memory::MmapRegion;

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
/// no reported IOVA ranges, `RESET | PCI` device flags with 9 regions and 5 IRQ indexes
/// (as vfio-pci reports an e1000e). Regions are not backed: `pread`, `pwrite`, `mmap`
/// and `VFIO_DEVICE_GET_REGION_INFO` answer `ENODEV`.
#[derive(Debug, Default)]
pub struct FakeVfio {
    state: Mutex<State>,
}

fn errno<T>(e: i32) -> io::Result<T> {
    Err(io::Error::from_raw_os_error(e))
}

impl FakeVfio {
    /// A fresh fake kernel.
    pub fn new() -> Self {
        FakeVfio::default()
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
        self.check(fd)?;
        let mut s = self.state();
        let end = req.iova().saturating_add(req.size());
        if let Some((&at, &len)) = s.mapped.range(..end).next_back() {
            if at.saturating_add(len) > req.iova() {
                return errno(libc::EEXIST);
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
        let hit: Vec<(u64, u64)> = s
            .mapped
            .iter()
            .filter(|(&at, &len)| at < end && at.saturating_add(len) > iova)
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
    fn pread(&self, fd: Fd, _: &mut [u8], _: u64) -> io::Result<usize> {
        self.check(fd)?;
        errno(libc::ENODEV)
    }
    fn pwrite(&self, fd: Fd, _: &[u8], _: u64) -> io::Result<usize> {
        self.check(fd)?;
        errno(libc::ENODEV)
    }
    fn mmap(&self, fd: Fd, _: u64, _: usize, _: bool) -> io::Result<MmapRegion<()>> {
        self.check(fd)?;
        errno(libc::ENODEV)
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
    fn device_get_region_info(&self, device: Fd, _: u32, _: &mut [u8]) -> io::Result<()> {
        self.check(device)?;
        errno(libc::ENODEV)
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
