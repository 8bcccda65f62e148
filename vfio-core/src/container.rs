//! The legacy container (`/dev/vfio/vfio`) and its type1 IOMMU.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use crate::dma::{sealed, DmaSpace, Mappings};
use crate::error::{Error, HostPath, Result};
use crate::group::{Group, GroupInner};
use crate::handle::Handle;
use crate::info::{self, IommuInfo};
use crate::sys::{DmaMapRequest, Fd, IovaRange, RealSys, VfioSys};

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

/// An open container; closed when the last clone drops (clones share one fd).
///
/// `Send + Sync` when the seam is: a VMM keeps it in its own structs, next to the
/// [`Type1Space`] that owns the DMA mappings.
#[derive(Debug)]
pub struct Container<S: VfioSys + ?Sized = RealSys> {
    inner: Arc<Handle<S>>,
    path: Arc<HostPath>,
    groups: GroupList<S>,
}

/// The groups set into a container (shared by its clones), held weakly: a group holds
/// its container, not the other way round.
type GroupList<S> = Arc<Mutex<Vec<Weak<GroupInner<S>>>>>;

impl<S: VfioSys + ?Sized> Clone for Container<S> {
    fn clone(&self) -> Self {
        Container {
            inner: self.inner.clone(),
            path: self.path.clone(),
            groups: self.groups.clone(),
        }
    }
}

impl<S: VfioSys + ?Sized> Container<S> {
    /// Open the container node (`/dev/vfio/vfio`, or a [`HostPath`] under a root:
    /// errors then name its system path).
    ///
    /// # Errors
    ///
    /// Error::Open naming `path` (its system path) with the errno (and a hint for `ENOENT`/`EACCES`).
    pub fn open(sys: &Arc<S>, path: impl Into<HostPath>) -> Result<Self> {
        let path: HostPath = path.into();
        let fd = sys
            .open(&path.full())
            .map_err(|e| Error::open(path.clone(), e))?;
        Ok(Container {
            inner: Arc::new(Handle::new(sys, fd, format!("container {path}"))),
            path: Arc::new(path),
            groups: GroupList::default(),
        })
    }

    /// A container opened elsewhere (passed by libvirt or a parent process), owned from
    /// now on; `label` names it in errors (e.g. its path).
    ///
    /// # Errors
    ///
    /// Error::Open naming `label` when the seam refuses to adopt the fd (`ENOTTY` from a
    /// seam without `adopt_fd`).
    pub fn from_owned_fd(sys: &Arc<S>, fd: OwnedFd, label: &str) -> Result<Self> {
        let target = format!("container {label}");
        Ok(Container {
            inner: Arc::new(Handle::new(sys, Handle::adopt(sys, fd, &target)?, target)),
            path: Arc::new(HostPath::local(Path::new(label))),
            groups: GroupList::default(),
        })
    }

    fn target(&self) -> &str {
        &self.inner.target
    }

    fn group_list(&self) -> std::sync::MutexGuard<'_, Vec<Weak<GroupInner<S>>>> {
        // Pushes and retains only: a poisoned list is still a consistent list.
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Note a group set into this container (by [`Group::set_container`]).
    pub(crate) fn add_group(&self, group: Weak<GroupInner<S>>) {
        let mut list = self.group_list();
        list.retain(|g| g.strong_count() > 0);
        list.push(group);
    }

    /// Forget a group unset from this container.
    pub(crate) fn remove_group(&self, group: &Weak<GroupInner<S>>) {
        self.group_list()
            .retain(|g| g.strong_count() > 0 && !g.ptr_eq(group));
    }

    /// The groups in the container now.
    fn attached_groups(&self) -> Vec<Group<S>> {
        self.group_list()
            .iter()
            .filter_map(Weak::upgrade)
            .map(Group::from_inner)
            .collect()
    }

    fn path(&self) -> HostPath {
        HostPath::clone(&self.path)
    }

    /// The container's fd.
    pub fn fd(&self) -> Fd {
        self.inner.fd
    }

    /// A duplicate of the container's fd, owned by the caller.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the container when the seam cannot duplicate the fd.
    pub fn try_clone_fd(&self) -> Result<OwnedFd> {
        self.inner.dup()
    }

