//! KVM's VFIO pseudo-device (feature `kvm`): [`KvmVfioDevice`] tells KVM which VFIO
//! groups or device files a VM uses (`KVM_CREATE_DEVICE` with `KVM_DEV_TYPE_VFIO` on
//! the caller's VM fd, then `KVM_SET_DEVICE_ATTR` with `KVM_DEV_VFIO_FILE` /
//! `KVM_DEV_VFIO_FILE_ADD` or `_DEL`, the older `KVM_DEV_VFIO_GROUP` names). KVM needs
//! it for non-coherent DMA (the guest's cache flushes) and for drivers that need the VM
//! at open (Documentation/virt/kvm/devices/vfio.rst: add a group before
//! `VFIO_GROUP_GET_DEVICE_FD`, a device cdev before `VFIO_DEVICE_BIND_IOMMUFD`).
//!
//! The calls go through the kernel seam ([`VfioSys::kvm_create_device`],
//! [`VfioSys::kvm_set_device_attr_fd`]), provided methods that answer `ENOTTY` for
//! implementations that predate them. The VM fd is the caller's (this crate does not
//! open `/dev/kvm` or create VMs); the KVM device fd belongs to the handle and closes
//! when it drops, which drops KVM's references to the files it was given.
//!
//! Tested: the ioctl numbers and both structures byte for byte against
//! include/uapi/linux/kvm.h, and the calls each method makes through the seam (the
//! mock). Not run against a kernel: the machine these crates are developed on exposes
//! `/dev/kvm` without VMX/SVM in its CPU flags, so no VM can be created there, and the
//! QEMU TCG guests of the VM harness have no KVM at all.
//!
//! ```no_run
//! use std::os::fd::AsFd;
//! use std::sync::Arc;
//! use passthru_vfio_core::kvm::KvmVfioDevice;
//! use passthru_vfio_core::{Container, Group, RealSys};
//!
//! fn wire(vm: &std::fs::File, group_id: u32) -> passthru_vfio_core::Result<KvmVfioDevice> {
//!     let sys = Arc::new(RealSys::new());
//!     let root = std::path::Path::new("/");
//!     let container = Container::open(&sys, &root.join("dev/vfio/vfio"))?;
//!     let group = Group::open(&sys, root, group_id)?;
//!     group.set_container(&container)?;
//!     let kvm_vfio = KvmVfioDevice::create(&sys, vm.as_fd())?; // vm: the KVM_CREATE_VM fd
//!     kvm_vfio.add_group(&group)?; // before the group's devices are opened
//!     Ok(kvm_vfio)
//! }
//! ```

use std::os::fd::BorrowedFd;
use std::sync::Arc;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::group::Group;
use crate::handle::Handle;
use crate::sys::kvm::{DEV_TYPE_VFIO, DEV_VFIO_FILE, DEV_VFIO_FILE_ADD, DEV_VFIO_FILE_DEL};
use crate::sys::{Fd, RealSys, VfioSys};

/// KVM's VFIO device of one VM; closed when dropped.
#[derive(Debug)]
pub struct KvmVfioDevice<S: VfioSys + ?Sized = RealSys> {
    handle: Handle<S>,
}

impl<S: VfioSys + ?Sized> KvmVfioDevice<S> {
    /// `KVM_CREATE_DEVICE` with `KVM_DEV_TYPE_VFIO` on the VM fd `vm`.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming `KVM_CREATE_DEVICE` with KVM's errno (`EEXIST`: the VM has
    /// one already; `ENODEV`: KVM was built without it; `ENOTTY`: `vm` is not a VM fd or
    /// the seam lacks the call).
    #[doc(alias = "KVM_CREATE_DEVICE")]
    pub fn create(sys: &Arc<S>, vm: BorrowedFd<'_>) -> Result<Self> {
        let fd = sys
            .kvm_create_device(vm, DEV_TYPE_VFIO)
            .map_err(|e| Error::ioctl("KVM_CREATE_DEVICE", "the VM", e))?;
        Ok(KvmVfioDevice {
            handle: Handle::new(sys, fd, "KVM VFIO device".into()),
        })
    }

