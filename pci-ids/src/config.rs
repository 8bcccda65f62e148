//! Config-space view: a wrapper over `T: AsRef<[u8]>` that decodes the type 0
//! (endpoint) and type 1 (PCI-to-PCI bridge) headers, and of a CardBus bridge
//! (type 2) what locates its capabilities, bus numbers, BAR and subsystem ids.
//!
//! Which lists exist follows the kernel and lspci, not the buffer's length alone:
//! the standard list starts at the register [`ConfigSpace::capabilities_register`]
//! names, and the extended list only when [`ConfigSpace::has_extended_config`].
//!
//! # Contract
//!
//! [`ConfigSpace::new_checked`] accepts exactly 64, 256 or 4096 bytes (what sysfs
//! `config` gives a non-root reader, a root reader of a conventional device, and a
//! root reader of a PCIe device). Any other length is a [`ConfigError::Length`]
//! naming the length. [`ConfigSpace::new_prefix`] is the lenient form: it keeps the
//! largest valid prefix (4096, 256 or 64 bytes) and fails only below 64 bytes.
//! After either check **no accessor panics**: header fields live in the first 64
//! bytes, and capability reads go through bounded helpers that return errors.
//! [`ConfigSpace::new_unchecked`] skips the check; its accessors may panic on a
//! buffer shorter than 64 bytes (as smoltcp's `new_unchecked`).
//!
//! Registers that are bit sets are [`bitflags`] types; unknown bits are kept.

use crate::caps::{
    Acs, AdvancedFeatures, Capabilities, CapabilityId, ExtCapabilities, ExtCapabilityId,
    PciExpress, PortType, PowerManagement,
};
use crate::ids::{ClassCode, DeviceId, VendorId};
use core::fmt;

/// Byte offsets of header registers (PCI Local Bus spec 3.0, 6.1 / PCI-to-PCI bridge spec 3.2).
pub(crate) mod field {
    use core::ops::Range;
    pub type Field = Range<usize>;

    pub const VENDOR_ID: Field = 0x00..0x02;
    pub const DEVICE_ID: Field = 0x02..0x04;
    pub const COMMAND: Field = 0x04..0x06;
    pub const STATUS: Field = 0x06..0x08;
    pub const REVISION: usize = 0x08;
    pub const PROG_IF: usize = 0x09;
    pub const SUBCLASS: usize = 0x0a;
    pub const CLASS: usize = 0x0b;
    pub const CACHE_LINE: usize = 0x0c;
    pub const LATENCY: usize = 0x0d;
    pub const HEADER_TYPE: usize = 0x0e;
    pub const BIST: usize = 0x0f;
    pub const BAR0: usize = 0x10;
    // type 0
    pub const CARDBUS_CIS: Field = 0x28..0x2c;
    pub const SUBSYSTEM_VENDOR: Field = 0x2c..0x2e;
    pub const SUBSYSTEM_ID: Field = 0x2e..0x30;
    pub const ROM0: Field = 0x30..0x34;
    pub const CAP_PTR: usize = 0x34;
    pub const INTERRUPT_LINE: usize = 0x3c;
    pub const INTERRUPT_PIN: usize = 0x3d;
    pub const MIN_GNT: usize = 0x3e;
    pub const MAX_LAT: usize = 0x3f;
    // type 1
    pub const PRIMARY_BUS: usize = 0x18;
    pub const SECONDARY_BUS: usize = 0x19;
    pub const SUBORDINATE_BUS: usize = 0x1a;
    pub const SECONDARY_LATENCY: usize = 0x1b;
    pub const IO_BASE: usize = 0x1c;
    pub const IO_LIMIT: usize = 0x1d;
    pub const SECONDARY_STATUS: Field = 0x1e..0x20;
    pub const MEM_BASE: Field = 0x20..0x22;
    pub const MEM_LIMIT: Field = 0x22..0x24;
    pub const PREF_BASE: Field = 0x24..0x26;
    pub const PREF_LIMIT: Field = 0x26..0x28;
    pub const PREF_BASE_UPPER: Field = 0x28..0x2c;
    pub const PREF_LIMIT_UPPER: Field = 0x2c..0x30;
    pub const IO_BASE_UPPER: Field = 0x30..0x32;
    pub const IO_LIMIT_UPPER: Field = 0x32..0x34;
    pub const ROM1: Field = 0x38..0x3c;
    pub const BRIDGE_CONTROL: Field = 0x3e..0x40;
    // type 2 (PC Card standard, as the kernel's include/uapi/linux/pci_regs.h PCI_CB_*);
    // bus numbers and Bridge Control sit where type 1 keeps them
    pub const CB_CAP_PTR: usize = 0x14;
    pub const CB_SUBSYSTEM_VENDOR: Field = 0x40..0x42;
    pub const CB_SUBSYSTEM_ID: Field = 0x42..0x44;
}

/// Length of the header every PCI function has (and what sysfs shows a non-root reader).
pub const HEADER_LEN: usize = 64;
/// Length of conventional PCI config space.
pub const PCI_LEN: usize = 256;
/// Length of PCI Express extended config space.
pub const PCIE_LEN: usize = 4096;

/// Why a byte buffer is not a config space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The buffer is not 64, 256 or 4096 bytes long (or, for the lenient
    /// [`ConfigSpace::new_prefix`], shorter than 64).
    Length {
        /// The length that was given.
        len: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Length { len } => write!(
                f,
                "config space is {len} bytes; expected 64, 256 or 4096 (as sysfs `config`)"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

bitflags::bitflags! {
    /// Command register (offset 0x04).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Command: u16 {
        /// I/O Space enable.
        const IO = 1 << 0;
        /// Memory Space enable.
        const MEMORY = 1 << 1;
        /// Bus Master enable.
        const BUS_MASTER = 1 << 2;
        /// Special Cycles.
        const SPECIAL = 1 << 3;
        /// Memory Write and Invalidate enable.
        const MWI = 1 << 4;
        /// VGA Palette Snoop.
        const VGA_SNOOP = 1 << 5;
        /// Parity Error Response.
        const PARITY = 1 << 6;
        /// IDSEL stepping / wait cycle control.
        const STEPPING = 1 << 7;
        /// SERR# enable.
        const SERR = 1 << 8;
        /// Fast back-to-back enable.
        const FAST_B2B = 1 << 9;
        /// Interrupt Disable (INTx emulation off).
        const INTX_DISABLE = 1 << 10;
        /// Bits this crate does not name are kept.
        const _ = !0;
    }
}

bitflags::bitflags! {
    /// Status register (offset 0x06).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Status: u16 {
        /// Immediate Readiness.
        const IMMEDIATE_READINESS = 1 << 0;
        /// Interrupt Status (INTx asserted).
        const INTERRUPT = 1 << 3;
        /// Capabilities List: the capabilities pointer (0x34, or 0x14 in a CardBus
        /// header) is valid.
        const CAP_LIST = 1 << 4;
        /// 66 MHz capable.
        const MHZ66 = 1 << 5;
        /// User-Definable Features.
        const UDF = 1 << 6;
        /// Fast back-to-back capable.
        const FAST_B2B = 1 << 7;
        /// Master Data Parity Error.
        const PARITY = 1 << 8;
        /// Signaled Target Abort.
        const SIG_TARGET_ABORT = 1 << 11;
        /// Received Target Abort.
        const REC_TARGET_ABORT = 1 << 12;
        /// Received Master Abort.
        const REC_MASTER_ABORT = 1 << 13;
        /// Signaled System Error.
        const SIG_SYSTEM_ERROR = 1 << 14;
        /// Detected Parity Error.
        const DETECTED_PARITY = 1 << 15;
        /// Bits this crate does not name are kept.
        const _ = !0;
    }
}

impl Status {
    /// DEVSEL timing (bits 10:9): 0 fast, 1 medium, 2 slow.
    pub const fn devsel(&self) -> u8 {
        ((self.bits() >> 9) & 3) as u8
    }
}

bitflags::bitflags! {
    /// Bridge Control register of a type 1 header (offset 0x3e).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct BridgeControl: u16 {
        /// Parity Error Response Enable.
        const PARITY = 1 << 0;
        /// SERR# Enable.
        const SERR = 1 << 1;
        /// ISA Enable.
        const ISA = 1 << 2;
        /// VGA Enable: the bridge forwards legacy VGA ranges.
        const VGA = 1 << 3;
        /// VGA 16-bit decode.
        const VGA16 = 1 << 4;
        /// Master Abort Mode.
        const MASTER_ABORT = 1 << 5;
        /// Secondary Bus Reset: asserting it resets everything below the bridge.
        const SECONDARY_BUS_RESET = 1 << 6;
        /// Fast back-to-back enable on the secondary bus.
        const FAST_B2B = 1 << 7;
        /// Primary Discard Timeout.
        const PRI_DISCARD_TIMER = 1 << 8;
        /// Secondary Discard Timeout.
        const SEC_DISCARD_TIMER = 1 << 9;
        /// Discard Timer Status.
        const DISCARD_TIMER_STATUS = 1 << 10;
        /// Discard Timer SERR# Enable.
        const DISCARD_TIMER_SERR = 1 << 11;
        /// Bits this crate does not name are kept.
        const _ = !0;
    }
}

