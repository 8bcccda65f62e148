//! An IOMMU group node (`/dev/vfio/N` or `/dev/vfio/noiommu-N`).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

use bitflags::bitflags;

use crate::container::Container;
use crate::device::Device;
use crate::error::{Error, HostPath, Result};
use crate::handle::Handle;
use crate::host;
use crate::sys::{Fd, RealSys, VfioSys};

bitflags! {
    /// `VFIO_GROUP_FLAGS_*` (unknown bits kept).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct GroupFlags: u32 {
        /// `VFIO_GROUP_FLAGS_VIABLE`: every device is bound to a VFIO driver or none.
        const VIABLE = 1 << 0;
        /// `VFIO_GROUP_FLAGS_CONTAINER_SET`: the group is attached to a container.
        const CONTAINER_SET = 1 << 1;
        const _ = !0;
    }
}

/// `VFIO_GROUP_GET_STATUS`, as two separate facts (a group attached to a container is
/// still viable: test the bit, never compare the whole value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupStatus {
    /// `VFIO_GROUP_FLAGS_VIABLE`.
    pub viable: bool,
    /// `VFIO_GROUP_FLAGS_CONTAINER_SET`.
    pub container_set: bool,
    /// The raw flags.
    pub flags: GroupFlags,
}

/// An open group; unset from its container (when this handle set it) and closed when
/// the last clone (and the last device opened from it) drops.
#[derive(Debug)]
pub struct Group<S: VfioSys + ?Sized = RealSys> {
    inner: Arc<GroupInner<S>>,
}

#[derive(Debug)]
pub(crate) struct GroupInner<S: VfioSys + ?Sized> {
    handle: Handle<S>,
    id: u32,
    path: HostPath,
    /// The container this handle set, kept open while the group is in it.
    container: Mutex<Option<Container<S>>>,
}

impl<S: VfioSys + ?Sized> Clone for Group<S> {
    fn clone(&self) -> Self {
        Group {
            inner: self.inner.clone(),
        }
    }
}

impl<S: VfioSys + ?Sized> Group<S> {
    /// Open `ROOT/dev/vfio/N`; `EBUSY` (already open elsewhere) is [`Error::GroupBusy`].
    ///
    /// # Errors
    ///
    /// Error::GroupBusy for `EBUSY`, Error::Open naming the node for any other errno.
    pub fn open(sys: &Arc<S>, root: &Path, id: u32) -> Result<Self> {
        Self::open_path(sys, HostPath::new(root, format!("dev/vfio/{id}")), id)
    }

    /// Open `ROOT/dev/vfio/noiommu-N` (no-IOMMU mode).
    ///
    /// # Errors
    ///
    /// As Group::open.
    pub fn open_noiommu(sys: &Arc<S>, root: &Path, id: u32) -> Result<Self> {
        Self::open_path(
            sys,
            HostPath::new(root, format!("dev/vfio/noiommu-{id}")),
            id,
        )
    }

    fn open_path(sys: &Arc<S>, path: HostPath, id: u32) -> Result<Self> {
        match sys.open(&path.full()) {
            Ok(fd) => Ok(Self::new(sys, fd, id, path)),
            Err(source) if source.raw_os_error() == Some(libc::EBUSY) => Err(Error::GroupBusy {
                group: id,
                path,
                source,
            }),
            Err(e) => Err(Error::open(path, e)),
        }
    }

    /// A group opened elsewhere (passed by libvirt or a parent process), owned from now
    /// on. It is not unset from any container it was in when this handle drops.
    ///
    /// # Errors
    ///
    /// Error::Open naming the group when the seam refuses to adopt the fd.
    pub fn from_owned_fd(sys: &Arc<S>, fd: OwnedFd, id: u32) -> Result<Self> {
        let fd = Handle::adopt(sys, fd, &format!("group {id}"))?;
        Ok(Self::new(
            sys,
            fd,
            id,
            HostPath::local(Path::new(&format!("dev/vfio/{id}"))),
        ))
    }

    pub(crate) fn from_inner(inner: Arc<GroupInner<S>>) -> Self {
        Group { inner }
    }

    fn new(sys: &Arc<S>, fd: Fd, id: u32, path: HostPath) -> Self {
        Group {
            inner: Arc::new(GroupInner {
                handle: Handle::new(sys, fd, format!("group {id}")),
                id,
                path,
                container: Mutex::new(None),
            }),
        }
    }

    fn sys(&self) -> &Arc<S> {
        &self.inner.handle.sys
    }

    /// Group id.
    pub fn id(&self) -> u32 {
        self.inner.id
    }

    /// The node opened.
    pub fn path(&self) -> &HostPath {
        &self.inner.path
    }

    /// The group's fd (for hot reset).
    pub fn fd(&self) -> Fd {
        self.inner.handle.fd
    }

