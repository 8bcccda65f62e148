//! DMA spaces and the mappings they own.
//!
//! A DMA space is a type1 container ([`crate::Type1Space`]) or an iommufd IOAS
//! ([`crate::Ioas`]). Its safe mappings ([`OwnedDma::map`]) take ownership of the memory
//! they map (a value implementing [`DmaMemory`], or an [`Arc`] of one),
//! keyed by IOVA; the memory is given back ([`OwnedDma::unmap`]) or dropped (when the
//! space drops) only after the kernel has unmapped it, and leaked when the kernel refuses
//! to unmap. So no safe sequence (forgetting or leaking the space, swapping spaces, a
//! hand-written memory type) leaves freed or foreign memory mapped for the device.
//! Mapping arbitrary host addresses is [`map_raw`], an `unsafe fn`.
//!
//! Parts of one shared memory ([`OwnedDma::map_part`]: guest RAM mapped page by page for
//! a vIOMMU) are kept as runs: parts of the same size at consecutive IOVAs and offsets
//! share one table entry and one clone of the memory, so such a mapping, and an unmap in
//! the order they were made ([`OwnedDma::unmap_drop`]), costs no allocation and no tree
//! insert or removal however many mappings the space holds. Each part is still its own
//! kernel mapping.
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
use std::sync::{Arc, Mutex};

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

/// What keeps the memory of a run of mappings alive.
enum Held {
    /// One mapping's own memory (a run of one chunk).
    One(Box<dyn DmaMemory>),
    /// Parts of one shared memory: chunk `i` of the run is the `chunk` bytes of `whole`
    /// from `offset + i * chunk`.
    Shared {
        whole: Arc<dyn DmaMemory>,
        offset: usize,
    },
}

/// Mappings of `chunk` bytes each, made by separate kernel calls, at consecutive IOVAs
/// from the run's key: chunks `skip..count` are mapped, chunk `i` at `key + i * chunk`.
/// Consecutive parts of one memory mapped in order (guest RAM mapped page by page) stay
/// one run, so such a mapping costs no allocation and no tree insert; chunks unmapped
/// from the front only raise `skip`.
///
/// Invariants: `skip < count`; the nominal spans `[key, key + count * chunk)` of the
/// runs are disjoint (so the run holding an IOVA is the one with the greatest key at or
/// below it); every live chunk is mapped in the kernel, with its memory held.
struct Run {
    chunk: u64,
    skip: u64,
    count: u64,
    held: Held,
}

impl Run {
    /// One mapping of `size` bytes.
    fn single(size: u64, held: Held) -> Self {
        Run {
            chunk: size,
            skip: 0,
            count: 1,
            held,
        }
    }

    fn nominal_end(&self, key: u64) -> u64 {
        key.saturating_add(self.count.saturating_mul(self.chunk))
    }

    fn live_start(&self, key: u64) -> u64 {
        key + self.skip * self.chunk
    }

    /// Whether a part of `mem` from `offset`, `size` bytes, mapped at the run's nominal
    /// end, continues it.
    fn continued_by<M: DmaMemory>(&self, mem: &Arc<M>, offset: usize, size: u64) -> bool {
        match &self.held {
            Held::Shared { whole, offset: o } => {
                self.chunk == size
                    && std::ptr::addr_eq(Arc::as_ptr(whole), Arc::as_ptr(mem))
                    && u64::try_from(*o)
                        .ok()
                        .and_then(|o| o.checked_add(self.count.checked_mul(self.chunk)?))
                        == u64::try_from(offset).ok()
            }
            Held::One(_) => false,
        }
    }
}

/// Owned mappings, as runs keyed by the IOVA of their first (nominal) chunk.
type Table = BTreeMap<u64, Run>;

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
        // A panic while holding the lock cannot leave the table inconsistent (a change is
        // made only after the kernel call it records, in steps that each keep the
        // invariants), so a poisoned lock is used as it is.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every live mapping: (IOVA, size), by IOVA.
    fn list(&self) -> Vec<(u64, u64)> {
        let table = self.lock();
        let mut out = Vec::new();
        for (&key, run) in table.iter() {
            out.extend((run.skip..run.count).map(|i| (key + i * run.chunk, run.chunk)));
        }
        out
    }

    /// Unmap everything in the kernel; memory of a run with a chunk whose unmap fails is
    /// leaked, never freed.
    pub(crate) fn release_all(&self, space: &(impl sealed::Space + ?Sized)) {
        let all = std::mem::take(&mut *self.lock());
        for (key, run) in all {
            let mut failed = false;
            for i in run.skip..run.count {
                failed |= space.kernel_unmap(key + i * run.chunk, run.chunk).is_err();
            }
            if failed {
                std::mem::forget(run.held);
            }
        }
    }
}

