//! The whole VMM sequence against vfio-core's fake kernel (`testing::FakeVfio`): what it
//! answers is taken from a real 82574L (e1000e) under a 6.12 kernel's vfio-pci; see the
//! fake's documentation for the region table and where each fact comes from.

use std::any::Any;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::{Arc, Weak};

use passthru_vfio_core::testing::FakeVfio;
use passthru_vmm_consumer::{Assigned, BarSlot, Dma};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

const BDF: &str = "0000:06:00.0";

/// Guest RAM below the VGA hole and from 1 MiB, as a PC-style VMM lays it out.
fn guest_ram() -> Vec<Arc<GuestRegionMmap>> {
    [(0u64, 0xa0000usize), (0x100000, 0x400000)]
        .into_iter()
        .map(|(at, len)| {
            let m = MmapRegion::new(len).unwrap();
            Arc::new(GuestRegionMmap::new(m, GuestAddress(at)).unwrap())
        })
        .collect()
}

/// `struct vfio_irq_set` as include/uapi/linux/vfio.h lays it out: argsz, flags, index,
/// start, count (five `__u32`), then one `__s32` eventfd per vector.
fn irq_set_bytes(flags: u32, index: u32, fds: &[i32]) -> Vec<u8> {
    let argsz = 20 + 4 * fds.len() as u32;
    let mut v = Vec::new();
    for w in [argsz, flags, index, 0, fds.len() as u32] {
        v.extend_from_slice(&w.to_ne_bytes());
    }
    for fd in fds {
        v.extend_from_slice(&fd.to_ne_bytes());
    }
    v
}

/// Every step a VMM takes on one device, checked against what the fake kernel saw.
fn run_sequence(sys: &Arc<FakeVfio>, a: &mut Assigned<FakeVfio>, ram: &[Arc<GuestRegionMmap>]) {
    // Config space, read through the VFIO config region: the 82574L's ids.
    let mut ids = [0u8; 4];
    assert_eq!(a.device.read_config(0, &mut ids).unwrap(), 4);
    assert_eq!(ids, [0x86, 0x80, 0xd3, 0x10]);
    // Region info: BAR3 holds the MSI-X table at offset 0, so its page is a hole.
    let bar3 = a.device.region_info(3).unwrap();
    assert_eq!(bar3.size, 0x4000);
    let sparse: Vec<_> = bar3
        .sparse_mmap
        .unwrap()
        .iter()
        .map(|s| (s.offset, s.size))
        .collect();
    assert_eq!(sparse, [(0x1000, 0x3000)]);

    // Every mmappable area of every BAR; BAR2 (I/O ports) is not mmappable.
    let slots = a.map_bars().unwrap();
    let shape: Vec<_> = slots
        .iter()
        .map(|s| (s.region, s.region_offset, s.len))
        .collect();
    assert_eq!(
        shape,
        [(0, 0, 0x20000), (1, 0, 0x20000), (3, 0x1000, 0x3000)]
    );
    assert!(slots.iter().all(|s: &BarSlot| s.host_addr != 0));
    // A store through BAR3's mapping (its PBA page) reaches the device: the fd reads it.
    let bar3_map = a.bars.iter().find(|m| m.index == 3).unwrap();
    bar3_map.write_u32(0x2000, 0xdead_beef).unwrap();
    let mut word = [0u8; 4];
    a.device.read_region(3, 0x2000, &mut word).unwrap();
    assert_eq!(u32::from_ne_bytes(word), 0xdead_beef);
    // The MSI-X table is not mapped; a VMM emulates it through the fd.
    assert_eq!(bar3_map.read_u32(0), None);
    let entry = [0x11u8; 16];
    assert_eq!(a.device.write_region(3, 0, &entry).unwrap(), 16);
    let mut back = [0u8; 16];
    a.device.read_region(3, 0, &mut back).unwrap();
    assert_eq!(back, entry);

    // Guest RAM mapped for DMA at IOVA = guest physical address, owned by the space.
    a.map_guest_memory(ram).unwrap();
    let want = [(0, 0xa0000), (0x100000, 0x400000)];
    assert_eq!(sys.mapped(), want);
    assert_eq!(a.dma.mapped(), want);
    // The guest's view of the same memory stays usable.
    let mem = GuestMemoryMmap::from_arc_regions(ram.to_vec()).unwrap();
    mem.write_obj(0x1234_5678u32, GuestAddress(0x100040))
        .unwrap();
    assert_eq!(
        mem.read_obj::<u32>(GuestAddress(0x100040)).unwrap(),
        0x1234_5678
    );
    // Mapping a region twice is refused before the kernel sees it.
    assert!(a.map_guest_memory(&ram[..1]).is_err());
    assert_eq!(sys.mapped(), want);

    // MSI-X: five vectors (the capture's count), each on its own eventfd.
    assert_eq!(a.wire_msix().unwrap(), 5);
    let fds: Vec<i32> = a.msix.iter().map(|e| e.as_fd().as_raw_fd()).collect();
    // VFIO_IRQ_SET_DATA_EVENTFD (1 << 2) | VFIO_IRQ_SET_ACTION_TRIGGER (1 << 5), index 2.
    assert_eq!(sys.irq_sets(), [irq_set_bytes(0x24, 2, &fds)]);

    a.reset().unwrap();
}

