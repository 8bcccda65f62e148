//! The device's own DMA through vfio-core's mappings, on a real kernel: run as root
//! inside a QEMU guest (tests/vm, topology `edu`) with QEMU's `edu` device bound to
//! vfio-pci.
//!
//! usage: vm_edu [--fault-log FILE] [BDF...]   (default: `$EDU_DMA`)
//!
//! With `--fault-log FILE` the checks that the kernel logged each IOMMU fault go to FILE
//! (`ok   ...` / `FAIL ...` lines) instead of the exit status, so the harness counts
//! them as a step of their own (`edu-fault-log`): QEMU's AMD IOMMU never reports these
//! faults (tests/vm/README.md), and the rest of the proof should not hide behind that.
//!
//! MAP_DMA answering 0 proves only that the kernel took the request. Here the device
//! moves the bytes: `edu` (QEMU hw/misc/edu.c, docs/specs/edu.rst) has a DMA engine
//! (source 0x80, destination 0x88, count 0x90, command 0x98: bit 0 start, bit 1
//! direction 1 = device to RAM, bit 2 interrupt 0x100 when done), a 4 KiB buffer at
//! device address 0x40000, and an interrupt raised by writing the raise register 0x60
//! and lowered by the acknowledge register 0x64 (status at 0x24), on MSI when enabled,
//! else on INTx. For each device, first through the type1 container (`Type1Space`), then,
//! when the kernel has `/dev/iommu`, through an iommufd IOAS and the device cdev:
//!
//! - a buffer mapped read-only at one IOVA is DMAed into the device and back out to a
//!   second buffer at another IOVA: the bytes must arrive (the IOVAs lie above the
//!   guest's RAM, so only the IOMMU's translation reaches the buffers), and a partial
//!   transfer at offsets lands exactly there;
//! - with bus mastering off, the device's DMA does not land;
//! - device writes to read-only IOVAs, to an IOVA that was mapped and then unmapped,
//!   and to a mapped page's guest-physical address (no IOVA there: a device bypassing
//!   the IOMMU would hit the page) must not land, and the guest kernel must log an IOMMU
//!   fault naming the address and the device (`/dev/kmsg`: Intel `DMAR: [DMA Write NO_PASID] Request device
//!   [BB:DD.F] fault addr 0xIOVA` from drivers/iommu/intel/dmar.c dmar_fault_do_one; AMD
//!   `IO_PAGE_FAULT ... address=0xIOVA` from drivers/iommu/amd/iommu.c
//!   amd_iommu_report_page_fault); mapped again, the same IOVA works;
//! - INTx: the raise register signals the trigger eventfd (nothing before it); the
//!   kernel masks the level-triggered line until it is unmasked; a masked line signals
//!   nothing until the unmask;
//! - MSI: the raise register and the DMA engine's completion interrupt each signal the
//!   MSI eventfd.
//!
//! Eventfds are non-blocking: they are polled (read every millisecond) until a deadline.
//! Prints one line per check (`ok   ...` / `FAIL ...`) and last `N passed, N failed`;
//! exits 1 when a check failed.

#[path = "common/tally.rs"]
mod tally;
use tally::Tally;

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use passthru_pci_ids::Bdf;
use passthru_vfio_core::dma::{find_iova, OwnedDma};
use passthru_vfio_core::{
    host, Container, Device, EventFd, Extension, Group, Iommufd, IrqIndex, RealSys, RegionMap,
};
use vm_memory::{MmapRegion, VolatileMemory};

/// edu's registers (docs/specs/edu.rst "MMIO area spec").
const REG_ID: u64 = 0x00;
const REG_LIVENESS: u64 = 0x04;
const REG_IRQ_STATUS: u64 = 0x24;
const REG_IRQ_RAISE: u64 = 0x60;
const REG_IRQ_ACK: u64 = 0x64;
const REG_DMA_SRC: u64 = 0x80;
const REG_DMA_DST: u64 = 0x88;
const REG_DMA_COUNT: u64 = 0x90;
const REG_DMA_CMD: u64 = 0x98;
const DMA_RUN: u32 = 0x1;
const DMA_TO_RAM: u32 = 0x2;
const DMA_IRQ: u32 = 0x4;
/// The interrupt status bit the DMA engine raises when done (hw/misc/edu.c DMA_IRQ).
const DMA_DONE_IRQ: u32 = 0x100;
/// The device's buffer: device address and size (hw/misc/edu.c DMA_START, DMA_SIZE).
const EDU_BUF: u32 = 0x40000;
const EDU_BUF_SIZE: usize = 4096;
/// Bytes per whole transfer. QEMU 7.2's edu_check_range aborts QEMU ("hardware error:
/// EDU: DMA range ... out of bounds") unless a transfer ends before the buffer's last
/// byte (an off-by-one fixed in later QEMU), so a transfer leaves the last 256 bytes
/// out, and the checks also hold the rest of each page untouched.
const XFER: usize = EDU_BUF_SIZE - 0x100;
/// PCI command register bits (PCI spec): memory space, bus master.
const CMD_MEMORY: u16 = 0x2;
const CMD_MASTER: u16 = 0x4;
/// Lowest IOVA used: above the guest's 1 GiB of RAM, below the device's 32-bit mask.
const IOVA_MIN: u64 = 0x5000_0000;

