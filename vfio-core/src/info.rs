//! Pure parsers of the kernel's variable-size VFIO answers and their capability chains.
//!
//! Each takes the bytes the kernel filled (`argsz` first) and returns a typed value or
//! a small [`ParseError`] saying what was wrong and at which offset. Contract: no
//! function here panics on any input, every walk is bounded (a capability's `next`
//! must point strictly forward, so a chain of N bytes has fewer than N/8 links), and
//! no count is trusted beyond the bytes present. Fields are native-endian, as the
//! kernel writes them.

use bitflags::bitflags;
use passthru_pci_ids::Bdf;

use crate::sys::IovaRange;

/// What was wrong with a kernel answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Fewer bytes than the structure at `offset` needs.
    Truncated,
    /// A capability offset points into the fixed header or past the end.
    BadCapOffset,
    /// A capability's `next` does not point forward (a loop).
    CapLoop,
}

/// A parse failure and the byte offset where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// What was wrong.
    pub kind: ParseErrorKind,
    /// Offset into the answer.
    pub offset: usize,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            ParseErrorKind::Truncated => "truncated structure",
            ParseErrorKind::BadCapOffset => "capability offset out of bounds",
            ParseErrorKind::CapLoop => "capability chain does not move forward",
        };
        write!(f, "{what} at offset {:#x}", self.offset)
    }
}

impl std::error::Error for ParseError {}

fn err(kind: ParseErrorKind, offset: usize) -> ParseError {
    ParseError { kind, offset }
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, ParseError> {
    off.checked_add(2)
        .and_then(|end| b.get(off..end))
        .map(|s| u16::from_ne_bytes([s[0], s[1]]))
        .ok_or(err(ParseErrorKind::Truncated, off))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, ParseError> {
    off.checked_add(4)
        .and_then(|end| b.get(off..end))
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(err(ParseErrorKind::Truncated, off))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, ParseError> {
    off.checked_add(8)
        .and_then(|end| b.get(off..end))
        .map(|s| u64::from_ne_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]))
        .ok_or(err(ParseErrorKind::Truncated, off))
}

/// The `argsz` the kernel reports as needed (first field), or `None` when `buf` is
/// shorter than four bytes. When it exceeds the buffer passed, ask again with that size.
pub fn argsz(buf: &[u8]) -> Option<u32> {
    u32_at(buf, 0).ok()
}

/// One link of a capability chain (`struct vfio_info_cap_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapHeader {
    /// Capability id.
    pub id: u16,
    /// Capability version.
    pub version: u16,
    /// Offset of the header in the answer.
    pub offset: usize,
    /// Bytes available to this capability (up to the next one or the end).
    pub len: usize,
}

/// Walk a capability chain starting at `first` (0 = none); caps must lie at or after
/// `header_len` and inside `buf`, and each `next` must point strictly forward.
///
/// # Errors
///
/// A ParseError at the offending header: a capability before `header_len` or past `buf`, or
/// a `next` that does not point forward.
pub fn cap_chain(buf: &[u8], first: u32, header_len: usize) -> Result<Vec<CapHeader>, ParseError> {
    let mut out = Vec::new();
    let mut off = first as usize;
    let mut prev = 0usize;
    while off != 0 {
        if off < header_len || off <= prev {
            let kind = if off <= prev && prev != 0 {
                ParseErrorKind::CapLoop
            } else {
                ParseErrorKind::BadCapOffset
            };
            return Err(err(kind, off));
        }
        if off.checked_add(8).is_none_or(|end| end > buf.len()) {
            return Err(err(ParseErrorKind::BadCapOffset, off));
        }
        let id = u16_at(buf, off)?;
        let version = u16_at(buf, off + 2)?;
        let next = u32_at(buf, off + 4)? as usize;
        let end = if next == 0 {
            buf.len()
        } else {
            next.min(buf.len())
        };
        if next != 0 && next <= off {
            return Err(err(ParseErrorKind::CapLoop, off + 4));
        }
        // The kernel appends each capability after the whole previous one
        // (`vfio_info_cap_add`), so a `next` inside this capability's own 8-byte header
        // would make two capabilities overlap; refusing it also keeps the bound of
        // fewer than len/8 links. Found by the `vfio_info` fuzz target.
        if next != 0 && next < off + 8 {
            return Err(err(ParseErrorKind::BadCapOffset, off + 4));
        }
        out.push(CapHeader {
            id,
            version,
            offset: off,
            len: end - off,
        });
        prev = off;
        off = next;
    }
    Ok(out)
}

