//! DMA spaces and the mappings they own.
//!
//! A DMA space is a type1 container ([`crate::Type1Space`]) or an iommufd IOAS
//! ([`crate::Ioas`]). Its safe mappings ([`OwnedDma::map`]) take ownership of the memory
//! they map (a value implementing [`DmaMemory`], or an [`Arc`](std::sync::Arc) of one),
//! keyed by IOVA; the memory is given back ([`OwnedDma::unmap`]) or dropped (when the
//! space drops) only after the kernel has unmapped it, and leaked when the kernel refuses
//! to unmap. So no safe sequence (forgetting or leaking the space, swapping spaces, a
//! hand-written memory type) leaves freed or foreign memory mapped for the device.
//! Mapping arbitrary host addresses is [`map_raw`], an `unsafe fn`.
//!
//! The holes this closes, as compile errors:
//!
//! Memory borrowed from the caller cannot be mapped (it could be freed while mapped):
//! ```compile_fail,E0277
//! # use passthru_vfio_core::{dma::OwnedDma, RealSys, Type1Space};
//! fn map_a_borrow(space: &Type1Space<RealSys>, buf: &'static mut [u8]) {
//!     space.map(buf, 0x100000, true).unwrap();
//! }
//! ```
//! Memory moved into a mapping cannot be used, forgotten or dropped afterwards:
//! ```compile_fail,E0382
//! # use passthru_vfio_core::{dma::OwnedDma, RealSys, Type1Space};
//! # use vm_memory::MmapRegion;
//! fn forget_then_drop(space: &Type1Space<RealSys>) {
//!     let buf = MmapRegion::<()>::new(0x1000).unwrap();
//!     space.map(buf, 0x100000, true).unwrap();
//!     drop(buf);
//! }
//! ```
//! A `GuestMemoryRegion` implementation (whose `get_host_address` and `len` safe code
//! can make up) is not mappable memory; only [`DmaMemory`], an `unsafe trait`, is:
//! ```compile_fail,E0277
//! # use passthru_vfio_core::{dma::OwnedDma, RealSys, Type1Space};
//! fn map_any_region<R: vm_memory::GuestMemoryRegion + Send + Sync + 'static>(
//!     space: &Type1Space<RealSys>,
//!     region: R,
//! ) {
//!     space.map(region, 0x100000, true).unwrap();
//! }
//! ```
//! A [`VfioSys`] written in safe code could answer an unmap it never
//! made; the owned mappings need a [`TrustedVfioSys`]:
//! ```compile_fail,E0599
//! # use passthru_vfio_core::{dma::OwnedDma, Type1Space, VfioSys};
//! # use vm_memory::MmapRegion;
//! fn map_on_any_sys<S: VfioSys>(space: &Type1Space<S>) {
//!     space.map(MmapRegion::<()>::new(0x1000).unwrap(), 0x100000, true).unwrap();
//! }
//! ```
//! The same code with memory the space may own, on the real kernel, compiles:
//! ```no_run
//! # use passthru_vfio_core::{dma::OwnedDma, RealSys, Type1Space};
//! # use std::sync::Arc;
//! # use vm_memory::MmapRegion;
//! fn map_owned(space: &Type1Space<RealSys>) {
//!     let buf = Arc::new(MmapRegion::<()>::new(0x1000).unwrap());
//!     space.map(buf.clone(), 0x100000, true).unwrap();
//!     // `buf` is still usable through volatile accesses; the memory lives until the
//!     // mapping is gone and the last Arc drops.
//!     let back = space.unmap(0x100000).unwrap();
//!     drop(back);
//! }
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
pub use crate::sys::{map_raw, DmaMemory, DmaRange};
use crate::sys::{DmaMapRequest, IovaRange, TrustedVfioSys, VfioSys};

pub(crate) mod sealed {
    use super::*;