    /// The KVM device fd (owned by the seam).
    pub fn fd(&self) -> Fd {
        self.handle.fd
    }

    fn file(&self, op: u64, file: Fd) -> Result<()> {
        self.handle
            .sys
            .kvm_set_device_attr_fd(self.handle.fd, DEV_VFIO_FILE, op, file)
            .map_err(|e| Error::ioctl("KVM_SET_DEVICE_ATTR", self.handle.target.clone(), e))
    }

    /// `KVM_DEV_VFIO_FILE_ADD` of a group.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming `KVM_SET_DEVICE_ATTR` with KVM's errno (`EEXIST` when the
    /// group was added already).
    #[doc(alias = "KVM_SET_DEVICE_ATTR")]
    pub fn add_group(&self, group: &Group<S>) -> Result<()> {
        self.file(DEV_VFIO_FILE_ADD, group.fd())
    }

    /// `KVM_DEV_VFIO_FILE_DEL` of a group.
    ///
    /// # Errors
    ///
    /// Error::Ioctl naming `KVM_SET_DEVICE_ATTR` with KVM's errno (`ENOENT` when the
    /// group was not added).
    pub fn del_group(&self, group: &Group<S>) -> Result<()> {
        self.file(DEV_VFIO_FILE_DEL, group.fd())
    }

    /// `KVM_DEV_VFIO_FILE_ADD` of a device cdev (iommufd mode; before
    /// `VFIO_DEVICE_BIND_IOMMUFD`).
    ///
    /// # Errors
    ///
    /// As [`KvmVfioDevice::add_group`].
    pub fn add_device(&self, device: &Device<S>) -> Result<()> {
        self.file(DEV_VFIO_FILE_ADD, device.fd())
    }

    /// `KVM_DEV_VFIO_FILE_DEL` of a device cdev.
    ///
    /// # Errors
    ///
    /// As [`KvmVfioDevice::del_group`].
    pub fn del_device(&self, device: &Device<S>) -> Result<()> {
        self.file(DEV_VFIO_FILE_DEL, device.fd())
    }
}

#[cfg(test)]
mod tests {
    //! Expected values from include/uapi/linux/kvm.h: `KVMIO` 0xAE; `KVM_CREATE_DEVICE`
    //! `_IOWR(KVMIO, 0xe0, struct kvm_create_device)`, 12 bytes (`__u32 type, fd,
    //! flags`); `KVM_SET_DEVICE_ATTR` `_IOW(KVMIO, 0xe1, struct kvm_device_attr)`, 24
    //! bytes (`__u32 flags, group; __u64 attr, addr`); `KVM_DEV_TYPE_VFIO` 4;
    //! `KVM_DEV_VFIO_FILE` 1 with `_ADD` 1 and `_DEL` 2 (the `KVM_DEV_VFIO_GROUP`
    //! aliases have the same values). The ioctl encoding is
    //! include/uapi/asm-generic/ioctl.h's.

    use super::*;
    use crate::sys::{kvm, nr, MockVfioSys};
    use std::os::fd::AsFd;
    use std::path::Path;

    #[test]
    fn ioctl_numbers_match_the_uapi_header() {
        // dir (read|write = 3, write = 1) << 30 | size << 16 | 0xae << 8 | nr
        assert_eq!(nr::KVM_CREATE_DEVICE, 0xc00c_aee0);
        assert_eq!(nr::KVM_SET_DEVICE_ATTR, 0x4018_aee1);
    }

