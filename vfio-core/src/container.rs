//! The legacy container (`/dev/vfio/vfio`) and its type1 IOMMU.

use std::path::{Path, PathBuf};

use crate::dma::DmaSpace;
use crate::error::{Error, Result};
use crate::info::{self, IommuInfo};
use crate::sys::{DmaMapRequest, Fd, IovaRange, VfioSys};

/// `VFIO_CHECK_EXTENSION` arguments (include/uapi/linux/vfio.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Extension {
    /// `VFIO_TYPE1_IOMMU`.
    Type1,
    /// `VFIO_TYPE1v2_IOMMU`.
    Type1v2,
    /// `VFIO_NOIOMMU_IOMMU`.
    NoIommu,
    /// `VFIO_UNMAP_ALL`.
    UnmapAll,
    /// `VFIO_UPDATE_VADDR`.
    UpdateVaddr,
}

impl Extension {
    /// The raw value.
    pub fn raw(self) -> u32 {
        match self {
            Extension::Type1 => 1,
            Extension::Type1v2 => 3,
            Extension::NoIommu => 8,
            Extension::UnmapAll => 9,
            Extension::UpdateVaddr => 10,
        }
    }
}

/// Which extensions the container offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extensions {
    /// `VFIO_TYPE1_IOMMU`.
    pub type1: bool,
    /// `VFIO_TYPE1v2_IOMMU`.
    pub type1v2: bool,
    /// `VFIO_NOIOMMU_IOMMU`.
    pub noiommu: bool,
    /// `VFIO_UNMAP_ALL`.
    pub unmap_all: bool,
}

/// An open container; closed on drop.
#[derive(Debug)]
pub struct Container<'s, S: VfioSys + ?Sized> {
    sys: &'s S,
    fd: Fd,
    path: PathBuf,
}

impl<'s, S: VfioSys + ?Sized> Container<'s, S> {
    /// Open the container node (`ROOT/dev/vfio/vfio`).
    pub fn open(sys: &'s S, path: &Path) -> Result<Self> {
        let fd = sys
            .open(path)
            .map_err(|e| Error::open(path.to_path_buf(), e))?;
        Ok(Container {
            sys,
            fd,
            path: path.to_path_buf(),
        })
    }

    fn target(&self) -> String {
        format!("container {}", self.path.display())
    }

    /// The container's fd.
    pub fn fd(&self) -> Fd {
        self.fd
    }