fn cap_bytes<'a>(buf: &'a [u8], cap: &CapHeader) -> &'a [u8] {
    buf.get(cap.offset..cap.offset + cap.len).unwrap_or(&[])
}

/// Bytes the kernel says are valid: `buf` cut at `argsz` when `argsz` is smaller.
fn valid(buf: &[u8]) -> &[u8] {
    match argsz(buf) {
        Some(a) if (a as usize) < buf.len() => &buf[..a as usize],
        _ => buf,
    }
}

// ---------------------------------------------------------------------------------
// VFIO_IOMMU_GET_INFO

/// `VFIO_IOMMU_INFO_CAPS`: the answer carries a capability chain.
pub const IOMMU_INFO_CAPS: u32 = 1 << 1;
/// Capability ids of `VFIO_IOMMU_GET_INFO`.
pub mod iommu_cap {
    /// `VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE`.
    pub const IOVA_RANGE: u16 = 1;
    /// `VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION`.
    pub const MIGRATION: u16 = 2;
    /// `VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL`.
    pub const DMA_AVAIL: u16 = 3;
}

/// The migration capability of the type1 IOMMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationCap {
    /// Flags.
    pub flags: u32,
    /// Page sizes supported for dirty tracking.
    pub pgsize_bitmap: u64,
    /// Largest dirty bitmap, bytes.
    pub max_dirty_bitmap_size: u64,
}

/// A parsed `VFIO_IOMMU_GET_INFO` answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IommuInfo {
    /// `argsz` as the kernel left it (the size it needs).
    pub argsz: u32,
    /// `VFIO_IOMMU_INFO_*` flags.
    pub flags: u32,
    /// Supported IOMMU page sizes (bitmap).
    pub iova_pgsizes: u64,
    /// Usable IOVA ranges (empty when the kernel sent no IOVA-range capability).
    pub iova_ranges: Vec<IovaRange>,
    /// How many more DMA mappings the container accepts.
    pub dma_avail: Option<u32>,
    /// Dirty-tracking capability.
    pub migration: Option<MigrationCap>,
    /// Capabilities not decoded here: (id, version).
    pub other_caps: Vec<(u16, u16)>,
}

impl IommuInfo {
    /// Smallest IOMMU page size (4 KiB when the kernel reports none).
    pub fn min_page_size(&self) -> u64 {
        if self.iova_pgsizes == 0 {
            4096
        } else {
            1u64 << self.iova_pgsizes.trailing_zeros()
        }
    }
}

/// Length of `struct vfio_iommu_type1_info`.
pub const IOMMU_INFO_LEN: usize = 24;

