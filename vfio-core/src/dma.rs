//! DMA mappings as guards: a mapping borrows the memory it maps and unmaps on drop,
//! so safe code cannot touch (or free) memory the device may still write.
//!
//! Every request is checked before the ioctl: vaddr, IOVA and size aligned to the
//! IOMMU page size, and the whole IOVA span inside one of the ranges the kernel
//! reported (the MSI window and reserved regions are holes between them).

use std::marker::PhantomData;

use vm_memory::{GuestMemoryRegion, MemoryRegionAddress};

use crate::error::{Error, Result};
use crate::sys::{DmaMapRequest, IovaRange};

/// An IOMMU address space that can map DMA: a type1 container or an iommufd IOAS.
pub trait DmaSpace {
    /// The usable IOVA ranges (empty: the kernel reported none, nothing is checked).
    fn iova_ranges(&self) -> &[IovaRange];
    /// The smallest IOMMU page size.
    fn page_size(&self) -> u64;
    /// The raw map call (`VFIO_IOMMU_MAP_DMA` / `IOMMU_IOAS_MAP`).
    fn map(&self, req: &DmaMapRequest) -> Result<()>;
    /// The raw unmap call; returns the size unmapped.
    fn unmap(&self, iova: u64, size: u64) -> Result<u64>;
}

/// Check alignment and that `[iova, iova + size)` lies inside one reported range.
pub fn check_iova(ranges: &[IovaRange], page: u64, iova: u64, size: u64) -> Result<()> {
    let page = page.max(1);
    if size == 0 || !size.is_multiple_of(page) {
        return Err(Error::Unaligned {
            what: "size",
            value: size,
            page,
        });
    }
    if !iova.is_multiple_of(page) {
        return Err(Error::Unaligned {
            what: "iova",
            value: iova,
            page,
        });
    }
    if ranges.is_empty() {
        return Ok(());
    }
    let last = iova.checked_add(size - 1);
    let inside = last.is_some_and(|last| ranges.iter().any(|r| r.start <= iova && last <= r.end));
    if inside {
        Ok(())
    } else {
        Err(Error::IovaOutOfRange {
            iova,
            size,
            ranges: ranges.to_vec(),
        })
    }
}

/// The lowest page-aligned IOVA at or above `min` where `size` bytes fit in one range.
pub fn find_iova(ranges: &[IovaRange], page: u64, size: u64, min: u64) -> Option<u64> {
    let page = page.max(1);
    let mut best: Option<u64> = None;
    for r in ranges {
        let start = r.start.max(min);
        let start = start.checked_add(page - 1)? / page * page;
        let fits = start
            .checked_add(size.checked_sub(1)?)
            .is_some_and(|last| last <= r.end && start >= r.start);
        if fits && best.is_none_or(|b| start < b) {
            best = Some(start);
        }
    }
    best
}

/// A live DMA mapping. Holds the borrow of its memory; unmaps on drop.
#[derive(Debug)]
#[must_use = "dropping the mapping unmaps it at once"]
pub struct DmaMapping<'a, D: DmaSpace + ?Sized> {
    space: &'a D,
    iova: u64,
    size: u64,
    live: bool,
    _mem: PhantomData<&'a mut [u8]>,
}

impl<'a, D: DmaSpace + ?Sized> DmaMapping<'a, D> {
    fn map_raw(space: &'a D, vaddr: u64, iova: u64, size: u64, write: bool) -> Result<Self> {
        let page = space.page_size();
        check_iova(space.iova_ranges(), page, iova, size)?;
        if !vaddr.is_multiple_of(page.max(1)) {
            return Err(Error::Unaligned {
                what: "vaddr",
                value: vaddr,
                page,
            });
        }
        space.map(&DmaMapRequest::new(vaddr, iova, size, true, write))?;
        Ok(DmaMapping {
            space,
            iova,
            size,
            live: true,
            _mem: PhantomData,
        })
    }

    /// Map a buffer read/write for the device at `iova`. The buffer stays mutably
    /// borrowed until the mapping is dropped. It must be page aligned.
    pub fn map_buffer(space: &'a D, buf: &'a mut [u8], iova: u64) -> Result<Self> {
        Self::map_raw(space, buf.as_mut_ptr() as u64, iova, buf.len() as u64, true)
    }