/// The header layout (header type register bits 6:0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderType {
    /// Type 0: an endpoint (six BARs, subsystem IDs).
    Normal,
    /// Type 1: a PCI-to-PCI bridge (two BARs, bus numbers, windows).
    Bridge,
    /// Type 2: a CardBus bridge.
    CardBus,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for HeaderType {
    fn from(v: u8) -> HeaderType {
        match v & 0x7f {
            0 => HeaderType::Normal,
            1 => HeaderType::Bridge,
            2 => HeaderType::CardBus,
            x => HeaderType::Unknown(x),
        }
    }
}

impl From<HeaderType> for u8 {
    fn from(v: HeaderType) -> u8 {
        match v {
            HeaderType::Normal => 0,
            HeaderType::Bridge => 1,
            HeaderType::CardBus => 2,
            HeaderType::Unknown(x) => x & 0x7f,
        }
    }
}

/// The legacy interrupt pin a function uses (register 0x3d).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InterruptPin {
    /// No INTx pin (0).
    None,
    /// INTA# (1).
    A,
    /// INTB# (2).
    B,
    /// INTC# (3).
    C,
    /// INTD# (4).
    D,
    /// A reserved value.
    Unknown(u8),
}

impl From<u8> for InterruptPin {
    fn from(v: u8) -> InterruptPin {
        match v {
            0 => InterruptPin::None,
            1 => InterruptPin::A,
            2 => InterruptPin::B,
            3 => InterruptPin::C,
            4 => InterruptPin::D,
            x => InterruptPin::Unknown(x),
        }
    }
}

impl From<InterruptPin> for u8 {
    fn from(v: InterruptPin) -> u8 {
        match v {
            InterruptPin::None => 0,
            InterruptPin::A => 1,
            InterruptPin::B => 2,
            InterruptPin::C => 3,
            InterruptPin::D => 4,
            InterruptPin::Unknown(x) => x,
        }
    }
}

/// A decoded Base Address Register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Bar {
    /// 32-bit memory BAR (type 00).
    Memory32 {
        /// Base address (low 4 bits masked).
        address: u32,
        /// Prefetchable bit (3).
        prefetchable: bool,
    },
    /// Memory BAR below 1 MiB (legacy type 01).
    Memory1M {
        /// Base address.
        address: u32,
        /// Prefetchable bit (3).
        prefetchable: bool,
    },
    /// 64-bit memory BAR (type 10), consuming this BAR and the next.
    Memory64 {
        /// Base address from both dwords.
        address: u64,
        /// Prefetchable bit (3).
        prefetchable: bool,
    },
    /// 64-bit memory BAR in the last slot: its upper half is missing.
    Memory64Truncated {
        /// The low dword's address bits.
        address_low: u32,
    },
    /// Reserved memory type 11.
    MemoryReserved {
        /// The raw register.
        raw: u32,
    },
    /// I/O BAR (bit 0 set).
    Io {
        /// Port address (low 2 bits masked).
        address: u32,
    },
}

impl Bar {
    /// Whether this BAR occupies two slots.
    pub const fn is_64bit(&self) -> bool {
        matches!(self, Bar::Memory64 { .. })
    }

    /// Decode a BAR from its register and, for 64-bit BARs, the next register.
    #[inline]
    pub const fn decode(low: u32, high: Option<u32>) -> Bar {
        if low & 1 == 1 {
            return Bar::Io {
                address: low & !0x3,
            };
        }
        let prefetchable = low & 0x8 != 0;
        let address = low & !0xf;
        match (low >> 1) & 3 {
            0 => Bar::Memory32 {
                address,
                prefetchable,
            },
            1 => Bar::Memory1M {
                address,
                prefetchable,
            },
            2 => match high {
                Some(h) => Bar::Memory64 {
                    address: ((h as u64) << 32) | address as u64,
                    prefetchable,
                },
                None => Bar::Memory64Truncated {
                    address_low: address,
                },
            },
            _ => Bar::MemoryReserved { raw: low },
        }
    }
}