    /// The system interface.
    pub fn sys(&self) -> &Arc<S> {
        &self.inner.sys
    }

    /// `VFIO_GET_API_VERSION`.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the container and the kernel's errno.
    #[doc(alias = "VFIO_GET_API_VERSION")]
    pub fn api_version(&self) -> Result<i32> {
        self.inner
            .sys
            .get_api_version(self.fd())
            .map_err(|e| Error::ioctl("VFIO_GET_API_VERSION", self.target(), e))
    }

    /// Fail unless the API version is 0.
    ///
    /// # Errors
    ///
    /// Error::ApiVersion when the kernel speaks another version; Error::Ioctl when it
    /// cannot be asked.
    pub fn require_api_version(&self) -> Result<()> {
        match self.api_version()? {
            0 => Ok(()),
            found => Err(Error::ApiVersion {
                path: self.path(),
                found,
            }),
        }
    }

    /// `VFIO_CHECK_EXTENSION`.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the container and the kernel's errno.
    #[doc(alias = "VFIO_CHECK_EXTENSION")]
    pub fn check_extension(&self, ext: Extension) -> Result<bool> {
        self.inner
            .sys
            .check_extension(self.fd(), ext.raw())
            .map(|v| v > 0)
            .map_err(|e| Error::ioctl("VFIO_CHECK_EXTENSION", self.target(), e))
    }

    /// All extensions of interest.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the container and the kernel's errno (the first
    /// extension the kernel cannot be asked about).
    pub fn extensions(&self) -> Result<Extensions> {
        Ok(Extensions {
            type1: self.check_extension(Extension::Type1)?,
            type1v2: self.check_extension(Extension::Type1v2)?,
            noiommu: self.check_extension(Extension::NoIommu)?,
            unmap_all: self.check_extension(Extension::UnmapAll)?,
        })
    }

    /// The best type1 backend offered: TYPE1v2, else TYPE1.
    ///
    /// # Errors
    ///
    /// Error::NoIommuBackend when neither is offered; Error::Ioctl when the kernel cannot
    /// be asked.
    pub fn best_iommu(&self) -> Result<Extension> {
        let x = self.extensions()?;
        if x.type1v2 {
            Ok(Extension::Type1v2)
        } else if x.type1 {
            Ok(Extension::Type1)
        } else {
            Err(Error::NoIommuBackend { path: self.path() })
        }
    }

    /// `VFIO_SET_IOMMU` (needs a group attached first).
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the container and the kernel's errno (`EINVAL` before
    /// a group is attached).
    #[doc(alias = "VFIO_SET_IOMMU")]
    pub fn set_iommu(&self, ext: Extension) -> Result<()> {
        self.inner
            .sys
            .set_iommu(self.fd(), ext.raw())
            .map_err(|e| Error::ioctl("VFIO_SET_IOMMU", self.target(), e))
    }

    /// `VFIO_IOMMU_GET_INFO`, asking again with the size the kernel says it needs.
    ///
    /// # Errors
    ///
    /// Error::Ioctl with the kernel's errno, or Error::Malformed when its answer cannot be
    /// parsed (naming the offset).
    #[doc(alias = "VFIO_IOMMU_GET_INFO")]
    pub fn iommu_info(&self) -> Result<IommuInfo> {
        let mut len = info::IOMMU_INFO_LEN;
        for _ in 0..4 {
            let mut buf = vec![0u8; len];
            self.inner
                .sys
                .iommu_get_info(self.fd(), &mut buf)
                .map_err(|e| Error::ioctl("VFIO_IOMMU_GET_INFO", self.target(), e))?;
            let need = info::argsz(&buf).unwrap_or(0) as usize;
            if need > len && need <= 1 << 20 {
                len = need;
                continue;
            }
            return info::parse_iommu_info(&buf).map_err(|source| Error::Malformed {
                op: "VFIO_IOMMU_GET_INFO",
                target: self.target().to_owned(),
                source,
            });
        }
        Err(Error::Malformed {
            op: "VFIO_IOMMU_GET_INFO",
            target: self.target().to_owned(),
            source: info::ParseError {
                kind: info::ParseErrorKind::Truncated,
                offset: 0,
            },
        })
    }