    /// Map a buffer read-only for the device (the device may read, never write).
    pub fn map_buffer_readonly(space: &'a D, buf: &'a [u8], iova: u64) -> Result<Self> {
        Self::map_raw(space, buf.as_ptr() as u64, iova, buf.len() as u64, false)
    }

    /// Map a whole guest memory region (vm-memory) at `iova`; `writable` lets the
    /// device write it. Guest memory is accessed with volatile operations, so it
    /// stays shared while mapped, as in a VMM.
    pub fn map_region<R: GuestMemoryRegion>(
        space: &'a D,
        region: &'a R,
        iova: u64,
        writable: bool,
    ) -> Result<Self> {
        let host = region
            .get_host_address(MemoryRegionAddress(0))
            .map_err(|_| Error::Unaligned {
                what: "vaddr",
                value: 0,
                page: space.page_size(),
            })?;
        Self::map_raw(space, host as u64, iova, region.len(), writable)
    }

    /// The IOVA.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// The size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Unmap now and return the kernel's answer (drop ignores it).
    pub fn unmap(mut self) -> Result<u64> {
        self.live = false;
        self.space.unmap(self.iova, self.size)
    }
}

impl<D: DmaSpace + ?Sized> Drop for DmaMapping<'_, D> {
    fn drop(&mut self) {
        if self.live {
            let _ = self.space.unmap(self.iova, self.size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// tcg-amd/vfiotest-0000:06:00.0.txt IOVA ranges.
    fn amd_ranges() -> Vec<IovaRange> {
        vec![
            IovaRange {
                start: 0,
                end: 0xfedfffff,
            },
            IovaRange {
                start: 0xfef00000,
                end: 0xfcffffffff,
            },
            IovaRange {
                start: 0x10000000000,
                end: u64::MAX,
            },
        ]
    }

    struct Rec {
        ranges: Vec<IovaRange>,
        calls: RefCell<Vec<String>>,
    }
    impl DmaSpace for Rec {
        fn iova_ranges(&self) -> &[IovaRange] {
            &self.ranges
        }
        fn page_size(&self) -> u64 {
            4096
        }
        fn map(&self, r: &DmaMapRequest) -> Result<()> {
            self.calls.borrow_mut().push(format!(
                "map {:#x} {:#x} w={}",
                r.iova(),
                r.size(),
                r.writable()
            ));
            Ok(())
        }
        fn unmap(&self, iova: u64, size: u64) -> Result<u64> {
            self.calls
                .borrow_mut()
                .push(format!("unmap {iova:#x} {size:#x}"));
            Ok(size)
        }
    }

    // The real kernel answered EINVAL to MAP_DMA at 0xfee00000 (the MSI window, a hole
    // between the reported ranges): refused here before the ioctl, with the ranges.
    #[test]
    fn msi_window_is_refused_before_the_ioctl() {
        let e = check_iova(&amd_ranges(), 4096, 0xfee00000, 0x200000).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::IovaOutOfRange { .. }));
        assert!(
            msg.contains("0xfee00000") && msg.contains("[0x0-0xfedfffff]"),
            "{msg}"
        );
    }

    // The capture mapped 2 MiB at 0x100000 successfully.
    #[test]
    fn capture_mapping_is_accepted() {
        check_iova(&amd_ranges(), 4096, 0x100000, 0x200000).unwrap();
    }

    // cloud-hypervisor under a 39-bit IOMMU: IOVA above the range end must be refused.
    #[test]
    fn iova_past_a_39_bit_limit_is_refused() {
        let r = [IovaRange {
            start: 0,
            end: (1 << 39) - 1,
        }];
        assert!(check_iova(&r, 4096, 1 << 39, 4096).is_err());
        assert!(check_iova(&r, 4096, (1 << 39) - 4096, 8192).is_err());
        check_iova(&r, 4096, (1 << 39) - 4096, 4096).unwrap();
    }

    #[test]
    fn misaligned_and_empty_requests_are_refused() {
        assert!(matches!(
            check_iova(&[], 4096, 0x1001, 4096),
            Err(Error::Unaligned { what: "iova", .. })
        ));
        assert!(matches!(
            check_iova(&[], 4096, 0, 0),
            Err(Error::Unaligned { what: "size", .. })
        ));
        assert!(matches!(
            check_iova(&[], 4096, 0, 100),
            Err(Error::Unaligned { what: "size", .. })
        ));
    }

    #[test]
    fn overflowing_span_is_refused_not_wrapped() {
        let r = [IovaRange {
            start: 0,
            end: u64::MAX,
        }];
        assert!(check_iova(&r, 4096, u64::MAX - 4095, 8192).is_err());
    }

    #[test]
    fn find_iova_skips_the_msi_hole() {
        let r = amd_ranges();
        assert_eq!(find_iova(&r, 4096, 0x200000, 0x100000), Some(0x100000));
        // From just below the hole: the span would cross 0xfee00000, so the next range.
        assert_eq!(find_iova(&r, 4096, 0x200000, 0xfed00000), Some(0xfef00000));
        assert_eq!(
            find_iova(
                &[IovaRange {
                    start: 0,
                    end: 0xfff
                }],
                4096,
                0x2000,
                0
            ),
            None
        );
    }

    #[test]
    fn guard_unmaps_on_drop_and_explicit_unmap_reports() {
        let space = Rec {
            ranges: amd_ranges(),
            calls: RefCell::new(vec![]),
        };
        let mem =
            vm_memory::GuestMemoryMmap::<()>::from_ranges(&[(vm_memory::GuestAddress(0), 0x4000)])
                .unwrap();
        let region = vm_memory::GuestMemoryBackend::iter(&mem).next().unwrap();
        {
            let _m = DmaMapping::map_region(&space, region, 0x100000, false).unwrap();
        }
        let m = DmaMapping::map_region(&space, region, 0x200000, true).unwrap();
        assert_eq!(m.unmap().unwrap(), 0x4000);
        assert_eq!(
            *space.calls.borrow(),
            [
                "map 0x100000 0x4000 w=false",
                "unmap 0x100000 0x4000",
                "map 0x200000 0x4000 w=true",
                "unmap 0x200000 0x4000"
            ]
        );
    }

    #[test]
    fn unaligned_buffer_is_refused_before_the_ioctl() {
        let space = Rec {
            ranges: amd_ranges(),
            calls: RefCell::new(vec![]),
        };
        let mut v = vec![0u8; 8192 + 1];
        // Pick a start that is certainly not page aligned.
        let off = usize::from((v.as_ptr() as usize).is_multiple_of(4096));
        let e = DmaMapping::map_buffer(&space, &mut v[off..off + 4096], 0x100000);
        assert!(matches!(e, Err(Error::Unaligned { what: "vaddr", .. })));
        assert!(space.calls.borrow().is_empty());
    }

    proptest::proptest! {
        // Whatever find_iova proposes is accepted by check_iova, and lies at or above min.
        #[test]
        fn found_iova_always_passes_the_check(
            raw in proptest::collection::vec((0u64..1 << 40, 0u64..1 << 36), 0..6),
            pages in 1u64..64,
            min in 0u64..1 << 40,
        ) {
            let ranges: Vec<IovaRange> = raw
                .iter()
                .map(|&(s, l)| IovaRange { start: s, end: s.saturating_add(l) })
                .collect();
            let size = pages * 4096;
            if let Some(iova) = find_iova(&ranges, 4096, size, min) {
                proptest::prop_assert!(iova >= min);
                proptest::prop_assert!(check_iova(&ranges, 4096, iova, size).is_ok());
            }
        }

        // check_iova never accepts a span that leaves every range.
        #[test]
        fn accepted_spans_are_inside_one_range(
            start in 0u64..1 << 33, len in 0u64..1 << 33, iova in 0u64..1 << 34, pages in 1u64..16,
        ) {
            let r = [IovaRange { start, end: start.saturating_add(len) }];
            let size = pages * 4096;
            if check_iova(&r, 4096, iova, size).is_ok() {
                proptest::prop_assert!(iova >= r[0].start && iova + size - 1 <= r[0].end);
            }
        }
    }
}
