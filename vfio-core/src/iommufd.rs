//! iommufd (`/dev/iommu`) and its IO address spaces.

use std::path::{Path, PathBuf};

use crate::dma::DmaSpace;
use crate::error::{Error, Result};
use crate::sys::{DmaMapRequest, Fd, IovaRange, VfioSys};

/// An open `/dev/iommu`; closed on drop.
#[derive(Debug)]
pub struct Iommufd<'s, S: VfioSys + ?Sized> {
    sys: &'s S,
    fd: Fd,
    path: PathBuf,
}

impl<'s, S: VfioSys + ?Sized> Iommufd<'s, S> {
    /// Open the iommufd node (`ROOT/dev/iommu`).
    pub fn open(sys: &'s S, path: &Path) -> Result<Self> {
        let fd = sys
            .open(path)
            .map_err(|e| Error::open(path.to_path_buf(), e))?;
        Ok(Iommufd {
            sys,
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The fd.
    pub fn fd(&self) -> Fd {
        self.fd
    }

    fn target(&self) -> String {
        format!("iommufd {}", self.path.display())
    }

    /// `IOMMU_IOAS_ALLOC`, then `IOMMU_IOAS_IOVA_RANGES` once a device is attached
    /// (call [`Ioas::refresh_ranges`]).
    #[doc(alias = "IOMMU_IOAS_ALLOC")]
    pub fn alloc_ioas(&self) -> Result<Ioas<'_, 's, S>> {
        let id = self
            .sys
            .iommufd_ioas_alloc(self.fd)
            .map_err(|e| Error::ioctl("IOMMU_IOAS_ALLOC", self.target(), e))?;
        Ok(Ioas {
            iommufd: self,
            id,
            ranges: Vec::new(),
            alignment: 4096,
        })
    }
}

impl<S: VfioSys + ?Sized> Drop for Iommufd<'_, S> {
    fn drop(&mut self) {
        let _ = self.sys.close(self.fd);
    }
}

/// An IO address space; destroyed on drop.
#[derive(Debug)]
pub struct Ioas<'i, 's, S: VfioSys + ?Sized> {
    iommufd: &'i Iommufd<'s, S>,
    id: u32,
    ranges: Vec<IovaRange>,
    alignment: u64,
}

impl<S: VfioSys + ?Sized> Ioas<'_, '_, S> {
    /// The IOAS id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// `IOMMU_IOAS_IOVA_RANGES`, asking again when the kernel has more ranges.
    #[doc(alias = "IOMMU_IOAS_IOVA_RANGES")]
    pub fn refresh_ranges(&mut self) -> Result<&[IovaRange]> {
        let f = self.iommufd;
        let mut out = vec![IovaRange { start: 0, end: 0 }; 8];
        for _ in 0..4 {
            let a = f
                .sys
                .iommufd_ioas_iova_ranges(f.fd, self.id, &mut out)
                .map_err(|e| Error::ioctl("IOMMU_IOAS_IOVA_RANGES", f.target(), e))?;
            let n = a.num_iovas as usize;
            if n > out.len() && n <= 4096 {
                out = vec![IovaRange { start: 0, end: 0 }; n];
                continue;
            }
            out.truncate(n);
            self.ranges = out;
            self.alignment = a.alignment.max(1);
            return Ok(&self.ranges);
        }
        Err(Error::ioctl(
            "IOMMU_IOAS_IOVA_RANGES",
            f.target(),
            std::io::Error::from_raw_os_error(libc::EMSGSIZE),
        ))
    }
}

impl<S: VfioSys + ?Sized> DmaSpace for Ioas<'_, '_, S> {
    fn iova_ranges(&self) -> &[IovaRange] {
        &self.ranges
    }
    fn page_size(&self) -> u64 {
        self.alignment.max(4096)
    }
    fn map(&self, req: &DmaMapRequest) -> Result<()> {
        let f = self.iommufd;
        f.sys
            .iommufd_ioas_map(f.fd, self.id, req)
            .map_err(|e| Error::ioctl("IOMMU_IOAS_MAP", f.target(), e))
    }
    fn unmap(&self, iova: u64, size: u64) -> Result<u64> {
        let f = self.iommufd;
        f.sys
            .iommufd_ioas_unmap(f.fd, self.id, iova, size)
            .map_err(|e| Error::ioctl("IOMMU_IOAS_UNMAP", f.target(), e))
    }
}

impl<S: VfioSys + ?Sized> Drop for Ioas<'_, '_, S> {
    fn drop(&mut self) {
        let _ = self.iommufd.sys.iommufd_destroy(self.iommufd.fd, self.id);
    }
}
