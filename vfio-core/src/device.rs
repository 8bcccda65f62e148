//! A VFIO device fd: info, regions, IRQs, config space, reset and hot reset.

use std::cell::OnceCell;
use std::path::Path;

use bitflags::bitflags;
use vm_memory::{MmapRegion, VolatileMemory};

use crate::error::{Error, Result};
use crate::group::Group;
use crate::info::{self, DeviceInfo, HotResetInfo, RegionInfo};
use crate::iommufd::{Ioas, Iommufd};
use crate::sys::{Fd, VfioSys};

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

/// A region (or sparse area of one) mmapped from the device; unmapped on drop.
#[derive(Debug)]
pub struct RegionMap {
    map: MmapRegion<()>,
    /// Region index.
    pub index: u32,
    /// Offset of this mapping within the region.
    pub region_offset: u64,
}

impl RegionMap {
    /// Length of the mapping.
    pub fn len(&self) -> usize {
        self.map.size()
    }

    /// Whether the mapping is empty (never, for a mapping that succeeded).
    pub fn is_empty(&self) -> bool {
        self.map.size() == 0
    }

    /// A volatile 32-bit read at `offset` within the mapping (`None` past the end).
    pub fn read_u32(&self, offset: usize) -> Option<u32> {
        self.map.get_ref::<u32>(offset).ok().map(|r| r.load())
    }
}

/// An open device; closed on drop.
#[derive(Debug)]
pub struct Device<'s, S: VfioSys + ?Sized> {
    sys: &'s S,
    fd: Fd,
    name: String,
    config: OnceCell<RegionInfo>,
}

impl<'s, S: VfioSys + ?Sized> Device<'s, S> {
    pub(crate) fn from_fd(sys: &'s S, fd: Fd, name: String) -> Self {
        Device {
            sys,
            fd,
            name,
            config: OnceCell::new(),
        }
    }

    /// Open a device cdev (`ROOT/dev/vfio/devices/vfioX`) for use with iommufd.
    pub fn open_cdev(sys: &'s S, path: &Path, name: &str) -> Result<Self> {
        let fd = sys
            .open(path)
            .map_err(|e| Error::open(path.to_path_buf(), e))?;
        Ok(Device::from_fd(sys, fd, name.to_owned()))
    }

    /// The device's name (its BDF).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device fd.
    pub fn fd(&self) -> Fd {
        self.fd
    }

