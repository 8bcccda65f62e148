//! Capability walks and decoders.
//!
//! [`Capabilities`] walks the standard list (from the pointer at 0x34, or 0x14 in a
//! CardBus header) and [`ExtCapabilities`] the PCIe extended list (from 0x100).
//! Both are bounded: at most 48 standard and 960 extended entries, every offset
//! visited once. The two low bits of every pointer are reserved and masked off, as
//! the kernel (drivers/pci/pci.c `__pci_find_next_cap_ttl`, `PCI_EXT_CAP_NEXT`) and
//! lspci (ls-caps.c `show_caps`, ls-ecaps.c `show_ext_caps`) do. A walk yields
//! `Ok(capability)` items and ends either with `None` (a zero pointer, or an
//! extended header of 0 or all ones) or with exactly one `Err(WalkError)`: a
//! pointer into the header (< 0x40 standard, < 0x100 extended), a pointer past the
//! buffer, a pointer back to a capability already seen (this includes one pointing
//! to itself), a standard capability whose id reads 0xff (a broken chain: both the
//! kernel and lspci stop there), or too many entries. Unknown ids are
//! [`CapabilityId::Unknown`], never errors.
//!
//! Each decoder is a `Copy` value parsed from the whole config space and the
//! capability's offset; a capability that runs past the buffer is a
//! [`DecodeError`] naming the offset. [`Capability::decode`] /
//! [`ExtCapability::decode`] pick the decoder by id, and [`Decoded::fields`]
//! lists every decoded field by name for printers.

use crate::ids::{DeviceId, VendorId};
use core::fmt;

/// Most standard capabilities a walk returns ((256 - 64) / 4).
pub const MAX_STD_CAPS: usize = 48;
/// Most extended capabilities a walk returns ((4096 - 256) / 4).
pub const MAX_EXT_CAPS: usize = 960;

macro_rules! enum_with_unknown {
    (
        $(#[$m:meta])* pub enum $name:ident($ty:ty) {
            $( $(#[$vm:meta])* $var:ident = $val:expr => $label:expr ),+ $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vm])* $var, )+
            /// An id this crate does not name.
            Unknown($ty),
        }

        impl From<$ty> for $name {
            #[inline]
            fn from(v: $ty) -> $name {
                match v {
                    $( $val => $name::$var, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $ty {
            fn from(v: $name) -> $ty {
                match v {
                    $( $name::$var => $val, )+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl $name {
            /// The specification's name for this capability (`"Unknown"` for unknown ids).
            pub const fn name(&self) -> &'static str {
                match self {
                    $( $name::$var => $label, )+
                    $name::Unknown(_) => "Unknown",
                }
            }
        }
    };
}

enum_with_unknown! {
    /// Standard capability ids (PCI Code and ID Assignment spec, section 2).
    pub enum CapabilityId(u8) {
        /// PCI Power Management.
        PowerManagement = 0x01 => "Power Management",
        /// AGP.
        Agp = 0x02 => "AGP",
        /// Vital Product Data.
        Vpd = 0x03 => "Vital Product Data",
        /// Slot Identification.
        SlotId = 0x04 => "Slot Identification",
        /// Message Signaled Interrupts.
        Msi = 0x05 => "MSI",
        /// CompactPCI Hot Swap.
        CompactPciHotSwap = 0x06 => "CompactPCI Hot Swap",
        /// PCI-X.
        PciX = 0x07 => "PCI-X",
        /// HyperTransport.
        HyperTransport = 0x08 => "HyperTransport",
        /// Vendor Specific.
        VendorSpecific = 0x09 => "Vendor Specific",
        /// Debug port.
        DebugPort = 0x0a => "Debug Port",
        /// CompactPCI central resource control.
        CompactPciCrc = 0x0b => "CompactPCI Central Resource Control",
        /// PCI Hot-Plug (SHPC).
        HotPlug = 0x0c => "PCI Hot-Plug",
        /// Bridge subsystem vendor/device id.
        BridgeSubsystem = 0x0d => "Bridge Subsystem ID",
        /// AGP 8x.
        Agp3 = 0x0e => "AGP 8x",
        /// Secure device.
        SecureDevice = 0x0f => "Secure Device",
        /// PCI Express.
        PciExpress = 0x10 => "PCI Express",
        /// MSI-X.
        MsiX = 0x11 => "MSI-X",
        /// Serial ATA data/index configuration.
        Sata = 0x12 => "SATA Configuration",
        /// Advanced Features (conventional PCI FLR).
        AdvancedFeatures = 0x13 => "Advanced Features",
        /// Enhanced Allocation.
        EnhancedAllocation = 0x14 => "Enhanced Allocation",
        /// Flattening Portal Bridge.
        FlatteningPortalBridge = 0x15 => "Flattening Portal Bridge",
    }
}

enum_with_unknown! {
    /// Extended capability ids (PCI Code and ID Assignment spec, section 3).
    pub enum ExtCapabilityId(u16) {
        /// Advanced Error Reporting.
        Aer = 0x0001 => "Advanced Error Reporting",
        /// Virtual Channel (without MFVC).
        VirtualChannel = 0x0002 => "Virtual Channel",
        /// Device Serial Number.
        Dsn = 0x0003 => "Device Serial Number",
        /// Power Budgeting.
        PowerBudgeting = 0x0004 => "Power Budgeting",
        /// Root Complex Link Declaration.
        RcLinkDeclaration = 0x0005 => "Root Complex Link Declaration",
        /// Root Complex Internal Link Control.
        RcInternalLinkControl = 0x0006 => "Root Complex Internal Link Control",
        /// Root Complex Event Collector Endpoint Association.
        RcecEndpointAssociation = 0x0007 => "Root Complex Event Collector Endpoint Association",
        /// Multi-Function Virtual Channel.
        Mfvc = 0x0008 => "Multi-Function Virtual Channel",
        /// Virtual Channel (with MFVC).
        VirtualChannel9 = 0x0009 => "Virtual Channel",
        /// Root Complex Register Block.
        Rcrb = 0x000a => "Root Complex Register Block",
        /// Vendor-Specific Extended Capability.
        Vsec = 0x000b => "Vendor Specific Extended",
        /// Configuration Access Correlation.
        Cac = 0x000c => "Configuration Access Correlation",
        /// Access Control Services.
        Acs = 0x000d => "Access Control Services",
        /// Alternative Routing-ID Interpretation.
        Ari = 0x000e => "Alternative Routing-ID Interpretation",
        /// Address Translation Services.
        Ats = 0x000f => "Address Translation Services",
        /// Single Root I/O Virtualization.
        SrIov = 0x0010 => "Single Root I/O Virtualization",
        /// Multi-Root I/O Virtualization.
        MrIov = 0x0011 => "Multi-Root I/O Virtualization",
        /// Multicast.
        Multicast = 0x0012 => "Multicast",
        /// Page Request Interface.
        Pri = 0x0013 => "Page Request Interface",
        /// Reserved for AMD.
        Amd = 0x0014 => "Reserved for AMD",
        /// Resizable BAR.
        ResizableBar = 0x0015 => "Resizable BAR",
        /// Dynamic Power Allocation.
        Dpa = 0x0016 => "Dynamic Power Allocation",
        /// TLP Processing Hints.
        Tph = 0x0017 => "TLP Processing Hints",
        /// Latency Tolerance Reporting.
        Ltr = 0x0018 => "Latency Tolerance Reporting",
        /// Secondary PCI Express.
        SecondaryPcie = 0x0019 => "Secondary PCI Express",
        /// Protocol Multiplexing.
        Pmux = 0x001a => "Protocol Multiplexing",
        /// Process Address Space ID.
        Pasid = 0x001b => "Process Address Space ID",
        /// LN Requester.
        Lnr = 0x001c => "LN Requester",
        /// Downstream Port Containment.
        Dpc = 0x001d => "Downstream Port Containment",
        /// L1 PM Substates.
        L1PmSubstates = 0x001e => "L1 PM Substates",
        /// Precision Time Measurement.
        Ptm = 0x001f => "Precision Time Measurement",
        /// PCI Express over M-PHY.
        Mpcie = 0x0020 => "PCI Express over M-PHY",
        /// FRS Queueing.
        FrsQueueing = 0x0021 => "FRS Queueing",
        /// Readiness Time Reporting.
        ReadinessTime = 0x0022 => "Readiness Time Reporting",
        /// Designated Vendor-Specific Extended Capability.
        Dvsec = 0x0023 => "Designated Vendor-Specific",
        /// VF Resizable BAR.
        VfResizableBar = 0x0024 => "VF Resizable BAR",
        /// Data Link Feature.
        DataLinkFeature = 0x0025 => "Data Link Feature",
        /// Physical Layer 16.0 GT/s.
        PhysicalLayer16 = 0x0026 => "Physical Layer 16.0 GT/s",
        /// Lane Margining at the Receiver.
        LaneMargining = 0x0027 => "Lane Margining at the Receiver",
        /// Hierarchy ID.
        HierarchyId = 0x0028 => "Hierarchy ID",
        /// Native PCIe Enclosure Management.
        Npem = 0x0029 => "Native PCIe Enclosure Management",
        /// Physical Layer 32.0 GT/s.
        PhysicalLayer32 = 0x002a => "Physical Layer 32.0 GT/s",
        /// Alternate Protocol.
        AlternateProtocol = 0x002b => "Alternate Protocol",
        /// System Firmware Intermediary.
        Sfi = 0x002c => "System Firmware Intermediary",
        /// Shadow Functions.
        ShadowFunctions = 0x002d => "Shadow Functions",
        /// Data Object Exchange.
        Doe = 0x002e => "Data Object Exchange",
        /// Device 3.
        Device3 = 0x002f => "Device 3",
        /// Integrity and Data Encryption.
        Ide = 0x0030 => "Integrity and Data Encryption",
    }
}

/// Why a capability walk stopped early. `from` is the offset of the register
/// holding the bad pointer (0x34 for the first standard one, 0x100 for the first
/// extended header), `pointer` the value found there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WalkError {
    /// A pointer into the header (< 0x40 for standard, < 0x100 for extended).
    PointerInHeader {
        /// Where the pointer was read.
        from: u16,
        /// The pointer.
        pointer: u16,
    },
    /// A standard capability whose id byte reads 0xff: what a function that stopped
    /// answering returns, and where the kernel and lspci end the list.
    BrokenChain {
        /// Where the pointer was read.
        from: u16,
        /// The pointer (the offset of the 0xff id).
        pointer: u16,
    },
    /// A pointer whose capability header does not fit in the buffer (a 64-byte read
    /// ends before any capability; a 256-byte read before any extended one).
    OutOfRange {
        /// Where the pointer was read.
        from: u16,
        /// The pointer.
        pointer: u16,
        /// Length of the buffer.
        len: usize,
    },
    /// A pointer back to a capability already visited (itself included).
    Loop {
        /// Where the pointer was read.
        from: u16,
        /// The pointer.
        pointer: u16,
    },
    /// More entries than fit in the space (48 standard / 960 extended).
    TooMany {
        /// Where the walk stopped.
        from: u16,
    },
}

impl WalkError {
    /// The offset of the register holding the bad pointer.
    pub const fn offset(&self) -> u16 {
        match *self {
            WalkError::PointerInHeader { from, .. }
            | WalkError::BrokenChain { from, .. }
            | WalkError::OutOfRange { from, .. }
            | WalkError::Loop { from, .. }
            | WalkError::TooMany { from } => from,
        }
    }
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WalkError::PointerInHeader { from, pointer } => write!(
                f,
                "capability pointer {pointer:#x} at offset {from:#x} points into the header"
            ),
            WalkError::BrokenChain { from, pointer } => write!(
                f,
                "capability pointer {pointer:#x} at offset {from:#x} leads to id 0xff (broken chain)"
            ),
            WalkError::OutOfRange { from, pointer, len } => write!(
                f,
                "capability pointer {pointer:#x} at offset {from:#x} is past the {len}-byte config space"
            ),
            WalkError::Loop { from, pointer } => write!(
                f,
                "capability pointer {pointer:#x} at offset {from:#x} loops back to a visited capability"
            ),
            WalkError::TooMany { from } => {
                write!(f, "too many capabilities (walk stopped at offset {from:#x})")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WalkError {}

/// A capability that does not fit in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset of the capability.
    pub offset: u16,
    /// Offset of the first byte that could not be read.
    pub at: usize,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "capability at offset {:#x} is truncated (byte {:#x} is past the buffer)",
            self.offset, self.at
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

/// Bounded little-endian reader relative to a capability's offset.
#[derive(Clone, Copy)]
struct Rd<'a> {
    buf: &'a [u8],
    base: u16,
}

impl<'a> Rd<'a> {
    fn new(buf: &'a [u8], base: u16) -> Rd<'a> {
        Rd { buf, base }
    }
    fn bytes<const N: usize>(&self, rel: usize) -> Result<[u8; N], DecodeError> {
        let start = usize::from(self.base) + rel;
        let err = DecodeError {
            offset: self.base,
            at: start,
        };
        let s = self.buf.get(start..start + N).ok_or(err)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }
    fn u8(&self, rel: usize) -> Result<u8, DecodeError> {
        Ok(self.bytes::<1>(rel)?[0])
    }
    fn u16(&self, rel: usize) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.bytes(rel)?))
    }
    fn u32(&self, rel: usize) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.bytes(rel)?))
    }
}

fn bit(v: u32, n: u32) -> bool {
    (v >> n) & 1 == 1
}

/// A standard capability found by a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capability {
    /// Capability id.
    pub id: CapabilityId,
    /// Offset of its header in config space.
    pub offset: u16,
    /// The next pointer stored in it (0 ends the list).
    pub next: u8,
}

/// An extended capability found by a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtCapability {
    /// Capability id.
    pub id: ExtCapabilityId,
    /// Capability version (header bits 19:16).
    pub version: u8,
    /// Offset of its header in config space.
    pub offset: u16,
    /// The next pointer stored in it (0 ends the list).
    pub next: u16,
}

/// What both walks keep and check: where the current pointer was read, how many
/// headers were taken, which 4-byte slots were visited (a bit each).
#[derive(Debug, Clone)]
struct Bounds<const W: usize> {
    from: u16,
    count: usize,
    visited: [u64; W],
}

impl<const W: usize> Bounds<W> {
    fn new(from: u16) -> Self {
        Bounds {
            from,
            count: 0,
            visited: [0; W],
        }
    }

    /// Check pointer `p` (already masked to a dword) of a list whose headers start
    /// at `base` and are `size` bytes long, in a buffer of `len` bytes, at most `max`
    /// headers: its offset and its visited slot, or the walk error.
    #[inline]
    fn check(
        &self,
        p: u16,
        base: u16,
        size: usize,
        len: usize,
        max: usize,
    ) -> Result<(usize, usize), WalkError> {
        let from = self.from;
        if p < base {
            return Err(WalkError::PointerInHeader { from, pointer: p });
        }
        let at = usize::from(p);
        if at + size > len {
            return Err(WalkError::OutOfRange {
                from,
                pointer: p,
                len,
            });
        }
        // Standard: < 48 (p <= 0xfc); extended: < 960 (p <= 0xffc).
        let slot = (at - usize::from(base)) / 4;
        if self.visited[slot / 64] & (1u64 << (slot % 64)) != 0 {
            return Err(WalkError::Loop { from, pointer: p });
        }
        if self.count >= max {
            return Err(WalkError::TooMany { from });
        }
        Ok((at, slot))
    }

    /// Take the header in `slot`.
    #[inline]
    fn take(&mut self, slot: usize) {
        self.visited[slot / 64] |= 1u64 << (slot % 64);
        self.count += 1;
    }
}

/// Walk of the standard capability list; see the module docs for its bounds.
#[derive(Debug, Clone)]
pub struct Capabilities<'a> {
    buf: &'a [u8],
    next: u16,
    bounds: Bounds<1>,
    done: bool,
}