/// Parse a `VFIO_IOMMU_GET_INFO` answer (`struct vfio_iommu_type1_info` + caps).
///
/// # Errors
///
/// A ParseError with its kind and the byte offset where the answer is truncated or its
/// capability chain is malformed.
pub fn parse_iommu_info(buf: &[u8]) -> Result<IommuInfo, ParseError> {
    let buf = valid(buf);
    if buf.len() < IOMMU_INFO_LEN {
        return Err(err(ParseErrorKind::Truncated, 0));
    }
    let mut info = IommuInfo {
        argsz: u32_at(buf, 0)?,
        flags: u32_at(buf, 4)?,
        iova_pgsizes: u64_at(buf, 8)?,
        ..Default::default()
    };
    if info.flags & IOMMU_INFO_CAPS == 0 {
        return Ok(info);
    }
    let first = u32_at(buf, 16)?;
    for cap in cap_chain(buf, first, IOMMU_INFO_LEN)? {
        let c = cap_bytes(buf, &cap);
        let base = cap.offset;
        let at = |e: ParseError| err(e.kind, base + e.offset);
        match cap.id {
            iommu_cap::IOVA_RANGE => {
                let n = u32_at(c, 8).map_err(at)? as usize;
                let need = n.checked_mul(16).and_then(|x| x.checked_add(16));
                if need.is_none_or(|need| need > c.len()) {
                    return Err(err(ParseErrorKind::Truncated, base + 8));
                }
                for i in 0..n {
                    let o = 16 + i * 16;
                    info.iova_ranges.push(IovaRange {
                        start: u64_at(c, o).map_err(at)?,
                        end: u64_at(c, o + 8).map_err(at)?,
                    });
                }
            }
            iommu_cap::MIGRATION => {
                info.migration = Some(MigrationCap {
                    flags: u32_at(c, 8).map_err(at)?,
                    pgsize_bitmap: u64_at(c, 16).map_err(at)?,
                    max_dirty_bitmap_size: u64_at(c, 24).map_err(at)?,
                });
            }
            iommu_cap::DMA_AVAIL => info.dma_avail = Some(u32_at(c, 8).map_err(at)?),
            _ => info.other_caps.push((cap.id, cap.version)),
        }
    }
    Ok(info)
}

// ---------------------------------------------------------------------------------
// VFIO_DEVICE_GET_INFO

bitflags! {
    /// `VFIO_DEVICE_FLAGS_*` (unknown bits kept).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct DeviceFlags: u32 {
        /// `VFIO_DEVICE_FLAGS_RESET`: `VFIO_DEVICE_RESET` is supported.
        const RESET = 1 << 0;
        /// `VFIO_DEVICE_FLAGS_PCI`: a PCI device.
        const PCI = 1 << 1;
        /// `VFIO_DEVICE_FLAGS_PLATFORM`.
        const PLATFORM = 1 << 2;
        /// `VFIO_DEVICE_FLAGS_AMBA`.
        const AMBA = 1 << 3;
        /// `VFIO_DEVICE_FLAGS_CCW`.
        const CCW = 1 << 4;
        /// `VFIO_DEVICE_FLAGS_AP`.
        const AP = 1 << 5;
        /// `VFIO_DEVICE_FLAGS_FSL_MC`.
        const FSL_MC = 1 << 6;
        /// `VFIO_DEVICE_FLAGS_CAPS`: the answer carries a capability chain.
        const CAPS = 1 << 7;
        /// `VFIO_DEVICE_FLAGS_CDX`.
        const CDX = 1 << 8;
        const _ = !0;
    }
}

/// Length of `struct vfio_device_info`.
pub const DEVICE_INFO_LEN: usize = 24;

/// A parsed `VFIO_DEVICE_GET_INFO` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `argsz` as the kernel left it.
    pub argsz: u32,
    /// Device flags.
    pub flags: DeviceFlags,
    /// Number of regions (PCI: BAR0-5, ROM, CONFIG, VGA and device-specific).
    pub num_regions: u32,
    /// Number of IRQ indexes.
    pub num_irqs: u32,
    /// The capability chain, undecoded (ids and where they sit).
    pub caps: Vec<CapHeader>,
}

/// Parse a `VFIO_DEVICE_GET_INFO` answer.
///
/// # Errors
///
/// A ParseError with its kind and the byte offset where the answer is truncated or its
/// capability chain is malformed.
pub fn parse_device_info(buf: &[u8]) -> Result<DeviceInfo, ParseError> {
    let buf = valid(buf);
    if buf.len() < DEVICE_INFO_LEN {
        return Err(err(ParseErrorKind::Truncated, 0));
    }
    let flags = DeviceFlags::from_bits_retain(u32_at(buf, 4)?);
    let caps = if flags.contains(DeviceFlags::CAPS) {
        cap_chain(buf, u32_at(buf, 16)?, DEVICE_INFO_LEN)?
    } else {
        Vec::new()
    };
    Ok(DeviceInfo {
        argsz: u32_at(buf, 0)?,
        flags,
        num_regions: u32_at(buf, 8)?,
        num_irqs: u32_at(buf, 12)?,
        caps,
    })
}