/// Refuse `[iova, iova + size)` when it overlaps a live mapping; when it only falls in
/// the unmapped front of a run, give that run its live start as key first (so nominal
/// spans stay disjoint once the new mapping is in).
fn check_free(table: &mut Table, iova: u64, size: u64) -> Result<()> {
    let end = iova.saturating_add(size);
    loop {
        let Some((&key, run)) = table.range(..end).next_back() else {
            return Ok(());
        };
        if run.nominal_end(key) <= iova {
            return Ok(());
        }
        let live = run.live_start(key);
        if live < end {
            let first = (iova.max(live) - key) / run.chunk;
            return Err(Error::IovaInUse {
                iova,
                size,
                mapped: (key + first * run.chunk, run.chunk),
            });
        }
        rekey_at_live_start(table, key);
    }
}

/// Move the run at `key` to the key of its first live chunk.
fn rekey_at_live_start(table: &mut Table, key: u64) {
    if let Some(mut run) = table.remove(&key) {
        let live = run.live_start(key);
        if let Held::Shared { offset, .. } = &mut run.held {
            *offset += (run.skip * run.chunk) as usize;
        }
        run.count -= run.skip;
        run.skip = 0;
        table.insert(live, run);
    }
}

/// The run holding a live mapping that starts at `iova`: its key and the chunk's index.
/// The run holding a live mapping that starts at `iova`: its key, the chunk's index and
/// the chunk size.
fn find(table: &Table, iova: u64) -> Result<(u64, u64, u64)> {
    // Mappings unmapped in the order they were made: the first live chunk of the first
    // run, found without a range search.
    let first = table
        .first_key_value()
        .filter(|(&key, run)| run.live_start(key) == iova);
    let Some((&key, run)) = first.or_else(|| table.range(..=iova).next_back()) else {
        return Err(Error::NotMapped { iova });
    };
    let rel = iova - key;
    let i = rel / run.chunk;
    if !rel.is_multiple_of(run.chunk) || i < run.skip || i >= run.count {
        return Err(Error::NotMapped { iova });
    }
    Ok((key, i, run.chunk))
}

/// Unmap the owned mapping at `iova` in the kernel, then take it out of the table: its
/// size, and its memory, boxed, when `want`. When the kernel refuses, the mapping stays.
fn unmap_owned<D: OwnedDma + ?Sized>(
    space: &D,
    iova: u64,
    want: bool,
) -> Result<(u64, Option<Box<dyn DmaMemory>>)> {
    let mut table = space.table().lock();
    let (key, i, size) = find(&table, iova)?;
    space.kernel_unmap(iova, size)?;
    Ok((size, take_chunk(&mut table, key, i, want)))
}

/// Take chunk `i` of the run at `key` out of the table (the kernel has unmapped it); its
/// memory, boxed, when `want`, else dropped (a shared memory only when no chunk of it is
/// left).
fn take_chunk(table: &mut Table, key: u64, i: u64, want: bool) -> Option<Box<dyn DmaMemory>> {
    let run = table.get_mut(&key)?;
    let chunk = run.chunk;
    let part = |whole: Arc<dyn DmaMemory>, offset: usize| -> Box<dyn DmaMemory> {
        Box::new(DmaRange::part(
            whole,
            offset + (i * chunk) as usize,
            chunk as usize,
        ))
    };
    if run.count - run.skip == 1 {
        let run = table.remove(&key)?;
        return match run.held {
            Held::One(mem) => want.then_some(mem),
            Held::Shared { whole, offset } => want.then(|| part(whole, offset)),
        };
    }
    // A run of several chunks holds shared memory (a run of `One` has one chunk).
    let Held::Shared { whole, offset } = &run.held else {
        return None;
    };
    let back = want.then(|| part(whole.clone(), *offset));
    if i == run.skip {
        run.skip += 1;
    } else if i == run.count - 1 {
        run.count -= 1;
    } else {
        let tail = Run {
            chunk,
            skip: 0,
            count: run.count - i - 1,
            held: Held::Shared {
                whole: whole.clone(),
                offset: offset + ((i + 1) * chunk) as usize,
            },
        };
        run.count = i;
        table.insert(key + (i + 1) * chunk, tail);
    }
    back
}