impl<'a> Capabilities<'a> {
    /// Walk `config` starting at `pointer` (the register at 0x34); `None` gives an empty walk.
    #[inline]
    pub fn new(config: &'a [u8], pointer: Option<u8>) -> Capabilities<'a> {
        Capabilities::new_at(config, pointer, 0x34)
    }

    /// Walk `config` starting at `pointer`, read from the register at `register`
    /// (0x34 for type 0 and 1 headers, 0x14 for a CardBus bridge); errors about the
    /// first pointer name that register. `None` gives an empty walk.
    #[inline]
    pub fn new_at(config: &'a [u8], pointer: Option<u8>, register: u16) -> Capabilities<'a> {
        Capabilities {
            buf: config,
            next: pointer.map_or(0, u16::from),
            bounds: Bounds::new(register),
            done: pointer.is_none(),
        }
    }
}

impl Iterator for Capabilities<'_> {
    type Item = Result<Capability, WalkError>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let p = self.next & !3;
        if self.done || p == 0 {
            self.done = true;
            return None;
        }
        let (at, slot) = match self.bounds.check(p, 0x40, 2, self.buf.len(), MAX_STD_CAPS) {
            Ok(x) => x,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        self.bounds.take(slot);
        let id = self.buf[at];
        if id == 0xff {
            self.done = true;
            return Some(Err(WalkError::BrokenChain {
                from: self.bounds.from,
                pointer: p,
            }));
        }
        let next = self.buf[at + 1];
        self.bounds.from = p + 1;
        self.next = u16::from(next);
        Some(Ok(Capability {
            id: CapabilityId::from(id),
            offset: p,
            next,
        }))
    }
}

/// Walk of the extended capability list from 0x100; see the module docs for its bounds.
///
/// Empty when the buffer is shorter than 4096 bytes or the header at 0x100 is
/// 0 or all ones (no extended capabilities, as the kernel treats them). A header
/// of 0 or all ones later in the chain also ends the walk (as lspci does). This
/// walk reads the bytes it is given; whether a function has an extended space at
/// all is [`crate::ConfigSpace::has_extended_config`]'s question.
#[derive(Debug, Clone)]
pub struct ExtCapabilities<'a> {
    buf: &'a [u8],
    next: u16,
    bounds: Bounds<15>,
    done: bool,
}

impl<'a> ExtCapabilities<'a> {
    /// Walk the extended capabilities of `config`.
    #[inline]
    pub fn new(config: &'a [u8]) -> ExtCapabilities<'a> {
        let first = config
            .get(0x100..0x104)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let done = config.len() < 0x1000 || matches!(first, None | Some(0) | Some(0xffff_ffff));
        ExtCapabilities {
            buf: config,
            next: 0x100,
            bounds: Bounds::new(0x100),
            done,
        }
    }
}

impl Iterator for ExtCapabilities<'_> {
    type Item = Result<ExtCapability, WalkError>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let p = self.next & !3;
        if self.done || p == 0 {
            self.done = true;
            return None;
        }
        let (at, slot) = match self.bounds.check(p, 0x100, 4, self.buf.len(), MAX_EXT_CAPS) {
            Ok(x) => x,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let h = u32::from_le_bytes([
            self.buf[at],
            self.buf[at + 1],
            self.buf[at + 2],
            self.buf[at + 3],
        ]);
        if h == 0 || h == u32::MAX {
            self.done = true;
            return None;
        }
        self.bounds.take(slot);
        let next = (h >> 20) as u16;
        self.bounds.from = p;
        self.next = next;
        Some(Ok(ExtCapability {
            id: ExtCapabilityId::from(h as u16),
            version: ((h >> 16) & 0xf) as u8,
            offset: p,
            next,
        }))
    }
}