// ---------------------------------------------------------------------------------
// VFIO_DEVICE_GET_REGION_INFO

bitflags! {
    /// `VFIO_REGION_INFO_FLAG_*` (unknown bits kept).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct RegionFlags: u32 {
        /// `VFIO_REGION_INFO_FLAG_READ`.
        const READ = 1 << 0;
        /// `VFIO_REGION_INFO_FLAG_WRITE`.
        const WRITE = 1 << 1;
        /// `VFIO_REGION_INFO_FLAG_MMAP`.
        const MMAP = 1 << 2;
        /// `VFIO_REGION_INFO_FLAG_CAPS`.
        const CAPS = 1 << 3;
        const _ = !0;
    }
}

/// Capability ids of `VFIO_DEVICE_GET_REGION_INFO`.
pub mod region_cap {
    /// `VFIO_REGION_INFO_CAP_SPARSE_MMAP`.
    pub const SPARSE_MMAP: u16 = 1;
    /// `VFIO_REGION_INFO_CAP_TYPE`.
    pub const TYPE: u16 = 2;
    /// `VFIO_REGION_INFO_CAP_MSIX_MAPPABLE`.
    pub const MSIX_MAPPABLE: u16 = 3;
}

/// One mmap-able window of a sparse region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseArea {
    /// Offset within the region.
    pub offset: u64,
    /// Length.
    pub size: u64,
}

/// Length of `struct vfio_region_info`.
pub const REGION_INFO_LEN: usize = 32;

/// A parsed `VFIO_DEVICE_GET_REGION_INFO` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    /// `argsz` as the kernel left it.
    pub argsz: u32,
    /// Region flags.
    pub flags: RegionFlags,
    /// Region index.
    pub index: u32,
    /// Region size in bytes.
    pub size: u64,
    /// Offset of the region in the device fd (for pread/pwrite/mmap).
    pub offset: u64,
    /// Sparse mmap areas, when the region has that capability.
    pub sparse_mmap: Option<Vec<SparseArea>>,
    /// (type, subtype), when the region has a type capability.
    pub region_type: Option<(u32, u32)>,
    /// The MSI-X table may be mmapped (`VFIO_REGION_INFO_CAP_MSIX_MAPPABLE`).
    pub msix_mappable: bool,
    /// Capabilities not decoded here: (id, version).
    pub other_caps: Vec<(u16, u16)>,
}