    /// The system interface.
    pub fn sys(&self) -> &'s S {
        self.sys
    }

    /// `VFIO_GET_API_VERSION`.
    #[doc(alias = "VFIO_GET_API_VERSION")]
    pub fn api_version(&self) -> Result<i32> {
        self.sys
            .get_api_version(self.fd)
            .map_err(|e| Error::ioctl("VFIO_GET_API_VERSION", self.target(), e))
    }

    /// Fail unless the API version is 0.
    pub fn require_api_version(&self) -> Result<()> {
        match self.api_version()? {
            0 => Ok(()),
            found => Err(Error::ApiVersion {
                path: self.path.clone(),
                found,
            }),
        }
    }

    /// `VFIO_CHECK_EXTENSION`.
    #[doc(alias = "VFIO_CHECK_EXTENSION")]
    pub fn check_extension(&self, ext: Extension) -> Result<bool> {
        self.sys
            .check_extension(self.fd, ext.raw())
            .map(|v| v > 0)
            .map_err(|e| Error::ioctl("VFIO_CHECK_EXTENSION", self.target(), e))
    }

    /// All extensions of interest.
    pub fn extensions(&self) -> Result<Extensions> {
        Ok(Extensions {
            type1: self.check_extension(Extension::Type1)?,
            type1v2: self.check_extension(Extension::Type1v2)?,
            noiommu: self.check_extension(Extension::NoIommu)?,
            unmap_all: self.check_extension(Extension::UnmapAll)?,
        })
    }

    /// The best type1 backend offered: TYPE1v2, else TYPE1.
    pub fn best_iommu(&self) -> Result<Extension> {
        let x = self.extensions()?;
        if x.type1v2 {
            Ok(Extension::Type1v2)
        } else if x.type1 {
            Ok(Extension::Type1)
        } else {
            Err(Error::NoIommuBackend {
                path: self.path.clone(),
            })
        }
    }

    /// `VFIO_SET_IOMMU` (needs a group attached first).
    #[doc(alias = "VFIO_SET_IOMMU")]
    pub fn set_iommu(&self, ext: Extension) -> Result<()> {
        self.sys
            .set_iommu(self.fd, ext.raw())
            .map_err(|e| Error::ioctl("VFIO_SET_IOMMU", self.target(), e))
    }

    /// `VFIO_IOMMU_GET_INFO`, asking again with the size the kernel says it needs.
    #[doc(alias = "VFIO_IOMMU_GET_INFO")]
    pub fn iommu_info(&self) -> Result<IommuInfo> {
        let mut len = info::IOMMU_INFO_LEN;
        for _ in 0..4 {
            let mut buf = vec![0u8; len];
            self.sys
                .iommu_get_info(self.fd, &mut buf)
                .map_err(|e| Error::ioctl("VFIO_IOMMU_GET_INFO", self.target(), e))?;
            let need = info::argsz(&buf).unwrap_or(0) as usize;
            if need > len && need <= 1 << 20 {
                len = need;
                continue;
            }
            return info::parse_iommu_info(&buf).map_err(|source| Error::Malformed {
                op: "VFIO_IOMMU_GET_INFO",
                target: self.target(),
                source,
            });
        }
        Err(Error::Malformed {
            op: "VFIO_IOMMU_GET_INFO",
            target: self.target(),
            source: info::ParseError {
                kind: info::ParseErrorKind::Truncated,
                offset: 0,
            },
        })
    }

    /// Query the IOMMU and return the container as a DMA space (after `set_iommu`).
    pub fn dma_space(&self) -> Result<Type1Space<'_, 's, S>> {
        let info = self.iommu_info()?;
        Ok(Type1Space {
            container: self,
            info,
        })
    }

    /// The container as a DMA space without asking `VFIO_IOMMU_GET_INFO`: no IOVA ranges
    /// known, 4 KiB pages. For an IOMMU backend that does not answer GET_INFO, such as
    /// vfio-noiommu (`VFIO_NOIOMMU_IOMMU`), so a mapping attempt reaches the kernel and
    /// gets its own answer (vfio-noiommu refuses `VFIO_IOMMU_MAP_DMA` with `ENOTTY`).
    pub fn dma_space_without_info(&self) -> Type1Space<'_, 's, S> {
        Type1Space {
            container: self,
            info: IommuInfo::default(),
        }
    }

    /// `VFIO_IOMMU_UNMAP_DMA` with `VFIO_DMA_UNMAP_FLAG_ALL`: drop every mapping.
    #[doc(alias = "VFIO_IOMMU_UNMAP_DMA")]
    pub fn unmap_all(&self) -> Result<u64> {
        self.sys
            .iommu_unmap_dma(self.fd, 0, 0, 1 << 1)
            .map_err(|e| Error::ioctl("VFIO_IOMMU_UNMAP_DMA", self.target(), e))
    }
}

impl<S: VfioSys + ?Sized> Drop for Container<'_, S> {
    fn drop(&mut self) {
        let _ = self.sys.close(self.fd);
    }
}

/// A container with its IOMMU set: a [`DmaSpace`] with the kernel's IOVA ranges.
#[derive(Debug)]
pub struct Type1Space<'c, 's, S: VfioSys + ?Sized> {
    container: &'c Container<'s, S>,
    info: IommuInfo,
}

impl<S: VfioSys + ?Sized> Type1Space<'_, '_, S> {
    /// The IOMMU info read when this space was made.
    pub fn info(&self) -> &IommuInfo {
        &self.info
    }
}

impl<S: VfioSys + ?Sized> DmaSpace for Type1Space<'_, '_, S> {
    fn iova_ranges(&self) -> &[IovaRange] {
        &self.info.iova_ranges
    }
    fn page_size(&self) -> u64 {
        self.info.min_page_size()
    }
    fn map(&self, req: &DmaMapRequest) -> Result<()> {
        self.container
            .sys
            .iommu_map_dma(self.container.fd, req)
            .map_err(|e| Error::ioctl("VFIO_IOMMU_MAP_DMA", self.container.target(), e))
    }
    fn unmap(&self, iova: u64, size: u64) -> Result<u64> {
        self.container
            .sys
            .iommu_unmap_dma(self.container.fd, iova, size, 0)
            .map_err(|e| Error::ioctl("VFIO_IOMMU_UNMAP_DMA", self.container.target(), e))
    }
}