// ---------------------------------------------------------------------------
// Standard capability decoders
// ---------------------------------------------------------------------------

/// Power state in PMCSR bits 1:0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerState {
    /// D0 (on).
    D0,
    /// D1.
    D1,
    /// D2.
    D2,
    /// D3hot.
    D3Hot,
}

/// PCI Power Management capability (id 0x01).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PowerManagement {
    /// PMC version (bits 2:0).
    pub version: u8,
    /// D1 supported.
    pub d1: bool,
    /// D2 supported.
    pub d2: bool,
    /// PME# support mask (PMC bits 15:11: D0, D1, D2, D3hot, D3cold).
    pub pme_support: u8,
    /// Current power state (PMCSR bits 1:0).
    pub power_state: PowerState,
    /// PMCSR No_Soft_Reset (bit 3): set means D3hot->D0 keeps state, so no PM reset.
    pub no_soft_reset: bool,
    /// PME enable (PMCSR bit 8).
    pub pme_enable: bool,
    /// PME status (PMCSR bit 15).
    pub pme_status: bool,
}

impl PowerManagement {
    /// Decode the PM capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<PowerManagement, DecodeError> {
        let r = Rd::new(config, offset);
        let pmc = u32::from(r.u16(2)?);
        let csr = u32::from(r.u16(4)?);
        Ok(PowerManagement {
            version: (pmc & 7) as u8,
            d1: bit(pmc, 9),
            d2: bit(pmc, 10),
            pme_support: (pmc >> 11) as u8,
            power_state: match csr & 3 {
                0 => PowerState::D0,
                1 => PowerState::D1,
                2 => PowerState::D2,
                _ => PowerState::D3Hot,
            },
            no_soft_reset: bit(csr, 3),
            pme_enable: bit(csr, 8),
            pme_status: bit(csr, 15),
        })
    }
}

/// MSI capability (id 0x05).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Msi {
    /// MSI Enable.
    pub enabled: bool,
    /// Multiple Message Capable, log2 of vectors requested (0..=5).
    pub multiple_message_capable: u8,
    /// Multiple Message Enable, log2 of vectors granted.
    pub multiple_message_enable: u8,
    /// 64-bit address capable.
    pub is_64bit: bool,
    /// Per-vector masking capable.
    pub per_vector_masking: bool,
}

impl Msi {
    /// Decode the MSI capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<Msi, DecodeError> {
        let c = u32::from(Rd::new(config, offset).u16(2)?);
        Ok(Msi {
            enabled: bit(c, 0),
            multiple_message_capable: ((c >> 1) & 7) as u8,
            multiple_message_enable: ((c >> 4) & 7) as u8,
            is_64bit: bit(c, 7),
            per_vector_masking: bit(c, 8),
        })
    }
}

/// MSI-X capability (id 0x11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsiX {
    /// MSI-X Enable.
    pub enabled: bool,
    /// Function Mask.
    pub function_mask: bool,
    /// Number of table entries (field + 1).
    pub table_size: u16,
    /// BAR holding the table (BIR).
    pub table_bar: u8,
    /// Offset of the table in that BAR.
    pub table_offset: u32,
    /// BAR holding the Pending Bit Array.
    pub pba_bar: u8,
    /// Offset of the PBA in that BAR.
    pub pba_offset: u32,
}

impl MsiX {
    /// Decode the MSI-X capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<MsiX, DecodeError> {
        let r = Rd::new(config, offset);
        let c = u32::from(r.u16(2)?);
        let t = r.u32(4)?;
        let p = r.u32(8)?;
        Ok(MsiX {
            enabled: bit(c, 15),
            function_mask: bit(c, 14),
            table_size: (c & 0x7ff) as u16 + 1,
            table_bar: (t & 7) as u8,
            table_offset: t & !7,
            pba_bar: (p & 7) as u8,
            pba_offset: p & !7,
        })
    }
}

enum_with_unknown! {
    /// PCI Express Device/Port Type (PCIe capability register bits 7:4).
    pub enum PortType(u8) {
        /// PCI Express Endpoint.
        Endpoint = 0x0 => "Endpoint",
        /// Legacy PCI Express Endpoint.
        LegacyEndpoint = 0x1 => "Legacy Endpoint",
        /// Root Port of a Root Complex.
        RootPort = 0x4 => "Root Port",
        /// Upstream Port of a switch.
        UpstreamPort = 0x5 => "Upstream Port",
        /// Downstream Port of a switch.
        DownstreamPort = 0x6 => "Downstream Port",
        /// PCI Express to PCI/PCI-X bridge.
        PcieToPciBridge = 0x7 => "PCI-Express to PCI Bridge",
        /// PCI/PCI-X to PCI Express bridge.
        PciToPcieBridge = 0x8 => "PCI to PCI-Express Bridge",
        /// Root Complex Integrated Endpoint.
        RcIntegratedEndpoint = 0x9 => "Root Complex Integrated Endpoint",
        /// Root Complex Event Collector.
        RcEventCollector = 0xa => "Root Complex Event Collector",
    }
}

/// Link Capabilities register (PCIe cap +0x0c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkCapabilities {
    /// Max Link Speed (1 = 2.5 GT/s, 2 = 5, 3 = 8, 4 = 16, 5 = 32, 6 = 64).
    pub max_speed: u8,
    /// Maximum Link Width (lanes).
    pub max_width: u8,
    /// ASPM support (bits 11:10).
    pub aspm_support: u8,
    /// Surprise Down Error Reporting capable.
    pub surprise_down: bool,
    /// Data Link Layer Link Active Reporting capable.
    pub dll_active_reporting: bool,
    /// Link Bandwidth Notification capable.
    pub bandwidth_notification: bool,
    /// Port Number.
    pub port_number: u8,
}

/// Link Status register (PCIe cap +0x12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkStatus {
    /// Current Link Speed (same encoding as `max_speed`).
    pub speed: u8,
    /// Negotiated Link Width.
    pub width: u8,
    /// Link Training.
    pub training: bool,
    /// Data Link Layer Link Active.
    pub dll_active: bool,
}

/// Slot Capabilities register (PCIe cap +0x14), present when Slot Implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotCapabilities {
    /// Attention Button Present.
    pub attention_button: bool,
    /// Power Controller Present.
    pub power_controller: bool,
    /// MRL Sensor Present.
    pub mrl_sensor: bool,
    /// Hot-Plug Surprise.
    pub hot_plug_surprise: bool,
    /// Hot-Plug Capable.
    pub hot_plug_capable: bool,
    /// Physical Slot Number.
    pub physical_slot: u16,
}

/// PCI Express capability (id 0x10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciExpress {
    /// Capability version (bits 3:0).
    pub version: u8,
    /// Device/Port type.
    pub port_type: PortType,
    /// Slot Implemented (bit 8; root and downstream ports).
    pub slot_implemented: bool,
    /// Interrupt Message Number.
    pub interrupt_message_number: u8,
    /// Device Capabilities, raw.
    pub device_capabilities: u32,
    /// Max_Payload_Size Supported, in bytes.
    pub max_payload_supported: u16,
    /// Function Level Reset capable (Device Capabilities bit 28).
    pub flr: bool,
    /// Device Control, raw.
    pub device_control: u16,
    /// Device Status, raw.
    pub device_status: u16,
    /// Link Capabilities (`None` when the buffer ends before it).
    pub link_capabilities: Option<LinkCapabilities>,
    /// Link Status.
    pub link_status: Option<LinkStatus>,
    /// Slot Capabilities, when Slot Implemented.
    pub slot_capabilities: Option<SlotCapabilities>,
    /// Device Capabilities 2, raw (version 2 and later).
    pub device_capabilities2: Option<u32>,
    /// ARI Forwarding Supported (Device Capabilities 2 bit 5).
    pub ari_forwarding_supported: bool,
    /// ARI Forwarding Enable (Device Control 2 bit 5).
    pub ari_forwarding_enabled: bool,
}

