//! iommufd (`/dev/iommu`) and its IO address spaces.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, RwLock};

use crate::dma::{sealed, DmaSpace, Mappings};
use crate::error::{Error, HostPath, Result};
use crate::handle::Handle;
use crate::sys::{DmaMapRequest, Fd, IovaRange, RealSys, VfioSys};

/// An open `/dev/iommu`; closed when the last clone (and the last IOAS made from it)
/// drops. `Send + Sync` when the seam is.
#[derive(Debug)]
pub struct Iommufd<S: VfioSys + ?Sized = RealSys> {
    inner: Arc<Handle<S>>,
}

impl<S: VfioSys + ?Sized> Clone for Iommufd<S> {
    fn clone(&self) -> Self {
        Iommufd {
            inner: self.inner.clone(),
        }
    }
}

impl<S: VfioSys + ?Sized> Iommufd<S> {
    /// Open the iommufd node (`/dev/iommu`, or a [`HostPath`] under a root: errors then
    /// name its system path).
    ///
    /// # Errors
    ///
    /// Error::Open naming `path` (its system path) with the errno.
    pub fn open(sys: &Arc<S>, path: impl Into<HostPath>) -> Result<Self> {
        let path: HostPath = path.into();
        let fd = sys
            .open(&path.full())
            .map_err(|e| Error::open(path.clone(), e))?;
        Ok(Iommufd {
            inner: Arc::new(Handle::new(sys, fd, format!("iommufd {path}"))),
        })
    }

    /// An iommufd opened elsewhere (passed by libvirt or a parent process), owned from
    /// now on; `label` names it in errors.
    ///
    /// # Errors
    ///
    /// Error::Open naming `label` when the seam refuses to adopt the fd.
    pub fn from_owned_fd(sys: &Arc<S>, fd: OwnedFd, label: &str) -> Result<Self> {
        let target = format!("iommufd {label}");
        let fd = Handle::adopt(sys, fd, &target)?;
        Ok(Iommufd {
            inner: Arc::new(Handle::new(sys, fd, target)),
        })
    }

    /// The fd.
    pub fn fd(&self) -> Fd {
        self.inner.fd
    }

    /// A duplicate of the fd, owned by the caller.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the iommufd when the seam cannot duplicate the fd.
    pub fn try_clone_fd(&self) -> Result<OwnedFd> {
        self.inner.dup()
    }

    fn sys(&self) -> &Arc<S> {
        &self.inner.sys
    }

    fn target(&self) -> &str {
        &self.inner.target
    }

    /// `IOMMU_IOAS_ALLOC`, then `IOMMU_IOAS_IOVA_RANGES` once a device is attached
    /// (call [`Ioas::refresh_ranges`]).
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the iommufd and the kernel's errno.
    #[doc(alias = "IOMMU_IOAS_ALLOC")]
    pub fn alloc_ioas(&self) -> Result<Ioas<S>> {
        let id = self
            .sys()
            .iommufd_ioas_alloc(self.fd())
            .map_err(|e| Error::ioctl("IOMMU_IOAS_ALLOC", self.target(), e))?;
        Ok(Ioas {
            iommufd: self.clone(),
            id,
            ranges: RwLock::new((Vec::new(), 4096)),
            table: Mappings::default(),
        })
    }
}

impl<S: VfioSys + ?Sized> AsRawFd for Iommufd<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd().0
    }
}

/// An IO address space: a [`DmaSpace`] owning its mappings by IOVA; they are unmapped
/// and the IOAS destroyed when it drops.
#[derive(Debug)]
pub struct Ioas<S: VfioSys + ?Sized = RealSys> {
    iommufd: Iommufd<S>,
    id: u32,
    /// The usable ranges and the IOVA alignment, as last asked.
    ranges: RwLock<(Vec<IovaRange>, u64)>,
    table: Mappings,
}

impl<S: VfioSys + ?Sized> Ioas<S> {
    /// The IOAS id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The iommufd it lives in.
    pub fn iommufd(&self) -> &Iommufd<S> {
        &self.iommufd
    }

    /// `IOMMU_IOAS_IOVA_RANGES`, asking again when the kernel has more ranges; the
    /// answer is kept for the mapping checks.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the IOAS and the kernel's errno (`EMSGSIZE` when the
    /// count keeps growing).
    #[doc(alias = "IOMMU_IOAS_IOVA_RANGES")]
    pub fn refresh_ranges(&self) -> Result<Vec<IovaRange>> {
        let f = &self.iommufd;
        let mut out = vec![IovaRange { start: 0, end: 0 }; 8];
        for _ in 0..4 {
            let a = f
                .sys()
                .iommufd_ioas_iova_ranges(f.fd(), self.id, &mut out)
                .map_err(|e| Error::ioctl("IOMMU_IOAS_IOVA_RANGES", f.target(), e))?;
            let n = a.num_iovas as usize;
            if n > out.len() && n <= 4096 {
                out = vec![IovaRange { start: 0, end: 0 }; n];
                continue;
            }
            out.truncate(n);
            let mut r = self.ranges.write().unwrap_or_else(|p| p.into_inner());
            *r = (out.clone(), a.alignment.max(1));
            return Ok(out);
        }
        Err(Error::ioctl(
            "IOMMU_IOAS_IOVA_RANGES",
            f.target(),
            std::io::Error::from_raw_os_error(libc::EMSGSIZE),
        ))
    }
}

impl<S: VfioSys + ?Sized> sealed::Space for Ioas<S> {
    type Sys = S;
    fn kernel_map(&self, req: &DmaMapRequest) -> Result<()> {
        let f = &self.iommufd;
        f.sys()
            .iommufd_ioas_map(f.fd(), self.id, req)
            .map_err(|e| Error::ioctl("IOMMU_IOAS_MAP", f.target(), e))
    }
    fn kernel_unmap(&self, iova: u64, size: u64) -> Result<u64> {
        let f = &self.iommufd;
        f.sys()
            .iommufd_ioas_unmap(f.fd(), self.id, iova, size)
            .map_err(|e| Error::ioctl("IOMMU_IOAS_UNMAP", f.target(), e))
    }
    fn table(&self) -> &Mappings {
        &self.table
    }
    fn check_span(&self, page: u64, iova: u64, size: u64) -> Result<()> {
        let ranges = self.ranges.read().unwrap_or_else(|p| p.into_inner());
        crate::dma::check_iova(&ranges.0, page, iova, size)
    }
}

impl<S: VfioSys + ?Sized> DmaSpace for Ioas<S> {
    fn iova_ranges(&self) -> Vec<IovaRange> {
        self.ranges
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }
    fn page_size(&self) -> u64 {
        self.ranges
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .max(4096)
    }
}

impl<S: VfioSys + ?Sized> Drop for Ioas<S> {
    fn drop(&mut self) {
        self.table.release_all(&*self);
        let f = &self.iommufd;
        let _ = f.sys().iommufd_destroy(f.fd(), self.id);
    }
}