#[test]
fn the_whole_sequence_through_a_type1_container() {
    let sys = Arc::new(FakeVfio::new());
    let ram = guest_ram();
    let mut a = Assigned::open_type1(&sys, Path::new("/"), 16, BDF).unwrap();
    assert!(matches!(a.dma, Dma::Type1 { .. }));
    run_sequence(&sys, &mut a, &ram);
    drop(a);
    assert!(sys.mapped().is_empty());
    assert_eq!(sys.open_fds(), 0);
    assert!(ram.iter().all(|r| Arc::strong_count(r) == 1));
}

/// A guest behind a vIOMMU maps guest pages at IOVAs of its choosing, one call each;
/// they unmap in any order, and the region's clone goes with the last of them.
fn vio_pages(sys: &Arc<FakeVfio>, a: &Assigned<FakeVfio>, ram: &[Arc<GuestRegionMmap>]) {
    const PAGE: usize = 0x1000;
    let base = 0x8000_0000u64;
    for i in 0..16 {
        a.dma
            .map_page(&ram[1], 0x10000 + i * PAGE, PAGE, base + (i * PAGE) as u64)
            .unwrap();
    }
    let want: Vec<(u64, u64)> = (0..16).map(|i| (base + i * 0x1000, 0x1000)).collect();
    assert_eq!(sys.mapped(), want, "one kernel mapping per page");
    assert_eq!(a.dma.mapped(), want);
    assert_eq!(Arc::strong_count(&ram[1]), 2, "one clone for all 16 pages");
    // A page outside the region is refused before the kernel sees it.
    assert!(a
        .dma
        .map_page(&ram[1], 0x400000, PAGE, base + 0x100000)
        .is_err());
    // Out of order: the middle, the front, the back, then the rest.
    for i in [7u64, 0, 15, 3, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14] {
        assert_eq!(a.dma.unmap_page(base + i * 0x1000).unwrap(), 0x1000);
        assert!(!sys.mapped().iter().any(|&(at, _)| at == base + i * 0x1000));
    }
    assert!(sys.mapped().is_empty());
    assert_eq!(
        Arc::strong_count(&ram[1]),
        1,
        "the last unmap released the clone"
    );
}

#[test]
fn guest_pages_behind_a_viommu_through_type1_and_iommufd() {
    let sys = Arc::new(FakeVfio::new());
    let ram = guest_ram();
    let a = Assigned::open_type1(&sys, Path::new("/"), 16, BDF).unwrap();
    vio_pages(&sys, &a, &ram);
    drop(a);
    let a = Assigned::open_iommufd(&sys, Path::new("/"), "vfio0", BDF).unwrap();
    vio_pages(&sys, &a, &ram);
}

#[test]
fn the_whole_sequence_through_iommufd() {
    let sys = Arc::new(FakeVfio::new());
    let ram = guest_ram();
    let mut a = Assigned::open_iommufd(&sys, Path::new("/"), "vfio0", BDF).unwrap();
    assert!(matches!(a.dma, Dma::Iommufd { .. }));
    run_sequence(&sys, &mut a, &ram);
    drop(a);
    assert!(sys.mapped().is_empty());
    assert_eq!(sys.open_fds(), 0);
    assert!(ram.iter().all(|r| Arc::strong_count(r) == 1));
}

