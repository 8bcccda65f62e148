//! DMA map/unmap timing through vfio-core's safe API: run as root
//! inside a QEMU guest (tests/vm) with the device bound to vfio-pci. Its raw-ioctl
//! anchor is `tests/vm/guest/dma-bench.c` (same setup, buffer, chunks and IOVAs);
//! `scripts/bench-dma.sh` runs both, alternating, and prints the table.
//!
//! usage: dma_bench [--size BYTES] [--chunk BYTES] [--api parts|boxed] [--overhead] [BDF]
//!   (sizes accept a K, M or G suffix; defaults 1G and 4K; BDF defaults to the first of
//!   `$VFIO_BIND`)
//!
//! Outside the timed region: container and group set up as `vm_vfio` does (type1v2),
//! the IOVA found with `find_iova` in the container's reported ranges (2 MiB aligned,
//! at or above 2 MiB), a buffer of SIZE bytes (an anonymous mmap shared through an
//! `Arc`) 2 MiB aligned and touched page by page. Timed (`Instant`, CLOCK_MONOTONIC),
//! with `--api parts` (the default, what a VMM uses for guest RAM):
//! - map: SIZE/CHUNK `OwnedDma::map_part` calls, each mapping the next CHUNK of the
//!   shared buffer at the next IOVA from the one found;
//! - unmap: `OwnedDma::unmap_drop` of every IOVA, each reporting CHUNK bytes unmapped.
//!
//! With `--api boxed`: one `DmaRange` per CHUNK made before timing, then SIZE/CHUNK
//! `OwnedDma::map` calls, each moving its chunk into the space (a box per mapping), and
//! `OwnedDma::unmap` of every IOVA, each giving back a chunk of CHUNK bytes.
//!
//! Before timing, both programs map and unmap the first two chunks once (a warm-up, so
//! that the first timed call does not pay for the first execution of the code path).
//!
//! Then it checks that a fresh map of the first chunk at the same IOVA succeeds (so the
//! unmaps really unmapped) and prints one line:
//!
//! `dma-bench impl=passthru api=A chunk=C size=S iova=0x.. map_ns=N unmap_ns=N calls=N remap=ok thp_kb=N`
//!
//! `--overhead` times the layers instead (see [`overhead`]): owned mappings over the
//! `testing` fake kernel (no system call; the fake keeps a table of its own, so this is
//! an upper bound of the layers' cost), and `VFIO_IOMMU_UNMAP_DMA` through the DMA space
//! where nothing is mapped; one line `dma-bench impl=passthru mode=overhead ...`.
//!
//! Any failure prints `dma-bench impl=passthru FAIL <what>: <ioctl and errno>` on
//! stderr and exits 1.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use passthru_pci_ids::Bdf;
use passthru_vfio_core::container::{Container, Extension};
use passthru_vfio_core::dma::{find_iova, DmaRange, DmaSpace, OwnedDma};
use passthru_vfio_core::group::Group;
use passthru_vfio_core::testing::FakeVfio;
use passthru_vfio_core::verify::error_chain;
use passthru_vfio_core::{host, DmaMemory, Error, RealSys};
use vm_memory::{MmapRegion, VolatileMemory};

/// One chunk of the shared buffer.
type Chunk = DmaRange<MmapRegion<()>>;

/// IOVA and buffer alignment: 2 MiB, the larger chunk, for both chunk sizes.
const ALIGN: u64 = 2 << 20;

/// Which owned-mapping calls are timed.
#[derive(Clone, Copy, PartialEq)]
enum Api {
    /// `map_part` / `unmap_drop`.
    Parts,
    /// `map` of a `DmaRange` / `unmap`.
    Boxed,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Parts => "parts",
            Api::Boxed => "boxed",
        }
    }
}

struct Args {
    size: u64,
    chunk: u64,
    bdf: Bdf,
    overhead: bool,
    api: Api,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("bad size {s:?}"))
}

