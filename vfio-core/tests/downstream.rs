//! vfio-core as a downstream crate sees it: an implementation of the seam written
//! against the first release (required methods only), the `testing` mock, and the
//! `testing` fake kernel under a VMM-shaped struct.

use std::io;
use std::path::Path;
use std::sync::Arc;

use passthru_vfio_core::sys::{DmaMapRequest, IovaRangesAnswer, RawIrqInfo};
use passthru_vfio_core::testing::FakeVfio;
use passthru_vfio_core::{
    Container, Device, EventFd, Extension, Fd, Group, Iommufd, IovaRange, IrqIndex, IrqSet,
    MockVfioSys, OwnedDma, VfioSys,
};
use std::os::fd::AsFd;
use vm_memory::MmapRegion;

/// Answers every call it knows with `ENODEV`; opens hand out fd 7.
struct FirstRelease;

fn nodev<T>() -> io::Result<T> {
    Err(io::Error::from_raw_os_error(libc::ENODEV))
}

impl VfioSys for FirstRelease {
    fn open(&self, _: &Path) -> io::Result<Fd> {
        Ok(Fd(7))
    }
    fn close(&self, _: Fd) -> io::Result<()> {
        Ok(())
    }
    fn pread(&self, _: Fd, _: &mut [u8], _: u64) -> io::Result<usize> {
        nodev()
    }
    fn pwrite(&self, _: Fd, _: &[u8], _: u64) -> io::Result<usize> {
        nodev()
    }
    fn mmap(&self, _: Fd, _: u64, _: usize, _: bool) -> io::Result<MmapRegion<()>> {
        nodev()
    }
    fn get_api_version(&self, _: Fd) -> io::Result<i32> {
        nodev()
    }
    fn check_extension(&self, _: Fd, _: u32) -> io::Result<i32> {
        nodev()
    }
    fn set_iommu(&self, _: Fd, _: u32) -> io::Result<()> {
        nodev()
    }
    fn iommu_get_info(&self, _: Fd, _: &mut [u8]) -> io::Result<()> {
        nodev()
    }
    fn iommu_map_dma(&self, _: Fd, _: &DmaMapRequest) -> io::Result<()> {
        nodev()
    }
    fn iommu_unmap_dma(&self, _: Fd, _: u64, _: u64, _: u32) -> io::Result<u64> {
        nodev()
    }
    fn group_get_status(&self, _: Fd) -> io::Result<u32> {
        nodev()
    }
    fn group_set_container(&self, _: Fd, _: Fd) -> io::Result<()> {
        nodev()
    }
    fn group_unset_container(&self, _: Fd) -> io::Result<()> {
        nodev()
    }
    fn group_get_device_fd(&self, _: Fd, _: &str) -> io::Result<Fd> {
        nodev()
    }
    fn device_get_info(&self, _: Fd, _: &mut [u8]) -> io::Result<()> {
        nodev()
    }
    fn device_get_region_info(&self, _: Fd, _: u32, _: &mut [u8]) -> io::Result<()> {
        nodev()
    }
    fn device_get_irq_info(&self, _: Fd, _: u32) -> io::Result<RawIrqInfo> {
        nodev()
    }
    fn device_reset(&self, _: Fd) -> io::Result<()> {
        nodev()
    }
    fn device_get_pci_hot_reset_info(&self, _: Fd, _: &mut [u8]) -> io::Result<()> {
        nodev()
    }
    fn device_pci_hot_reset(&self, _: Fd, _: &[Fd]) -> io::Result<()> {
        nodev()
    }
    fn device_feature(&self, _: Fd, _: u32, _: &mut [u8]) -> io::Result<i32> {
        nodev()
    }
    fn device_bind_iommufd(&self, _: Fd, _: Fd, _: Option<[u8; 16]>) -> io::Result<u32> {
        nodev()
    }
    fn device_attach_iommufd_pt(&self, _: Fd, _: u32) -> io::Result<u32> {
        nodev()
    }
    fn iommufd_ioas_alloc(&self, _: Fd) -> io::Result<u32> {
        nodev()
    }
    fn iommufd_destroy(&self, _: Fd, _: u32) -> io::Result<()> {
        nodev()
    }
    fn iommufd_ioas_iova_ranges(
        &self,
        _: Fd,
        _: u32,
        _: &mut [IovaRange],
    ) -> io::Result<IovaRangesAnswer> {
        nodev()
    }
    fn iommufd_ioas_map(&self, _: Fd, _: u32, _: &DmaMapRequest) -> io::Result<()> {
        nodev()
    }
    fn iommufd_ioas_unmap(&self, _: Fd, _: u32, _: u64, _: u64) -> io::Result<u64> {
        nodev()
    }
}

// A call added after the first release reaches such an implementation as ENOTTY.
#[test]
fn an_implementation_of_the_first_release_answers_set_irqs_with_enotty() {
    let sys = Arc::new(FirstRelease);
    let dev =
        Device::open_cdev(&sys, Path::new("/dev/vfio/devices/vfio0"), "0000:06:00.0").unwrap();
    let e = EventFd::new().unwrap();
    let err = dev.enable_msix(&[Some(e.as_fd())]).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOTTY));
    assert!(
        err.to_string()
            .contains("does not implement VFIO_DEVICE_SET_IRQS"),
        "{err}"
    );
}