impl PciExpress {
    /// Decode the PCIe capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<PciExpress, DecodeError> {
        let r = Rd::new(config, offset);
        let cap = u32::from(r.u16(2)?);
        let dc = r.u32(4)?;
        let version = (cap & 0xf) as u8;
        let slot_implemented = bit(cap, 8);
        let link_capabilities = r.u32(0x0c).ok().map(|l| LinkCapabilities {
            max_speed: (l & 0xf) as u8,
            max_width: ((l >> 4) & 0x3f) as u8,
            aspm_support: ((l >> 10) & 3) as u8,
            surprise_down: bit(l, 19),
            dll_active_reporting: bit(l, 20),
            bandwidth_notification: bit(l, 21),
            port_number: (l >> 24) as u8,
        });
        let link_status = r.u16(0x12).ok().map(u32::from).map(|s| LinkStatus {
            speed: (s & 0xf) as u8,
            width: ((s >> 4) & 0x3f) as u8,
            training: bit(s, 11),
            dll_active: bit(s, 13),
        });
        let slot_capabilities = if slot_implemented {
            r.u32(0x14).ok().map(|s| SlotCapabilities {
                attention_button: bit(s, 0),
                power_controller: bit(s, 1),
                mrl_sensor: bit(s, 2),
                hot_plug_surprise: bit(s, 5),
                hot_plug_capable: bit(s, 6),
                physical_slot: (s >> 19) as u16,
            })
        } else {
            None
        };
        let device_capabilities2 = if version >= 2 { r.u32(0x24).ok() } else { None };
        let dctl2 = if version >= 2 { r.u16(0x28).ok() } else { None };
        Ok(PciExpress {
            version,
            port_type: PortType::from(((cap >> 4) & 0xf) as u8),
            slot_implemented,
            interrupt_message_number: ((cap >> 9) & 0x1f) as u8,
            device_capabilities: dc,
            max_payload_supported: 128u16 << (dc & 7).min(5),
            flr: bit(dc, 28),
            device_control: r.u16(8)?,
            device_status: r.u16(0x0a)?,
            link_capabilities,
            link_status,
            slot_capabilities,
            device_capabilities2,
            ari_forwarding_supported: device_capabilities2.is_some_and(|d| bit(d, 5)),
            ari_forwarding_enabled: dctl2.is_some_and(|d| bit(u32::from(d), 5)),
        })
    }

    /// Hot-plug capable slot (Slot Capabilities bit 6).
    pub fn hot_plug(&self) -> bool {
        self.slot_capabilities.is_some_and(|s| s.hot_plug_capable)
    }
}

/// Advanced Features capability (id 0x13): FLR for conventional PCI functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdvancedFeatures {
    /// Length byte (6 by the spec).
    pub length: u8,
    /// TP capable (AF Capabilities bit 0): Transactions Pending is reported.
    pub transactions_pending: bool,
    /// FLR capable (AF Capabilities bit 1).
    pub flr: bool,
}

impl AdvancedFeatures {
    /// Decode the AF capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<AdvancedFeatures, DecodeError> {
        let r = Rd::new(config, offset);
        let caps = u32::from(r.u8(3)?);
        Ok(AdvancedFeatures {
            length: r.u8(2)?,
            transactions_pending: bit(caps, 0),
            flr: bit(caps, 1),
        })
    }
}

/// Vendor Specific capability (id 0x09).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VendorSpecific {
    /// Length byte (bytes of the capability, header included).
    pub length: u8,
}

impl VendorSpecific {
    /// Decode the vendor-specific capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<VendorSpecific, DecodeError> {
        Ok(VendorSpecific {
            length: Rd::new(config, offset).u8(2)?,
        })
    }
}

/// Bridge Subsystem ID capability (id 0x0d): a type 1 header's subsystem ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BridgeSubsystem {
    /// Subsystem vendor ID.
    pub vendor: VendorId,
    /// Subsystem ID.
    pub device: DeviceId,
}

impl BridgeSubsystem {
    /// Decode the Bridge Subsystem ID capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<BridgeSubsystem, DecodeError> {
        let r = Rd::new(config, offset);
        Ok(BridgeSubsystem {
            vendor: VendorId(r.u16(4)?),
            device: DeviceId(r.u16(6)?),
        })
    }
}

/// Enhanced Allocation capability (id 0x14): presence and entry count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedAllocation {
    /// Num Entries (bits 5:0 of the first dword's upper half).
    pub entries: u8,
}

impl EnhancedAllocation {
    /// Decode the EA capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<EnhancedAllocation, DecodeError> {
        Ok(EnhancedAllocation {
            entries: Rd::new(config, offset).u8(2)? & 0x3f,
        })
    }
}

// ---------------------------------------------------------------------------
// Extended capability decoders
// ---------------------------------------------------------------------------

/// Advanced Error Reporting (ext id 0x0001): the status, mask and severity registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aer {
    /// Uncorrectable Error Status.
    pub uncorrectable_status: u32,
    /// Uncorrectable Error Mask.
    pub uncorrectable_mask: u32,
    /// Uncorrectable Error Severity.
    pub uncorrectable_severity: u32,
    /// Correctable Error Status.
    pub correctable_status: u32,
    /// Correctable Error Mask.
    pub correctable_mask: u32,
    /// Advanced Error Capabilities and Control.
    pub capabilities_control: u32,
}

impl Aer {
    /// Decode the AER capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<Aer, DecodeError> {
        let r = Rd::new(config, offset);
        Ok(Aer {
            uncorrectable_status: r.u32(4)?,
            uncorrectable_mask: r.u32(8)?,
            uncorrectable_severity: r.u32(0x0c)?,
            correctable_status: r.u32(0x10)?,
            correctable_mask: r.u32(0x14)?,
            capabilities_control: r.u32(0x18)?,
        })
    }
}

bitflags::bitflags! {
    /// ACS Capability / ACS Control bits (ext cap 0x000d, +4 / +6).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct AcsFlags: u16 {
        /// ACS Source Validation.
        const SV = 1 << 0;
        /// ACS Translation Blocking.
        const TB = 1 << 1;
        /// ACS P2P Request Redirect.
        const RR = 1 << 2;
        /// ACS P2P Completion Redirect.
        const CR = 1 << 3;
        /// ACS Upstream Forwarding.
        const UF = 1 << 4;
        /// ACS P2P Egress Control.
        const EC = 1 << 5;
        /// ACS Direct Translated P2P.
        const DT = 1 << 6;
        /// Bits this crate does not name are kept (egress vector size in the capability).
        const _ = !0;
    }
}

/// Access Control Services (ext id 0x000d).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Acs {
    /// ACS Capability register (what the port can do).
    pub capability: AcsFlags,
    /// ACS Control register (what is enabled).
    pub control: AcsFlags,
}

impl Acs {
    /// SV | RR | CR | UF (0x1d): what libvirt and the kernel's isolation check need enabled.
    pub const ISOLATION: AcsFlags = AcsFlags::SV
        .union(AcsFlags::RR)
        .union(AcsFlags::CR)
        .union(AcsFlags::UF);

    /// Decode the ACS capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<Acs, DecodeError> {
        let r = Rd::new(config, offset);
        Ok(Acs {
            capability: AcsFlags::from_bits_retain(r.u16(4)?),
            control: AcsFlags::from_bits_retain(r.u16(6)?),
        })
    }

    /// Egress Control Vector Size (capability bits 15:8).
    pub fn egress_vector_size(&self) -> u8 {
        (self.capability.bits() >> 8) as u8
    }
}

/// Alternative Routing-ID Interpretation (ext id 0x000e).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ari {
    /// MFVC Function Groups Capability.
    pub mfvc_groups: bool,
    /// ACS Function Groups Capability.
    pub acs_groups: bool,
    /// Next Function Number (0 ends the function list).
    pub next_function: u8,
    /// ARI Control, raw.
    pub control: u16,
}

impl Ari {
    /// Decode the ARI capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<Ari, DecodeError> {
        let r = Rd::new(config, offset);
        let c = u32::from(r.u16(4)?);
        Ok(Ari {
            mfvc_groups: bit(c, 0),
            acs_groups: bit(c, 1),
            next_function: (c >> 8) as u8,
            control: r.u16(6)?,
        })
    }
}

/// Address Translation Services (ext id 0x000f).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ats {
    /// Invalidate Queue Depth (a field of 0 means 32).
    pub invalidate_queue_depth: u8,
    /// Page Aligned Request.
    pub page_aligned_request: bool,
    /// Global Invalidate Supported.
    pub global_invalidate: bool,
    /// ATS Enable.
    pub enabled: bool,
    /// Smallest Translation Unit (log2 of 4 KiB pages).
    pub smallest_translation_unit: u8,
}

impl Ats {
    /// Decode the ATS capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<Ats, DecodeError> {
        let r = Rd::new(config, offset);
        let c = u32::from(r.u16(4)?);
        let k = u32::from(r.u16(6)?);
        let q = (c & 0x1f) as u8;
        Ok(Ats {
            invalidate_queue_depth: if q == 0 { 32 } else { q },
            page_aligned_request: bit(c, 5),
            global_invalidate: bit(c, 6),
            enabled: bit(k, 15),
            smallest_translation_unit: (k & 0x1f) as u8,
        })
    }
}

/// Single Root I/O Virtualization (ext id 0x0010).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SrIov {
    /// SR-IOV Capabilities, raw.
    pub capabilities: u32,
    /// SR-IOV Control, raw (bit 0 VF Enable, bit 4 ARI Capable Hierarchy).
    pub control: u16,
    /// SR-IOV Status, raw.
    pub status: u16,
    /// InitialVFs.
    pub initial_vfs: u16,
    /// TotalVFs.
    pub total_vfs: u16,
    /// NumVFs (currently set).
    pub num_vfs: u16,
    /// Function Dependency Link.
    pub function_dependency_link: u8,
    /// First VF Offset (routing ID distance from the PF).
    pub first_vf_offset: u16,
    /// VF Stride.
    pub vf_stride: u16,
    /// VF Device ID.
    pub vf_device_id: DeviceId,
    /// Supported Page Sizes.
    pub supported_page_sizes: u32,
    /// System Page Size.
    pub system_page_size: u32,
}

impl SrIov {
    /// Decode the SR-IOV capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<SrIov, DecodeError> {
        let r = Rd::new(config, offset);
        Ok(SrIov {
            capabilities: r.u32(4)?,
            control: r.u16(8)?,
            status: r.u16(0x0a)?,
            initial_vfs: r.u16(0x0c)?,
            total_vfs: r.u16(0x0e)?,
            num_vfs: r.u16(0x10)?,
            function_dependency_link: r.u8(0x12)?,
            first_vf_offset: r.u16(0x14)?,
            vf_stride: r.u16(0x16)?,
            vf_device_id: DeviceId(r.u16(0x1a)?),
            supported_page_sizes: r.u32(0x1c)?,
            system_page_size: r.u32(0x20)?,
        })
    }

    /// VF Enable (control bit 0).
    pub fn vf_enabled(&self) -> bool {
        self.control & 1 == 1
    }
}