fn parse_args() -> Result<Args, String> {
    let mut size = 1u64 << 30;
    let mut chunk = 4096u64;
    let mut bdf = None;
    let mut overhead = false;
    let mut api = Api::Parts;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--size" => size = parse_size(&it.next().ok_or("--size needs a value")?)?,
            "--chunk" => chunk = parse_size(&it.next().ok_or("--chunk needs a value")?)?,
            "--overhead" => overhead = true,
            "--api" => {
                api = match it.next().as_deref() {
                    Some("parts") => Api::Parts,
                    Some("boxed") => Api::Boxed,
                    Some(other) => {
                        return Err(format!("--api takes parts or boxed, not {other:?}"))
                    }
                    None => return Err("--api needs a value: parts or boxed".into()),
                }
            }
            _ if bdf.is_none() => bdf = Some(a),
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    let bdf = match bdf {
        Some(b) => b,
        None => std::env::var("VFIO_BIND")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .ok_or("no BDF given (argv or $VFIO_BIND)")?
            .to_owned(),
    };
    let bdf = bdf
        .parse::<Bdf>()
        .map_err(|e| format!("{bdf}: not a PCI address: {e}"))?;
    if chunk == 0 || !chunk.is_multiple_of(4096) || size == 0 || !size.is_multiple_of(chunk) {
        return Err(format!(
            "size {size} must be a non-zero multiple of chunk {chunk}, itself a multiple of 4096"
        ));
    }
    Ok(Args {
        size,
        chunk,
        bdf,
        overhead,
        api,
    })
}

/// The error chain with the errno named (`errno EEXIST (17)`), as the C side prints it.
fn describe(e: &Error) -> String {
    let name = match e.errno() {
        Some(libc::EPERM) => "EPERM",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EBADF) => "EBADF",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::EFAULT) => "EFAULT",
        Some(libc::EBUSY) => "EBUSY",
        Some(libc::EEXIST) => "EEXIST",
        Some(libc::ENODEV) => "ENODEV",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::ENOSPC) => "ENOSPC",
        Some(libc::ENOTTY) => "ENOTTY",
        Some(_) => "errno",
        None => return error_chain(e),
    };
    format!(
        "{} [errno {name} ({})]",
        error_chain(e),
        e.errno().unwrap_or(0)
    )
}

fn ctx(what: &str) -> impl Fn(Error) -> String + '_ {
    move |e| format!("{what}: {}", describe(&e))
}

/// AnonHugePages of this process in kB (`/proc/self/smaps_rollup`), -1 when unreadable:
/// how much of the buffer transparent huge pages back, which changes what pinning it costs
/// the kernel; printed by both programs so their backing can be compared.
fn thp_kb() -> i64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("AnonHugePages:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(-1)
}

/// The chunks of `buf` from `off`, `calls` of `chunk` bytes, made before timing.
fn chunks(buf: &Arc<MmapRegion<()>>, off: usize, chunk: usize, calls: u64) -> Vec<Option<Chunk>> {
    (0..calls as usize)
        .map(|i| DmaRange::new(buf.clone(), off + i * chunk, chunk))
        .collect()
}