/// A read-only or read-write view of a config space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigSpace<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ConfigSpace<T> {
    /// Wrap without checking the length; accessors may panic on fewer than 64 bytes.
    pub const fn new_unchecked(buffer: T) -> ConfigSpace<T> {
        ConfigSpace { buffer }
    }

    /// Wrap after checking the length is 64, 256 or 4096 bytes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Length`] when `buffer` is not 64, 256 or 4096 bytes long.
    pub fn new_checked(buffer: T) -> Result<ConfigSpace<T>, ConfigError> {
        let c = ConfigSpace::new_unchecked(buffer);
        c.check_len()?;
        Ok(c)
    }

    /// Check the length is 64, 256 or 4096 bytes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Length`] when the buffer is not 64, 256 or 4096 bytes long.
    pub fn check_len(&self) -> Result<(), ConfigError> {
        match self.buffer.as_ref().len() {
            HEADER_LEN | PCI_LEN | PCIE_LEN => Ok(()),
            len => Err(ConfigError::Length { len }),
        }
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// All the bytes of the view.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Length of the view (64, 256 or 4096 after a check).
    pub fn len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// Never true after a length check.
    pub fn is_empty(&self) -> bool {
        self.buffer.as_ref().is_empty()
    }

    /// Whether capabilities beyond the 64-byte header are readable (length >= 256).
    pub fn has_capability_area(&self) -> bool {
        self.len() >= PCI_LEN
    }

    /// Whether the extended area (0x100..0x1000) is present (length 4096).
    pub fn has_extended_area(&self) -> bool {
        self.len() >= PCIE_LEN
    }

    fn b(&self, off: usize) -> u8 {
        self.buffer.as_ref()[off]
    }

    fn w(&self, f: field::Field) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_le_bytes([d[f.start], d[f.start + 1]])
    }

    fn dw(&self, off: usize) -> u32 {
        let d = self.buffer.as_ref();
        u32::from_le_bytes([d[off], d[off + 1], d[off + 2], d[off + 3]])
    }

    /// Vendor ID (0x00). `ffff` means no device answered.
    pub fn vendor_id(&self) -> VendorId {
        VendorId(self.w(field::VENDOR_ID))
    }

    /// Whether a function answered: a vendor ID of `ffff` is what a read of an absent
    /// device (or one that fell off the bus) returns.
    pub fn present(&self) -> bool {
        self.vendor_id() != VendorId::INVALID
    }

    /// Device ID (0x02).
    pub fn device_id(&self) -> DeviceId {
        DeviceId(self.w(field::DEVICE_ID))
    }

    /// Command register (0x04).
    pub fn command(&self) -> Command {
        Command::from_bits_retain(self.w(field::COMMAND))
    }

    /// Status register (0x06).
    pub fn status(&self) -> Status {
        Status::from_bits_retain(self.w(field::STATUS))
    }

    /// Revision ID (0x08).
    pub fn revision(&self) -> u8 {
        self.b(field::REVISION)
    }

    /// Class code (0x09..0x0c).
    pub fn class_code(&self) -> ClassCode {
        ClassCode {
            class: self.b(field::CLASS),
            subclass: self.b(field::SUBCLASS),
            prog_if: self.b(field::PROG_IF),
        }
    }

    /// Cache line size (0x0c), in dwords.
    pub fn cache_line_size(&self) -> u8 {
        self.b(field::CACHE_LINE)
    }

    /// Latency timer (0x0d).
    pub fn latency_timer(&self) -> u8 {
        self.b(field::LATENCY)
    }

    /// Raw header type register (0x0e), multifunction bit included.
    pub fn header_type_raw(&self) -> u8 {
        self.b(field::HEADER_TYPE)
    }

    /// Header layout (0x0e bits 6:0).
    pub fn header_type(&self) -> HeaderType {
        HeaderType::from(self.header_type_raw())
    }

    /// Multifunction bit (0x0e bit 7): function 0 says more functions exist.
    pub fn multifunction(&self) -> bool {
        self.header_type_raw() & 0x80 != 0
    }

    /// BIST register (0x0f).
    pub fn bist(&self) -> u8 {
        self.b(field::BIST)
    }

    /// Number of BAR slots of this header type (6 for type 0, 2 for type 1, 1 for a
    /// CardBus bridge, 0 otherwise).
    pub fn bar_count(&self) -> usize {
        match self.header_type() {
            HeaderType::Normal => 6,
            HeaderType::Bridge => 2,
            // the socket / ExCA base at 0x10 (the kernel's pci_read_bases(dev, 1, 0))
            HeaderType::CardBus => 1,
            HeaderType::Unknown(_) => 0,
        }
    }

    /// Raw BAR register `index` (0-based), `None` past [`Self::bar_count`].
    pub fn bar_raw(&self, index: usize) -> Option<u32> {
        if index < self.bar_count() {
            Some(self.dw(field::BAR0 + 4 * index))
        } else {
            None
        }
    }

    /// Decode BAR `index`. The upper half of a 64-bit BAR decodes as whatever it
    /// holds; use [`Self::bars`] to skip it.
    pub fn bar(&self, index: usize) -> Option<Bar> {
        let low = self.bar_raw(index)?;
        Some(Bar::decode(low, self.bar_raw(index + 1)))
    }

    /// Every BAR with its slot index, 64-bit BARs once (their upper slot skipped).
    pub fn bars(&self) -> Bars<'_> {
        Bars {
            space: self.as_bytes(),
            count: self.bar_count(),
            index: 0,
        }
    }

    /// Subsystem vendor ID (type 0 header, 0x2c); `None` for other header types.
    pub fn subsystem_vendor_id(&self) -> Option<VendorId> {
        match self.header_type() {
            HeaderType::Normal => Some(VendorId(self.w(field::SUBSYSTEM_VENDOR))),
            _ => None,
        }
    }

    /// Subsystem ID (type 0 header, 0x2e); `None` for other header types.
    pub fn subsystem_id(&self) -> Option<DeviceId> {
        match self.header_type() {
            HeaderType::Normal => Some(DeviceId(self.w(field::SUBSYSTEM_ID))),
            _ => None,
        }
    }

    /// Subsystem ids wherever this header type keeps them: the type 0 header, a
    /// type 1 header's Bridge Subsystem ID capability (0x0d), or a CardBus bridge's
    /// registers at 0x40 and 0x42 (past the 64-byte header, so `None` for a 64-byte
    /// read; lspci's `get_subid` reads them likewise only with 128 bytes or more).
    pub fn subsystem(&self) -> Option<(VendorId, DeviceId)> {
        match self.header_type() {
            HeaderType::Normal => Some((
                VendorId(self.w(field::SUBSYSTEM_VENDOR)),
                DeviceId(self.w(field::SUBSYSTEM_ID)),
            )),
            HeaderType::Bridge => {
                let off = self.find_capability(CapabilityId::BridgeSubsystem)?;
                let b = crate::caps::BridgeSubsystem::parse(self.as_bytes(), off).ok()?;
                Some((b.vendor, b.device))
            }
            HeaderType::CardBus => {
                let d = self.as_bytes();
                let at = |f: field::Field| d.get(f).map(|b| u16::from_le_bytes([b[0], b[1]]));
                Some((
                    VendorId(at(field::CB_SUBSYSTEM_VENDOR)?),
                    DeviceId(at(field::CB_SUBSYSTEM_ID)?),
                ))
            }
            HeaderType::Unknown(_) => None,
        }
    }

    /// CardBus CIS pointer (type 0, 0x28).
    pub fn cardbus_cis(&self) -> Option<u32> {
        match self.header_type() {
            HeaderType::Normal => Some(self.dw(field::CARDBUS_CIS.start)),
            _ => None,
        }
    }

    /// Expansion ROM register (0x30 for type 0, 0x38 for type 1), raw.
    pub fn expansion_rom_raw(&self) -> Option<u32> {
        match self.header_type() {
            HeaderType::Normal => Some(self.dw(field::ROM0.start)),
            HeaderType::Bridge => Some(self.dw(field::ROM1.start)),
            _ => None,
        }
    }

    /// Expansion ROM base address and enable bit.
    pub fn expansion_rom(&self) -> Option<(u32, bool)> {
        self.expansion_rom_raw()
            .map(|r| (r & 0xffff_f800, r & 1 == 1))
    }

    /// The byte at 0x34 as stored, reserved low bits included: the capabilities
    /// pointer of a type 0 or type 1 header (a CardBus header keeps I/O Base 1 there;
    /// see [`ConfigSpace::capabilities_register`]).
    pub fn capabilities_pointer_raw(&self) -> u8 {
        self.b(field::CAP_PTR)
    }

    /// Where this header type keeps its capabilities pointer: 0x34 for type 0 and
    /// type 1, 0x14 for a CardBus bridge (type 2), `None` for an unknown layout (the
    /// kernel's `__pci_bus_find_cap_start`; lspci walks no list for an unknown type).
    pub fn capabilities_register(&self) -> Option<u16> {
        match self.header_type() {
            HeaderType::Normal | HeaderType::Bridge => Some(field::CAP_PTR as u16),
            HeaderType::CardBus => Some(field::CB_CAP_PTR as u16),
            HeaderType::Unknown(_) => None,
        }
    }

    /// Capabilities pointer, read from [`ConfigSpace::capabilities_register`], when
    /// the Status register's Capabilities List bit says it is valid.
    pub fn capabilities_pointer(&self) -> Option<u8> {
        let reg = self.capabilities_register()?;
        if self.status().contains(Status::CAP_LIST) {
            Some(self.b(usize::from(reg)))
        } else {
            None
        }
    }

    /// Interrupt line (0x3c), as firmware routed it.
    pub fn interrupt_line(&self) -> u8 {
        self.b(field::INTERRUPT_LINE)
    }

    /// Interrupt pin (0x3d).
    pub fn interrupt_pin(&self) -> InterruptPin {
        InterruptPin::from(self.b(field::INTERRUPT_PIN))
    }

    /// Min_Gnt (type 0, 0x3e).
    pub fn min_gnt(&self) -> Option<u8> {
        match self.header_type() {
            HeaderType::Normal => Some(self.b(field::MIN_GNT)),
            _ => None,
        }
    }

    /// Max_Lat (type 0, 0x3f).
    pub fn max_lat(&self) -> Option<u8> {
        match self.header_type() {
            HeaderType::Normal => Some(self.b(field::MAX_LAT)),
            _ => None,
        }
    }

    /// Bridge bus numbers (type 1 only; see [`ConfigSpace::bus_numbers`] for CardBus too).
    pub fn bridge_buses(&self) -> Option<BridgeBuses> {
        match self.header_type() {
            HeaderType::Bridge => Some(self.buses()),
            _ => None,
        }
    }

    /// Bus numbers of either kind of bridge: a type 1 header or a CardBus bridge
    /// (type 2), which keeps primary, CardBus (secondary) and subordinate bus numbers
    /// and its latency timer at the same offsets, 0x18..0x1c.
    pub fn bus_numbers(&self) -> Option<BridgeBuses> {
        match self.header_type() {
            HeaderType::Bridge | HeaderType::CardBus => Some(self.buses()),
            _ => None,
        }
    }

    fn buses(&self) -> BridgeBuses {
        BridgeBuses {
            primary: self.b(field::PRIMARY_BUS),
            secondary: self.b(field::SECONDARY_BUS),
            subordinate: self.b(field::SUBORDINATE_BUS),
            secondary_latency: self.b(field::SECONDARY_LATENCY),
        }
    }

    /// Bridge Control (0x3e) of a type 1 header or a CardBus bridge. Bits 0-3, 5 and 6
    /// mean the same in both (bit 6 of a CardBus bridge resets the card behind it);
    /// bits 7-10 of a CardBus bridge are its own (16-bit interrupts, prefetch,
    /// posted writes) and are kept under the type 1 names.
    pub fn bridge_control(&self) -> Option<BridgeControl> {
        match self.header_type() {
            HeaderType::Bridge | HeaderType::CardBus => Some(BridgeControl::from_bits_retain(
                self.w(field::BRIDGE_CONTROL),
            )),
            _ => None,
        }
    }

    /// Secondary Status of a bridge (type 1, 0x1e).
    pub fn secondary_status(&self) -> Option<Status> {
        match self.header_type() {
            HeaderType::Bridge => Some(Status::from_bits_retain(self.w(field::SECONDARY_STATUS))),
            _ => None,
        }
    }

    /// The bridge's forwarding windows (type 1 only).
    pub fn bridge_windows(&self) -> Option<BridgeWindows> {
        if self.header_type() != HeaderType::Bridge {
            return None;
        }
        let io_base = self.b(field::IO_BASE);
        let io_limit = self.b(field::IO_LIMIT);
        let io32 = io_base & 0xf == 1;
        let (io_hi_b, io_hi_l) = if io32 {
            (
                u32::from(self.w(field::IO_BASE_UPPER)),
                u32::from(self.w(field::IO_LIMIT_UPPER)),
            )
        } else {
            (0, 0)
        };
        let io = (
            (io_hi_b << 16) | (u32::from(io_base & 0xf0) << 8),
            (io_hi_l << 16) | (u32::from(io_limit & 0xf0) << 8) | 0xfff,
        );
        let mem_b = u32::from(self.w(field::MEM_BASE) & 0xfff0) << 16;
        let mem_l = (u32::from(self.w(field::MEM_LIMIT) & 0xfff0) << 16) | 0xf_ffff;
        let pb = self.w(field::PREF_BASE);
        let pl = self.w(field::PREF_LIMIT);
        let pref64 = pb & 0xf == 1;
        let (pbu, plu) = if pref64 {
            (
                u64::from(self.dw(field::PREF_BASE_UPPER.start)),
                u64::from(self.dw(field::PREF_LIMIT_UPPER.start)),
            )
        } else {
            (0, 0)
        };
        let pref_b = (pbu << 32) | (u64::from(pb & 0xfff0) << 16);
        let pref_l = (plu << 32) | (u64::from(pl & 0xfff0) << 16) | 0xf_ffff;
        Some(BridgeWindows {
            io: window(io.0 as u64, io.1 as u64),
            io_32bit: io32,
            memory: window(mem_b as u64, mem_l as u64),
            prefetchable: window(pref_b, pref_l),
            prefetchable_64bit: pref64,
        })
    }

    /// The standard capability list, walked with the bounds of [`Capabilities`] from
    /// [`ConfigSpace::capabilities_register`]. Empty when the Status Capabilities List
    /// bit is clear or the header type is unknown.
    pub fn capabilities(&self) -> Capabilities<'_> {
        let reg = self
            .capabilities_register()
            .unwrap_or(field::CAP_PTR as u16);
        Capabilities::new_at(self.as_bytes(), self.capabilities_pointer(), reg)
    }

    /// Whether this function has an extended config space (0x100..0x1000) to walk:
    ///
    /// - the buffer holds 4096 bytes;
    /// - a PCI Express (0x10) or PCI-X (0x07) capability is in the standard list:
    ///   lspci walks extended capabilities only then (ls-caps.c `show_caps`); the
    ///   kernel likewise sizes a conventional function's space at 256 bytes
    ///   (drivers/pci/probe.c `pci_cfg_space_size`), so a 4 KiB read of such a
    ///   function holds no capability list above 0x100, whatever the bytes say;
    /// - the dwords at 0x100, 0x200, ... 0xf00 are not all copies of dword 0: a
    ///   function that ignores the upper address bits repeats its first 256 bytes
    ///   there, and the kernel then gives it 256 bytes (`pci_ext_cfg_is_aliased`).
    ///
    /// lspci has no alias check and accepts PCI-X without the 266/533 MHz bits the
    /// kernel asks for; neither difference shows on a space the kernel sized.
    pub fn has_extended_config(&self) -> bool {
        if self.len() < PCIE_LEN {
            return false;
        }
        let d0 = self.dw(0);
        if (1..16).all(|i| self.dw(i * PCI_LEN) == d0) {
            return false;
        }
        self.capabilities()
            .map_while(Result::ok)
            .any(|c| matches!(c.id, CapabilityId::PciExpress | CapabilityId::PciX))
    }

    /// The extended capability list from 0x100; empty unless
    /// [`ConfigSpace::has_extended_config`].
    pub fn extended_capabilities(&self) -> ExtCapabilities<'_> {
        let bytes = self.as_bytes();
        if self.has_extended_config() {
            ExtCapabilities::new(bytes)
        } else {
            ExtCapabilities::new(&bytes[..0])
        }
    }

    /// Offset of the first standard capability with `id`, stopping at the first walk error.
    pub fn find_capability(&self, id: CapabilityId) -> Option<u16> {
        self.capabilities()
            .map_while(Result::ok)
            .find(|c| c.id == id)
            .map(|c| c.offset)
    }

    /// Offset of the first extended capability with `id`, stopping at the first walk error.
    pub fn find_ext_capability(&self, id: ExtCapabilityId) -> Option<u16> {
        self.extended_capabilities()
            .map_while(Result::ok)
            .find(|c| c.id == id)
            .map(|c| c.offset)
    }

    /// The PCI Express capability, decoded (`None` if absent or truncated).
    pub fn pcie(&self) -> Option<PciExpress> {
        let off = self.find_capability(CapabilityId::PciExpress)?;
        PciExpress::parse(self.as_bytes(), off).ok()
    }

    /// The PCI Power Management capability, decoded.
    pub fn power_management(&self) -> Option<PowerManagement> {
        let off = self.find_capability(CapabilityId::PowerManagement)?;
        PowerManagement::parse(self.as_bytes(), off).ok()
    }

    /// The Advanced Features capability, decoded.
    pub fn advanced_features(&self) -> Option<AdvancedFeatures> {
        let off = self.find_capability(CapabilityId::AdvancedFeatures)?;
        AdvancedFeatures::parse(self.as_bytes(), off).ok()
    }

    /// Function Level Reset via PCIe: Device Capabilities bit 28 (drivers/pci/pci.c pcie_has_flr).
    /// Quirks (NO_FLR) are the host model's business, not this decoder's.
    pub fn flr(&self) -> bool {
        self.pcie().is_some_and(|p| p.flr)
    }

    /// FLR via Advanced Features: both TP and FLR set, as the kernel and QEMU require
    /// (drivers/pci/pci.c pci_af_flr; libvirt checks FLR alone).
    pub fn af_flr(&self) -> bool {
        self.advanced_features()
            .is_some_and(|af| af.transactions_pending && af.flr)
    }

    /// PMCSR No_Soft_Reset (drivers/pci/pci.c pci_pm_reset): `None` without a PM capability,
    /// `Some(true)` when a D3hot->D0 transition keeps state (no PM reset).
    pub fn pm_no_soft_reset(&self) -> Option<bool> {
        self.power_management().map(|pm| pm.no_soft_reset)
    }

    /// PCIe port type (`None` for conventional PCI).
    pub fn pcie_port_type(&self) -> Option<PortType> {
        self.pcie().map(|p| p.port_type)
    }

    /// The ACS extended capability, decoded (`None` if absent).
    pub fn acs(&self) -> Option<Acs> {
        let off = self.find_ext_capability(ExtCapabilityId::Acs)?;
        Acs::parse(self.as_bytes(), off).ok()
    }
}

