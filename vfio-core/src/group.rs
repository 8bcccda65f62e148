//! An IOMMU group node (`/dev/vfio/N` or `/dev/vfio/noiommu-N`).

use std::path::{Path, PathBuf};

use bitflags::bitflags;

use crate::container::Container;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::host;
use crate::sys::{Fd, VfioSys};

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

/// An open group; unset from its container (when this handle set it) and closed on drop.
#[derive(Debug)]
pub struct Group<'s, S: VfioSys + ?Sized> {
    sys: &'s S,
    fd: Fd,
    id: u32,
    path: PathBuf,
    attached: bool,
}

impl<'s, S: VfioSys + ?Sized> Group<'s, S> {
    /// Open `ROOT/dev/vfio/N`; `EBUSY` (already open elsewhere) is [`Error::GroupBusy`].
    pub fn open(sys: &'s S, root: &Path, id: u32) -> Result<Self> {
        Self::open_path(sys, root.join(format!("dev/vfio/{id}")), id)
    }

    /// Open `ROOT/dev/vfio/noiommu-N` (no-IOMMU mode).
    pub fn open_noiommu(sys: &'s S, root: &Path, id: u32) -> Result<Self> {
        Self::open_path(sys, root.join(format!("dev/vfio/noiommu-{id}")), id)
    }

    fn open_path(sys: &'s S, path: PathBuf, id: u32) -> Result<Self> {
        match sys.open(&path) {
            Ok(fd) => Ok(Group {
                sys,
                fd,
                id,
                path,
                attached: false,
            }),
            Err(source) if source.raw_os_error() == Some(libc::EBUSY) => Err(Error::GroupBusy {
                group: id,
                path,
                source,
            }),
            Err(e) => Err(Error::open(path, e)),
        }
    }

    /// Group id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The node opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The group's fd (for hot reset).
    pub fn fd(&self) -> Fd {
        self.fd
    }

    fn target(&self) -> String {
        format!("group {}", self.id)
    }

    /// `VFIO_GROUP_GET_STATUS`.
    #[doc(alias = "VFIO_GROUP_GET_STATUS")]
    pub fn status(&self) -> Result<GroupStatus> {
        let raw = self
            .sys
            .group_get_status(self.fd)
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
    pub fn require_viable(&self, root: &Path) -> Result<GroupStatus> {
        let st = self.status()?;
        if st.viable {
            return Ok(st);
        }
        Err(Error::GroupNotViable {
            group: self.id,
            blockers: host::blockers(root, self.id).unwrap_or_default(),
        })
    }

    /// `VFIO_GROUP_SET_CONTAINER`.
    #[doc(alias = "VFIO_GROUP_SET_CONTAINER")]
    pub fn set_container(&mut self, container: &Container<'_, S>) -> Result<()> {
        self.sys
            .group_set_container(self.fd, container.fd())
            .map_err(|e| Error::ioctl("VFIO_GROUP_SET_CONTAINER", self.target(), e))?;
        self.attached = true;
        Ok(())
    }

    /// `VFIO_GROUP_UNSET_CONTAINER`.
    #[doc(alias = "VFIO_GROUP_UNSET_CONTAINER")]
    pub fn unset_container(&mut self) -> Result<()> {
        self.sys
            .group_unset_container(self.fd)
            .map_err(|e| Error::ioctl("VFIO_GROUP_UNSET_CONTAINER", self.target(), e))?;
        self.attached = false;
        Ok(())
    }

    /// `VFIO_GROUP_GET_DEVICE_FD` for a device by name (its BDF).
    #[doc(alias = "VFIO_GROUP_GET_DEVICE_FD")]
    pub fn device(&self, name: &str) -> Result<Device<'s, S>> {
        let fd = self.sys.group_get_device_fd(self.fd, name).map_err(|e| {
            Error::ioctl(
                "VFIO_GROUP_GET_DEVICE_FD",
                format!("group {} device {name}", self.id),
                e,
            )
        })?;
        Ok(Device::from_fd(self.sys, fd, name.to_owned()))
    }

    /// `VFIO_GROUP_GET_DEVICE_FD` for an SR-IOV VF whose PF set a VF token.
    pub fn device_with_token(&self, name: &str, token: &str) -> Result<Device<'s, S>> {
        let full = format!("{name} vf_token={token}");
        let fd = self.sys.group_get_device_fd(self.fd, &full).map_err(|e| {
            Error::ioctl(
                "VFIO_GROUP_GET_DEVICE_FD",
                format!("group {} device {name}", self.id),
                e,
            )
        })?;
        Ok(Device::from_fd(self.sys, fd, name.to_owned()))
    }
}

impl<S: VfioSys + ?Sized> Drop for Group<'_, S> {
    fn drop(&mut self) {
        if self.attached {
            let _ = self.sys.group_unset_container(self.fd);
        }
        let _ = self.sys.close(self.fd);
    }
}