    #[test]
    fn struct_bytes_match_the_uapi_layout() {
        assert_eq!(
            kvm::create_device_bytes(kvm::DEV_TYPE_VFIO),
            [4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let attr = kvm::device_attr_bytes(1, 2, 0x1122_3344_5566_7788);
        assert_eq!(&attr[0..4], &[0; 4], "flags");
        assert_eq!(&attr[4..8], &1u32.to_ne_bytes(), "group");
        assert_eq!(&attr[8..16], &2u64.to_ne_bytes(), "attr");
        assert_eq!(
            &attr[16..24],
            &0x1122_3344_5566_7788u64.to_ne_bytes(),
            "addr"
        );
    }

    /// A mock that opens fds 20 (group) and 21 (device cdev), creates KVM device 30 on
    /// the VM fd it is given, and expects each KVM_SET_DEVICE_ATTR in `want`.
    fn mock(vm_raw: i32, want: Vec<(u32, u64, i32)>) -> MockVfioSys {
        let mut m = MockVfioSys::new();
        let mut next = 19;
        m.expect_open().returning(move |_| {
            next += 1;
            Ok(Fd(next))
        });
        m.expect_close().returning(|_| Ok(()));
        m.expect_group_unset_container().returning(|_| Ok(()));
        m.expect_kvm_create_device()
            .withf(move |vm, kind| {
                use std::os::fd::AsRawFd;
                vm.as_raw_fd() == vm_raw && *kind == 4
            })
            .times(1)
            .returning(|_, _| Ok(Fd(30)));
        let mut seq = mockall::Sequence::new();
        for (group, attr, file) in want {
            m.expect_kvm_set_device_attr_fd()
                .withf(move |dev, g, a, f| {
                    *dev == Fd(30) && *g == group && *a == attr && *f == Fd(file)
                })
                .times(1)
                .in_sequence(&mut seq)
                .returning(|_, _, _, _| Ok(()));
        }
        m
    }

    #[test]
    fn groups_and_device_files_are_added_and_deleted_as_kvm_dev_vfio_file() {
        let vm = tempfile::tempfile().unwrap(); // stands for the KVM_CREATE_VM fd
        use std::os::fd::AsRawFd;
        let sys = Arc::new(mock(
            vm.as_raw_fd(),
            vec![(1, 1, 20), (1, 1, 21), (1, 2, 21), (1, 2, 20)],
        ));
        let group = Group::open(&sys, Path::new("/"), 16).unwrap();
        let dev =
            Device::open_cdev(&sys, Path::new("/dev/vfio/devices/vfio0"), "0000:06:00.0").unwrap();
        let k = KvmVfioDevice::create(&sys, vm.as_fd()).unwrap();
        assert_eq!(k.fd(), Fd(30));
        k.add_group(&group).unwrap();
        k.add_device(&dev).unwrap();
        k.del_device(&dev).unwrap();
        k.del_group(&group).unwrap();
    }

    // An implementation of the seam without the calls answers ENOTTY, named.
    #[test]
    fn a_seam_without_the_calls_answers_enotty() {
        let sys = Arc::new(crate::testing::FakeVfio::new());
        let vm = tempfile::tempfile().unwrap();
        let err = KvmVfioDevice::create(&sys, vm.as_fd()).unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENOTTY));
        assert!(err.to_string().contains("KVM_CREATE_DEVICE"), "{err}");
    }

    // RealSys reaches the kernel: a regular file is no VM (ENOTTY from the kernel), and
    // KVM_SET_DEVICE_ATTR refuses a device fd RealSys does not hold (EBADF).
    #[test]
    fn real_sys_passes_the_calls_to_the_kernel() {
        let sys = RealSys::new();
        let vm = tempfile::tempfile().unwrap();
        let e = sys
            .kvm_create_device(vm.as_fd(), kvm::DEV_TYPE_VFIO)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
        let e = sys
            .kvm_set_device_attr_fd(Fd(0), kvm::DEV_VFIO_FILE, kvm::DEV_VFIO_FILE_ADD, Fd(0))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    }
}