impl<'a> ConfigSpace<&'a [u8]> {
    /// Lenient constructor: keep the largest valid prefix (4096, 256 or 64 bytes) of
    /// `bytes`, so a 300-byte read decodes as 256 bytes. Fails below 64 bytes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Length`] when `bytes` is shorter than 64 bytes.
    pub fn new_prefix(bytes: &'a [u8]) -> Result<ConfigSpace<&'a [u8]>, ConfigError> {
        let n = if bytes.len() >= PCIE_LEN {
            PCIE_LEN
        } else if bytes.len() >= PCI_LEN {
            PCI_LEN
        } else if bytes.len() >= HEADER_LEN {
            HEADER_LEN
        } else {
            return Err(ConfigError::Length { len: bytes.len() });
        };
        Ok(ConfigSpace::new_unchecked(&bytes[..n]))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ConfigSpace<T> {
    fn set_w(&mut self, f: field::Field, v: u16) {
        self.buffer.as_mut()[f].copy_from_slice(&v.to_le_bytes());
    }

    /// Set the vendor ID.
    pub fn set_vendor_id(&mut self, v: VendorId) {
        self.set_w(field::VENDOR_ID, v.0)
    }

    /// Set the device ID.
    pub fn set_device_id(&mut self, v: DeviceId) {
        self.set_w(field::DEVICE_ID, v.0)
    }

    /// Set the Command register.
    pub fn set_command(&mut self, v: Command) {
        self.set_w(field::COMMAND, v.bits())
    }

    /// Set the Status register.
    pub fn set_status(&mut self, v: Status) {
        self.set_w(field::STATUS, v.bits())
    }

    /// Set the class code.
    pub fn set_class_code(&mut self, c: ClassCode) {
        let d = self.buffer.as_mut();
        d[field::CLASS] = c.class;
        d[field::SUBCLASS] = c.subclass;
        d[field::PROG_IF] = c.prog_if;
    }

    /// Set the raw header type register (multifunction bit included).
    pub fn set_header_type_raw(&mut self, v: u8) {
        self.buffer.as_mut()[field::HEADER_TYPE] = v;
    }

    /// Set the Bridge Control register (meaningful for type 1 only).
    pub fn set_bridge_control(&mut self, v: BridgeControl) {
        self.set_w(field::BRIDGE_CONTROL, v.bits())
    }
}

/// The owned, validated form of a header (smoltcp's `Repr`): every register of the
/// first 64 bytes, decoded once. [`HeaderRepr::parse`] reads a checked view;
/// [`HeaderRepr::emit`] writes it back. Reserved bytes (0x35..=0x3b of type 0,
/// 0x35..=0x37 of type 1) are not represented and are written as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderRepr {
    /// Vendor ID.
    pub vendor_id: VendorId,
    /// Device ID.
    pub device_id: DeviceId,
    /// Command register.
    pub command: Command,
    /// Status register.
    pub status: Status,
    /// Revision ID.
    pub revision: u8,
    /// Class code.
    pub class: ClassCode,
    /// Cache line size.
    pub cache_line_size: u8,
    /// Latency timer.
    pub latency_timer: u8,
    /// Header layout.
    pub header_type: HeaderType,
    /// Multifunction bit.
    pub multifunction: bool,
    /// BIST register.
    pub bist: u8,
    /// The byte at 0x34, raw: the capabilities pointer of a type 0 or type 1 header
    /// (a CardBus header's pointer at 0x14 is in [`HeaderLayout::Other`]'s bytes).
    pub capabilities_pointer: u8,
    /// Interrupt line.
    pub interrupt_line: u8,
    /// Interrupt pin.
    pub interrupt_pin: InterruptPin,
    /// The layout-specific registers.
    pub layout: HeaderLayout,
}

/// Registers that depend on the header type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderLayout {
    /// Type 0.
    Normal {
        /// BAR registers, raw.
        bars: [u32; 6],
        /// CardBus CIS pointer.
        cardbus_cis: u32,
        /// Subsystem vendor ID.
        subsystem_vendor_id: VendorId,
        /// Subsystem ID.
        subsystem_id: DeviceId,
        /// Expansion ROM register, raw.
        expansion_rom: u32,
        /// Min_Gnt.
        min_gnt: u8,
        /// Max_Lat.
        max_lat: u8,
    },
    /// Type 1.
    Bridge {
        /// BAR registers, raw.
        bars: [u32; 2],
        /// Bus numbers and secondary latency timer.
        buses: BridgeBuses,
        /// I/O base and limit (0x1c, 0x1d) and their upper halves (0x30, 0x32).
        io: [u16; 4],
        /// Secondary status.
        secondary_status: Status,
        /// Memory base/limit, prefetchable base/limit (0x20..0x28).
        memory: [u16; 4],
        /// Prefetchable base/limit upper 32 bits (0x28, 0x2c).
        prefetchable_upper: [u32; 2],
        /// Expansion ROM register, raw (0x38).
        expansion_rom: u32,
        /// Bridge control.
        bridge_control: BridgeControl,
    },
    /// CardBus or unknown: bytes 0x10..0x34 and 0x3e..0x40 kept raw.
    Other {
        /// Bytes 0x10..0x34.
        raw: [u8; 0x24],
        /// Bytes 0x3e..0x40.
        tail: [u8; 2],
    },
}

impl HeaderRepr {
    /// Decode the header of a checked view (any length >= 64).
    pub fn parse<T: AsRef<[u8]>>(c: &ConfigSpace<T>) -> HeaderRepr {
        let d = c.as_bytes();
        let dw = |o: usize| u32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]);
        let w = |o: usize| u16::from_le_bytes([d[o], d[o + 1]]);
        let layout = match c.header_type() {
            HeaderType::Normal => HeaderLayout::Normal {
                bars: core::array::from_fn(|i| dw(field::BAR0 + 4 * i)),
                cardbus_cis: dw(field::CARDBUS_CIS.start),
                subsystem_vendor_id: VendorId(w(field::SUBSYSTEM_VENDOR.start)),
                subsystem_id: DeviceId(w(field::SUBSYSTEM_ID.start)),
                expansion_rom: dw(field::ROM0.start),
                min_gnt: d[field::MIN_GNT],
                max_lat: d[field::MAX_LAT],
            },
            HeaderType::Bridge => HeaderLayout::Bridge {
                bars: [dw(field::BAR0), dw(field::BAR0 + 4)],
                buses: BridgeBuses {
                    primary: d[field::PRIMARY_BUS],
                    secondary: d[field::SECONDARY_BUS],
                    subordinate: d[field::SUBORDINATE_BUS],
                    secondary_latency: d[field::SECONDARY_LATENCY],
                },
                io: [
                    u16::from(d[field::IO_BASE]),
                    u16::from(d[field::IO_LIMIT]),
                    w(field::IO_BASE_UPPER.start),
                    w(field::IO_LIMIT_UPPER.start),
                ],
                secondary_status: Status::from_bits_retain(w(field::SECONDARY_STATUS.start)),
                memory: [
                    w(field::MEM_BASE.start),
                    w(field::MEM_LIMIT.start),
                    w(field::PREF_BASE.start),
                    w(field::PREF_LIMIT.start),
                ],
                prefetchable_upper: [
                    dw(field::PREF_BASE_UPPER.start),
                    dw(field::PREF_LIMIT_UPPER.start),
                ],
                expansion_rom: dw(field::ROM1.start),
                bridge_control: BridgeControl::from_bits_retain(w(field::BRIDGE_CONTROL.start)),
            },
            _ => HeaderLayout::Other {
                raw: core::array::from_fn(|i| d[0x10 + i]),
                tail: [d[0x3e], d[0x3f]],
            },
        };
        HeaderRepr {
            vendor_id: c.vendor_id(),
            device_id: c.device_id(),
            command: c.command(),
            status: c.status(),
            revision: c.revision(),
            class: c.class_code(),
            cache_line_size: c.cache_line_size(),
            latency_timer: c.latency_timer(),
            header_type: c.header_type(),
            multifunction: c.multifunction(),
            bist: c.bist(),
            capabilities_pointer: c.capabilities_pointer_raw(),
            interrupt_line: c.interrupt_line(),
            interrupt_pin: c.interrupt_pin(),
            layout,
        }
    }

    /// Write the first 64 bytes of `c` from this representation (reserved bytes zeroed;
    /// the header type written is `header_type`, whatever `layout` says).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, c: &mut ConfigSpace<T>) {
        let d = &mut c.buffer.as_mut()[..HEADER_LEN];
        d.fill(0);
        let put16 = |d: &mut [u8], o: usize, v: u16| d[o..o + 2].copy_from_slice(&v.to_le_bytes());
        let put32 = |d: &mut [u8], o: usize, v: u32| d[o..o + 4].copy_from_slice(&v.to_le_bytes());
        put16(d, field::VENDOR_ID.start, self.vendor_id.0);
        put16(d, field::DEVICE_ID.start, self.device_id.0);
        put16(d, field::COMMAND.start, self.command.bits());
        put16(d, field::STATUS.start, self.status.bits());
        d[field::REVISION] = self.revision;
        d[field::PROG_IF] = self.class.prog_if;
        d[field::SUBCLASS] = self.class.subclass;
        d[field::CLASS] = self.class.class;
        d[field::CACHE_LINE] = self.cache_line_size;
        d[field::LATENCY] = self.latency_timer;
        d[field::HEADER_TYPE] =
            u8::from(self.header_type) | if self.multifunction { 0x80 } else { 0 };
        d[field::BIST] = self.bist;
        d[field::CAP_PTR] = self.capabilities_pointer;
        d[field::INTERRUPT_LINE] = self.interrupt_line;
        d[field::INTERRUPT_PIN] = u8::from(self.interrupt_pin);
        match self.layout {
            HeaderLayout::Normal {
                bars,
                cardbus_cis,
                subsystem_vendor_id,
                subsystem_id,
                expansion_rom,
                min_gnt,
                max_lat,
            } => {
                for (i, b) in bars.iter().enumerate() {
                    put32(d, field::BAR0 + 4 * i, *b);
                }
                put32(d, field::CARDBUS_CIS.start, cardbus_cis);
                put16(d, field::SUBSYSTEM_VENDOR.start, subsystem_vendor_id.0);
                put16(d, field::SUBSYSTEM_ID.start, subsystem_id.0);
                put32(d, field::ROM0.start, expansion_rom);
                d[field::MIN_GNT] = min_gnt;
                d[field::MAX_LAT] = max_lat;
            }
            HeaderLayout::Bridge {
                bars,
                buses,
                io,
                secondary_status,
                memory,
                prefetchable_upper,
                expansion_rom,
                bridge_control,
            } => {
                put32(d, field::BAR0, bars[0]);
                put32(d, field::BAR0 + 4, bars[1]);
                d[field::PRIMARY_BUS] = buses.primary;
                d[field::SECONDARY_BUS] = buses.secondary;
                d[field::SUBORDINATE_BUS] = buses.subordinate;
                d[field::SECONDARY_LATENCY] = buses.secondary_latency;
                d[field::IO_BASE] = io[0] as u8;
                d[field::IO_LIMIT] = io[1] as u8;
                put16(d, field::IO_BASE_UPPER.start, io[2]);
                put16(d, field::IO_LIMIT_UPPER.start, io[3]);
                put16(d, field::SECONDARY_STATUS.start, secondary_status.bits());
                put16(d, field::MEM_BASE.start, memory[0]);
                put16(d, field::MEM_LIMIT.start, memory[1]);
                put16(d, field::PREF_BASE.start, memory[2]);
                put16(d, field::PREF_LIMIT.start, memory[3]);
                put32(d, field::PREF_BASE_UPPER.start, prefetchable_upper[0]);
                put32(d, field::PREF_LIMIT_UPPER.start, prefetchable_upper[1]);
                put32(d, field::ROM1.start, expansion_rom);
                put16(d, field::BRIDGE_CONTROL.start, bridge_control.bits());
            }
            HeaderLayout::Other { raw, tail } => {
                d[0x10..0x34].copy_from_slice(&raw);
                d[0x3e..0x40].copy_from_slice(&tail);
            }
        }
    }
}