/// The safe, owning mappings of a [`DmaSpace`] over a [`TrustedVfioSys`].
pub trait OwnedDma: DmaSpace {
    /// Map `mem` for the device at `iova` (read, and write when `writable`), taking
    /// ownership of it until [`OwnedDma::unmap`] gives it back or the space drops.
    /// Checked first: the host address, IOVA and size are page aligned, the IOVA span
    /// lies inside one reported range, and it overlaps no mapping the space owns. On
    /// error `mem` is dropped (nothing was mapped); keep an `Arc` clone to keep it.
    /// Each call keeps `mem` in a box of its own; to map many parts of one memory (guest
    /// RAM page by page) use [`OwnedDma::map_part`], which does not allocate.
    ///
    /// # Errors
    ///
    /// Error::IovaInUse when the span overlaps an owned mapping; Error::Unaligned or
    /// Error::IovaOutOfRange from the checks; Error::Ioctl when the kernel refuses.
    fn map<M: DmaMemory>(&self, mem: M, iova: u64, writable: bool) -> Result<()> {
        let size = mem.dma_len() as u64;
        let vaddr = mem.dma_ptr() as u64;
        let mut table = self.table().lock();
        check_free(&mut table, iova, size)?;
        map_checked(self, vaddr, iova, size, writable)?;
        table.insert(iova, Run::single(size, Held::One(Box::new(mem))));
        Ok(())
    }

    /// Map `len` bytes of shared memory `mem` from `offset` for the device at `iova`
    /// (read, and write when `writable`); the space keeps a clone of `mem` until every
    /// part of it is unmapped. The checks and errors are those of [`OwnedDma::map`].
    ///
    /// Parts of the same `mem`, of the same size, mapped at consecutive IOVAs and
    /// consecutive offsets (guest RAM mapped page by page behind a vIOMMU) are kept as one
    /// entry: such a call makes no allocation and keeps no new clone, so its cost beside
    /// the ioctl stays the same however many mappings the space holds. Each part is still
    /// its own kernel mapping, unmapped on its own by [`OwnedDma::unmap`] or
    /// [`OwnedDma::unmap_drop`].
    ///
    /// # Errors
    ///
    /// Error::PartOutside when `offset + len` exceeds `mem`; otherwise as
    /// [`OwnedDma::map`].
    fn map_part<M: DmaMemory>(
        &self,
        mem: &Arc<M>,
        offset: usize,
        len: usize,
        iova: u64,
        writable: bool,
    ) -> Result<()> {
        let mem_len = mem.dma_len();
        if offset.checked_add(len).is_none_or(|end| end > mem_len) {
            return Err(Error::PartOutside {
                offset: offset as u64,
                len: len as u64,
                mem_len: mem_len as u64,
            });
        }
        let size = len as u64;
        let vaddr = mem.dma_ptr().wrapping_add(offset) as u64;
        let mut table = self.table().lock();
        let new_run = || {
            let held = Held::Shared {
                whole: mem.clone(),
                offset,
            };
            Run::single(size, held)
        };
        // The runs' nominal spans are disjoint, so the last run ends highest: a part at or
        // above its end (memory mapped in IOVA order) needs no range search, and one right
        // at its end may continue it, changed in place.
        if let Some(mut last) = table.last_entry() {
            let key = *last.key();
            let run = last.get_mut();
            let end = run.nominal_end(key);
            if end <= iova {
                let extends = end == iova && run.continued_by(mem, offset, size);
                map_checked(self, vaddr, iova, size, writable)?;
                if extends {
                    run.count += 1;
                } else {
                    table.insert(iova, new_run());
                }
                return Ok(());
            }
        }
        check_free(&mut table, iova, size)?;
        map_checked(self, vaddr, iova, size, writable)?;
        // The run just below may end where this part starts and continue it.
        let below = table.range_mut(..iova).next_back();
        match below {
            Some((&key, run))
                if run.nominal_end(key) == iova && run.continued_by(mem, offset, size) =>
            {
                run.count += 1;
            }
            _ => {
                table.insert(iova, new_run());
            }
        }
        Ok(())
    }