    /// A duplicate of the group's fd, owned by the caller (for KVM's VFIO device).
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the group when the seam cannot duplicate the fd.
    pub fn try_clone_fd(&self) -> Result<OwnedFd> {
        self.inner.handle.dup()
    }

    fn target(&self) -> &str {
        &self.inner.handle.target
    }

    fn container_slot(&self) -> std::sync::MutexGuard<'_, Option<Container<S>>> {
        // One assignment at a time: a poisoned lock holds a consistent value.
        self.inner
            .container
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// `VFIO_GROUP_GET_STATUS`.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the group and the kernel's errno.
    #[doc(alias = "VFIO_GROUP_GET_STATUS")]
    pub fn status(&self) -> Result<GroupStatus> {
        let raw = self
            .sys()
            .group_get_status(self.fd())
            .map_err(|e| Error::ioctl("VFIO_GROUP_GET_STATUS", self.target(), e))?;
        let flags = GroupFlags::from_bits_retain(raw);
        Ok(GroupStatus {
            viable: flags.contains(GroupFlags::VIABLE),
            container_set: flags.contains(GroupFlags::CONTAINER_SET),
            flags,
        })
    }

    /// The status, or [`Error::GroupNotViable`] naming the devices (read from sysfs
    /// under `root`) that keep the group from being viable.
    ///
    /// # Errors
    ///
    /// Error::GroupNotViable naming the blocking devices; Error::Ioctl when the status
    /// cannot be read.
    pub fn require_viable(&self, root: &Path) -> Result<GroupStatus> {
        let st = self.status()?;
        if st.viable {
            return Ok(st);
        }
        Err(Error::GroupNotViable {
            group: self.id(),
            blockers: host::blockers(root, self.id()).unwrap_or_default(),
        })
    }

    /// `VFIO_GROUP_SET_CONTAINER`; the group keeps the container open while in it.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the group and the kernel's errno.
    #[doc(alias = "VFIO_GROUP_SET_CONTAINER")]
    pub fn set_container(&self, container: &Container<S>) -> Result<()> {
        let mut slot = self.container_slot();
        self.sys()
            .group_set_container(self.fd(), container.fd())
            .map_err(|e| Error::ioctl("VFIO_GROUP_SET_CONTAINER", self.target(), e))?;
        container.add_group(Arc::downgrade(&self.inner));
        *slot = Some(container.clone());
        Ok(())
    }

    /// `VFIO_GROUP_UNSET_CONTAINER`.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the group and the kernel's errno.
    #[doc(alias = "VFIO_GROUP_UNSET_CONTAINER")]
    pub fn unset_container(&self) -> Result<()> {
        let mut slot = self.container_slot();
        self.sys()
            .group_unset_container(self.fd())
            .map_err(|e| Error::ioctl("VFIO_GROUP_UNSET_CONTAINER", self.target(), e))?;
        if let Some(c) = slot.take() {
            c.remove_group(&Arc::downgrade(&self.inner));
        }
        Ok(())
    }

    /// `VFIO_GROUP_GET_DEVICE_FD` for a device by name (its BDF). The device keeps the
    /// group handle alive.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming the call, the group and the kernel's errno (`EINVAL` for a
    /// device not in the group or not bound to vfio-pci).
    #[doc(alias = "VFIO_GROUP_GET_DEVICE_FD")]
    pub fn device(&self, name: &str) -> Result<Device<S>> {
        self.get_device(name, name)
    }

    /// `VFIO_GROUP_GET_DEVICE_FD` for an SR-IOV VF whose PF set a VF token.
    ///
    /// # Errors
    ///
    /// As Group::device.
    pub fn device_with_token(&self, name: &str, token: &str) -> Result<Device<S>> {
        self.get_device(name, &format!("{name} vf_token={token}"))
    }

    fn get_device(&self, name: &str, request: &str) -> Result<Device<S>> {
        let fd = self
            .sys()
            .group_get_device_fd(self.fd(), request)
            .map_err(|e| {
                Error::ioctl(
                    "VFIO_GROUP_GET_DEVICE_FD",
                    format!("group {} device {name}", self.id()),
                    e,
                )
            })?;
        Ok(Device::from_fd(
            self.sys(),
            fd,
            name.to_owned(),
            Some(self.clone()),
        ))
    }
}

impl<S: VfioSys + ?Sized> AsRawFd for Group<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd().0
    }
}

impl<S: VfioSys + ?Sized> Drop for GroupInner<S> {
    fn drop(&mut self) {
        let slot = self.container.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(container) = slot.take() {
            let _ = self.handle.sys.group_unset_container(self.handle.fd);
            drop(container);
        }
        // The handle closes the fd after this; the container clone dropped above closes
        // the container's fd once nothing else holds it.
    }
}