fn window(base: u64, limit: u64) -> Option<(u64, u64)> {
    if base <= limit {
        Some((base, limit))
    } else {
        None
    }
}

/// Bus numbers of a type 1 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BridgeBuses {
    /// Primary (upstream) bus.
    pub primary: u8,
    /// Secondary bus: directly below the bridge.
    pub secondary: u8,
    /// Subordinate bus: highest bus number below the bridge.
    pub subordinate: u8,
    /// Secondary latency timer.
    pub secondary_latency: u8,
}

/// Forwarding windows of a type 1 header, `(base, limit)` inclusive, `None` when disabled (base > limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BridgeWindows {
    /// I/O window.
    pub io: Option<(u64, u64)>,
    /// Whether the I/O window decodes 32 bits.
    pub io_32bit: bool,
    /// Non-prefetchable memory window.
    pub memory: Option<(u64, u64)>,
    /// Prefetchable memory window.
    pub prefetchable: Option<(u64, u64)>,
    /// Whether the prefetchable window decodes 64 bits.
    pub prefetchable_64bit: bool,
}

/// Iterator over `(slot index, Bar)`, from [`ConfigSpace::bars`].
#[derive(Debug, Clone)]
pub struct Bars<'a> {
    space: &'a [u8],
    count: usize,
    index: usize,
}