/// Map `calls` chunks of `buf` from `off` at consecutive IOVAs from `iova`, then unmap
/// them, through `api`; the two times.
fn map_unmap<D: OwnedDma>(
    space: &D,
    api: Api,
    buf: &Arc<MmapRegion<()>>,
    off: usize,
    (iova, chunk, calls): (u64, u64, u64),
    what: &str,
) -> Result<(u128, u128), String> {
    let len = chunk as usize;
    let map_one = |i: u64, part: Option<Chunk>| {
        let at = iova + i * chunk;
        match part {
            Some(part) => space.map(part, at, true),
            None => space.map_part(buf, off + i as usize * len, len, at, true),
        }
        .map_err(|e| format!("{what} map #{i} at {at:#x}: {}", describe(&e)))
    };
    let unmap_one = |i: u64| {
        let at = iova + i * chunk;
        let n = match api {
            Api::Parts => space.unmap_drop(at),
            Api::Boxed => space.unmap(at).map(|back| back.dma_len() as u64),
        }
        .map_err(|e| format!("{what} unmap #{i} at {at:#x}: {}", describe(&e)))?;
        if n != chunk {
            return Err(format!(
                "{what} unmap #{i} at {at:#x} gave back {n:#x} bytes, not {chunk:#x}"
            ));
        }
        Ok(())
    };
    // `n` chunks mapped, then unmapped: the two phases' times. With `boxed`, the chunks
    // are made before the map phase is timed.
    let pass = |n: u64| -> Result<(u128, u128), String> {
        let mut parts = match api {
            Api::Boxed => chunks(buf, off, len, n),
            Api::Parts => Vec::new(),
        };
        let mut parts = parts.iter_mut();
        let t0 = Instant::now();
        for i in 0..n {
            let part = match api {
                Api::Boxed => Some(
                    parts
                        .next()
                        .and_then(Option::take)
                        .ok_or_else(|| format!("chunk {i} is missing"))?,
                ),
                Api::Parts => None,
            };
            map_one(i, part)?;
        }
        let map_ns = t0.elapsed().as_nanos();
        let t1 = Instant::now();
        for i in 0..n {
            unmap_one(i)?;
        }
        Ok((map_ns, t1.elapsed().as_nanos()))
    };
    // Warm-up, as the C side: the first two chunks mapped and unmapped once in the timed
    // order, so the first timed call does not pay for first execution of the code path
    // (under TCG, its translation).
    pass(calls.min(2))?;
    pass(calls)
}

/// `--overhead`: the layers' own cost, per call, in the same guest. Owned mappings made
/// and unmapped over the `testing` fake kernel (no system call), and
/// `VFIO_IOMMU_UNMAP_DMA` through the container's DMA space on IOVAs where nothing is
/// mapped (the kernel returns at once with 0 bytes), to compare with the C program's
/// `--overhead` raw ioctl loop.
fn overhead<D: DmaSpace>(
    space: &D,
    api: Api,
    buf: &Arc<MmapRegion<()>>,
    off: usize,
    (iova, chunk, calls): (u64, u64, u64),
) -> Result<String, String> {
    let fake = Arc::new(FakeVfio::new());
    let root = Path::new("/");
    let container = Container::open(&fake, Path::new("/dev/vfio/vfio")).map_err(ctx("fake"))?;
    let group = Group::open(&fake, root, 0).map_err(ctx("fake"))?;
    group.set_container(&container).map_err(ctx("fake"))?;
    container
        .set_iommu(Extension::Type1v2)
        .map_err(ctx("fake"))?;
    let noop = container.dma_space().map_err(ctx("fake"))?;
    let span = (iova, chunk, calls);
    let (map_ns, unmap_ns) = map_unmap(&noop, api, buf, off, span, "over the fake kernel")?;
    let t2 = Instant::now();
    for i in 0..calls {
        let at = iova + i * chunk;
        match space.unmap_raw(at, chunk) {
            Ok(0) => {}
            Ok(n) => return Err(format!("UNMAP_DMA of nothing at {at:#x} unmapped {n:#x}")),
            Err(e) => return Err(format!("VFIO_IOMMU_UNMAP_DMA at {at:#x}: {}", describe(&e))),
        }
    }
    let empty_ns = t2.elapsed().as_nanos();
    Ok(format!(
        "dma-bench impl=passthru api={} mode=overhead chunk={chunk} calls={calls} \
         noioctl_map_ns={map_ns} noioctl_unmap_ns={unmap_ns} unmap_empty_ns={empty_ns}",
        api.name()
    ))
}