    /// The kernel calls of a DMA space, reachable only inside this crate.
    pub trait Space {
        /// The seam the space's calls go through.
        type Sys: VfioSys + ?Sized;
        /// `VFIO_IOMMU_MAP_DMA` / `IOMMU_IOAS_MAP`.
        fn kernel_map(&self, req: &DmaMapRequest) -> Result<()>;
        /// `VFIO_IOMMU_UNMAP_DMA` / `IOMMU_IOAS_UNMAP`; the size unmapped.
        fn kernel_unmap(&self, iova: u64, size: u64) -> Result<u64>;
        /// The owned mappings.
        fn table(&self) -> &Mappings;
        /// [`check_iova`] against the space's reported ranges, read in place (a map
        /// call copies nothing).
        fn check_span(&self, page: u64, iova: u64, size: u64) -> Result<()>;
    }
}

/// An IOMMU address space that can map DMA: a type1 container ([`crate::Type1Space`])
/// or an iommufd IOAS ([`crate::Ioas`]). Sealed: the owned mappings trust its answers.
pub trait DmaSpace: sealed::Space {
    /// The usable IOVA ranges (empty: the kernel reported none, nothing is checked).
    fn iova_ranges(&self) -> Vec<IovaRange>;
    /// The smallest IOMMU page size.
    fn page_size(&self) -> u64;
    /// Unmap `[iova, iova + size)` in the kernel, whatever mapped it; returns the size
    /// unmapped. Safe: memory an owned mapping holds stays alive (it is dropped only
    /// when its own unmap succeeds, which then finds nothing left to unmap).
    ///
    /// # Errors
    ///
    /// Error::Ioctl with the kernel's errno (`EINVAL` for a span that cuts a mapping in
    /// two).
    fn unmap_raw(&self, iova: u64, size: u64) -> Result<u64> {
        self.kernel_unmap(iova, size)
    }
}

/// Owned mappings by IOVA: (size, memory).
type Table = BTreeMap<u64, (u64, Box<dyn DmaMemory>)>;

/// The mappings a space owns, by IOVA.
#[derive(Default)]
pub struct Mappings {
    map: Mutex<Table>,
}

impl std::fmt::Debug for Mappings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.list()).finish()
    }
}

impl Mappings {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the map inconsistent (every
        // change is one insert or remove), so a poisoned lock is used as it is.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn list(&self) -> Vec<(u64, u64)> {
        self.lock().iter().map(|(&i, (s, _))| (i, *s)).collect()
    }

    /// Unmap everything in the kernel; memory whose unmap fails is leaked, never freed.
    pub(crate) fn release_all(&self, space: &(impl sealed::Space + ?Sized)) {
        let all = std::mem::take(&mut *self.lock());
        for (iova, (size, mem)) in all {
            if space.kernel_unmap(iova, size).is_err() {
                std::mem::forget(mem);
            }
        }
    }
}

/// The safe, owning mappings of a [`DmaSpace`] over a [`TrustedVfioSys`].
pub trait OwnedDma: DmaSpace {
    /// Map `mem` for the device at `iova` (read, and write when `writable`), taking
    /// ownership of it until [`OwnedDma::unmap`] gives it back or the space drops.
    /// Checked first: the host address, IOVA and size are page aligned, the IOVA span
    /// lies inside one reported range, and it overlaps no mapping the space owns. On
    /// error `mem` is dropped (nothing was mapped); keep an `Arc` clone to keep it.
    ///
    /// # Errors
    ///
    /// Error::IovaInUse when the span overlaps an owned mapping; Error::Unaligned or
    /// Error::IovaOutOfRange from the checks; Error::Ioctl when the kernel refuses.
    fn map<M: DmaMemory>(&self, mem: M, iova: u64, writable: bool) -> Result<()> {
        let size = mem.dma_len() as u64;
        let vaddr = mem.dma_ptr() as u64;
        let mut table = self.table().lock();
        let end = iova.saturating_add(size);
        // The owned mappings never overlap, so the last one ends highest: a mapping at or
        // above its end (guest RAM mapped in order) needs no range search.
        let above_all = table
            .last_key_value()
            .is_none_or(|(&at, &(len, _))| at.saturating_add(len) <= iova);
        if !above_all {
            if let Some((&at, &(len, _))) = table.range(..end).next_back() {
                if at.saturating_add(len) > iova {
                    return Err(Error::IovaInUse {
                        iova,
                        size,
                        mapped: (at, len),
                    });
                }
            }
        }
        map_checked(self, vaddr, iova, size, writable)?;
        table.insert(iova, (size, Box::new(mem)));
        Ok(())
    }