    /// Query the IOMMU and return the container as a DMA space (after `set_iommu`).
    /// The space owns its mappings and unmaps them when it drops; it keeps the groups
    /// now in the container open until then.
    ///
    /// # Errors
    ///
    /// As Container::iommu_info.
    pub fn dma_space(&self) -> Result<Type1Space<S>> {
        let info = self.iommu_info()?;
        Ok(Type1Space {
            container: self.clone(),
            _groups: self.attached_groups(),
            info,
            table: Mappings::default(),
        })
    }

    /// The container as a DMA space without asking `VFIO_IOMMU_GET_INFO`: no IOVA ranges
    /// known, 4 KiB pages. For an IOMMU backend that does not answer GET_INFO, such as
    /// vfio-noiommu (`VFIO_NOIOMMU_IOMMU`), so a mapping attempt reaches the kernel and
    /// gets its own answer (vfio-noiommu refuses `VFIO_IOMMU_MAP_DMA` with `ENOTTY`).
    pub fn dma_space_without_info(&self) -> Type1Space<S> {
        Type1Space {
            container: self.clone(),
            _groups: self.attached_groups(),
            info: IommuInfo::default(),
            table: Mappings::default(),
        }
    }

    /// `VFIO_IOMMU_UNMAP_DMA` with `VFIO_DMA_UNMAP_FLAG_ALL`: drop every mapping. Memory
    /// owned by a [`Type1Space`] stays alive until that space gives it back or drops.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the container and the kernel's errno.
    #[doc(alias = "VFIO_IOMMU_UNMAP_DMA")]
    pub fn unmap_all(&self) -> Result<u64> {
        self.inner
            .sys
            .iommu_unmap_dma(self.fd(), 0, 0, 1 << 1)
            .map_err(|e| Error::ioctl("VFIO_IOMMU_UNMAP_DMA", self.target(), e))
    }
}

impl<S: VfioSys + ?Sized> AsRawFd for Container<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd().0
    }
}

/// A container with its IOMMU set: a [`DmaSpace`] with the kernel's IOVA ranges, owning
/// its mappings by IOVA and unmapping them when it drops.
#[derive(Debug)]
pub struct Type1Space<S: VfioSys + ?Sized = RealSys> {
    container: Container<S>,
    /// The groups in the container when the space was made, kept open (and so in the
    /// container) until the space has unmapped what it owns: the last group leaving a
    /// container takes its IOMMU away (the kernel unmaps everything), after which the
    /// space's unmaps fail and its memory would be leaked, whatever order a VMM drops
    /// its handles in.
    _groups: Vec<Group<S>>,
    info: IommuInfo,
    table: Mappings,
}

impl<S: VfioSys + ?Sized> Type1Space<S> {
    /// The IOMMU info read when this space was made.
    pub fn info(&self) -> &IommuInfo {
        &self.info
    }

    /// The container.
    pub fn container(&self) -> &Container<S> {
        &self.container
    }
}

impl<S: VfioSys + ?Sized> sealed::Space for Type1Space<S> {
    type Sys = S;
    fn kernel_map(&self, req: &DmaMapRequest) -> Result<()> {
        let c = &self.container;
        c.inner
            .sys
            .iommu_map_dma(c.fd(), req)
            .map_err(|e| Error::ioctl("VFIO_IOMMU_MAP_DMA", c.target(), e))
    }
    fn kernel_unmap(&self, iova: u64, size: u64) -> Result<u64> {
        let c = &self.container;
        c.inner
            .sys
            .iommu_unmap_dma(c.fd(), iova, size, 0)
            .map_err(|e| Error::ioctl("VFIO_IOMMU_UNMAP_DMA", c.target(), e))
    }
    fn table(&self) -> &Mappings {
        &self.table
    }
    fn check_span(&self, page: u64, iova: u64, size: u64) -> Result<()> {
        crate::dma::check_iova(&self.info.iova_ranges, page, iova, size)
    }
}

impl<S: VfioSys + ?Sized> DmaSpace for Type1Space<S> {
    fn iova_ranges(&self) -> Vec<IovaRange> {
        self.info.iova_ranges.clone()
    }
    fn page_size(&self) -> u64 {
        self.info.min_page_size()
    }
}

impl<S: VfioSys + ?Sized> Drop for Type1Space<S> {
    fn drop(&mut self) {
        self.table.release_all(&*self);
    }
}