fn run(a: &Args) -> Result<String, String> {
    let sys = Arc::new(RealSys::new());
    let root = Path::new("/");
    let calls = a.size / a.chunk;
    let gid = host::iommu_group(root, a.bdf).map_err(ctx("iommu group from sysfs"))?;
    let container =
        Container::open(&sys, Path::new("/dev/vfio/vfio")).map_err(ctx("open /dev/vfio/vfio"))?;
    let group = Group::open(&sys, root, gid).map_err(ctx("open the group"))?;
    group
        .require_viable(root)
        .map_err(ctx("VFIO_GROUP_GET_STATUS"))?;
    group
        .set_container(&container)
        .map_err(ctx("VFIO_GROUP_SET_CONTAINER"))?;
    container
        .set_iommu(Extension::Type1v2)
        .map_err(ctx("VFIO_SET_IOMMU TYPE1v2"))?;
    let space = container.dma_space().map_err(ctx("VFIO_IOMMU_GET_INFO"))?;
    if let Some(avail) = space.info().dma_avail {
        // One more for the re-map check.
        if u64::from(avail) <= calls {
            return Err(format!(
                "the container accepts {avail} mappings, {calls} + 1 needed: raise \
                 /sys/module/vfio_iommu_type1/parameters/dma_entry_limit"
            ));
        }
    }
    // No ranges reported: nothing to check against (as `check_iova`), start at 2 MiB.
    let ranges = space.iova_ranges();
    let iova = if ranges.is_empty() {
        Some(ALIGN)
    } else {
        find_iova(&ranges, ALIGN, a.size, ALIGN)
    };
    let iova =
        iova.ok_or_else(|| format!("no {:#x}-byte IOVA span in the ranges {ranges:x?}", a.size))?;

    // The buffer: 2 MiB aligned (as the C side), every page touched before timing.
    let size = usize::try_from(a.size).map_err(|_| "size too large")?;
    let chunk = usize::try_from(a.chunk).map_err(|_| "chunk too large")?;
    let align = ALIGN as usize;
    let buf = MmapRegion::<()>::new(size + align).map_err(|e| format!("buffer: {e}"))?;
    let buf = Arc::new(buf);
    let off = (align - buf.as_ptr() as usize % align) % align;
    for page in (0..size).step_by(4096) {
        buf.get_ref::<u8>(off + page)
            .map_err(|e| format!("buffer: {e}"))?
            .store(1);
    }
    if a.overhead {
        return overhead(&space, a.api, &buf, off, (iova, a.chunk, calls));
    }
    let thp = thp_kb();
    let span = (iova, a.chunk, calls);
    let (map_ns, unmap_ns) = map_unmap(&space, a.api, &buf, off, span, "VFIO_IOMMU_MAP_DMA")?;
    // Every call was made and checked (map_unmap stops at the first failure).
    let mapped = calls;
    // The first chunk's IOVA is free again: a fresh map there succeeds.
    let first = DmaRange::new(buf.clone(), off, chunk).ok_or("chunk 0 outside the buffer")?;
    space.map(first, iova, true).map_err(|e| {
        format!(
            "re-map of chunk 0 at {iova:#x} after unmap (VFIO_IOMMU_MAP_DMA): {}",
            describe(&e)
        )
    })?;
    match space.unmap(iova) {
        Ok(back) if back.dma_len() == chunk => {}
        Ok(back) => return Err(format!("re-map check: gave back {:#x}", back.dma_len())),
        Err(e) => {
            return Err(format!(
                "re-map check: VFIO_IOMMU_UNMAP_DMA: {}",
                describe(&e)
            ))
        }
    }
    drop(space);
    drop(group);
    drop(container);
    Ok(format!(
        "dma-bench impl=passthru api={} chunk={} size={} iova={iova:#x} map_ns={map_ns} \
         unmap_ns={unmap_ns} calls={mapped} remap=ok thp_kb={thp}",
        a.api.name(),
        a.chunk,
        a.size
    ))
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|a| run(&a));
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dma-bench impl=passthru FAIL {e}");
            ExitCode::from(1)
        }
    }
}