/// One resizable BAR of a [`ResizableBar`] capability: its two raw registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RebarEntry {
    /// Resizable BAR Capability register (sizes 1 MiB..=128 TiB in bits 31:4).
    pub capability: u32,
    /// Resizable BAR Control register (index, count, current size, larger sizes).
    pub control: u32,
}

impl RebarEntry {
    /// BAR index (control bits 2:0).
    pub fn bar(&self) -> u8 {
        (self.control & 7) as u8
    }

    /// Supported sizes: bit n set means 2^(n+20) bytes (1 MiB << n) is supported;
    /// bits 0..=27 from the capability register, 28..=43 from the control register.
    pub fn supported(&self) -> u64 {
        u64::from(self.capability >> 4) | (u64::from(self.control >> 16) << 28)
    }

    /// Current size as log2 of MiB (control bits 13:8): the BAR is `1 MiB << current`.
    pub fn current(&self) -> u8 {
        ((self.control >> 8) & 0x3f) as u8
    }

    /// Current size in bytes.
    pub fn current_bytes(&self) -> u64 {
        1u64 << (20 + u32::from(self.current()).min(43))
    }
}

/// Resizable BAR (ext id 0x0015): up to six entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResizableBar {
    count: u8,
    entries: [RebarEntry; 6],
}

impl ResizableBar {
    /// Decode the Resizable BAR capability at `offset`. The entry count comes from
    /// the first control register (bits 7:5) and is clamped to 6.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    pub fn parse(config: &[u8], offset: u16) -> Result<ResizableBar, DecodeError> {
        let r = Rd::new(config, offset);
        let first_ctl = r.u32(8)?;
        let count = (((first_ctl >> 5) & 7) as u8).min(6);
        let empty = RebarEntry {
            capability: 0,
            control: 0,
        };
        let mut entries = [empty; 6];
        for (i, e) in entries.iter_mut().enumerate().take(usize::from(count)) {
            *e = RebarEntry {
                capability: r.u32(4 + 8 * i)?,
                control: r.u32(8 + 8 * i)?,
            };
        }
        Ok(ResizableBar { count, entries })
    }

    /// The resizable BARs.
    pub fn entries(&self) -> &[RebarEntry] {
        &self.entries[..usize::from(self.count)]
    }
}

/// Process Address Space ID (ext id 0x001b).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pasid {
    /// Execute Permission Supported.
    pub exec_supported: bool,
    /// Privileged Mode Supported.
    pub privileged_supported: bool,
    /// Max PASID Width (bits).
    pub max_width: u8,
    /// PASID Enable.
    pub enabled: bool,
}

impl Pasid {
    /// Decode the PASID capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<Pasid, DecodeError> {
        let r = Rd::new(config, offset);
        let c = u32::from(r.u16(4)?);
        let k = u32::from(r.u16(6)?);
        Ok(Pasid {
            exec_supported: bit(c, 1),
            privileged_supported: bit(c, 2),
            max_width: ((c >> 8) & 0x1f) as u8,
            enabled: bit(k, 0),
        })
    }
}

/// Page Request Interface (ext id 0x0013).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pri {
    /// PRI Enable.
    pub enabled: bool,
    /// Stopped.
    pub stopped: bool,
    /// PRG Response PASID Required.
    pub pasid_required: bool,
    /// Outstanding Page Request Capacity.
    pub capacity: u32,
    /// Outstanding Page Request Allocation.
    pub allocation: u32,
}

impl Pri {
    /// Decode the PRI capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<Pri, DecodeError> {
        let r = Rd::new(config, offset);
        let c = u32::from(r.u16(4)?);
        let s = u32::from(r.u16(6)?);
        Ok(Pri {
            enabled: bit(c, 0),
            stopped: bit(s, 8),
            pasid_required: bit(s, 15),
            capacity: r.u32(8)?,
            allocation: r.u32(0x0c)?,
        })
    }
}

/// Downstream Port Containment (ext id 0x001d).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dpc {
    /// DPC Interrupt Message Number.
    pub interrupt_message_number: u8,
    /// RP Extensions for DPC.
    pub rp_extensions: bool,
    /// Poisoned TLP Egress Blocking Supported.
    pub poisoned_tlp_egress_blocking: bool,
    /// DPC Software Triggering Supported.
    pub software_triggering: bool,
    /// DL_Active ERR_COR Signaling Supported.
    pub dl_active_err_cor: bool,
    /// DPC Trigger Enable (control bits 1:0).
    pub trigger_enable: u8,
    /// DPC Status, raw.
    pub status: u16,
}

impl Dpc {
    /// Decode the DPC capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<Dpc, DecodeError> {
        let r = Rd::new(config, offset);
        let c = u32::from(r.u16(4)?);
        let k = r.u16(6)?;
        Ok(Dpc {
            interrupt_message_number: (c & 0x1f) as u8,
            rp_extensions: bit(c, 5),
            poisoned_tlp_egress_blocking: bit(c, 6),
            software_triggering: bit(c, 7),
            dl_active_err_cor: bit(c, 12),
            trigger_enable: (k & 3) as u8,
            status: r.u16(8)?,
        })
    }
}

/// Latency Tolerance Reporting (ext id 0x0018).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ltr {
    /// Max Snoop Latency, raw register.
    pub max_snoop_raw: u16,
    /// Max No-Snoop Latency, raw register.
    pub max_no_snoop_raw: u16,
}

impl Ltr {
    /// Decode the LTR capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<Ltr, DecodeError> {
        let r = Rd::new(config, offset);
        Ok(Ltr {
            max_snoop_raw: r.u16(4)?,
            max_no_snoop_raw: r.u16(6)?,
        })
    }

    /// A latency register in nanoseconds: value (bits 9:0) times 32^scale (bits 12:10).
    pub fn nanoseconds(raw: u16) -> u64 {
        let scale = u32::from((raw >> 10) & 7).min(5);
        u64::from(raw & 0x3ff) << (5 * scale)
    }
}

/// L1 PM Substates (ext id 0x001e).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct L1PmSubstates {
    /// PCI-PM L1.2 Supported.
    pub pci_pm_l12: bool,
    /// PCI-PM L1.1 Supported.
    pub pci_pm_l11: bool,
    /// ASPM L1.2 Supported.
    pub aspm_l12: bool,
    /// ASPM L1.1 Supported.
    pub aspm_l11: bool,
    /// L1 PM Substates Supported.
    pub supported: bool,
    /// Port Common_Mode_Restore_Time (us).
    pub common_mode_restore_time: u8,
    /// Port T_POWER_ON scale (bits 17:16).
    pub t_power_on_scale: u8,
    /// Port T_POWER_ON value (bits 23:19).
    pub t_power_on_value: u8,
    /// L1 PM Substates Control 1, raw.
    pub control1: u32,
}

impl L1PmSubstates {
    /// Decode the L1 PM Substates capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<L1PmSubstates, DecodeError> {
        let r = Rd::new(config, offset);
        let c = r.u32(4)?;
        Ok(L1PmSubstates {
            pci_pm_l12: bit(c, 0),
            pci_pm_l11: bit(c, 1),
            aspm_l12: bit(c, 2),
            aspm_l11: bit(c, 3),
            supported: bit(c, 4),
            common_mode_restore_time: (c >> 8) as u8,
            t_power_on_scale: ((c >> 16) & 3) as u8,
            t_power_on_value: ((c >> 19) & 0x1f) as u8,
            control1: r.u32(8)?,
        })
    }
}

/// Device Serial Number (ext id 0x0003).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dsn {
    /// The 64-bit serial number (lower dword at +4, upper at +8).
    pub serial: u64,
}

impl Dsn {
    /// Decode the DSN capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<Dsn, DecodeError> {
        let r = Rd::new(config, offset);
        let lo = u64::from(r.u32(4)?);
        let hi = u64::from(r.u32(8)?);
        Ok(Dsn {
            serial: (hi << 32) | lo,
        })
    }
}

/// Vendor-Specific Extended Capability (ext id 0x000b).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vsec {
    /// VSEC ID (meaning set by the function's vendor).
    pub id: u16,
    /// VSEC Rev.
    pub revision: u8,
    /// VSEC Length in bytes, header included.
    pub length: u16,
}

impl Vsec {
    /// Decode the VSEC capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<Vsec, DecodeError> {
        let h = Rd::new(config, offset).u32(4)?;
        Ok(Vsec {
            id: h as u16,
            revision: ((h >> 16) & 0xf) as u8,
            length: (h >> 20) as u16,
        })
    }
}

/// Designated Vendor-Specific Extended Capability (ext id 0x0023).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dvsec {
    /// DVSEC Vendor ID (who defined the structure, e.g. CXL's 1e98).
    pub vendor: VendorId,
    /// DVSEC Revision.
    pub revision: u8,
    /// DVSEC Length in bytes.
    pub length: u16,
    /// DVSEC ID.
    pub id: u16,
}