impl Iterator for Bars<'_> {
    type Item = (usize, Bar);
    #[inline]
    fn next(&mut self) -> Option<(usize, Bar)> {
        let i = self.index;
        if i >= self.count {
            return None;
        }
        let rd = |i: usize| -> Option<u32> {
            let o = field::BAR0 + 4 * i;
            match self.space.get(o..o + 4) {
                Some(&[a, b, c, d]) => Some(u32::from_le_bytes([a, b, c, d])),
                _ => None,
            }
        };
        let low = rd(i)?;
        let bar = if low & 0x7 == 0x4 {
            Bar::decode(low, if i + 1 < self.count { rd(i + 1) } else { None })
        } else {
            Bar::decode(low, None)
        };
        self.index += if bar.is_64bit() { 2 } else { 1 };
        Some((i, bar))
    }
}

#[cfg(test)]
mod tests {
    //! Expected values come from the guest's own `lspci -vvv`
    //! (tests/data/captures/tcg-amd/lspci-vvv.txt in the repository) for the same
    //! devices; the config spaces are the crate's copies in tests/data/tcg-amd.
    use super::*;
    use crate::caps::{AcsFlags, ExtCapabilityId as E, PowerState, WalkError};
    extern crate std;
    use std::format;

    macro_rules! cap {
        ($name:literal) => {
            include_bytes!(concat!("../tests/data/tcg-amd/", $name, ".bin"))
        };
    }

    static ROOT_PORT: &[u8; 4096] = cap!("0000-00-02.0");
    static E1000E: &[u8; 4096] = cap!("0000-01-00.0");
    static VIRTIO_NET: &[u8; 4096] = cap!("0000-03-00.0");
    static PCIE_PCI_BRIDGE: &[u8; 4096] = cap!("0000-04-00.0");
    static SWITCH_UP: &[u8; 4096] = cap!("0000-07-00.0");
    static SWITCH_DOWN: &[u8; 4096] = cap!("0000-08-00.0");
    static NVME: &[u8; 4096] = cap!("0000-0a-00.0");
    static EDU: &[u8; 256] = cap!("0000-00-08.0");
    static ICH9_SATA: &[u8; 256] = cap!("0000-00-1f.2");
    static MULTIFN_E1000E: &[u8; 4096] = cap!("0000-06-00.0");

    /// 16-byte rows of a 256-byte dump as lspci -xxx prints them; rows not listed are zero.
    type Rows = &'static [(usize, [u8; 16])];

    fn expand(rows: Rows) -> [u8; 256] {
        let mut b = [0u8; 256];
        for (off, row) in rows {
            b[*off..off + 16].copy_from_slice(row);
        }
        b
    }