    /// Unmap the mapping made at `iova` and give its memory back, boxed (a part mapped
    /// by [`OwnedDma::map_part`] comes back as a [`DmaRange`] of the shared memory). When
    /// the kernel refuses, the mapping and its memory stay.
    ///
    /// # Errors
    ///
    /// Error::NotMapped when no owned mapping starts at `iova`; Error::Ioctl when the
    /// kernel refuses to unmap.
    fn unmap(&self, iova: u64) -> Result<Box<dyn DmaMemory>> {
        unmap_owned(self, iova, true)?
            .1
            .ok_or(Error::NotMapped { iova })
    }

    /// Unmap the mapping made at `iova` and drop what kept its memory alive (for a part,
    /// the space's clone goes once no part of that memory is left mapped); the size
    /// unmapped. Unlike [`OwnedDma::unmap`], it allocates nothing. When the kernel
    /// refuses, the mapping and its memory stay.
    ///
    /// # Errors
    ///
    /// As [`OwnedDma::unmap`].
    fn unmap_drop(&self, iova: u64) -> Result<u64> {
        Ok(unmap_owned(self, iova, false)?.0)
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

    /// A space over a small model of type1v2's mapping rules: a map overlapping a
    /// kernel mapping is EEXIST; an unmap removes every mapping inside the span and is
    /// EINVAL when one crosses its edge (vfio_iommu_type1.c, vfio_dma_do_map and
    /// vfio_dma_do_unmap).
    #[derive(Default)]
    struct Kern {
        /// iova -> (size, vaddr).
        kernel: Mutex<BTreeMap<u64, (u64, u64)>>,
        table: Mappings,
    }
    impl sealed::Space for Kern {
        type Sys = crate::sys::MockVfioSys;
        fn kernel_map(&self, r: &DmaMapRequest) -> Result<()> {
            let mut k = self.kernel.lock().unwrap();
            let (iova, size) = (r.iova(), r.size());
            let overlap = k
                .range(..iova + size)
                .next_back()
                .is_some_and(|(&at, &(len, _))| at + len > iova);
            if overlap {
                return Err(Error::Ioctl {
                    op: "VFIO_IOMMU_MAP_DMA",
                    target: "model".into(),
                    hint: None,
                    source: std::io::Error::from_raw_os_error(libc::EEXIST),
                });
            }
            k.insert(iova, (size, r.vaddr()));
            Ok(())
        }
        fn kernel_unmap(&self, iova: u64, size: u64) -> Result<u64> {
            let mut k = self.kernel.lock().unwrap();
            let end = iova + size;
            let einval = || Error::Ioctl {
                op: "VFIO_IOMMU_UNMAP_DMA",
                target: "model".into(),
                hint: None,
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            };
            if let Some((&at, &(len, _))) = k.range(..iova).next_back() {
                if at + len > iova {
                    return Err(einval());
                }
            }
            if let Some((&at, &(len, _))) = k.range(..end).next_back() {
                if at >= iova && at + len > end {
                    return Err(einval());
                }
            }
            let inside: Vec<u64> = k.range(iova..end).map(|(&a, _)| a).collect();
            let mut total = 0;
            for a in inside {
                total += k.remove(&a).map_or(0, |(l, _)| l);
            }
            Ok(total)
        }
        fn table(&self) -> &Mappings {
            &self.table
        }
        fn check_span(&self, page: u64, iova: u64, size: u64) -> Result<()> {
            check_iova(&[], page, iova, size)
        }
    }
    impl DmaSpace for Kern {
        fn iova_ranges(&self) -> Vec<IovaRange> {
            Vec::new()
        }
        fn page_size(&self) -> u64 {
            4096
        }
    }
    impl Drop for Kern {
        fn drop(&mut self) {
            self.table.release_all(&*self);
        }
    }

    /// One step of the model test: IOVAs and offsets in pages.
    #[derive(Debug, Clone)]
    enum Op {
        /// map_part of memory `mem`, pages `[off, off + pages)`, at IOVA page `at`.
        Part {
            mem: usize,
            off: usize,
            pages: usize,
            at: u64,
        },
        /// `n` map_part calls of one page each: memory `mem` from page `off`, IOVA pages
        /// from `at`, both consecutive (what forms runs).
        Seq {
            mem: usize,
            off: usize,
            at: u64,
            n: usize,
        },
        /// map of a fresh memory of `pages` pages at IOVA page `at`.
        Own {
            pages: usize,
            at: u64,
        },
        Unmap {
            at: u64,
        },
        UnmapDrop {
            at: u64,
        },
        /// unmap_raw of `pages` pages at IOVA page `at`.
        Raw {
            at: u64,
            pages: u64,
        },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        // Few IOVA pages and mostly single pages, so runs form, split and collide.
        prop_oneof![
            3 => (0..3usize, 0..16usize, 1..3usize, 0..40u64)
                .prop_map(|(mem, off, pages, at)| Op::Part { mem, off, pages, at }),
            3 => (0..3usize, 0..16usize, 0..40u64, 1..10usize)
                .prop_map(|(mem, off, at, n)| Op::Seq { mem, off, at, n }),
            1 => (1..3usize, 0..40u64).prop_map(|(pages, at)| Op::Own { pages, at }),
            3 => (0..40u64).prop_map(|at| Op::Unmap { at }),
            3 => (0..40u64).prop_map(|at| Op::UnmapDrop { at }),
            1 => (0..40u64, 1..4u64).prop_map(|(at, pages)| Op::Raw { at, pages }),
        ]
    }

    const PG: u64 = 4096;

    proptest::proptest! {
        // Against a plain model (each owned mapping on its own), in any order of maps,
        // unmaps and raw unmaps: the space lists exactly the mappings it owns, refuses
        // and accepts what the model does, and memory the kernel still maps is never
        // released; once the space drops, every memory is released (nothing leaked).
        #[test]
        fn runs_behave_as_one_entry_per_mapping(ops in proptest::collection::vec(op(), 1..60)) {
            let mems: Vec<Arc<MmapRegion<()>>> = (0..3).map(|_| region(16 * PG as usize)).collect();
            let space = Kern::default();
            // The model: owned mappings iova -> (size, host address).
            let mut owned: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
            for op in ops {
                let parts: Vec<(usize, usize, usize, u64)> = match op {
                    Op::Part { mem, off, pages, at } => vec![(mem, off, pages, at)],
                    Op::Seq { mem, off, at, n } => {
                        (0..n).map(|k| (mem, off + k, 1, at + k as u64)).collect()
                    }
                    _ => Vec::new(),
                };
                for (mem, off, pages, at) in parts {
                    let (iova, size) = (at * PG, pages as u64 * PG);
                    let clash = owned.range(..iova + size).next_back().is_some_and(|(&a, &(l, _))| a + l > iova);
                    let fits = off + pages <= 16;
                    let r = space.map_part(&mems[mem], off * PG as usize, pages * PG as usize, iova, true);
                    match r {
                        Ok(()) => {
                            proptest::prop_assert!(!clash && fits);
                            let vaddr = mems[mem].as_ptr() as u64 + off as u64 * PG;
                            owned.insert(iova, (size, vaddr));
                        }
                        Err(Error::IovaInUse { .. }) => proptest::prop_assert!(clash && fits),
                        Err(Error::PartOutside { .. }) => proptest::prop_assert!(!fits),
                        // The kernel's mappings are a subset of the table's (only raw
                        // unmaps remove some behind its back), so it refuses nothing the
                        // table accepts.
                        Err(e) => proptest::prop_assert!(false, "{e}"),
                    }
                }
                match op {
                    Op::Part { .. } | Op::Seq { .. } => {}
                    Op::Own { pages, at } => {
                        let (iova, size) = (at * PG, pages as u64 * PG);
                        let clash = owned.range(..iova + size).next_back().is_some_and(|(&a, &(l, _))| a + l > iova);
                        let fresh = region(pages * PG as usize);
                        let vaddr = fresh.as_ptr() as u64;
                        match space.map(fresh, iova, false) {
                            Ok(()) => {
                                proptest::prop_assert!(!clash);
                                owned.insert(iova, (size, vaddr));
                            }
                            Err(Error::IovaInUse { .. }) => proptest::prop_assert!(clash),
                            Err(e) => proptest::prop_assert!(false, "{e}"),
                        }
                    }
                    Op::Unmap { at } | Op::UnmapDrop { at } => {
                        let iova = at * PG;
                        let want = owned.get(&iova).copied();
                        let got = if matches!(op, Op::Unmap { .. }) {
                            // The memory given back is the mapping's own.
                            space.unmap(iova).map(|m| (m.dma_len() as u64, m.dma_ptr() as u64))
                        } else {
                            space.unmap_drop(iova).map(|len| (len, want.map_or(0, |w| w.1)))
                        };
                        match (want, got) {
                            (Some(w), Ok(g)) => {
                                proptest::prop_assert_eq!(w, g);
                                owned.remove(&iova);
                            }
                            (None, Err(Error::NotMapped { .. })) => {}
                            (w, g) => proptest::prop_assert!(false, "{iova:#x}: model {w:?}, got {g:?}"),
                        }
                    }
                    Op::Raw { at, pages } => {
                        // The kernel may unmap owned mappings behind the table's back; the
                        // table keeps their memory (and lists them) until unmapped by it.
                        let _ = space.unmap_raw(at * PG, pages * PG);
                    }
                }
                proptest::prop_assert_eq!(space.mapped(), owned.iter().map(|(&a, &(l, _))| (a, l)).collect::<Vec<_>>());
                // Memory the kernel maps is held by the space.
                for (_, &(size, vaddr)) in space.kernel.lock().unwrap().iter() {
                    for m in &mems {
                        let base = m.as_ptr() as u64;
                        if vaddr >= base && vaddr + size <= base + 16 * PG {
                            proptest::prop_assert!(Arc::strong_count(m) >= 2);
                        }
                    }
                }
            }
            drop(space);
            for m in &mems {
                proptest::prop_assert_eq!(Arc::strong_count(m), 1);
            }
        }
    }

    #[test]
    fn parts_mapped_in_order_are_one_entry_and_unmap_from_either_end_or_the_middle() {
        let space = Kern::default();
        let mem = region(8 * PG as usize);
        for i in 0..8u64 {
            space
                .map_part(
                    &mem,
                    (i * PG) as usize,
                    PG as usize,
                    0x100000 + i * PG,
                    true,
                )
                .unwrap();
        }
        assert_eq!(space.table.lock().len(), 1, "one run");
        assert_eq!(Arc::strong_count(&mem), 2, "one clone for the run");
        assert_eq!(space.mapped().len(), 8);
        // Front, back, middle.
        assert_eq!(space.unmap_drop(0x100000).unwrap(), PG);
        let back = space.unmap(0x100000 + 7 * PG).unwrap();
        assert_eq!(back.dma_ptr(), mem.as_ptr().wrapping_add(7 * PG as usize));
        drop(back);
        space.unmap_drop(0x100000 + 3 * PG).unwrap();
        assert_eq!(space.table.lock().len(), 2, "split in two");
        let want: Vec<(u64, u64)> = [1, 2, 4, 5, 6]
            .iter()
            .map(|&i| (0x100000 + i * PG, PG))
            .collect();
        assert_eq!(space.mapped(), want);
        // The freed front page can be mapped again, by other memory.
        space.map(region(PG as usize), 0x100000, true).unwrap();
        // Not a chunk start, or unmapped already: NotMapped.
        assert!(matches!(
            space.unmap_drop(0x100000 + 3 * PG),
            Err(Error::NotMapped { .. })
        ));
        assert!(matches!(
            space.unmap_drop(0x100000 + PG + 1),
            Err(Error::NotMapped { .. })
        ));
        // Overlap with a live part names that part.
        let e = space
            .map_part(&mem, 0, 2 * PG as usize, 0x100000 + 4 * PG, true)
            .unwrap_err();
        assert!(
            matches!(e, Error::IovaInUse { mapped: (m, 0x1000), .. } if m == 0x100000 + 4 * PG),
            "{e}"
        );
        for i in [1, 2, 4, 5, 6] {
            space.unmap_drop(0x100000 + i * PG).unwrap();
        }
        assert_eq!(
            Arc::strong_count(&mem),
            1,
            "the last part released the clone"
        );
    }

    #[test]
    fn a_part_outside_its_memory_is_refused_before_the_ioctl() {
        let space = Kern::default();
        let mem = region(2 * PG as usize);
        for (off, len) in [(PG as usize, 2 * PG as usize), (usize::MAX, PG as usize)] {
            assert!(matches!(
                space.map_part(&mem, off, len, 0x100000, true),
                Err(Error::PartOutside { .. })
            ));
        }
        assert!(space.kernel.lock().unwrap().is_empty());
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