/// Parse a `VFIO_DEVICE_GET_REGION_INFO` answer.
///
/// # Errors
///
/// A ParseError with its kind and the byte offset where the answer is truncated or its
/// capability chain (a sparse-mmap area list) is malformed.
pub fn parse_region_info(buf: &[u8]) -> Result<RegionInfo, ParseError> {
    let buf = valid(buf);
    if buf.len() < REGION_INFO_LEN {
        return Err(err(ParseErrorKind::Truncated, 0));
    }
    let flags = RegionFlags::from_bits_retain(u32_at(buf, 4)?);
    let mut info = RegionInfo {
        argsz: u32_at(buf, 0)?,
        flags,
        index: u32_at(buf, 8)?,
        size: u64_at(buf, 16)?,
        offset: u64_at(buf, 24)?,
        sparse_mmap: None,
        region_type: None,
        msix_mappable: false,
        other_caps: Vec::new(),
    };
    if !flags.contains(RegionFlags::CAPS) {
        return Ok(info);
    }
    // The kernel sets CAPS even when argsz was too small for the chain and then leaves
    // cap_offset at 0: the chain is simply absent from this answer.
    for cap in cap_chain(buf, u32_at(buf, 12)?, REGION_INFO_LEN)? {
        let c = cap_bytes(buf, &cap);
        let base = cap.offset;
        let at = |e: ParseError| err(e.kind, base + e.offset);
        match cap.id {
            region_cap::SPARSE_MMAP => {
                let n = u32_at(c, 8).map_err(at)? as usize;
                let need = n.checked_mul(16).and_then(|x| x.checked_add(16));
                if need.is_none_or(|need| need > c.len()) {
                    return Err(err(ParseErrorKind::Truncated, base + 8));
                }
                let mut areas = Vec::with_capacity(n);
                for i in 0..n {
                    let o = 16 + i * 16;
                    areas.push(SparseArea {
                        offset: u64_at(c, o).map_err(at)?,
                        size: u64_at(c, o + 8).map_err(at)?,
                    });
                }
                info.sparse_mmap = Some(areas);
            }
            region_cap::TYPE => {
                info.region_type = Some((u32_at(c, 8).map_err(at)?, u32_at(c, 12).map_err(at)?))
            }
            region_cap::MSIX_MAPPABLE => info.msix_mappable = true,
            _ => info.other_caps.push((cap.id, cap.version)),
        }
    }
    Ok(info)
}

// ---------------------------------------------------------------------------------
// VFIO_DEVICE_GET_PCI_HOT_RESET_INFO

/// `VFIO_PCI_HOT_RESET_FLAG_DEV_ID`: entries carry iommufd device ids, not groups.
pub const HOT_RESET_FLAG_DEV_ID: u32 = 1 << 0;
/// `VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED`: every affected device is owned by the caller.
pub const HOT_RESET_FLAG_DEV_ID_OWNED: u32 = 1 << 1;

/// One device a hot reset would affect (`struct vfio_pci_dependent_device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DependentDevice {
    /// IOMMU group id (legacy) or iommufd device id (cdev mode, `DEV_ID` flag).
    pub group_or_devid: u32,
    /// The device.
    pub bdf: Bdf,
}

/// A parsed `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotResetInfo {
    /// `VFIO_PCI_HOT_RESET_FLAG_*`.
    pub flags: u32,
    /// How many devices the kernel reports (the size to ask for on `ENOSPC`).
    pub count: u32,
    /// The affected devices (empty when the buffer only held the header).
    pub devices: Vec<DependentDevice>,
}

/// Length of `struct vfio_pci_hot_reset_info` without its array.
pub const HOT_RESET_INFO_LEN: usize = 12;

/// Parse a hot-reset info answer; with only the header (the `ENOSPC` answer) the
/// device list is empty and `count` says how many entries to make room for.
///
/// # Errors
///
/// A ParseError with its kind and the byte offset where the answer is truncated.
pub fn parse_hot_reset_info(buf: &[u8]) -> Result<HotResetInfo, ParseError> {
    if buf.len() < HOT_RESET_INFO_LEN {
        return Err(err(ParseErrorKind::Truncated, 0));
    }
    let flags = u32_at(buf, 4)?;
    let count = u32_at(buf, 8)?;
    let mut devices = Vec::new();
    let need = (count as usize)
        .checked_mul(8)
        .and_then(|x| x.checked_add(HOT_RESET_INFO_LEN));
    if need.is_some_and(|need| need <= buf.len()) {
        for i in 0..count as usize {
            let o = HOT_RESET_INFO_LEN + i * 8;
            let id = u32_at(buf, o)?;
            let segment = u16_at(buf, o + 4)?;
            let bus = buf[o + 6];
            let devfn = buf[o + 7];
            let bdf = Bdf {
                domain: segment,
                bus,
                device: devfn >> 3,
                function: devfn & 7,
            };
            devices.push(DependentDevice {
                group_or_devid: id,
                bdf,
            });
        }
    }
    Ok(HotResetInfo {
        flags,
        count,
        devices,
    })
}