    /// Unmap the mapping made at `iova` and give its memory back (as the box it was
    /// kept in). When the kernel refuses, the mapping and its memory stay.
    ///
    /// # Errors
    ///
    /// Error::NotMapped when no owned mapping starts at `iova`; Error::Ioctl when the
    /// kernel refuses to unmap.
    fn unmap(&self, iova: u64) -> Result<Box<dyn DmaMemory>> {
        let mut table = self.table().lock();
        // One lookup: the entry is removed only once the kernel has unmapped it.
        let std::collections::btree_map::Entry::Occupied(entry) = table.entry(iova) else {
            return Err(Error::NotMapped { iova });
        };
        self.kernel_unmap(iova, entry.get().0)?;
        Ok(entry.remove().1)
    }

    /// The owned mappings: (IOVA, size), by IOVA.
    fn mapped(&self) -> Vec<(u64, u64)> {
        self.table().list()
    }
}

impl<D: DmaSpace + ?Sized> OwnedDma for D where D::Sys: TrustedVfioSys {}

/// Check a request and make it: page alignment of all three numbers, the IOVA ranges.
/// Crate-only: the caller answers for the memory at `vaddr`.
pub(crate) fn map_checked<D: DmaSpace + ?Sized>(
    space: &D,
    vaddr: u64,
    iova: u64,
    size: u64,
    writable: bool,
) -> Result<()> {
    let page = space.page_size();
    space.check_span(page, iova, size)?;
    if !vaddr.is_multiple_of(page.max(1)) {
        return Err(Error::Unaligned {
            what: "vaddr",
            value: vaddr,
            page,
        });
    }
    space.kernel_map(&DmaMapRequest::new(vaddr, iova, size, true, writable))
}