// The `testing` mock, driven from outside the crate.
#[test]
fn the_testing_mock_drives_the_wrappers_from_outside() {
    let mut m = MockVfioSys::new();
    m.expect_open().returning(|_| Ok(Fd(11)));
    m.expect_close().times(1).returning(|_| Ok(()));
    m.expect_device_get_irq_info()
        .withf(|fd, index| *fd == Fd(11) && *index == 2)
        .returning(|_, _| {
            Ok(RawIrqInfo {
                // EVENTFD only: a 6.12 guest's vfio-pci with dynamic MSI-X
                // (tests/data/captures/tcg-amd/vfiotest-0000:01:00.0.txt).
                flags: 0x1,
                count: 5,
            })
        });
    m.expect_device_set_irqs()
        .withf(|_, req: &IrqSet| req.index() == 2 && req.count() == 5)
        .times(1)
        .returning(|_, _| Ok(()));
    let m = Arc::new(m);
    let dev = Device::open_cdev(&m, Path::new("/dev/vfio/devices/vfio0"), "0000:06:00.0").unwrap();
    let info = dev.irq_info(IrqIndex::Msix.raw()).unwrap();
    assert!(info.eventfd() && !info.noresize() && !info.maskable());
    let fds: Vec<EventFd> = (0..info.count).map(|_| EventFd::new().unwrap()).collect();
    let borrowed: Vec<_> = fds.iter().map(|f| Some(f.as_fd())).collect();
    dev.enable_msix(&borrowed).unwrap();
}

/// What a VMM keeps: the handles and the DMA space owning its mappings, in one struct
/// (it compiles because nothing borrows), shared across threads.
struct Vmm {
    _container: Container<FakeVfio>,
    _group: Group<FakeVfio>,
    device: Device<FakeVfio>,
    dma: passthru_vfio_core::Type1Space<FakeVfio>,
}

fn assert_send_sync<T: Send + Sync>(_: &T) {}

#[test]
fn a_vmm_struct_owns_handles_and_mappings_and_drops_them_clean() {
    let sys = Arc::new(FakeVfio::new());
    let guest = Arc::new(vm_memory::MmapRegion::<()>::new(0x10000).unwrap());
    {
        let container = Container::open(&sys, Path::new("/dev/vfio/vfio")).unwrap();
        let group = Group::open(&sys, Path::new("/"), 16).unwrap();
        group.set_container(&container).unwrap();
        container.set_iommu(Extension::Type1v2).unwrap();
        let vmm = Vmm {
            dma: container.dma_space().unwrap(),
            device: group.device("0000:06:00.0").unwrap(),
            _group: group,
            _container: container,
        };
        assert_send_sync(&vmm);
        vmm.dma.map(guest.clone(), 0x100000, true).unwrap();
        let part = passthru_vfio_core::DmaRange::new(guest.clone(), 0, 0x1000).unwrap();
        vmm.dma.map(part, 0x400000, false).unwrap();
        assert_eq!(sys.mapped(), [(0x100000, 0x10000), (0x400000, 0x1000)]);
        // Another thread wires MSI-X through a clone of the device.
        let dev = vmm.device.clone();
        std::thread::spawn(move || {
            let e = EventFd::new().unwrap();
            dev.enable_msix(&[Some(e.as_fd())]).unwrap();
        })
        .join()
        .unwrap();
        assert_eq!(sys.irq_sets().len(), 1);
        assert_eq!(Arc::strong_count(&guest), 3);
        drop(vmm);
    }
    // Every mapping unmapped before its memory was released; every fd closed.
    assert!(sys.mapped().is_empty());
    assert_eq!(Arc::strong_count(&guest), 1);
    assert_eq!(sys.open_fds(), 0);
}

#[test]
fn iommufd_ioas_owns_its_mappings_too() {
    let sys = Arc::new(FakeVfio::new());
    let iommufd = Iommufd::open(&sys, Path::new("/dev/iommu")).unwrap();
    let ioas = iommufd.alloc_ioas().unwrap();
    let dev =
        Device::open_cdev(&sys, Path::new("/dev/vfio/devices/vfio0"), "0000:06:00.0").unwrap();
    dev.bind_iommufd(&iommufd, None).unwrap();
    dev.attach_ioas(&ioas).unwrap();
    let buf = vm_memory::MmapRegion::<()>::new(0x2000).unwrap();
    ioas.map(buf, 0x200000, true).unwrap();
    assert_eq!(ioas.mapped(), [(0x200000, 0x2000)]);
    drop(iommufd); // the IOAS keeps the iommufd open
    assert_eq!(sys.mapped(), [(0x200000, 0x2000)]);
    drop(ioas);
    assert!(sys.mapped().is_empty());
    drop(dev);
    assert_eq!(sys.open_fds(), 0);
}