/// Every permutation of `0..n`, in Heap's order.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    fn heap(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k <= 1 {
            out.push(a.clone());
            return;
        }
        for i in 0..k {
            heap(k - 1, a, out);
            let j = if k.is_multiple_of(2) { i } else { 0 };
            a.swap(j, k - 1);
        }
    }
    let mut out = Vec::new();
    heap(n, &mut (0..n).collect(), &mut out);
    out
}

/// Drop `parts` in `order`; after every drop, whatever the fake kernel still has mapped
/// for DMA is memory that is still alive (the space owns it), and at the end every
/// mapping is gone, every fd closed and the guest memory freed.
fn drop_in_order(
    sys: &FakeVfio,
    mut parts: Parts,
    order: &[usize],
    ram: Vec<Weak<GuestRegionMmap>>,
) {
    let starts = [0u64, 0x100000];
    for &i in order {
        parts[i] = None;
        for (at, r) in starts.iter().zip(&ram) {
            if sys.mapped().iter().any(|&(iova, _)| iova == *at) {
                assert!(
                    r.upgrade().is_some(),
                    "IOVA {at:#x} mapped after its memory was freed (order {order:?})"
                );
            }
        }
    }
    assert!(sys.mapped().is_empty(), "order {order:?}");
    assert_eq!(sys.open_fds(), 0, "order {order:?}");
    assert!(ram.iter().all(|r| r.upgrade().is_none()), "order {order:?}");
}

fn assigned(sys: &Arc<FakeVfio>, type1: bool) -> (Assigned<FakeVfio>, Vec<Arc<GuestRegionMmap>>) {
    let ram = guest_ram();
    let mut a = if type1 {
        Assigned::open_type1(sys, Path::new("/"), 16, BDF).unwrap()
    } else {
        Assigned::open_iommufd(sys, Path::new("/"), "vfio0", BDF).unwrap()
    };
    a.map_bars().unwrap();
    a.map_guest_memory(&ram).unwrap();
    a.wire_msix().unwrap();
    (a, ram)
}

type Parts = Vec<Option<Box<dyn Any>>>;

/// Assign a device, split it (and its guest memory) into parts, and drop the parts in
/// every order.
fn check_every_drop_order(
    type1: bool,
    split: fn(Assigned<FakeVfio>, Vec<Arc<GuestRegionMmap>>) -> Parts,
) -> usize {
    let n = {
        let sys = Arc::new(FakeVfio::new());
        let (a, ram) = assigned(&sys, type1);
        split(a, ram).len()
    };
    let orders = permutations(n);
    for order in &orders {
        let sys = Arc::new(FakeVfio::new());
        let (a, ram) = assigned(&sys, type1);
        let weak = ram.iter().map(Arc::downgrade).collect();
        drop_in_order(&sys, split(a, ram), order, weak);
    }
    orders.len()
}

#[test]
fn type1_parts_drop_clean_in_every_order() {
    // container, group, space, device, BAR maps, eventfds, guest memory: 7! orders.
    let tried = check_every_drop_order(true, |a, ram| {
        let Assigned {
            device,
            dma:
                Dma::Type1 {
                    container,
                    group,
                    space,
                },
            bars,
            msix,
        } = a
        else {
            unreachable!("opened through a container")
        };
        vec![
            Some(Box::new(container)),
            Some(Box::new(group)),
            Some(Box::new(space)),
            Some(Box::new(device)),
            Some(Box::new(bars)),
            Some(Box::new(msix)),
            Some(Box::new(ram)),
        ]
    });
    assert_eq!(tried, 5040);
}

#[test]
fn iommufd_parts_drop_clean_in_every_order() {
    // IOAS, device, BAR maps, eventfds, guest memory: 5! orders.
    let tried = check_every_drop_order(false, |a, ram| {
        let Assigned {
            device,
            dma: Dma::Iommufd { ioas },
            bars,
            msix,
        } = a
        else {
            unreachable!("opened through iommufd")
        };
        vec![
            Some(Box::new(ioas)),
            Some(Box::new(device)),
            Some(Box::new(bars)),
            Some(Box::new(msix)),
            Some(Box::new(ram)),
        ]
    });
    assert_eq!(tried, 120);
}

#[test]
fn every_order_is_tried_once() {
    let mut p = permutations(4);
    assert_eq!(p.len(), 24);
    p.sort();
    p.dedup();
    assert_eq!(p.len(), 24);
}