    fn target(&self) -> String {
        format!("device {}", self.name)
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
    #[doc(alias = "VFIO_DEVICE_GET_INFO")]
    pub fn info(&self) -> Result<DeviceInfo> {
        let buf = self.sized("VFIO_DEVICE_GET_INFO", info::DEVICE_INFO_LEN, |b| {
            self.sys.device_get_info(self.fd, b)
        })?;
        info::parse_device_info(&buf).map_err(self.malformed("VFIO_DEVICE_GET_INFO"))
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` with its capabilities (sparse mmap, MSI-X, type).
    #[doc(alias = "VFIO_DEVICE_GET_REGION_INFO")]
    pub fn region_info(&self, index: u32) -> Result<RegionInfo> {
        let buf = self.sized("VFIO_DEVICE_GET_REGION_INFO", info::REGION_INFO_LEN, |b| {
            self.sys.device_get_region_info(self.fd, index, b)
        })?;
        info::parse_region_info(&buf).map_err(self.malformed("VFIO_DEVICE_GET_REGION_INFO"))
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO`.
    #[doc(alias = "VFIO_DEVICE_GET_IRQ_INFO")]
    pub fn irq_info(&self, index: u32) -> Result<IrqInfo> {
        let raw = self
            .sys
            .device_get_irq_info(self.fd, index)
            .map_err(self.err("VFIO_DEVICE_GET_IRQ_INFO"))?;
        Ok(IrqInfo {
            index,
            flags: IrqFlags::from_bits_retain(raw.flags),
            count: raw.count,
        })
    }

    fn config_region(&self) -> Result<&RegionInfo> {
        if let Some(r) = self.config.get() {
            return Ok(r);
        }
        let r = self.region_info(CONFIG_REGION)?;
        Ok(self.config.get_or_init(|| r))
    }

    /// Read config space through the VFIO config region (`pread`); returns bytes read
    /// (short at the end of the region).
    pub fn read_config(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let r = self.config_region()?;
        let avail = r.size.saturating_sub(offset);
        let n = buf.len().min(usize::try_from(avail).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let at = r.offset.checked_add(offset).ok_or_else(|| {
            Error::ioctl(
                "pread",
                self.target(),
                std::io::Error::from_raw_os_error(libc::EINVAL),
            )
        })?;
        self.sys
            .pread(self.fd, &mut buf[..n], at)
            .map_err(|e| Error::ioctl("pread", format!("config region of device {}", self.name), e))
    }

    /// Write config space through the VFIO config region (`pwrite`).
    pub fn write_config(&self, offset: u64, data: &[u8]) -> Result<usize> {
        let r = self.config_region()?;
        let at = r.offset.checked_add(offset).ok_or_else(|| {
            Error::ioctl(
                "pwrite",
                self.target(),
                std::io::Error::from_raw_os_error(libc::EINVAL),
            )
        })?;
        self.sys.pwrite(self.fd, data, at).map_err(|e| {
            Error::ioctl(
                "pwrite",
                format!("config region of device {}", self.name),
                e,
            )
        })
    }

    /// Read any region (BAR, ROM) through the device fd (`pread`); short at its end.
    pub fn read_region(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let r = self.region_info(index)?;
        let avail = r.size.saturating_sub(offset);
        let n = buf.len().min(usize::try_from(avail).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let at = r.offset.checked_add(offset).ok_or_else(|| {
            Error::ioctl(
                "pread",
                self.target(),
                std::io::Error::from_raw_os_error(libc::EINVAL),
            )
        })?;
        self.sys.pread(self.fd, &mut buf[..n], at).map_err(|e| {
            Error::ioctl(
                "pread",
                format!("region {index} of device {}", self.name),
                e,
            )
        })
    }

    /// The vendor id read through VFIO (0xffff: the device does not answer).
    pub fn vendor_id(&self) -> Result<u16> {
        let mut b = [0u8; 2];
        let n = self.read_config(0, &mut b)?;
        if n < 2 {
            return Ok(0xffff);
        }
        Ok(u16::from_le_bytes(b))
    }

    /// mmap region `index` (needs `VFIO_REGION_INFO_FLAG_MMAP`): the whole region, or its
    /// first sparse-mmap area when the kernel lists areas (the rest may not be mapped).
    pub fn mmap_region(&self, index: u32) -> Result<RegionMap> {
        let r = self.region_info(index)?;
        let einval = || {
            Error::ioctl(
                "mmap",
                format!("region {index} of device {}", self.name),
                std::io::Error::from_raw_os_error(libc::EINVAL),
            )
        };
        if !r.flags.contains(info::RegionFlags::MMAP) || r.size == 0 {
            return Err(einval());
        }
        let (off, len) = match r.sparse_mmap.as_deref() {
            Some([first, ..]) => (first.offset, first.size),
            Some([]) => return Err(einval()),
            None => (0, r.size),
        };
        let at = r.offset.checked_add(off).ok_or_else(einval)?;
        let len = usize::try_from(len).map_err(|_| einval())?;
        let writable = r.flags.contains(info::RegionFlags::WRITE);
        let map = self.sys.mmap(self.fd, at, len, writable).map_err(|e| {
            Error::ioctl("mmap", format!("region {index} of device {}", self.name), e)
        })?;
        Ok(RegionMap {
            map,
            index,
            region_offset: off,
        })
    }

    /// `VFIO_DEVICE_RESET`, returning the kernel's error (`EINVAL` without the RESET flag).
    #[doc(alias = "VFIO_DEVICE_RESET")]
    pub fn reset(&self) -> Result<()> {
        self.sys
            .device_reset(self.fd)
            .map_err(self.err("VFIO_DEVICE_RESET"))
    }

    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: which devices (and groups) a bus/slot
    /// reset touches. Asks with the header only, then again with room for the count
    /// the kernel answered with `ENOSPC`.
    #[doc(alias = "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO")]
    pub fn hot_reset_info(&self) -> Result<HotResetInfo> {
        const OP: &str = "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO";
        let mut len = info::HOT_RESET_INFO_LEN;
        for _ in 0..4 {
            let mut buf = vec![0u8; len];
            match self.sys.device_get_pci_hot_reset_info(self.fd, &mut buf) {
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
    #[doc(alias = "VFIO_DEVICE_PCI_HOT_RESET")]
    pub fn hot_reset(&self, groups: &[&Group<'_, S>]) -> Result<()> {
        let fds: Vec<Fd> = groups.iter().map(|g| g.fd()).collect();
        self.sys
            .device_pci_hot_reset(self.fd, &fds)
            .map_err(self.err("VFIO_DEVICE_PCI_HOT_RESET"))
    }

    /// `VFIO_DEVICE_PCI_HOT_RESET` in cdev mode: no group fds, ownership via iommufd.
    pub fn hot_reset_cdev(&self) -> Result<()> {
        self.sys
            .device_pci_hot_reset(self.fd, &[])
            .map_err(self.err("VFIO_DEVICE_PCI_HOT_RESET"))
    }

    /// Set the VF token of an SR-IOV PF (`VFIO_DEVICE_FEATURE_PCI_VF_TOKEN`, SET).
    #[doc(alias = "VFIO_DEVICE_FEATURE")]
    pub fn set_vf_token(&self, uuid: [u8; 16]) -> Result<()> {
        // include/uapi/linux/vfio.h: VFIO_DEVICE_FEATURE_SET (1 << 17),
        // VFIO_DEVICE_FEATURE_PCI_VF_TOKEN (0). (1 is MIGRATION: a 6.12 kernel answers
        // that with ENOTTY on a device without migration support.)
        const SET: u32 = 1 << 17;
        const PCI_VF_TOKEN: u32 = 0;
        let mut data = uuid;
        self.sys
            .device_feature(self.fd, SET | PCI_VF_TOKEN, &mut data)
            .map(|_| ())
            .map_err(self.err("VFIO_DEVICE_FEATURE"))
    }

    /// `VFIO_DEVICE_BIND_IOMMUFD` (cdev mode); returns the iommufd device id.
    #[doc(alias = "VFIO_DEVICE_BIND_IOMMUFD")]
    pub fn bind_iommufd(
        &self,
        iommufd: &Iommufd<'_, S>,
        vf_token: Option<[u8; 16]>,
    ) -> Result<u32> {
        self.sys
            .device_bind_iommufd(self.fd, iommufd.fd(), vf_token)
            .map_err(self.err("VFIO_DEVICE_BIND_IOMMUFD"))
    }

    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT` to an IOAS; returns the id of the hardware page
    /// table the kernel attached (one it made for the IOAS: not the IOAS id).
    #[doc(alias = "VFIO_DEVICE_ATTACH_IOMMUFD_PT")]
    pub fn attach_ioas(&self, ioas: &Ioas<'_, '_, S>) -> Result<u32> {
        self.sys
            .device_attach_iommufd_pt(self.fd, ioas.id())
            .map_err(self.err("VFIO_DEVICE_ATTACH_IOMMUFD_PT"))
    }
}

impl<S: VfioSys + ?Sized> Drop for Device<'_, S> {
    fn drop(&mut self) {
        let _ = self.sys.close(self.fd);
    }
}