impl Dvsec {
    /// Decode the DVSEC capability at `offset`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] (the capability's offset and the first byte that could not be read)
    /// when a register of the capability lies past the end of `config`.
    #[inline]
    pub fn parse(config: &[u8], offset: u16) -> Result<Dvsec, DecodeError> {
        let r = Rd::new(config, offset);
        let h1 = r.u32(4)?;
        Ok(Dvsec {
            vendor: VendorId(h1 as u16),
            revision: ((h1 >> 16) & 0xf) as u8,
            length: (h1 >> 20) as u16,
            id: r.u16(8)?,
        })
    }
}

// ---------------------------------------------------------------------------
// Dispatch and field listing
// ---------------------------------------------------------------------------

/// A decoded capability, standard or extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Decoded {
    /// Power Management.
    PowerManagement(PowerManagement),
    /// MSI.
    Msi(Msi),
    /// MSI-X.
    MsiX(MsiX),
    /// PCI Express.
    PciExpress(PciExpress),
    /// Advanced Features.
    AdvancedFeatures(AdvancedFeatures),
    /// Vendor Specific.
    VendorSpecific(VendorSpecific),
    /// Enhanced Allocation.
    EnhancedAllocation(EnhancedAllocation),
    /// Bridge Subsystem ID.
    BridgeSubsystem(BridgeSubsystem),
    /// AER.
    Aer(Aer),
    /// ACS.
    Acs(Acs),
    /// ARI.
    Ari(Ari),
    /// ATS.
    Ats(Ats),
    /// SR-IOV.
    SrIov(SrIov),
    /// Resizable BAR.
    ResizableBar(ResizableBar),
    /// PASID.
    Pasid(Pasid),
    /// PRI.
    Pri(Pri),
    /// DPC.
    Dpc(Dpc),
    /// LTR.
    Ltr(Ltr),
    /// L1 PM Substates.
    L1PmSubstates(L1PmSubstates),
    /// Device Serial Number.
    Dsn(Dsn),
    /// Vendor-Specific Extended.
    Vsec(Vsec),
    /// Designated Vendor-Specific.
    Dvsec(Dvsec),
}

/// A value of one decoded field, for printers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue {
    /// A flag.
    Bool(bool),
    /// A number.
    Int(u64),
    /// A name.
    Str(&'static str),
}

impl Capability {
    /// Decode this capability's fields from `config`; `None` for ids without a decoder.
    #[inline]
    pub fn decode(&self, config: &[u8]) -> Option<Result<Decoded, DecodeError>> {
        let o = self.offset;
        Some(match self.id {
            CapabilityId::PowerManagement => {
                PowerManagement::parse(config, o).map(Decoded::PowerManagement)
            }
            CapabilityId::Msi => Msi::parse(config, o).map(Decoded::Msi),
            CapabilityId::MsiX => MsiX::parse(config, o).map(Decoded::MsiX),
            CapabilityId::PciExpress => PciExpress::parse(config, o).map(Decoded::PciExpress),
            CapabilityId::AdvancedFeatures => {
                AdvancedFeatures::parse(config, o).map(Decoded::AdvancedFeatures)
            }
            CapabilityId::VendorSpecific => {
                VendorSpecific::parse(config, o).map(Decoded::VendorSpecific)
            }
            CapabilityId::EnhancedAllocation => {
                EnhancedAllocation::parse(config, o).map(Decoded::EnhancedAllocation)
            }
            CapabilityId::BridgeSubsystem => {
                BridgeSubsystem::parse(config, o).map(Decoded::BridgeSubsystem)
            }
            _ => return None,
        })
    }
}

impl ExtCapability {
    /// Decode this capability's fields from `config`; `None` for ids without a decoder.
    #[inline]
    pub fn decode(&self, config: &[u8]) -> Option<Result<Decoded, DecodeError>> {
        let o = self.offset;
        Some(match self.id {
            ExtCapabilityId::Aer => Aer::parse(config, o).map(Decoded::Aer),
            ExtCapabilityId::Acs => Acs::parse(config, o).map(Decoded::Acs),
            ExtCapabilityId::Ari => Ari::parse(config, o).map(Decoded::Ari),
            ExtCapabilityId::Ats => Ats::parse(config, o).map(Decoded::Ats),
            ExtCapabilityId::SrIov => SrIov::parse(config, o).map(Decoded::SrIov),
            ExtCapabilityId::ResizableBar => {
                ResizableBar::parse(config, o).map(Decoded::ResizableBar)
            }
            ExtCapabilityId::Pasid => Pasid::parse(config, o).map(Decoded::Pasid),
            ExtCapabilityId::Pri => Pri::parse(config, o).map(Decoded::Pri),
            ExtCapabilityId::Dpc => Dpc::parse(config, o).map(Decoded::Dpc),
            ExtCapabilityId::Ltr => Ltr::parse(config, o).map(Decoded::Ltr),
            ExtCapabilityId::L1PmSubstates => {
                L1PmSubstates::parse(config, o).map(Decoded::L1PmSubstates)
            }
            ExtCapabilityId::Dsn => Dsn::parse(config, o).map(Decoded::Dsn),
            ExtCapabilityId::Vsec => Vsec::parse(config, o).map(Decoded::Vsec),
            ExtCapabilityId::Dvsec => Dvsec::parse(config, o).map(Decoded::Dvsec),
            _ => return None,
        })
    }
}