#[cfg(test)]
pub(crate) mod testdata {
    //! Kernel answers rebuilt field by field from the real-kernel captures in
    //! tests/data/captures (Debian 6.12 guest, emulated Intel/AMD IOMMU).

    fn push32(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_ne_bytes());
    }
    fn push64(v: &mut Vec<u8>, x: u64) {
        v.extend_from_slice(&x.to_ne_bytes());
    }
    fn cap(v: &mut Vec<u8>, id: u16, ver: u16, next: u32) {
        v.extend_from_slice(&id.to_ne_bytes());
        v.extend_from_slice(&ver.to_ne_bytes());
        push32(v, next);
    }

    /// tcg-amd/vfiotest-0000:06:00.0.txt: `flags=0x3 iova_pgsizes=0xfff7ffffff000
    /// argsz=4096 cap_offset=24`; caps migration (id 2: flags 0, pgsize 0x1000,
    /// max_dirty 268435456), dma_avail (id 3: 65535), iova ranges (id 1) with
    /// [0x0-0xfedfffff] [0xfef00000-0xfcffffffff] [0x10000000000-0xffffffffffffffff].
    pub fn iommu_info_amd() -> Vec<u8> {
        let mut v = Vec::new();
        push32(&mut v, 4096);
        push32(&mut v, 0x3);
        push64(&mut v, 0xfff7ffffff000);
        push32(&mut v, 24);
        push32(&mut v, 0);
        // migration at 24, 32 bytes
        cap(&mut v, 2, 1, 56);
        push32(&mut v, 0);
        push32(&mut v, 0);
        push64(&mut v, 0x1000);
        push64(&mut v, 268435456);
        // dma_avail at 56, 16 bytes
        cap(&mut v, 3, 1, 72);
        push32(&mut v, 65535);
        push32(&mut v, 0);
        // iova ranges at 72
        cap(&mut v, 1, 1, 0);
        push32(&mut v, 3);
        push32(&mut v, 0);
        for (s, e) in [
            (0x0, 0xfedfffff),
            (0xfef00000, 0xfcffffffff),
            (0x10000000000, 0xffffffffffffffff),
        ] {
            push64(&mut v, s);
            push64(&mut v, e);
        }
        v.resize(4096, 0);
        v
    }

    /// tcg-amd/vfiotest-0000:06:00.0.txt: `flags=0x3 (RESET=1 PCI=1 CAPS=0)
    /// num_regions=9 num_irqs=5`.
    pub fn device_info_e1000e() -> Vec<u8> {
        let mut v = Vec::new();
        for x in [24, 0x3, 9, 5, 0, 0] {
            push32(&mut v, x);
        }
        v
    }

    /// Region 7 (CONFIG) of the same device: `size=0x1000 offset=0x70000000000 flags=0x3`.
    pub fn region_config() -> Vec<u8> {
        let mut v = Vec::new();
        for x in [32, 0x3, 7, 0] {
            push32(&mut v, x);
        }
        push64(&mut v, 0x1000);
        push64(&mut v, 0x70000000000);
        v
    }

    /// Region 3 (BAR3, the MSI-X BAR) of the same device: `size=0x4000
    /// offset=0x30000000000 flags=0xf`, one cap `id=3 ver=1` (MSI-X mappable).
    pub fn region_bar3_msix() -> Vec<u8> {
        let mut v = Vec::new();
        for x in [40, 0xf, 3, 32] {
            push32(&mut v, x);
        }
        push64(&mut v, 0x4000);
        push64(&mut v, 0x30000000000);
        cap(&mut v, 3, 1, 0);
        v
    }

    /// [`region_bar3_msix`] with a sparse-mmap capability (id 1, version 1) in place of
    /// the MSI-X one: areas [0, 0x1000) and [0x3000, 0x4000), the shape vfio-pci gives a
    /// BAR around an MSI-X table that may not be mapped (vfio_pci_core.c, the sparse cap
    /// of VFIO_DEVICE_GET_REGION_INFO).
    pub fn region_bar3_sparse() -> Vec<u8> {
        let mut v = region_bar3_msix();
        v.truncate(32);
        cap(&mut v, 1, 1, 0);
        push32(&mut v, 2);
        push32(&mut v, 0);
        for (o, s) in [(0u64, 0x1000u64), (0x3000, 0x1000)] {
            push64(&mut v, o);
            push64(&mut v, s);
        }
        let len = v.len() as u32;
        v[..4].copy_from_slice(&len.to_ne_bytes());
        v
    }

    /// Hot-reset info of 0000:06:00.0: `dep dev group=16 0000:06:00.0`, `dep dev group=16 0000:06:00.1`.
    pub fn hot_reset_06() -> Vec<u8> {
        let mut v = Vec::new();
        push32(&mut v, 28);
        push32(&mut v, 0);
        push32(&mut v, 2);
        for f in [0u8, 1] {
            push32(&mut v, 16);
            v.extend_from_slice(&0u16.to_ne_bytes());
            v.push(0x06);
            v.push(f);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::testdata::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn iommu_info_from_the_amd_capture() {
        let info = parse_iommu_info(&iommu_info_amd()).unwrap();
        assert_eq!(info.flags, 3);
        assert_eq!(info.iova_pgsizes, 0xfff7ffffff000);
        assert_eq!(info.min_page_size(), 4096);
        assert_eq!(info.dma_avail, Some(65535));
        assert_eq!(
            info.migration,
            Some(MigrationCap {
                flags: 0,
                pgsize_bitmap: 0x1000,
                max_dirty_bitmap_size: 268435456
            })
        );
        assert_eq!(info.iova_ranges.len(), 3);
        assert_eq!(
            info.iova_ranges[0],
            IovaRange {
                start: 0,
                end: 0xfedfffff
            }
        );
        assert_eq!(info.iova_ranges[2].end, u64::MAX);
        assert!(info.other_caps.is_empty());
    }

    #[test]
    fn iommu_info_without_caps_flag_ignores_the_chain() {
        let mut b = iommu_info_amd();
        b[4] = 1; // PGSIZES only
        let info = parse_iommu_info(&b).unwrap();
        assert!(info.iova_ranges.is_empty());
        assert_eq!(info.dma_avail, None);
    }

    #[test]
    fn iommu_info_short_answer_is_truncated_at_zero() {
        let e = parse_iommu_info(&[0u8; 20]).unwrap_err();
        assert_eq!(e, err(ParseErrorKind::Truncated, 0));
    }

    #[test]
    fn iova_range_count_beyond_the_bytes_is_refused() {
        let mut b = iommu_info_amd();
        // nr_iovas of the cap at 72 -> 1000 entries, far past argsz
        b[80..84].copy_from_slice(&1000u32.to_ne_bytes());
        b.truncate(200);
        b[..4].copy_from_slice(&200u32.to_ne_bytes());
        let e = parse_iommu_info(&b).unwrap_err();
        assert_eq!(e, err(ParseErrorKind::Truncated, 80));
    }

    // STYLE 12: a self-pointing capability ends the walk with an error.
    #[test]
    fn self_pointing_capability_is_a_loop_error() {
        let mut b = iommu_info_amd();
        b[28..32].copy_from_slice(&24u32.to_ne_bytes());
        assert_eq!(
            parse_iommu_info(&b).unwrap_err().kind,
            ParseErrorKind::CapLoop
        );
    }

    // The kernel appends capabilities one after another (vfio_info_cap_add): a `next`
    // inside the current capability's 8-byte header would overlap them.
    #[test]
    fn next_pointer_inside_the_current_capability_header_is_refused() {
        let mut b = iommu_info_amd();
        b[28..32].copy_from_slice(&28u32.to_ne_bytes());
        assert_eq!(
            parse_iommu_info(&b).unwrap_err(),
            err(ParseErrorKind::BadCapOffset, 28)
        );
        // And the chain bound holds: fewer than len/8 links for any bytes.
        let mut r = vec![0u8; 96];
        r[12..16].copy_from_slice(&32u32.to_ne_bytes());
        for p in (36..=88).step_by(4) {
            r[p..p + 4].copy_from_slice(&(p as u32).to_ne_bytes());
        }
        assert!(cap_chain(&r, 32, 32).is_err());
    }

    #[test]
    fn capability_pointing_into_the_header_is_refused() {
        let mut b = iommu_info_amd();
        b[16..20].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(
            parse_iommu_info(&b).unwrap_err(),
            err(ParseErrorKind::BadCapOffset, 8)
        );
    }

    #[test]
    fn device_info_from_the_capture() {
        let d = parse_device_info(&device_info_e1000e()).unwrap();
        assert!(d.flags.contains(DeviceFlags::RESET | DeviceFlags::PCI));
        assert_eq!((d.num_regions, d.num_irqs), (9, 5));
        assert!(d.caps.is_empty());
    }

    #[test]
    fn region_infos_from_the_capture() {
        let r = parse_region_info(&region_config()).unwrap();
        assert_eq!((r.index, r.size, r.offset), (7, 0x1000, 0x70000000000));
        assert_eq!(r.flags, RegionFlags::READ | RegionFlags::WRITE);
        let r = parse_region_info(&region_bar3_msix()).unwrap();
        assert!(r.msix_mappable);
        assert!(r.flags.contains(RegionFlags::MMAP | RegionFlags::CAPS));
    }

    #[test]
    fn sparse_mmap_areas_are_decoded() {
        let r = parse_region_info(&region_bar3_sparse()).unwrap();
        assert_eq!(
            r.sparse_mmap.unwrap(),
            vec![
                SparseArea {
                    offset: 0,
                    size: 0x1000
                },
                SparseArea {
                    offset: 0x3000,
                    size: 0x1000
                }
            ]
        );
    }

    #[test]
    fn hot_reset_info_from_the_capture() {
        let h = parse_hot_reset_info(&hot_reset_06()).unwrap();
        assert_eq!(h.count, 2);
        let names: Vec<String> = h.devices.iter().map(|d| d.bdf.to_string()).collect();
        assert_eq!(names, ["0000:06:00.0", "0000:06:00.1"]);
        assert!(h.devices.iter().all(|d| d.group_or_devid == 16));
    }

    // tcg-amd capture: `HOT_RESET_INFO (small argsz): errno=28 count=2 flags=0x0`.
    #[test]
    fn hot_reset_enospc_header_gives_the_count_and_no_devices() {
        let h = parse_hot_reset_info(&hot_reset_06()[..12]).unwrap();
        assert_eq!(h.count, 2);
        assert!(h.devices.is_empty());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_iommu_info(&bytes);
            let _ = parse_device_info(&bytes);
            let _ = parse_region_info(&bytes);
            let _ = parse_hot_reset_info(&bytes);
        }

        // Mutating any byte of a real answer never panics, and a successful parse
        // never reports more ranges than the bytes can hold.
        #[test]
        fn mutated_real_answer_is_bounded(pos in 0usize..200, val in any::<u8>(), cut in 24usize..4096) {
            let mut b = iommu_info_amd();
            b[pos] = val;
            b.truncate(cut);
            if let Ok(info) = parse_iommu_info(&b) {
                prop_assert!(info.iova_ranges.len() * 16 <= b.len());
            }
        }

        #[test]
        fn cap_chain_links_move_forward(bytes in proptest::collection::vec(any::<u8>(), 0..256), first in 0u32..256) {
            if let Ok(chain) = cap_chain(&bytes, first, 8) {
                for w in chain.windows(2) {
                    prop_assert!(w[1].offset > w[0].offset);
                }
                for c in &chain {
                    prop_assert!(c.offset + 8 <= bytes.len());
                }
            }
        }
    }
}