/// One page of anonymous memory the DMA spaces can own.
type Buf = Arc<MmapRegion<()>>;

fn page() -> Buf {
    Arc::new(MmapRegion::new(EDU_BUF_SIZE).expect("anonymous mmap of one page"))
}

fn fill(buf: &Buf, data: &[u8]) {
    buf.get_slice(0, data.len())
        .expect("slice inside the buffer")
        .copy_from(data);
}

fn contents(buf: &Buf) -> Vec<u8> {
    let mut v = vec![0u8; EDU_BUF_SIZE];
    buf.get_slice(0, EDU_BUF_SIZE)
        .expect("slice inside the buffer")
        .copy_to(&mut v[..]);
    v
}

/// A page of bytes no other step writes: a counter mixed with `seed`.
fn pattern(seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..EDU_BUF_SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect()
}

/// A page holding the first `n` bytes of `p`, zero after them.
fn head(p: &[u8], n: usize) -> Vec<u8> {
    let mut v = vec![0u8; EDU_BUF_SIZE];
    v[..n].copy_from_slice(&p[..n]);
    v
}

/// The first differing offset of two byte strings, for the messages.
fn first_diff(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("first difference at {i:#x}: {:#04x} vs {:#04x}", a[i], b[i]),
        None if a.len() == b.len() => "equal".to_owned(),
        None => format!("lengths {} and {}", a.len(), b.len()),
    }
}

/// The guest-physical address of `buf`'s first page (`/proc/self/pagemap`: one 64-bit
/// entry per page, bit 63 present, bits 0-54 the frame number; Documentation/
/// admin-guide/mm/pagemap.rst).
fn guest_physical(buf: &Buf) -> Option<u64> {
    let vaddr = buf.as_ptr() as u64;
    let mut f = std::fs::File::open("/proc/self/pagemap").ok()?;
    f.seek(SeekFrom::Start(vaddr / 4096 * 8)).ok()?;
    let mut e = [0u8; 8];
    f.read_exact(&mut e).ok()?;
    let e = u64::from_le_bytes(e);
    let pfn = e & ((1 << 55) - 1);
    (e >> 63 == 1 && pfn != 0).then_some(pfn * 4096)
}

/// Poll a non-blocking eventfd until it counts or `within` passes.
fn wait_event(fd: &EventFd, within: Duration) -> u64 {
    let start = Instant::now();
    loop {
        match fd.read() {
            Ok(n) if n > 0 => return n,
            Ok(_) => {}
            Err(_) => return 0,
        }
        if start.elapsed() >= within {
            return 0;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The kernel log from now on (`/dev/kmsg`, positioned at its end).
struct Kmsg(std::fs::File);

impl Kmsg {
    fn open() -> std::io::Result<Self> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")?;
        f.seek(SeekFrom::End(0))?;
        Ok(Kmsg(f))
    }

    /// The records logged since the last call (text after the `;` of each).
    fn new_lines(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    let first = rec.lines().next().unwrap_or("");
                    let text = first.split_once(';').map_or(first, |(_, m)| m);
                    out.push(text.to_owned());
                }
                // EPIPE: records were overwritten before we read them; go on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(_) => break,
            }
        }
        out
    }
}