impl Decoded {
    /// Call `f(name, value)` for every decoded field, in register order. Names are
    /// snake_case and stable (the CLI's JSON uses them as keys).
    pub fn fields(&self, f: &mut dyn FnMut(&'static str, FieldValue)) {
        use FieldValue::{Bool as B, Int as I, Str as S};
        let i = |v: u32| I(u64::from(v));
        match self {
            Decoded::PowerManagement(p) => {
                f("version", i(p.version.into()));
                f("d1", B(p.d1));
                f("d2", B(p.d2));
                f("pme_support", i(p.pme_support.into()));
                f(
                    "power_state",
                    S(match p.power_state {
                        PowerState::D0 => "D0",
                        PowerState::D1 => "D1",
                        PowerState::D2 => "D2",
                        PowerState::D3Hot => "D3hot",
                    }),
                );
                f("no_soft_reset", B(p.no_soft_reset));
                f("pme_enable", B(p.pme_enable));
                f("pme_status", B(p.pme_status));
            }
            Decoded::Msi(m) => {
                f("enabled", B(m.enabled));
                f("vectors_capable", i(1 << m.multiple_message_capable.min(5)));
                f("vectors_enabled", i(1 << m.multiple_message_enable.min(5)));
                f("is_64bit", B(m.is_64bit));
                f("per_vector_masking", B(m.per_vector_masking));
            }
            Decoded::MsiX(m) => {
                f("enabled", B(m.enabled));
                f("function_mask", B(m.function_mask));
                f("table_size", i(m.table_size.into()));
                f("table_bar", i(m.table_bar.into()));
                f("table_offset", i(m.table_offset));
                f("pba_bar", i(m.pba_bar.into()));
                f("pba_offset", i(m.pba_offset));
            }
            Decoded::PciExpress(p) => {
                f("version", i(p.version.into()));
                f("port_type", S(p.port_type.name()));
                f("port_type_raw", i(u8::from(p.port_type).into()));
                f("slot_implemented", B(p.slot_implemented));
                f("max_payload_supported", i(p.max_payload_supported.into()));
                f("flr", B(p.flr));
                if let Some(l) = p.link_capabilities {
                    f("link_max_speed", i(l.max_speed.into()));
                    f("link_max_width", i(l.max_width.into()));
                    f("link_port_number", i(l.port_number.into()));
                    f("link_dll_active_reporting", B(l.dll_active_reporting));
                }
                if let Some(s) = p.link_status {
                    f("link_speed", i(s.speed.into()));
                    f("link_width", i(s.width.into()));
                    f("link_dll_active", B(s.dll_active));
                }
                if let Some(s) = p.slot_capabilities {
                    f("slot_hot_plug_capable", B(s.hot_plug_capable));
                    f("slot_hot_plug_surprise", B(s.hot_plug_surprise));
                    f("slot_physical_number", i(s.physical_slot.into()));
                }
                if let Some(d) = p.device_capabilities2 {
                    f("device_capabilities2", i(d));
                    f("ari_forwarding_supported", B(p.ari_forwarding_supported));
                    f("ari_forwarding_enabled", B(p.ari_forwarding_enabled));
                }
            }
            Decoded::AdvancedFeatures(a) => {
                f("length", i(a.length.into()));
                f("transactions_pending", B(a.transactions_pending));
                f("flr", B(a.flr));
            }
            Decoded::VendorSpecific(v) => f("length", i(v.length.into())),
            Decoded::EnhancedAllocation(e) => f("entries", i(e.entries.into())),
            Decoded::BridgeSubsystem(b) => {
                f("subsystem_vendor_id", i(b.vendor.0.into()));
                f("subsystem_id", i(b.device.0.into()));
            }
            Decoded::Aer(a) => {
                f("uncorrectable_status", i(a.uncorrectable_status));
                f("uncorrectable_mask", i(a.uncorrectable_mask));
                f("uncorrectable_severity", i(a.uncorrectable_severity));
                f("correctable_status", i(a.correctable_status));
                f("correctable_mask", i(a.correctable_mask));
                f("capabilities_control", i(a.capabilities_control));
            }
            Decoded::Acs(a) => {
                f("capability", i(a.capability.bits().into()));
                f("control", i(a.control.bits().into()));
                f("cap_sv", B(a.capability.contains(AcsFlags::SV)));
                f("cap_rr", B(a.capability.contains(AcsFlags::RR)));
                f("cap_cr", B(a.capability.contains(AcsFlags::CR)));
                f("cap_uf", B(a.capability.contains(AcsFlags::UF)));
                f("cap_ec", B(a.capability.contains(AcsFlags::EC)));
                f("cap_dt", B(a.capability.contains(AcsFlags::DT)));
                f("ctrl_sv", B(a.control.contains(AcsFlags::SV)));
                f("ctrl_rr", B(a.control.contains(AcsFlags::RR)));
                f("ctrl_cr", B(a.control.contains(AcsFlags::CR)));
                f("ctrl_uf", B(a.control.contains(AcsFlags::UF)));
                f("ctrl_ec", B(a.control.contains(AcsFlags::EC)));
                f("ctrl_dt", B(a.control.contains(AcsFlags::DT)));
            }
            Decoded::Ari(a) => {
                f("mfvc_groups", B(a.mfvc_groups));
                f("acs_groups", B(a.acs_groups));
                f("next_function", i(a.next_function.into()));
            }
            Decoded::Ats(a) => {
                f("invalidate_queue_depth", i(a.invalidate_queue_depth.into()));
                f("page_aligned_request", B(a.page_aligned_request));
                f("global_invalidate", B(a.global_invalidate));
                f("enabled", B(a.enabled));
                f(
                    "smallest_translation_unit",
                    i(a.smallest_translation_unit.into()),
                );
            }
            Decoded::SrIov(s) => {
                f("initial_vfs", i(s.initial_vfs.into()));
                f("total_vfs", i(s.total_vfs.into()));
                f("num_vfs", i(s.num_vfs.into()));
                f("vf_enabled", B(s.vf_enabled()));
                f("first_vf_offset", i(s.first_vf_offset.into()));
                f("vf_stride", i(s.vf_stride.into()));
                f("vf_device_id", i(s.vf_device_id.0.into()));
                f("supported_page_sizes", i(s.supported_page_sizes));
            }
            Decoded::ResizableBar(r) => {
                f("count", i(r.entries().len() as u32));
                const NAMES: [[&str; 3]; 6] = [
                    [
                        "entry0_bar",
                        "entry0_supported_mib_mask",
                        "entry0_current_bytes",
                    ],
                    [
                        "entry1_bar",
                        "entry1_supported_mib_mask",
                        "entry1_current_bytes",
                    ],
                    [
                        "entry2_bar",
                        "entry2_supported_mib_mask",
                        "entry2_current_bytes",
                    ],
                    [
                        "entry3_bar",
                        "entry3_supported_mib_mask",
                        "entry3_current_bytes",
                    ],
                    [
                        "entry4_bar",
                        "entry4_supported_mib_mask",
                        "entry4_current_bytes",
                    ],
                    [
                        "entry5_bar",
                        "entry5_supported_mib_mask",
                        "entry5_current_bytes",
                    ],
                ];
                for (e, n) in r.entries().iter().zip(NAMES.iter()) {
                    f(n[0], i(e.bar().into()));
                    f(n[1], I(e.supported()));
                    f(n[2], I(e.current_bytes()));
                }
            }
            Decoded::Pasid(p) => {
                f("exec_supported", B(p.exec_supported));
                f("privileged_supported", B(p.privileged_supported));
                f("max_width", i(p.max_width.into()));
                f("enabled", B(p.enabled));
            }
            Decoded::Pri(p) => {
                f("enabled", B(p.enabled));
                f("stopped", B(p.stopped));
                f("pasid_required", B(p.pasid_required));
                f("capacity", i(p.capacity));
                f("allocation", i(p.allocation));
            }
            Decoded::Dpc(d) => {
                f(
                    "interrupt_message_number",
                    i(d.interrupt_message_number.into()),
                );
                f("rp_extensions", B(d.rp_extensions));
                f(
                    "poisoned_tlp_egress_blocking",
                    B(d.poisoned_tlp_egress_blocking),
                );
                f("software_triggering", B(d.software_triggering));
                f("dl_active_err_cor", B(d.dl_active_err_cor));
                f("trigger_enable", i(d.trigger_enable.into()));
                f("status", i(d.status.into()));
            }
            Decoded::Ltr(l) => {
                f("max_snoop_ns", I(Ltr::nanoseconds(l.max_snoop_raw)));
                f("max_no_snoop_ns", I(Ltr::nanoseconds(l.max_no_snoop_raw)));
            }
            Decoded::L1PmSubstates(l) => {
                f("pci_pm_l1_2", B(l.pci_pm_l12));
                f("pci_pm_l1_1", B(l.pci_pm_l11));
                f("aspm_l1_2", B(l.aspm_l12));
                f("aspm_l1_1", B(l.aspm_l11));
                f("supported", B(l.supported));
                f(
                    "common_mode_restore_time",
                    i(l.common_mode_restore_time.into()),
                );
                f("t_power_on_scale", i(l.t_power_on_scale.into()));
                f("t_power_on_value", i(l.t_power_on_value.into()));
            }
            Decoded::Dsn(d) => f("serial", I(d.serial)),
            Decoded::Vsec(v) => {
                f("vsec_id", i(v.id.into()));
                f("revision", i(v.revision.into()));
                f("length", i(v.length.into()));
            }
            Decoded::Dvsec(d) => {
                f("vendor", i(d.vendor.0.into()));
                f("revision", i(d.revision.into()));
                f("length", i(d.length.into()));
                f("dvsec_id", i(d.id.into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 256-byte space whose Status says "capabilities" and whose pointer is `first`.
    fn space(first: u8) -> [u8; 4096] {
        let mut b = [0u8; 4096];
        b[0x06] = 0x10;
        b[0x34] = first;
        b
    }

    fn walk(b: &[u8]) -> (usize, Option<WalkError>) {
        let mut n = 0;
        let mut err = None;
        for c in Capabilities::new(b, Some(b[0x34])) {
            match c {
                Ok(_) => n += 1,
                Err(e) => err = Some(e),
            }
        }
        (n, err)
    }

    #[test]
    fn self_pointing_capability_ends_the_walk_with_loop() {
        // docs/rules.md: pcics loops forever on this; we must end with an error value.
        let mut b = space(0x40);
        b[0x40] = 0x05;
        b[0x41] = 0x40;
        assert_eq!(
            walk(&b),
            (
                1,
                Some(WalkError::Loop {
                    from: 0x41,
                    pointer: 0x40
                })
            )
        );
    }

    #[test]
    fn back_pointer_to_earlier_capability_ends_the_walk() {
        let mut b = space(0x60);
        b[0x60] = 0x01;
        b[0x61] = 0x50;
        b[0x50] = 0x05;
        b[0x51] = 0x60;
        assert_eq!(
            walk(&b),
            (
                2,
                Some(WalkError::Loop {
                    from: 0x51,
                    pointer: 0x60
                })
            )
        );
    }

    #[test]
    fn pointer_into_header_is_an_error_and_reserved_pointer_bits_are_masked() {
        let mut b = space(0x3c);
        assert_eq!(
            walk(&b),
            (
                0,
                Some(WalkError::PointerInHeader {
                    from: 0x34,
                    pointer: 0x3c
                })
            )
        );
        // 0x47 and 0x53 name the capabilities at 0x44 and 0x50: the two low bits are
        // reserved (drivers/pci/pci.c masks them, so does lspci's show_caps)
        b[0x34] = 0x47;
        b[0x44] = 0x10;
        b[0x45] = 0x53;
        b[0x50] = 0x01;
        let offsets: ([u16; 2], usize) = {
            let mut o = [0u16; 2];
            let mut n = 0;
            for c in Capabilities::new(&b, Some(b[0x34])) {
                o[n] = c.unwrap().offset;
                n += 1;
            }
            (o, n)
        };
        assert_eq!(offsets, ([0x44, 0x50], 2));
    }

    #[test]
    fn id_0xff_is_a_broken_chain_that_ends_the_walk() {
        // lspci prints "<chain broken>" and the kernel stops at an id of 0xff
        let mut b = space(0x40);
        b[0x40] = 0x01;
        b[0x41] = 0x48;
        b[0x48] = 0xff;
        b[0x49] = 0x50;
        b[0x50] = 0x05;
        assert_eq!(
            walk(&b),
            (
                1,
                Some(WalkError::BrokenChain {
                    from: 0x41,
                    pointer: 0x48
                })
            )
        );
        let msg = std::format!("{}", walk(&b).1.unwrap());
        assert!(msg.contains("0x48") && msg.contains("broken"), "{msg}");
    }

    #[test]
    fn extended_pointers_are_masked_and_all_ones_ends_the_walk() {
        let mut b = [0u8; 4096];
        // 0x100 -> 0x143 (masked 0x140) -> an all-ones header: two... one item, no error
        let h = 0x01_u32 | (1 << 16) | (0x143 << 20);
        b[0x100..0x104].copy_from_slice(&h.to_le_bytes());
        b[0x140..0x144].copy_from_slice(&0x0002_0003_u32.to_le_bytes());
        let got: std::vec::Vec<u16> = ExtCapabilities::new(&b)
            .map(|r| r.unwrap().offset)
            .collect();
        assert_eq!(got, [0x100, 0x140]);
        b[0x140..0x144].copy_from_slice(&[0xff; 4]);
        let got: std::vec::Vec<u16> = ExtCapabilities::new(&b)
            .map(|r| r.unwrap().offset)
            .collect();
        assert_eq!(got, [0x100]);
    }

    #[test]
    fn forty_eight_standard_capabilities_walk_to_the_end() {
        let mut b = space(0x40);
        for off in (0x40..0x100).step_by(4) {
            b[off] = 0x09;
            b[off + 1] = if off == 0xfc { 0 } else { (off + 4) as u8 };
        }
        assert_eq!(walk(&b), (MAX_STD_CAPS, None));
    }

    #[test]
    fn extended_walk_bounds() {
        let mut b = [0u8; 4096];
        // every dword from 0x100 chained: exactly 960 entries, then the end
        for off in (0x100..0x1000).step_by(4) {
            let next = if off == 0xffc { 0 } else { off + 4 };
            let h = 0x0b_u32 | (1 << 16) | ((next as u32) << 20);
            b[off..off + 4].copy_from_slice(&h.to_le_bytes());
        }
        let mut items = 0;
        for r in ExtCapabilities::new(&b) {
            r.unwrap();
            items += 1;
        }
        assert_eq!(items, MAX_EXT_CAPS);
        // self loop at 0x100
        let h = 0x0d_u32 | (1 << 16) | (0x100 << 20);
        b[0x100..0x104].copy_from_slice(&h.to_le_bytes());
        let v: ([Option<Result<ExtCapability, WalkError>>; 3], ()) = {
            let mut w = ExtCapabilities::new(&b);
            ([w.next(), w.next(), w.next()], ())
        };
        assert!(matches!(v.0[0], Some(Ok(c)) if c.id == ExtCapabilityId::Acs));
        assert_eq!(
            v.0[1],
            Some(Err(WalkError::Loop {
                from: 0x100,
                pointer: 0x100
            }))
        );
        assert_eq!(v.0[2], None);
        // next pointer into the first 256 bytes
        let h = 0x01_u32 | (0x0f0 << 20);
        b[0x100..0x104].copy_from_slice(&h.to_le_bytes());
        let mut w = ExtCapabilities::new(&b);
        assert!(w.next().unwrap().is_ok());
        assert_eq!(
            w.next(),
            Some(Err(WalkError::PointerInHeader {
                from: 0x100,
                pointer: 0x0f0
            }))
        );
        // all ones or zero at 0x100: no extended capabilities
        b[0x100..0x104].copy_from_slice(&[0xff; 4]);
        assert_eq!(ExtCapabilities::new(&b).count(), 0);
        b[0x100..0x104].copy_from_slice(&[0; 4]);
        assert_eq!(ExtCapabilities::new(&b).count(), 0);
        // a 256-byte buffer never has extended capabilities
        assert_eq!(ExtCapabilities::new(&b[..256]).count(), 0);
    }

    #[test]
    fn unknown_ids_are_values_not_errors() {
        assert_eq!(CapabilityId::from(0x42), CapabilityId::Unknown(0x42));
        assert_eq!(u8::from(CapabilityId::Unknown(0x42)), 0x42);
        assert_eq!(
            ExtCapabilityId::from(0x0abc),
            ExtCapabilityId::Unknown(0x0abc)
        );
        assert_eq!(u16::from(ExtCapabilityId::Acs), 0x000d);
        assert_eq!(CapabilityId::PciExpress.name(), "PCI Express");
        assert_eq!(ExtCapabilityId::Acs.name(), "Access Control Services");
    }

    #[test]
    fn truncated_capability_is_a_decode_error_with_offset() {
        let b = [0u8; 256];
        assert_eq!(
            PciExpress::parse(&b, 0xfc),
            Err(DecodeError {
                offset: 0xfc,
                at: 0x100
            })
        );
        assert_eq!(SrIov::parse(&b[..], 0xf0).unwrap_err().offset, 0xf0);
    }

    static E1000E: &[u8; 4096] = include_bytes!("../tests/data/tcg-amd/0000-01-00.0.bin");
    static NVME_SRIOV: &[u8; 4096] = include_bytes!("../tests/data/tcg-amd/0000-0c-00.0.bin");
    static VIRTIO_NET: &[u8; 4096] = include_bytes!("../tests/data/tcg-amd/0000-03-00.0.bin");

    fn ext(b: &[u8], id: ExtCapabilityId) -> ExtCapability {
        ExtCapabilities::new(b)
            .map(|r| r.unwrap())
            .find(|c| c.id == id)
            .unwrap()
    }

    fn std_cap(b: &[u8], id: CapabilityId) -> Capability {
        Capabilities::new(b, Some(b[0x34]))
            .map(|r| r.unwrap())
            .find(|c| c.id == id)
            .unwrap()
    }

    #[test]
    fn dsn_msi_msix_from_real_e1000e() {
        // lspci: "[140 v1] Device Serial Number 52-54-00-ff-ff-12-34-56"
        let d = ext(E1000E, ExtCapabilityId::Dsn);
        assert_eq!(d.offset, 0x140);
        let Some(Ok(Decoded::Dsn(dsn))) = d.decode(E1000E) else {
            panic!("no DSN")
        };
        assert_eq!(dsn.serial, 0x5254_00ff_ff12_3456);
        // "[d0] MSI: Enable- Count=1/1 Maskable- 64bit+"
        let m = Msi::parse(E1000E, std_cap(E1000E, CapabilityId::Msi).offset).unwrap();
        assert!(!m.enabled && m.is_64bit && !m.per_vector_masking);
        assert_eq!(m.multiple_message_capable, 0);
        // "[a0] MSI-X: Enable- Count=5 Masked-" and its "Vector table: BAR=3 offset=00000000",
        // "PBA: BAR=3 offset=00002000"
        let x = MsiX::parse(E1000E, 0xa0).unwrap();
        assert_eq!(x.table_size, 5);
        assert!(!x.enabled && !x.function_mask);
        assert_eq!((x.table_bar, x.table_offset), (3, 0));
        assert_eq!((x.pba_bar, x.pba_offset), (3, 0x2000));
        // "[100 v2] Advanced Error Reporting"
        let a = ext(E1000E, ExtCapabilityId::Aer);
        assert_eq!((a.offset, a.version), (0x100, 2));
        assert!(matches!(a.decode(E1000E), Some(Ok(Decoded::Aer(_)))));
    }

    #[test]
    fn bridge_subsystem_from_real_root_port() {
        // lspci: "Capabilities: [40] Subsystem: Red Hat, Inc. Device [1b36:0000]"
        static ROOT_PORT: &[u8; 4096] = include_bytes!("../tests/data/tcg-amd/0000-00-02.0.bin");
        let c = std_cap(ROOT_PORT, CapabilityId::BridgeSubsystem);
        assert_eq!(c.offset, 0x40);
        let Some(Ok(Decoded::BridgeSubsystem(b))) = c.decode(ROOT_PORT) else {
            panic!("no bridge subsystem")
        };
        assert_eq!((b.vendor, b.device), (VendorId(0x1b36), DeviceId(0x0000)));
    }

    #[test]
    fn sriov_and_ari_from_real_nvme() {
        // "[100 v1] Alternative Routing-ID Interpretation (ARI)"
        // "[120 v1] Single Root I/O Virtualization (SR-IOV)
        //   Initial VFs: 2, Total VFs: 2, Number of VFs: 0 ... VF offset: 1, stride: 1, Device ID: 0010"
        let a = ext(NVME_SRIOV, ExtCapabilityId::Ari);
        assert_eq!(a.offset, 0x100);
        let s = ext(NVME_SRIOV, ExtCapabilityId::SrIov);
        assert_eq!(s.offset, 0x120);
        let Some(Ok(Decoded::SrIov(v))) = s.decode(NVME_SRIOV) else {
            panic!("no SR-IOV")
        };
        assert_eq!((v.initial_vfs, v.total_vfs, v.num_vfs), (2, 2, 0));
        assert_eq!((v.first_vf_offset, v.vf_stride), (1, 1));
        assert_eq!(v.vf_device_id, DeviceId(0x0010));
        assert_eq!(v.function_dependency_link, 0);
        assert!(!v.vf_enabled());
    }

    #[test]
    fn vendor_specific_lengths_from_real_virtio() {
        // virtio's vendor caps: 0x10-byte common/notify-style structures (lspci shows 5 of them)
        let n = Capabilities::new(VIRTIO_NET, Some(VIRTIO_NET[0x34]))
            .map(|r| r.unwrap())
            .filter(|c| c.id == CapabilityId::VendorSpecific)
            .count();
        assert_eq!(n, 5);
        let c = std_cap(VIRTIO_NET, CapabilityId::VendorSpecific);
        let v = VendorSpecific::parse(VIRTIO_NET, c.offset).unwrap();
        assert_eq!(v.length, VIRTIO_NET[usize::from(c.offset) + 2]);
        assert!(v.length >= 0x10);
    }

    #[test]
    fn ltr_scale_and_rebar_sizes() {
        // LTR: value 0x3ff, scale 2 -> 1023 * 1024 ns; scale > 5 is reserved (clamped)
        assert_eq!(Ltr::nanoseconds(0x3ff | (2 << 10)), 1023 * 1024);
        assert_eq!(Ltr::nanoseconds(1 | (1 << 10)), 32);
        let mut b = [0u8; 4096];
        // ReBAR at 0x100: cap supports 256 MiB..=8 GiB (bits 8..=13 of sizes), ctl: BAR 0,
        // one entry, current 256 MiB (8)
        let h = 0x15u32 | (1 << 16);
        b[0x100..0x104].copy_from_slice(&h.to_le_bytes());
        let cap = 0b11_1111u32 << (8 + 4);
        b[0x104..0x108].copy_from_slice(&cap.to_le_bytes());
        let ctl = (1u32 << 5) | (8 << 8);
        b[0x108..0x10c].copy_from_slice(&ctl.to_le_bytes());
        let r = ResizableBar::parse(&b, 0x100).unwrap();
        assert_eq!(r.entries().len(), 1);
        assert_eq!(r.entries()[0].supported(), 0b11_1111 << 8);
        assert_eq!(r.entries()[0].current_bytes(), 256 << 20);
    }
}