/// Check alignment and that `[iova, iova + size)` lies inside one reported range.
///
/// # Errors
///
/// Error::Unaligned naming the number that is not a multiple of `page`, or
/// Error::IovaOutOfRange listing the ranges.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vm_memory::MmapRegion;

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
        calls: Mutex<Vec<String>>,
        unmap_fails: bool,
        table: Mappings,
    }
    impl Rec {
        fn new() -> Self {
            Rec {
                ranges: amd_ranges(),
                calls: Mutex::default(),
                unmap_fails: false,
                table: Mappings::default(),
            }
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }
    impl sealed::Space for Rec {
        // The crate's test mock: trusted in test builds, so OwnedDma applies.
        type Sys = crate::sys::MockVfioSys;
        fn kernel_map(&self, r: &DmaMapRequest) -> Result<()> {
            self.calls.lock().unwrap().push(format!(
                "map {:#x} {:#x} w={}",
                r.iova(),
                r.size(),
                r.writable()
            ));
            Ok(())
        }
        fn kernel_unmap(&self, iova: u64, size: u64) -> Result<u64> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("unmap {iova:#x} {size:#x}"));
            if self.unmap_fails {
                return Err(Error::NotMapped { iova });
            }
            Ok(size)
        }
        fn table(&self) -> &Mappings {
            &self.table
        }
        fn check_span(&self, page: u64, iova: u64, size: u64) -> Result<()> {
            check_iova(&self.ranges, page, iova, size)
        }
    }
    impl DmaSpace for Rec {
        fn iova_ranges(&self) -> Vec<IovaRange> {
            self.ranges.clone()
        }
        fn page_size(&self) -> u64 {
            4096
        }
    }
    impl Drop for Rec {
        fn drop(&mut self) {
            self.table.release_all(&*self);
        }
    }

    fn region(len: usize) -> Arc<MmapRegion<()>> {
        Arc::new(MmapRegion::new(len).unwrap())
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
    fn the_space_owns_the_memory_until_the_kernel_has_unmapped_it() {
        let space = Rec::new();
        let mem = region(0x4000);
        space.map(mem.clone(), 0x100000, false).unwrap();
        assert_eq!(Arc::strong_count(&mem), 2, "the space holds a clone");
        assert_eq!(space.mapped(), [(0x100000, 0x4000)]);
        let back = space.unmap(0x100000).unwrap();
        assert_eq!(back.dma_ptr(), mem.as_ptr());
        drop(back);
        assert_eq!(Arc::strong_count(&mem), 1);
        space.map(mem.clone(), 0x200000, true).unwrap();
        drop(space);
        assert_eq!(Arc::strong_count(&mem), 1, "dropping the space released it");
    }

    #[test]
    fn dropping_the_space_unmaps_every_mapping_before_releasing_memory() {
        let space = Rec::new();
        let (a, b) = (region(0x1000), region(0x2000));
        space.map(a.clone(), 0x100000, true).unwrap();
        space.map(b.clone(), 0x300000, false).unwrap();
        let calls = {
            let space = space;
            let calls = &space.calls;
            let before = calls.lock().unwrap().len();
            drop(std::mem::take(&mut *calls.lock().unwrap()));
            assert_eq!(before, 2);
            space.table.release_all(&space);
            space.calls()
        };
        assert_eq!(calls, ["unmap 0x100000 0x1000", "unmap 0x300000 0x2000"]);
        assert_eq!((Arc::strong_count(&a), Arc::strong_count(&b)), (1, 1));
    }

    // The kernel refusing an unmap means the device may still reach the memory: it is
    // leaked (never freed), not dropped.
    #[test]
    fn memory_whose_unmap_fails_is_leaked_never_freed() {
        let mut space = Rec::new();
        space.unmap_fails = true;
        let mem = region(0x1000);
        space.map(mem.clone(), 0x100000, true).unwrap();
        assert!(space.unmap(0x100000).is_err());
        assert_eq!(space.mapped(), [(0x100000, 0x1000)], "still owned");
        drop(space);
        assert_eq!(Arc::strong_count(&mem), 2, "the space's clone was leaked");
    }

    #[test]
    fn overlapping_an_owned_mapping_is_refused_before_the_ioctl() {
        let space = Rec::new();
        space.map(region(0x2000), 0x100000, true).unwrap();
        for iova in [0xff000, 0x100000, 0x101000] {
            let e = space.map(region(0x2000), iova, true).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::IovaInUse {
                        mapped: (0x100000, 0x2000),
                        ..
                    }
                ),
                "{iova:#x}: {e}"
            );
        }
        // Adjacent on either side is fine.
        space.map(region(0x1000), 0xff000, true).unwrap();
        space.map(region(0x1000), 0x102000, true).unwrap();
        assert_eq!(
            space
                .calls()
                .iter()
                .filter(|c| c.starts_with("map"))
                .count(),
            3
        );
        assert!(matches!(
            space.unmap(0x101000),
            Err(Error::NotMapped { iova: 0x101000 })
        ));
    }

    #[test]
    fn unaligned_memory_is_refused_before_the_ioctl() {
        let space = Rec::new();
        let part = DmaRange::new(region(0x3000), 1, 0x1000).unwrap();
        let e = space.map(part, 0x100000, true);
        assert!(matches!(e, Err(Error::Unaligned { what: "vaddr", .. })));
        assert!(DmaRange::new(region(0x1000), 0x800, 0x1000).is_none());
        assert!(space.calls().is_empty());
        assert!(space.mapped().is_empty());
    }

    // A range of shared memory maps the right address and keeps the whole alive.
    #[test]
    fn dma_range_maps_its_part_and_keeps_the_whole_alive() {
        let space = Rec::new();
        let whole = region(0x4000);
        let part = DmaRange::new(whole.clone(), 0x2000, 0x2000).unwrap();
        assert_eq!(part.dma_ptr(), whole.as_ptr().wrapping_add(0x2000));
        space.map(part, 0x100000, true).unwrap();
        assert_eq!(Arc::strong_count(&whole), 2);
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