/// The IOVA an IOMMU fault line names, as printed by the Intel driver
/// (`fault addr 0x...`, drivers/iommu/intel/dmar.c dmar_fault_do_one) or the AMD one
/// (`IO_PAGE_FAULT ... address=0x...`, drivers/iommu/amd/iommu.c
/// amd_iommu_report_page_fault, zero-padded to 16 digits).
fn fault_iova(line: &str) -> Option<u64> {
    let rest = if line.contains("DMAR") && line.contains("Request device") {
        line.split_once("fault addr 0x")?.1
    } else if line.contains("IO_PAGE_FAULT") {
        line.split_once("address=0x")?.1
    } else {
        return None;
    };
    let hex: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&hex, 16).ok()
}

/// Wait up to `within` for a fault line naming `iova` and the device (`BB:DD.F`, as
/// both drivers print it); every fault line seen is kept in `seen`.
fn wait_fault(
    kmsg: &mut Kmsg,
    iova: u64,
    bdf: Bdf,
    within: Duration,
    seen: &mut Vec<String>,
) -> Option<String> {
    let short = format!("{:02x}:{:02x}.{:x}", bdf.bus, bdf.device, bdf.function);
    let start = Instant::now();
    loop {
        for l in kmsg.new_lines() {
            if fault_iova(&l).is_some() {
                seen.push(l.clone());
            }
        }
        if let Some(l) = seen
            .iter()
            .find(|l| fault_iova(l) == Some(iova) && l.contains(&short))
        {
            return Some(l.clone());
        }
        if start.elapsed() >= within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The device and its mapped BAR 0.
struct Edu {
    dev: Device,
    bar: RegionMap,
}

impl Edu {
    fn reg(&self, off: u64) -> Option<u32> {
        self.bar.read_u32(off)
    }

    fn set(&self, off: u64, v: u32) -> bool {
        self.bar.write_u32(off, v).is_some()
    }

    fn command(&self) -> Option<u16> {
        let mut b = [0u8; 2];
        (self.dev.read_config(4, &mut b).ok() == Some(2)).then(|| u16::from_le_bytes(b))
    }

    /// Set the command register's bus-master bit as asked (memory space always on);
    /// true when it reads back so.
    fn bus_master(&self, on: bool) -> bool {
        let Some(c) = self.command() else {
            return false;
        };
        let want = if on {
            c | CMD_MEMORY | CMD_MASTER
        } else {
            (c | CMD_MEMORY) & !CMD_MASTER
        };
        self.dev.write_config(4, &want.to_le_bytes()).ok() == Some(2)
            && self
                .command()
                .is_some_and(|c| c & CMD_MASTER == want & CMD_MASTER)
    }

    /// Program one transfer and wait until the engine clears its start bit; the time
    /// it took, or what went wrong.
    fn dma(&self, src: u64, dst: u64, count: usize, cmd: u32) -> Result<Duration, String> {
        let (Ok(src), Ok(dst), Ok(count)) =
            (u32::try_from(src), u32::try_from(dst), u32::try_from(count))
        else {
            return Err(format!("{src:#x}/{dst:#x}/{count:#x} do not fit 32 bits"));
        };
        if !(self.set(REG_DMA_SRC, src)
            && self.set(REG_DMA_DST, dst)
            && self.set(REG_DMA_COUNT, count))
        {
            return Err("BAR 0 not writable through the mapping".to_owned());
        }
        if self.reg(REG_DMA_SRC) != Some(src) || self.reg(REG_DMA_DST) != Some(dst) {
            return Err(format!(
                "DMA registers read back {:x?}/{:x?}, wrote {src:#x}/{dst:#x}",
                self.reg(REG_DMA_SRC),
                self.reg(REG_DMA_DST)
            ));
        }
        let start = Instant::now();
        self.set(REG_DMA_CMD, cmd | DMA_RUN);
        // The engine runs 100 ms (QEMU virtual clock) after the start bit.
        while self.reg(REG_DMA_CMD).is_some_and(|c| c & DMA_RUN != 0) {
            if start.elapsed() > Duration::from_secs(10) {
                return Err("the start bit stayed set for 10 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(start.elapsed())
    }
}

/// Where this run's DMA goes: the space, the label for messages, a seed for patterns.
struct Run<'a> {
    label: &'a str,
    bdf: Bdf,
    seed: u32,
}

/// The DMA checks through `space` (a type1 container or an IOAS the device is on).
fn test_dma<D: OwnedDma>(t: &mut Tally, run: &Run<'_>, edu: &Edu, space: &D) {
    let l = run.label;
    let pg = space.page_size().max(EDU_BUF_SIZE as u64);
    let ranges = space.iova_ranges();
    // Three IOVAs a few pages apart, above the guest's RAM.
    let Some(base) = find_iova(&ranges, pg, 10 * pg, IOVA_MIN) else {
        t.check(
            false,
            &format!("{l}: no IOVA span above {IOVA_MIN:#x} in {ranges:x?}"),
        );
        return;
    };
    let (iova_a, iova_b, iova_c) = (base, base + 3 * pg, base + 6 * pg);
    let iova_d = base + 9 * pg;
    let (a, b, c, d) = (page(), page(), page(), page());
    let p1 = pattern(run.seed);
    let p2 = pattern(run.seed ^ 0x5a5a_5a5a);
    fill(&a, &p1);
    fill(&b, &[0; EDU_BUF_SIZE]);
    fill(&c, &[0; EDU_BUF_SIZE]);
    let mapped = t
        .must(
            space.map(a.clone(), iova_a, false),
            &format!("{l}: map page A read-only at IOVA {iova_a:#x}"),
        )
        .is_some()
        & t.must(
            space.map(b.clone(), iova_b, true),
            &format!("{l}: map page B writable at IOVA {iova_b:#x}"),
        )
        .is_some()
        & t.must(
            space.map(c.clone(), iova_c, true),
            &format!("{l}: map page C writable at IOVA {iova_c:#x}"),
        )
        .is_some();
    if !mapped {
        return;
    }
    t.check(
        edu.bus_master(true),
        &format!(
            "{l}: bus master and memory space on (command {:x?})",
            edu.command()
        ),
    );
    let ebuf = u64::from(EDU_BUF);

    // Round trip: A -> device buffer -> B.
    let r = edu.dma(iova_a, ebuf, XFER, 0);
    t.check(
        r.is_ok(),
        &format!("{l}: DMA IOVA {iova_a:#x} -> device buffer: {r:?}"),
    );
    let r = edu.dma(ebuf, iova_b, XFER, DMA_TO_RAM);
    t.check(
        r.is_ok(),
        &format!("{l}: DMA device buffer -> IOVA {iova_b:#x}: {r:?}"),
    );
    let got = contents(&b);
    let want = head(&p1, XFER);
    t.check(
        got == want,
        &format!(
            "{l}: page B holds page A's first {XFER:#x} bytes after the device's round trip, the rest untouched ({})",
            first_diff(&got, &want)
        ),
    );
    // A partial transfer at offsets: device buffer +0x100 -> C + 0x200, 0x300 bytes.
    let r = edu.dma(ebuf + 0x100, iova_c + 0x200, 0x300, DMA_TO_RAM);
    let got = contents(&c);
    let mut want = vec![0u8; EDU_BUF_SIZE];
    want[0x200..0x500].copy_from_slice(&p1[0x100..0x400]);
    t.check(
        r.is_ok() && got == want,
        &format!(
            "{l}: 0x300 bytes from device offset 0x100 land at IOVA {:#x} and nowhere else in page C ({r:?}, {})",
            iova_c + 0x200,
            first_diff(&got, &want)
        ),
    );

    // Bus mastering off: the device's write goes nowhere.
    fill(&c, &[0; EDU_BUF_SIZE]);
    if t.check(edu.bus_master(false), &format!("{l}: bus master off")) {
        let r = edu.dma(ebuf, iova_c, XFER, DMA_TO_RAM);
        let got = contents(&c);
        t.check(
            r.is_ok() && got.iter().all(|&x| x == 0),
            &format!(
                "{l}: with bus mastering off the device's DMA to IOVA {iova_c:#x} does not land ({r:?}, {})",
                first_diff(&got, &[0; EDU_BUF_SIZE])
            ),
        );
    }
    t.check(edu.bus_master(true), &format!("{l}: bus master on again"));

    // Load pattern 2 into the device (from B), then write it where it must not land.
    fill(&b, &p2);
    let r = edu.dma(iova_b, ebuf, XFER, 0);
    t.check(
        r.is_ok(),
        &format!("{l}: DMA IOVA {iova_b:#x} (a second pattern) -> device buffer: {r:?}"),
    );
    let mut kmsg = match Kmsg::open() {
        Ok(k) => k,
        Err(e) => {
            t.check(false, &format!("{l}: open /dev/kmsg: {e}"));
            return;
        }
    };
    let mut seen = Vec::new();
    let bdf = run.bdf;
    let wait = Duration::from_secs(5);

    // No bypass: the device's write to page C's guest-physical address (not an IOVA
    // of this space) must not reach page C. /proc/self/pagemap gives the frame (root
    // sees it; the page is pinned while mapped).
    match guest_physical(&c) {
        Some(gpa) if u32::try_from(gpa).is_ok() && gpa < IOVA_MIN => {
            let r = edu.dma(ebuf, gpa, XFER, DMA_TO_RAM);
            let got = contents(&c);
            t.check(
                r.is_ok() && got.iter().all(|&x| x == 0),
                &format!(
                    "{l}: the device's write to page C's guest-physical address {gpa:#x} (no IOVA there) does not reach it ({r:?}, {})",
                    first_diff(&got, &[0; EDU_BUF_SIZE])
                ),
            );
            let line = wait_fault(&mut kmsg, gpa, bdf, wait, &mut seen);
            t.fault_check(
                line.is_some(),
                &format!("{l}: the kernel logs an IOMMU fault at {gpa:#x} for {bdf}: {line:?}"),
            );
        }
        other => {
            t.check(
                false,
                &format!("{l}: page C's guest-physical address below {IOVA_MIN:#x} from /proc/self/pagemap: {other:x?}"),
            );
        }
    }

    // Device writes to read-only mappings must not land. A, which the device read
    // before: QEMU's VT-d answers from its IOTLB with the cached permissions and drops
    // the write without a fault record (hw/i386/intel_iommu.c vtd_do_iommu_translate
    // returns an IOTLB hit before any page walk), so its log line is not required.
    // D, which the device never touched: the IOMMU walks the page table and reports.
    let r = edu.dma(ebuf, iova_a, XFER, DMA_TO_RAM);
    let got = contents(&a);
    t.check(
        r.is_ok() && got == p1,
        &format!(
            "{l}: the device's write to read-only IOVA {iova_a:#x} (read before) does not land ({r:?}, page A {})",
            first_diff(&got, &p1)
        ),
    );
    let line = wait_fault(
        &mut kmsg,
        iova_a,
        bdf,
        Duration::from_millis(500),
        &mut seen,
    );
    println!("     (fault logged for IOVA {iova_a:#x}, cached by the IOMMU: {line:?})");
    fill(&d, &p1);
    if t.must(
        space.map(d.clone(), iova_d, false),
        &format!("{l}: map page D read-only at IOVA {iova_d:#x}, never touched by the device"),
    )
    .is_some()
    {
        let r = edu.dma(ebuf, iova_d, XFER, DMA_TO_RAM);
        let got = contents(&d);
        t.check(
            r.is_ok() && got == p1,
            &format!(
                "{l}: the device's write to read-only IOVA {iova_d:#x} does not land ({r:?}, page D {})",
                first_diff(&got, &p1)
            ),
        );
        let line = wait_fault(&mut kmsg, iova_d, bdf, wait, &mut seen);
        t.fault_check(
            line.is_some(),
            &format!(
                "{l}: the kernel logs an IOMMU write fault at read-only IOVA {iova_d:#x} for {bdf}: {line:?}"
            ),
        );
        t.check(
            space.unmap(iova_d).is_ok(),
            &format!("{l}: unmap IOVA {iova_d:#x}"),
        );
    }

    // Unmap C (keeping its memory), then have the device write there.
    let back = space.unmap(iova_c);
    t.check(
        back.as_ref().is_ok_and(|m| m.dma_len() == EDU_BUF_SIZE),
        &format!("{l}: unmap IOVA {iova_c:#x} gives page C back"),
    );
    drop(back);
    fill(&c, &[0; EDU_BUF_SIZE]);
    let r = edu.dma(ebuf, iova_c, XFER, DMA_TO_RAM);
    let got = contents(&c);
    t.check(
        r.is_ok() && got.iter().all(|&x| x == 0),
        &format!(
            "{l}: the device's write to unmapped IOVA {iova_c:#x} does not reach the page once mapped there ({r:?}, {})",
            first_diff(&got, &[0; EDU_BUF_SIZE])
        ),
    );
    let line = wait_fault(&mut kmsg, iova_c, bdf, wait, &mut seen);
    t.fault_check(
        line.is_some(),
        &format!(
            "{l}: the kernel logs an IOMMU fault at unmapped IOVA {iova_c:#x} for {bdf}: {line:?}"
        ),
    );
    for s in &seen {
        println!("     kernel: {s}");
    }
    // Mapped again, the same IOVA takes the same write.
    if t.must(
        space.map(c.clone(), iova_c, true),
        &format!("{l}: map page C again at IOVA {iova_c:#x}"),
    )
    .is_some()
    {
        let r = edu.dma(ebuf, iova_c, XFER, DMA_TO_RAM);
        let got = contents(&c);
        let want = head(&p2, XFER);
        t.check(
            r.is_ok() && got == want,
            &format!(
                "{l}: mapped again, the device's write to IOVA {iova_c:#x} lands ({r:?}, {})",
                first_diff(&got, &want)
            ),
        );
    }
    test_irqs(t, l, edu, iova_b, &b, &p2[..16]);
    for iova in [iova_a, iova_b, iova_c] {
        t.check(
            space.unmap(iova).is_ok(),
            &format!("{l}: unmap IOVA {iova:#x}"),
        );
    }
    t.check(
        [&a, &b, &c, &d].iter().all(|m| Arc::strong_count(m) == 1),
        &format!("{l}: the space released the four pages"),
    );
}

/// INTx and MSI from the device itself, on eventfds; `iova` maps `buf` writable (the
/// DMA completion interrupt's transfer of the device buffer's first bytes, `head`,
/// goes there).
fn test_irqs(t: &mut Tally, l: &str, edu: &Edu, iova: u64, buf: &Buf, head: &[u8]) {
    let dev = &edu.dev;
    let short = Duration::from_millis(300);
    let wait = Duration::from_secs(5);
    // Nothing pending from an earlier run.
    edu.set(REG_IRQ_ACK, 0xffff_ffff);
    t.check(
        edu.reg(REG_IRQ_STATUS) == Some(0),
        &format!(
            "{l}: interrupt status 0 after acknowledging all ({:x?})",
            edu.reg(REG_IRQ_STATUS)
        ),
    );

    // INTx (the device's default while MSI is off).
    let Ok(trig) = EventFd::new() else {
        t.check(false, &format!("{l}: eventfd"));
        return;
    };
    if t.must(
        dev.enable_intx(trig.as_fd(), None),
        &format!("{l}: VFIO_DEVICE_SET_IRQS: INTx on an eventfd"),
    )
    .is_some()
    {
        t.check(
            wait_event(&trig, short) == 0,
            &format!("{l}: INTx: no event before the device raises one"),
        );
        edu.set(REG_IRQ_RAISE, 0x1);
        let n = wait_event(&trig, wait);
        t.check(
            n > 0 && edu.reg(REG_IRQ_STATUS) == Some(0x1),
            &format!(
                "{l}: INTx: the raise register signals the eventfd (count {n}, status {:x?})",
                edu.reg(REG_IRQ_STATUS)
            ),
        );
        // The kernel masked the line; acknowledge at the device, then unmask.
        edu.set(REG_IRQ_ACK, 0x1);
        t.must(
            dev.unmask_irq(IrqIndex::Intx, 0, 1),
            &format!("{l}: INTx unmask"),
        );
        edu.set(REG_IRQ_RAISE, 0x2);
        let n = wait_event(&trig, wait);
        t.check(
            n > 0,
            &format!("{l}: INTx: after ack and unmask a second raise signals again (count {n})"),
        );
        edu.set(REG_IRQ_ACK, 0x2);
        t.must(
            dev.unmask_irq(IrqIndex::Intx, 0, 1),
            &format!("{l}: INTx unmask"),
        );
        // Masked: a raise stays pending until the unmask.
        t.must(
            dev.mask_irq(IrqIndex::Intx, 0, 1),
            &format!("{l}: INTx mask"),
        );
        edu.set(REG_IRQ_RAISE, 0x4);
        t.check(
            wait_event(&trig, short) == 0,
            &format!("{l}: INTx: a raise while masked signals nothing"),
        );
        t.must(
            dev.unmask_irq(IrqIndex::Intx, 0, 1),
            &format!("{l}: INTx unmask"),
        );
        let n = wait_event(&trig, wait);
        t.check(
            n > 0,
            &format!("{l}: INTx: the pending level signals once unmasked (count {n})"),
        );
        edu.set(REG_IRQ_ACK, 0x4);
        t.must(dev.disable_irq(IrqIndex::Intx), &format!("{l}: INTx off"));
    }

    // MSI (one vector: hw/misc/edu.c msi_init with 1 vector).
    let info = t.must(
        dev.irq_info(IrqIndex::Msi.raw()),
        &format!("{l}: GET_IRQ_INFO MSI"),
    );
    t.check(
        info.as_ref().is_some_and(|i| i.count == 1 && i.eventfd()),
        &format!("{l}: MSI: one vector, EVENTFD ({info:?})"),
    );
    let Ok(msi) = EventFd::new() else {
        t.check(false, &format!("{l}: eventfd"));
        return;
    };
    if t.must(
        dev.enable_msi(&[Some(msi.as_fd())]),
        &format!("{l}: VFIO_DEVICE_SET_IRQS: MSI on an eventfd"),
    )
    .is_none()
    {
        return;
    }
    t.check(
        wait_event(&msi, short) == 0,
        &format!("{l}: MSI: no event before the device raises one"),
    );
    edu.set(REG_IRQ_RAISE, 0x8);
    let n = wait_event(&msi, wait);
    t.check(
        n > 0,
        &format!("{l}: MSI: the raise register signals the eventfd (count {n})"),
    );
    edu.set(REG_IRQ_ACK, 0x8);
    // The DMA engine's completion interrupt (command bit 2) on MSI, for a transfer of
    // the device buffer's first 16 bytes to the mapped page.
    fill(buf, &[0; EDU_BUF_SIZE]);
    let r = edu.dma(u64::from(EDU_BUF), iova, 16, DMA_TO_RAM | DMA_IRQ);
    let n = wait_event(&msi, wait);
    let st = edu.reg(REG_IRQ_STATUS);
    let got = contents(buf);
    t.check(
        r.is_ok() && n > 0 && st.is_some_and(|s| s & DMA_DONE_IRQ != 0),
        &format!("{l}: MSI: the DMA engine's completion interrupt signals the eventfd ({r:?}, count {n}, status {st:x?})"),
    );
    t.check(
        got[..16] == *head && got[16..].iter().all(|&x| x == 0),
        &format!(
            "{l}: that transfer wrote 16 bytes at IOVA {iova:#x} ({:02x?})",
            &got[..16]
        ),
    );
    edu.set(REG_IRQ_ACK, DMA_DONE_IRQ);
    t.must(dev.disable_irq(IrqIndex::Msi), &format!("{l}: MSI off"));
}

/// Identify the device through its BAR and map the BAR.
fn open_edu(t: &mut Tally, l: &str, dev: Device) -> Option<Edu> {
    let bar = t.must(dev.mmap_region(0), &format!("{l}: mmap BAR 0"))?;
    let edu = Edu { dev, bar };
    let id = edu.reg(REG_ID);
    t.check(
        id.is_some_and(|v| v & 0xffff == 0x00ed),
        &format!("{l}: identification register {id:x?} is 0xRRrr00ed"),
    );
    let probe = 0x1234_5678u32;
    edu.set(REG_LIVENESS, probe);
    let back = edu.reg(REG_LIVENESS);
    t.check(
        back == Some(!probe),
        &format!("{l}: liveness register inverts {probe:#x}: {back:x?}"),
    );
    Some(edu)
}

/// Through the type1 container.
fn test_container(t: &mut Tally, bdf: Bdf, seed: u32) {
    let sys = Arc::new(RealSys::new());
    let root = Path::new("/");
    let l = "type1";
    let Some(gid) = t.must(
        host::iommu_group(root, bdf),
        &format!("{l}: {bdf} iommu group"),
    ) else {
        return;
    };
    let Some(container) = t.must(
        Container::open(&sys, Path::new("/dev/vfio/vfio")),
        &format!("{l}: open /dev/vfio/vfio"),
    ) else {
        return;
    };
    let Some(group) = t.must(
        Group::open(&sys, root, gid),
        &format!("{l}: open group {gid}"),
    ) else {
        return;
    };
    if t.must(
        group.set_container(&container),
        &format!("{l}: SET_CONTAINER"),
    )
    .is_none()
        || t.must(
            container.set_iommu(Extension::Type1v2),
            &format!("{l}: SET_IOMMU TYPE1v2"),
        )
        .is_none()
    {
        return;
    }
    let Some(space) = t.must(container.dma_space(), &format!("{l}: DMA space")) else {
        return;
    };
    let Some(dev) = t.must(group.device(&bdf.to_string()), &format!("{l}: open {bdf}")) else {
        return;
    };
    let Some(edu) = open_edu(t, l, dev) else {
        return;
    };
    test_dma(
        t,
        &Run {
            label: l,
            bdf,
            seed,
        },
        &edu,
        &space,
    );
}

/// Through iommufd: an IOAS and the device cdev.
fn test_iommufd(t: &mut Tally, bdf: Bdf, seed: u32) {
    let sys = Arc::new(RealSys::new());
    let root = Path::new("/");
    let l = "iommufd";
    let Some(cdev) = host::vfio_cdev(root, bdf) else {
        t.check(false, &format!("{l}: {bdf} has a vfio-dev/vfioN cdev"));
        return;
    };
    let Some(fd) = t.must(
        Iommufd::open(&sys, Path::new("/dev/iommu")),
        &format!("{l}: open /dev/iommu"),
    ) else {
        return;
    };
    let Some(ioas) = t.must(fd.alloc_ioas(), &format!("{l}: IOMMU_IOAS_ALLOC")) else {
        return;
    };
    let path = Path::new("/dev/vfio/devices").join(&cdev);
    let Some(dev) = t.must(
        Device::open_cdev(&sys, &path, &bdf.to_string()),
        &format!("{l}: open {}", path.display()),
    ) else {
        return;
    };
    if t.must(dev.bind_iommufd(&fd, None), &format!("{l}: BIND_IOMMUFD"))
        .is_none()
        || t.must(dev.attach_ioas(&ioas), &format!("{l}: ATTACH_IOMMUFD_PT"))
            .is_none()
        || t.must(ioas.refresh_ranges(), &format!("{l}: IOAS ranges"))
            .is_none()
    {
        return;
    }
    let Some(edu) = open_edu(t, l, dev) else {
        return;
    };
    test_dma(
        t,
        &Run {
            label: l,
            bdf,
            seed,
        },
        &edu,
        &ioas,
    );
}

fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut fault_log = None;
    if let Some(i) = args.iter().position(|a| a == "--fault-log") {
        if i + 1 >= args.len() {
            eprintln!("vm_edu: --fault-log needs a file");
            return std::process::ExitCode::from(2);
        }
        fault_log = Some(std::path::PathBuf::from(args.remove(i + 1)));
        args.remove(i);
    }
    if args.is_empty() {
        args = std::env::var("EDU_DMA")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
    }
    let mut t = Tally::new();
    t.faults = fault_log.as_ref().map(|_| Vec::new());
    if args.is_empty() {
        t.check(false, "no BDF given (argv or $EDU_DMA)");
    }
    let root = Path::new("/");
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    let iommufd_kernel = std::env::var("KERNEL").is_ok_and(|k| k == "iommufd");
    for a in &args {
        let bdf = match a.parse::<Bdf>() {
            Ok(b) => b,
            Err(e) => {
                t.check(false, &format!("{a}: not a PCI address: {e}"));
                continue;
            }
        };
        println!("== {bdf}");
        let ids = host::sysfs_ids(root, bdf);
        if !t.check(
            ids == Some((0x1234, 0x11e8)),
            &format!("{bdf} is QEMU's edu device 1234:11e8 ({ids:x?})"),
        ) {
            continue;
        }
        test_container(&mut t, bdf, seed);
        if Path::new("/dev/iommu").exists() {
            // The Intel driver prints fault records under a rate limit of 5 s
            // (drivers/iommu/intel/dmar.c dmar_fault, DEFAULT_RATELIMIT_INTERVAL): seen
            // on the iommufd kernel, a fault soon after the type1 pass's three was
            // handled ("DRHD: handling fault status reg 2") with no record printed. Let
            // the window pass so this pass's faults are logged too.
            std::thread::sleep(Duration::from_millis(5500));
            test_iommufd(&mut t, bdf, seed.rotate_left(7));
        } else {
            // The stock kernel has no iommufd; the iommufd kernel must have it.
            if iommufd_kernel {
                t.check(false, "no /dev/iommu on the iommufd kernel");
            } else {
                println!("     no /dev/iommu: the iommufd pass runs on the iommufd kernel");
            }
        }
    }
    if let (Some(path), Some(lines)) = (&fault_log, &t.faults) {
        let bad = lines.iter().filter(|l| l.starts_with("FAIL")).count();
        println!(
            "fault log: {} passed, {bad} failed (in {})",
            lines.len() - bad,
            path.display()
        );
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        if let Err(e) = std::fs::write(path, text) {
            t.check(false, &format!("write {}: {e}", path.display()));
        }
    }
    println!("{} passed, {} failed", t.passed, t.failed);
    if t.failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