    /// O2 Micro OZ711SP1 CardBus bridge (1217:7136, header type 0x82) at 1c:03.0 of
    /// pciutils' tests/tree-fujitsu-p8010. Its capabilities pointer is at 0x14 (0xa0:
    /// Power Management v2); 0x34 holds I/O Base 1 (0x01).
    #[rustfmt::skip]
    static OZ711SP1_CARDBUS: Rows = &[
        (0x00, [0x17, 0x12, 0x36, 0x71, 0x87, 0x00, 0x10, 0x04, 0x01, 0x00, 0x07, 0x06, 0x00, 0xa8, 0x82, 0x00]),
        (0x10, [0x00, 0x20, 0x40, 0xfc, 0xa0, 0x00, 0x00, 0x02, 0x1c, 0x1d, 0x20, 0xb0, 0x00, 0x00, 0x00, 0xc0]),
        (0x20, [0x00, 0xf0, 0xff, 0xc3, 0x00, 0x00, 0x00, 0xc8, 0x00, 0xf0, 0xff, 0xcb, 0x01, 0x30, 0x00, 0x00]),
        (0x30, [0xfd, 0x30, 0x00, 0x00, 0x01, 0x34, 0x00, 0x00, 0xfd, 0x34, 0x00, 0x00, 0x0b, 0x01, 0x00, 0x05]),
        (0x40, [0xcf, 0x10, 0x3d, 0x14, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (0x80, [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x10, 0x00, 0x01]),
        (0x90, [0x02, 0x24, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (0xa0, [0x01, 0x00, 0x02, 0xfe, 0x00, 0x40, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00]),
        (0xd0, [0x00, 0x61, 0x00, 0x09, 0xea, 0x0b, 0x82, 0x88, 0x00, 0x00, 0x00, 0x00, 0x18, 0x00, 0x48, 0x00]),
        (0xe0, [0x02, 0xc0, 0x82, 0x00, 0x99, 0x40, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 0x01]),
    ];

    /// AMD RD890 host bridge (1002:5a13) at 00:00.0 of pciutils' tests/cap-ht: a
    /// conventional function (HyperTransport and MSI capabilities, no PCI Express).
    #[rustfmt::skip]
    static RD890_HOST: Rows = &[
        (0x00, [0x02, 0x10, 0x13, 0x5a, 0x02, 0x00, 0x10, 0x20, 0x02, 0x00, 0x00, 0x06, 0x00, 0x00, 0x80, 0x00]),
        (0x20, [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd9, 0x15, 0x11, 0xa7]),
        (0x30, [0x00, 0x00, 0x00, 0x00, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (0x40, [0x08, 0x54, 0x00, 0xc0, 0xc1, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x42, 0x27, 0x05, 0x00]),
        (0x50, [0xd9, 0x15, 0x11, 0xa7, 0x08, 0x9c, 0x00, 0x90, 0x08, 0x10, 0x00, 0x00, 0x08, 0x10, 0x00, 0x00]),
        (0x60, [0x3c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x63, 0x4e, 0x00, 0x78]),
        (0x70, [0x05, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (0x80, [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x02, 0x30, 0x00, 0x31, 0x20, 0x00, 0xc0]),
        (0x90, [0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0d, 0x00, 0x00, 0x08, 0x70, 0x3c, 0xd0]),
        (0xa0, [0x66, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00, 0x00, 0x79, 0x41, 0x00, 0x00]),
        (0xc0, [0x00, 0x00, 0x00, 0x80, 0x08, 0x40, 0x80, 0x02, 0x20, 0x00, 0x11, 0x11, 0xd0, 0x00, 0x00, 0x00]),
        (0xd0, [0x60, 0x0e, 0xf5, 0x7f, 0x13, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (0xe0, [0x00, 0x00, 0x05, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (0xf0, [0x08, 0xc4, 0x03, 0xa8, 0x00, 0x80, 0x80, 0x00, 0x01, 0x00, 0x00, 0x00, 0x08, 0x00, 0xc2, 0xfe]),
    ];

    fn caps(c: &ConfigSpace<&[u8]>) -> ([(u8, u16); 16], usize) {
        let mut out = [(0, 0); 16];
        let mut n = 0;
        for cap in c.capabilities() {
            let cap = cap.unwrap();
            out[n] = (u8::from(cap.id), cap.offset);
            n += 1;
        }
        (out, n)
    }

    #[test]
    fn lengths_other_than_64_256_4096_are_errors_naming_the_length() {
        let big = [0u8; 4097];
        for len in [0usize, 1, 63, 65, 255, 257, 4095, 4097] {
            assert_eq!(
                ConfigSpace::new_checked(&big[..len]).unwrap_err(),
                ConfigError::Length { len }
            );
        }
        for len in [64usize, 256, 4096] {
            assert!(ConfigSpace::new_checked(&big[..len]).is_ok());
        }
        let msg = format!("{}", ConfigError::Length { len: 65 });
        assert!(msg.contains("65"), "{msg}");
    }

    #[test]
    fn lenient_constructor_keeps_largest_valid_prefix() {
        let big = [0u8; 5000];
        assert_eq!(ConfigSpace::new_prefix(&big[..300]).unwrap().len(), 256);
        assert_eq!(ConfigSpace::new_prefix(&big[..4097]).unwrap().len(), 4096);
        assert_eq!(ConfigSpace::new_prefix(&big[..255]).unwrap().len(), 64);
        assert_eq!(
            ConfigSpace::new_prefix(&big[..63]).unwrap_err(),
            ConfigError::Length { len: 63 }
        );
    }

    #[test]
    fn root_port_header_type1_from_real_dump() {
        let c = ConfigSpace::new_checked(&ROOT_PORT[..]).unwrap();
        // lspci: "00:02.0 PCI bridge [0604]: Red Hat, Inc. QEMU PCIe Root port [1b36:000c]"
        assert_eq!(c.vendor_id(), VendorId(0x1b36));
        assert_eq!(c.device_id(), DeviceId(0x000c));
        assert_eq!(c.class_code().to_u32(), 0x060400);
        assert_eq!(c.header_type(), HeaderType::Bridge);
        assert!(!c.multifunction());
        // "Control: I/O+ Mem+ BusMaster+ ... SERR+ ... DisINTx+"
        let cmd = c.command();
        assert!(cmd.contains(Command::IO | Command::MEMORY | Command::BUS_MASTER));
        assert!(cmd.contains(Command::SERR | Command::INTX_DISABLE));
        assert!(!cmd.contains(Command::FAST_B2B));
        // "Status: Cap+ 66MHz- ... DEVSEL=fast"
        assert!(c.status().contains(Status::CAP_LIST));
        assert_eq!(c.status().devsel(), 0);
        // "Bus: primary=00, secondary=01, subordinate=01, sec-latency=0"
        let b = c.bridge_buses().unwrap();
        assert_eq!((b.primary, b.secondary, b.subordinate), (0, 1, 1));
        // "Region 0: Memory at fd700000 (32-bit, non-prefetchable)"
        assert_eq!(
            c.bar(0),
            Some(Bar::Memory32 {
                address: 0xfd70_0000,
                prefetchable: false
            })
        );
        assert_eq!(c.bar_count(), 2);
        // "I/O behind bridge: 4000-4fff", "Memory behind bridge: fd400000-fd5fffff",
        // "Prefetchable memory behind bridge: fe800000-fe9fffff"
        let w = c.bridge_windows().unwrap();
        assert_eq!(w.io, Some((0x4000, 0x4fff)));
        assert_eq!(w.memory, Some((0xfd40_0000, 0xfd5f_ffff)));
        assert_eq!(w.prefetchable, Some((0xfe80_0000, 0xfe9f_ffff)));
        // "BridgeCtl: Parity- SERR+ NoISA- VGA- VGA16- MAbort- >Reset- FastB2B-"
        let bc = c.bridge_control().unwrap();
        assert!(bc.contains(BridgeControl::SERR));
        assert!(!bc.contains(BridgeControl::SECONDARY_BUS_RESET));
        assert!(!bc.contains(BridgeControl::VGA));
        // "Interrupt: pin A routed to IRQ 22"
        assert_eq!(c.interrupt_pin(), InterruptPin::A);
        assert_eq!(c.subsystem_vendor_id(), None); // type 1: from the 0x0d capability
                                                   // "Capabilities: [40] Subsystem: Red Hat, Inc. Device [1b36:0000]"
        assert_eq!(c.subsystem(), Some((VendorId(0x1b36), DeviceId(0))));
    }

    #[test]
    fn root_port_capabilities_and_acs_match_lspci() {
        let c = ConfigSpace::new_checked(&ROOT_PORT[..]).unwrap();
        // "Capabilities: [54] Express (v2) Root Port (Slot+)", "[48] MSI-X", "[40] Subsystem"
        let (list, n) = caps(&c);
        assert_eq!(&list[..n], &[(0x10, 0x54), (0x11, 0x48), (0x0d, 0x40)]);
        let ext: ([(u16, u16, u8); 2], usize) = {
            let mut o = [(0, 0, 0); 2];
            let mut n = 0;
            for e in c.extended_capabilities() {
                let e = e.unwrap();
                o[n] = (u16::from(e.id), e.offset, e.version);
                n += 1;
            }
            (o, n)
        };
        // "[100 v2] Advanced Error Reporting", "[148 v1] Access Control Services"
        assert_eq!(&ext.0[..ext.1], &[(0x0001, 0x100, 2), (0x000d, 0x148, 1)]);
        assert_eq!(c.find_ext_capability(E::Acs), Some(0x148));
        let pcie = c.pcie().unwrap();
        assert_eq!(pcie.port_type, PortType::RootPort);
        assert_eq!(pcie.version, 2);
        // "SltCap: AttnBtn+ PwrCtrl+ MRL- AttnInd+ PwrInd+ HotPlug+ Surprise+ / Slot #1"
        assert!(pcie.slot_implemented && pcie.hot_plug());
        let s = pcie.slot_capabilities.unwrap();
        assert!(s.attention_button && s.power_controller && !s.mrl_sensor && s.hot_plug_surprise);
        assert_eq!(s.physical_slot, 1);
        // "LnkCap: Port #0, Speed 16GT/s, Width x32 ... LLActRep+"; "LnkSta: Speed 2.5GT/s, Width x1"
        let l = pcie.link_capabilities.unwrap();
        assert_eq!((l.port_number, l.max_speed, l.max_width), (0, 4, 32));
        assert!(l.dll_active_reporting);
        let ls = pcie.link_status.unwrap();
        assert_eq!((ls.speed, ls.width, ls.dll_active), (1, 1, false));
        // ACSCap: SrcValid+ TransBlk+ ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans+
        // ACSCtl: SrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-
        let acs = c.acs().unwrap();
        let want_cap =
            AcsFlags::SV | AcsFlags::TB | AcsFlags::RR | AcsFlags::CR | AcsFlags::UF | AcsFlags::DT;
        assert_eq!(
            acs.capability & !AcsFlags::from_bits_retain(0xff00),
            want_cap
        );
        assert_eq!(acs.control, Acs::ISOLATION);
        assert!(!c.flr() && !c.af_flr());
        assert_eq!(c.pm_no_soft_reset(), None); // no PM capability on this port
    }

    #[test]
    fn endpoint_reset_facts_match_lspci_and_reset_method() {
        // e1000e: "FLReset-", "NoSoftRst-"; devices.txt reset_method=[pm bus] (drivers/pci/pci.c pci_pm_reset).
        let c = ConfigSpace::new_checked(&E1000E[..]).unwrap();
        assert_eq!(c.header_type(), HeaderType::Normal);
        assert!(!c.flr());
        assert_eq!(c.pm_no_soft_reset(), Some(false));
        assert_eq!(c.pcie_port_type(), Some(PortType::Endpoint));
        assert_eq!(c.pcie().unwrap().version, 1); // "Express (v1) Endpoint"
        assert_eq!(c.power_management().unwrap().power_state, PowerState::D3Hot); // "Status: D3"
                                                                                  // virtio-net: "FLReset+", reset_method=[flr pm bus]
        let v = ConfigSpace::new_checked(&VIRTIO_NET[..]).unwrap();
        assert!(v.flr());
        assert_eq!(v.pm_no_soft_reset(), Some(false));
        // nvme: "FLReset+", "NoSoftRst+" (so no PM reset), reset_method=[flr bus]
        let n = ConfigSpace::new_checked(&NVME[..]).unwrap();
        assert!(n.flr());
        assert_eq!(n.pm_no_soft_reset(), Some(true));
        // "Region 0: Memory at fc200000 (64-bit, non-prefetchable)"
        let mut bars = n.bars();
        assert_eq!(
            bars.next(),
            Some((
                0,
                Bar::Memory64 {
                    address: 0xfc20_0000,
                    prefetchable: false
                }
            ))
        );
        assert!(
            bars.all(|(i, _)| i >= 2),
            "upper half of a 64-bit BAR is skipped"
        );
    }

    #[test]
    fn port_types_of_switch_and_pcie_to_pci_bridge() {
        // "Express (v2) Upstream Port", "Express (v2) Downstream Port (Slot+)",
        // "Express (v2) PCI-Express to PCI/PCI-X Bridge"
        let up = ConfigSpace::new_checked(&SWITCH_UP[..]).unwrap();
        assert_eq!(up.pcie_port_type(), Some(PortType::UpstreamPort));
        // devices.txt: 07:00.0 and 08:00.0 list `flr` in reset_method.
        assert!(up.flr());
        let down = ConfigSpace::new_checked(&SWITCH_DOWN[..]).unwrap();
        assert_eq!(down.pcie_port_type(), Some(PortType::DownstreamPort));
        assert!(down.pcie().unwrap().slot_implemented);
        assert!(down.acs().is_none()); // QEMU's xio3130 has no ACS: see docs/rules.md grouping
        let br = ConfigSpace::new_checked(&PCIE_PCI_BRIDGE[..]).unwrap();
        assert_eq!(br.pcie_port_type(), Some(PortType::PcieToPciBridge));
        assert_eq!(br.pm_no_soft_reset(), Some(false));
    }

    #[test]
    fn conventional_256_byte_devices() {
        // edu: "Capabilities: [40] MSI: Enable- Count=1/1 Maskable- 64bit+", no PCIe cap.
        let c = ConfigSpace::new_checked(&EDU[..]).unwrap();
        let (list, n) = caps(&c);
        assert_eq!(&list[..n], &[(0x05, 0x40)]);
        assert_eq!(c.extended_capabilities().count(), 0);
        assert_eq!(c.pcie_port_type(), None);
        assert_eq!(c.revision(), 0x10); // "(rev 10)"
                                        // ICH9 SATA: "[80] MSI", "[a8] SATA HBA v1.0"
        let s = ConfigSpace::new_checked(&ICH9_SATA[..]).unwrap();
        let (list, n) = caps(&s);
        assert_eq!(&list[..n], &[(0x05, 0x80), (0x12, 0xa8)]);
        assert_eq!(s.class_code().to_u32(), 0x010601);
    }

    #[test]
    fn multifunction_bit_from_real_dump() {
        // 06:00.0 is function 0 of e1000e(.0) + edu(.1)
        let c = ConfigSpace::new_checked(&MULTIFN_E1000E[..]).unwrap();
        assert!(c.multifunction());
        assert!(!ConfigSpace::new_checked(&E1000E[..])
            .unwrap()
            .multifunction());
    }

    #[test]
    fn a_64_byte_read_decodes_header_but_not_capabilities() {
        // Non-root readers of sysfs `config` get 64 bytes: the walk must say so.
        let c = ConfigSpace::new_checked(&NVME[..64]).unwrap();
        assert_eq!(c.device_id(), DeviceId(0x0010));
        let mut w = c.capabilities();
        assert_eq!(
            w.next(),
            Some(Err(WalkError::OutOfRange {
                from: 0x34,
                pointer: 0x40,
                len: 64
            }))
        );
        assert_eq!(w.next(), None);
        assert!(!c.flr());
        assert_eq!(c.pm_no_soft_reset(), None);
    }

    #[test]
    fn all_ones_device_that_fell_off_the_bus() {
        // every read returns ffff: no device; the header type reads 0x7f, a layout
        // with no capabilities pointer (the kernel's __pci_bus_find_cap_start), so
        // there is no list to walk although Status claims one; 0x100 reads all ones
        let ff = [0xffu8; 4096];
        let c = ConfigSpace::new_checked(&ff[..]).unwrap();
        assert!(!c.present());
        assert_eq!(c.header_type(), HeaderType::Unknown(0x7f));
        assert_eq!(c.capabilities_register(), None);
        assert_eq!(c.capabilities().next(), None);
        assert!(!c.has_extended_config());
        // with a type 0 header byte the pointer 0xff masks to 0xfc, whose id is 0xff
        let mut t0 = ff;
        t0[0x0e] = 0;
        let c0 = ConfigSpace::new_checked(&t0[..]).unwrap();
        let mut w = c0.capabilities();
        assert_eq!(
            w.next(),
            Some(Err(WalkError::BrokenChain {
                from: 0x34,
                pointer: 0xfc
            }))
        );
        assert_eq!(w.next(), None);
        assert_eq!(c.extended_capabilities().count(), 0);
        assert!(!c.flr() && !c.af_flr());
        assert_eq!(c.pm_no_soft_reset(), None);
        assert_eq!(c.acs(), None);
        assert!(ConfigSpace::new_checked(&NVME[..]).unwrap().present());
    }

    #[test]
    fn bar_decoding_kinds() {
        assert_eq!(Bar::decode(0xc001, None), Bar::Io { address: 0xc000 });
        assert_eq!(
            Bar::decode(0xe000_000c, Some(0x1)),
            Bar::Memory64 {
                address: 0x1_e000_0000,
                prefetchable: true
            }
        );
        assert_eq!(
            Bar::decode(0xe000_0004, None),
            Bar::Memory64Truncated {
                address_low: 0xe000_0000
            }
        );
        assert_eq!(Bar::decode(0x6, None), Bar::MemoryReserved { raw: 6 });
    }

    #[test]
    fn header_repr_round_trips_every_capture_header() {
        // emit(parse(x)) gives back x's first 64 bytes, reserved bytes aside, for
        // every real dump (endpoints, bridges, multifunction, both QEMU runs).
        let dumps: [&[u8]; 10] = [
            ROOT_PORT,
            E1000E,
            VIRTIO_NET,
            PCIE_PCI_BRIDGE,
            SWITCH_UP,
            SWITCH_DOWN,
            NVME,
            EDU,
            ICH9_SATA,
            MULTIFN_E1000E,
        ];
        for bytes in dumps {
            let c = ConfigSpace::new_checked(bytes).unwrap();
            let repr = HeaderRepr::parse(&c);
            let mut out = [0xaau8; 64];
            let mut o = ConfigSpace::new_checked(&mut out[..]).unwrap();
            repr.emit(&mut o);
            let mut want = [0u8; 64];
            want.copy_from_slice(&bytes[..64]);
            let reserved = if c.header_type() == HeaderType::Bridge {
                0x35..0x38
            } else {
                0x35..0x3c
            };
            want[reserved].fill(0);
            assert_eq!(out, want);
            assert_eq!(
                HeaderRepr::parse(&ConfigSpace::new_checked(&out[..]).unwrap()),
                repr
            );
        }
        let bridge = HeaderRepr::parse(&ConfigSpace::new_checked(&ROOT_PORT[..]).unwrap());
        assert!(matches!(
            bridge.layout,
            HeaderLayout::Bridge {
                buses: BridgeBuses { secondary: 1, .. },
                ..
            }
        ));
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = [0u8; 64];
        let mut c = ConfigSpace::new_checked(&mut buf[..]).unwrap();
        c.set_vendor_id(VendorId(0x10de));
        c.set_device_id(DeviceId(0x1187));
        c.set_class_code(ClassCode::from_u32(0x030000));
        c.set_header_type_raw(0x81);
        c.set_command(Command::from_bits_retain(0x8007));
        assert_eq!(c.vendor_id(), VendorId::NVIDIA);
        assert!(c.class_code().is_vga());
        assert_eq!(c.header_type(), HeaderType::Bridge);
        assert!(c.multifunction());
        assert_eq!(c.command().bits(), 0x8007, "unknown bit 15 is kept");
    }

    #[test]
    fn cardbus_bridge_walks_from_0x14() {
        // lspci -vvv -F tree-fujitsu-p8010: "Capabilities: [a0] Power Management version 2",
        // "Status: D0 NoSoftRst- ...", "Bus: primary=1c, secondary=1d, subordinate=20,
        // sec-latency=176", "Subsystem: Fujitsu Limited. Device [10cf:143d]", "PostWrite+"
        let cardbus = expand(OZ711SP1_CARDBUS);
        let c = ConfigSpace::new_checked(&cardbus[..]).unwrap();
        assert_eq!(c.header_type(), HeaderType::CardBus);
        assert!(c.multifunction());
        assert_eq!(
            c.capabilities_pointer_raw(),
            0x01,
            "0x34 is I/O Base 1 here"
        );
        assert_eq!(c.capabilities_register(), Some(0x14));
        assert_eq!(c.capabilities_pointer(), Some(0xa0));
        let caps: std::vec::Vec<_> = c.capabilities().collect();
        assert_eq!(
            caps,
            [Ok(crate::caps::Capability {
                id: CapabilityId::PowerManagement,
                offset: 0xa0,
                next: 0
            })]
        );
        assert_eq!(c.pm_no_soft_reset(), Some(false));
        assert_eq!(c.power_management().unwrap().version, 2);
        let b = c.bus_numbers().unwrap();
        assert_eq!(
            (b.primary, b.secondary, b.subordinate, b.secondary_latency),
            (0x1c, 0x1d, 0x20, 176)
        );
        assert_eq!(c.bridge_buses(), None, "bridge_buses stays type 1 only");
        assert_eq!(c.bridge_control().unwrap().bits(), 0x0500);
        // "Region 0: Memory at fc402000 (32-bit, non-prefetchable)"
        assert_eq!(
            c.bar(0),
            Some(Bar::Memory32 {
                address: 0xfc40_2000,
                prefetchable: false
            })
        );
        assert_eq!(c.bars().count(), 1);
        assert_eq!(c.subsystem(), Some((VendorId(0x10cf), DeviceId(0x143d))));
        assert_eq!((c.subsystem_vendor_id(), c.subsystem_id()), (None, None));
        assert!(!c.has_extended_config());
        // a 64-byte read has the pointer but neither the capability nor 0x40..0x44
        let short = ConfigSpace::new_checked(&cardbus[..64]).unwrap();
        assert_eq!(short.subsystem(), None);
        assert_eq!(
            short.capabilities().next(),
            Some(Err(WalkError::OutOfRange {
                from: 0x14,
                pointer: 0xa0,
                len: 64
            }))
        );
    }

    #[test]
    fn conventional_function_read_as_4k_has_no_extended_capabilities() {
        // What a 4 KiB read of the RD890 gives when its config cycles ignore the
        // upper address bits: its 256 bytes sixteen times. Dword 0x100 then reads
        // 5a131002, which a walk would take for extended id 0x1002 with next 0x5a1.
        // The kernel sizes this space at 256 bytes (drivers/pci/probe.c
        // pci_cfg_space_size, pci_ext_cfg_is_aliased) and lspci walks extended
        // capabilities only after a PCIe or PCI-X one (ls-caps.c show_caps).
        let rd890 = expand(RD890_HOST);
        let mut aliased = [0u8; 4096];
        for (i, b) in aliased.iter_mut().enumerate() {
            *b = rd890[i % 256];
        }
        let c = ConfigSpace::new_checked(&aliased[..]).unwrap();
        let ids: std::vec::Vec<(u8, u16)> = c
            .capabilities()
            .map(|r| r.map(|c| (u8::from(c.id), c.offset)).unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                (0x08, 0xf0),
                (0x08, 0xc4),
                (0x08, 0x40),
                (0x08, 0x54),
                (0x08, 0x9c),
                (0x05, 0x70)
            ]
        );
        assert!(!c.has_extended_config());
        assert_eq!(c.extended_capabilities().next(), None);
        assert_eq!(c.find_ext_capability(E::Unknown(0x1002)), None);
        // the raw walk is what used to be reported
        let raw = ExtCapabilities::new(&aliased).next().unwrap().unwrap();
        assert_eq!((u16::from(raw.id), raw.next), (0x1002, 0x5a1));

        // not aliased, but still conventional: nothing above 0x100 is a capability list
        let mut upper = aliased;
        upper[0x100..0x104].copy_from_slice(&0x0001_0001u32.to_le_bytes());
        let c = ConfigSpace::new_checked(&upper[..]).unwrap();
        assert!(!c.has_extended_config());
        assert_eq!(c.extended_capabilities().count(), 0);

        // aliasing alone also ends it for a PCIe function (the kernel's rule)
        let mut pcie_alias = [0u8; 4096];
        for (i, b) in pcie_alias.iter_mut().enumerate() {
            *b = ROOT_PORT[i % 256];
        }
        assert!(ConfigSpace::new_checked(&ROOT_PORT[..])
            .unwrap()
            .has_extended_config());
        assert!(!ConfigSpace::new_checked(&pcie_alias[..])
            .unwrap()
            .has_extended_config());
    }
}
