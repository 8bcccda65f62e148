//! Build synthetic config spaces: a header plus chains of standard and extended
//! capabilities, for tests, fixture trees and fuzz seeds.
//!
//! Layout is deterministic: standard capabilities are packed from 0x40 in call
//! order, each starting at the next dword boundary after the previous one;
//! extended capabilities likewise from 0x100. Each is linked to the next, the
//! last ends with a zero pointer, and the Status Capabilities List bit is set
//! when at least one standard capability exists. The result is 4096 bytes when
//! there is a PCI Express capability or any extended capability, else 256
//! (override with [`ConfigBuilder::with_config_len`]).
//!
//! ```
//! use passthru_pci_ids::builder::ConfigBuilder;
//! use passthru_pci_ids::caps::{AcsFlags, PortType};
//! use passthru_pci_ids::{ClassCode, ConfigSpace, DeviceId, VendorId};
//!
//! let mut buf = [0u8; 4096];
//! let len = ConfigBuilder::endpoint(VendorId(0x1002), DeviceId(0x7300), ClassCode::from_u32(0x030000))
//!     .with_pm(true)
//!     .with_pcie(PortType::Endpoint, false)
//!     .with_acs(AcsFlags::SV | AcsFlags::RR, AcsFlags::empty())
//!     .build_into(&mut buf)
//!     .unwrap();
//! let cfg = ConfigSpace::new_checked(&buf[..len]).unwrap();
//! assert_eq!(cfg.pm_no_soft_reset(), Some(true));
//! assert!(!cfg.flr());
//! ```

use crate::caps::{AcsFlags, PortType};
use crate::config::{BridgeControl, Command, InterruptPin, Status, PCIE_LEN, PCI_LEN};
use crate::ids::{ClassCode, DeviceId, VendorId};
use core::fmt;

/// Why a builder could not produce a config space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A capability did not fit in its area (0x40..0x100 or 0x100..0x1000).
    NoRoom {
        /// The capability id.
        id: u16,
        /// Whether it was an extended capability.
        extended: bool,
        /// Bytes it needed.
        needed: usize,
    },
    /// The output buffer is shorter than the config space.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        len: usize,
    },
    /// `with_config_len` was given something other than 64, 256 or 4096, or a length
    /// too short for the capabilities added.
    BadLength {
        /// The length asked for.
        len: usize,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BuildError::NoRoom {
                id,
                extended,
                needed,
            } => write!(
                f,
                "no room for {} capability {id:#x} ({needed} bytes)",
                if extended { "extended" } else { "standard" }
            ),
            BuildError::BufferTooSmall { needed, len } => {
                write!(
                    f,
                    "output buffer is {len} bytes, config space needs {needed}"
                )
            }
            BuildError::BadLength { len } => write!(f, "bad config length {len}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BuildError {}

/// Builder of a synthetic config space (see the module docs for the layout).
#[derive(Clone)]
pub struct ConfigBuilder {
    image: [u8; PCIE_LEN],
    std_tail: Option<u16>,
    std_cursor: u16,
    ext_tail: Option<u16>,
    ext_cursor: u16,
    pcie: Option<u16>,
    len: Option<usize>,
    error: Option<BuildError>,
}

impl fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field("std_cursor", &self.std_cursor)
            .field("ext_cursor", &self.ext_cursor)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl ConfigBuilder {
    fn blank(vendor: VendorId, device: DeviceId, class: ClassCode, header: u8) -> ConfigBuilder {
        let mut b = ConfigBuilder {
            image: [0; PCIE_LEN],
            std_tail: None,
            std_cursor: 0x40,
            ext_tail: None,
            ext_cursor: 0x100,
            pcie: None,
            len: None,
            error: None,
        };
        b.put16(0x00, vendor.0);
        b.put16(0x02, device.0);
        b.image[0x09] = class.prog_if;
        b.image[0x0a] = class.subclass;
        b.image[0x0b] = class.class;
        b.image[0x0e] = header;
        b
    }

    /// A type 0 (endpoint) header.
    pub fn endpoint(vendor: VendorId, device: DeviceId, class: ClassCode) -> ConfigBuilder {
        ConfigBuilder::blank(vendor, device, class, 0)
    }

    /// A type 1 (PCI-to-PCI bridge, class 0604) header with its bus numbers.
    pub fn bridge(
        vendor: VendorId,
        device: DeviceId,
        primary: u8,
        secondary: u8,
        subordinate: u8,
    ) -> ConfigBuilder {
        let mut b = ConfigBuilder::blank(vendor, device, ClassCode::from_u32(0x060400), 1);
        b.image[0x18] = primary;
        b.image[0x19] = secondary;
        b.image[0x1a] = subordinate;
        b
    }

    fn put16(&mut self, off: usize, v: u16) {
        self.image[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn put32(&mut self, off: usize, v: u32) {
        self.image[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn fail(&mut self, e: BuildError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Set the multifunction bit of the header type register.
    pub fn with_multifunction(mut self) -> ConfigBuilder {
        self.image[0x0e] |= 0x80;
        self
    }

    /// Set the revision ID.
    pub fn with_revision(mut self, rev: u8) -> ConfigBuilder {
        self.image[0x08] = rev;
        self
    }

    /// Set the Command register.
    pub fn with_command(mut self, c: Command) -> ConfigBuilder {
        self.put16(0x04, c.bits());
        self
    }

    /// OR bits into the Status register (Capabilities List is managed by the builder).
    pub fn with_status(mut self, s: Status) -> ConfigBuilder {
        let cur = u16::from_le_bytes([self.image[6], self.image[7]]);
        self.put16(0x06, cur | s.bits());
        self
    }

    /// Set subsystem vendor and device (type 0 header only; ignored on a bridge).
    pub fn with_subsystem(mut self, vendor: VendorId, device: DeviceId) -> ConfigBuilder {
        if self.image[0x0e] & 0x7f == 0 {
            self.put16(0x2c, vendor.0);
            self.put16(0x2e, device.0);
        }
        self
    }

    /// Set the interrupt pin.
    pub fn with_interrupt_pin(mut self, pin: InterruptPin) -> ConfigBuilder {
        self.image[0x3d] = u8::from(pin);
        self
    }

    /// Set BAR `index` to a raw register value (index < 6 for type 0, < 2 for type 1; others ignored).
    pub fn with_bar_raw(mut self, index: usize, raw: u32) -> ConfigBuilder {
        let max = if self.image[0x0e] & 0x7f == 1 { 2 } else { 6 };
        if index < max {
            self.put32(0x10 + 4 * index, raw);
        }
        self
    }

    /// Set a 64-bit memory BAR at `index` (and its upper half at `index + 1`).
    pub fn with_bar64(self, index: usize, address: u64, prefetchable: bool) -> ConfigBuilder {
        let low = (address as u32 & !0xf) | 0x4 | if prefetchable { 0x8 } else { 0 };
        self.with_bar_raw(index, low)
            .with_bar_raw(index + 1, (address >> 32) as u32)
    }

    /// Set the expansion ROM register (0x30 type 0, 0x38 type 1).
    pub fn with_rom(mut self, raw: u32) -> ConfigBuilder {
        let off = if self.image[0x0e] & 0x7f == 1 {
            0x38
        } else {
            0x30
        };
        self.put32(off, raw);
        self
    }

    /// Set Bridge Control (type 1 only; ignored on an endpoint).
    pub fn with_bridge_control(mut self, bc: BridgeControl) -> ConfigBuilder {
        if self.image[0x0e] & 0x7f == 1 {
            self.put16(0x3e, bc.bits());
        }
        self
    }

    /// Force the output length (64, 256 or 4096).
    pub fn with_config_len(mut self, len: usize) -> ConfigBuilder {
        if !matches!(len, 64 | PCI_LEN | PCIE_LEN) {
            self.fail(BuildError::BadLength { len });
        }
        self.len = Some(len);
        self
    }

    /// Append a standard capability: `id`, the link byte, then `body` (from offset +2).
    pub fn with_capability(mut self, id: u8, body: &[u8]) -> ConfigBuilder {
        let needed = 2 + body.len();
        let at = usize::from(self.std_cursor);
        if at + needed > PCI_LEN {
            self.fail(BuildError::NoRoom {
                id: id.into(),
                extended: false,
                needed,
            });
            return self;
        }
        self.image[at] = id;
        self.image[at + 1] = 0;
        self.image[at + 2..at + needed].copy_from_slice(body);
        match self.std_tail {
            Some(t) => self.image[usize::from(t) + 1] = at as u8,
            None => {
                self.image[0x34] = at as u8;
                let s =
                    u16::from_le_bytes([self.image[6], self.image[7]]) | Status::CAP_LIST.bits();
                self.put16(0x06, s);
            }
        }
        self.std_tail = Some(at as u16);
        self.std_cursor = ((at + needed + 3) & !3) as u16;
        self
    }

    /// Append an extended capability: header (`id`, `version`, link), then `body` (from +4).
    pub fn with_ext_capability(mut self, id: u16, version: u8, body: &[u8]) -> ConfigBuilder {
        let needed = 4 + body.len();
        let at = usize::from(self.ext_cursor);
        if at + needed > PCIE_LEN {
            self.fail(BuildError::NoRoom {
                id,
                extended: true,
                needed,
            });
            return self;
        }
        self.put32(at, u32::from(id) | (u32::from(version & 0xf) << 16));
        self.image[at + 4..at + needed].copy_from_slice(body);
        if let Some(t) = self.ext_tail {
            let t = usize::from(t);
            let h = u32::from_le_bytes([
                self.image[t],
                self.image[t + 1],
                self.image[t + 2],
                self.image[t + 3],
            ]);
            self.put32(t, (h & 0x000f_ffff) | ((at as u32) << 20));
        }
        self.ext_tail = Some(at as u16);
        self.ext_cursor = ((at + needed + 3) & !3) as u16;
        self
    }

    /// PCI Power Management (v3); `no_soft_reset` sets PMCSR bit 3 (drivers/pci/pci.c pci_pm_reset).
    pub fn with_pm(self, no_soft_reset: bool) -> ConfigBuilder {
        let pmc: u16 = 0x0003;
        let csr: u16 = if no_soft_reset { 1 << 3 } else { 0 };
        let mut body = [0u8; 6];
        body[0..2].copy_from_slice(&pmc.to_le_bytes());
        body[2..4].copy_from_slice(&csr.to_le_bytes());
        self.with_capability(0x01, &body)
    }

    /// MSI with `2^vectors_log2` vectors, optionally 64-bit.
    pub fn with_msi(self, vectors_log2: u8, is_64bit: bool) -> ConfigBuilder {
        let ctl: u16 = (u16::from(vectors_log2 & 7) << 1) | if is_64bit { 1 << 7 } else { 0 };
        let mut body = [0u8; 12];
        body[0..2].copy_from_slice(&ctl.to_le_bytes());
        let len = if is_64bit { 12 } else { 8 };
        self.with_capability(0x05, &body[..len])
    }

    /// MSI-X with `table_size` entries (1..=2048), table and PBA locations.
    pub fn with_msix(
        self,
        table_size: u16,
        table_bar: u8,
        table_offset: u32,
        pba_bar: u8,
        pba_offset: u32,
    ) -> ConfigBuilder {
        let ctl = table_size.saturating_sub(1) & 0x7ff;
        let mut body = [0u8; 10];
        body[0..2].copy_from_slice(&ctl.to_le_bytes());
        body[2..6].copy_from_slice(&((table_offset & !7) | u32::from(table_bar & 7)).to_le_bytes());
        body[6..10].copy_from_slice(&((pba_offset & !7) | u32::from(pba_bar & 7)).to_le_bytes());
        self.with_capability(0x11, &body)
    }

    /// PCI Express capability v2 with `port_type` and Device Capabilities FLR (bit 28).
    /// Link capability/status say x1 at 2.5 GT/s.
    pub fn with_pcie(self, port_type: PortType, flr: bool) -> ConfigBuilder {
        let at = self.std_cursor;
        let mut body = [0u8; 0x3a];
        let cap: u16 = 0x2 | (u16::from(u8::from(port_type) & 0xf) << 4);
        body[0..2].copy_from_slice(&cap.to_le_bytes());
        let devcap: u32 = if flr { 1 << 28 } else { 0 };
        body[2..6].copy_from_slice(&devcap.to_le_bytes());
        let lnkcap: u32 = 0x1 | (1 << 4);
        body[0x0a..0x0e].copy_from_slice(&lnkcap.to_le_bytes());
        let lnksta: u16 = 0x1 | (1 << 4);
        body[0x10..0x12].copy_from_slice(&lnksta.to_le_bytes());
        let mut b = self.with_capability(0x10, &body);
        if b.error.is_none() {
            b.pcie = Some(at);
        }
        b
    }

    /// Mark the PCIe port as having a slot (`physical_slot`, hot-plug capable or not).
    /// Does nothing without a prior [`Self::with_pcie`].
    pub fn with_pcie_slot(mut self, physical_slot: u16, hot_plug: bool) -> ConfigBuilder {
        if let Some(p) = self.pcie {
            let p = usize::from(p);
            self.image[p + 3] |= 1; // Slot Implemented: cap register bit 8
            let sc: u32 = (u32::from(physical_slot & 0x1fff) << 19)
                | if hot_plug { (1 << 6) | (1 << 5) } else { 0 };
            self.put32(p + 0x14, sc);
        }
        self
    }

    /// Set Device Capabilities 2 ARI Forwarding Supported (bit 5) on the PCIe capability.
    pub fn with_ari_forwarding(mut self, supported: bool) -> ConfigBuilder {
        if let Some(p) = self.pcie {
            let p = usize::from(p);
            if supported {
                self.image[p + 0x24] |= 1 << 5;
            } else {
                self.image[p + 0x24] &= !(1 << 5);
            }
        }
        self
    }

    /// Advanced Features with TP and FLR capability bits (drivers/pci/pci.c pci_af_flr).
    pub fn with_af(self, tp: bool, flr: bool) -> ConfigBuilder {
        let caps = u8::from(tp) | (u8::from(flr) << 1);
        self.with_capability(0x13, &[6, caps, 0, 0])
    }

    /// Vendor-specific capability of `length` bytes (at least 3).
    pub fn with_vendor_specific(self, length: u8) -> ConfigBuilder {
        let length = length.max(3);
        let mut body = [0u8; 254];
        body[0] = length;
        let n = usize::from(length) - 2;
        self.with_capability(0x09, &body[..n])
    }

    /// Bridge Subsystem ID capability (0x0d), where a type 1 header keeps subsystem ids.
    pub fn with_bridge_subsystem(self, vendor: VendorId, device: DeviceId) -> ConfigBuilder {
        let mut body = [0u8; 6];
        body[2..4].copy_from_slice(&vendor.0.to_le_bytes());
        body[4..6].copy_from_slice(&device.0.to_le_bytes());
        self.with_capability(0x0d, &body)
    }

    /// Access Control Services: capability and control registers.
    pub fn with_acs(self, capability: AcsFlags, control: AcsFlags) -> ConfigBuilder {
        let mut body = [0u8; 4];
        body[0..2].copy_from_slice(&capability.bits().to_le_bytes());
        body[2..4].copy_from_slice(&control.bits().to_le_bytes());
        self.with_ext_capability(0x000d, 1, &body)
    }

    /// Advanced Error Reporting, all registers zero.
    pub fn with_aer(self) -> ConfigBuilder {
        self.with_ext_capability(0x0001, 2, &[0u8; 0x44])
    }

    /// ARI with `next_function`.
    pub fn with_ari(self, next_function: u8) -> ConfigBuilder {
        self.with_ext_capability(0x000e, 1, &[0, next_function, 0, 0])
    }

    /// ATS (queue depth 32, nothing enabled).
    pub fn with_ats(self) -> ConfigBuilder {
        self.with_ext_capability(0x000f, 1, &[0u8; 4])
    }

    /// SR-IOV with VF counts, routing offset/stride and the VF device id.
    pub fn with_sriov(
        self,
        total_vfs: u16,
        num_vfs: u16,
        first_vf_offset: u16,
        vf_stride: u16,
        vf_device: DeviceId,
    ) -> ConfigBuilder {
        let mut body = [0u8; 0x3c];
        body[0x08..0x0a].copy_from_slice(&total_vfs.to_le_bytes()); // InitialVFs
        body[0x0a..0x0c].copy_from_slice(&total_vfs.to_le_bytes()); // TotalVFs
        body[0x0c..0x0e].copy_from_slice(&num_vfs.to_le_bytes());
        body[0x10..0x12].copy_from_slice(&first_vf_offset.to_le_bytes());
        body[0x12..0x14].copy_from_slice(&vf_stride.to_le_bytes());
        body[0x16..0x18].copy_from_slice(&vf_device.0.to_le_bytes());
        body[0x18..0x1c].copy_from_slice(&0x553u32.to_le_bytes());
        body[0x1c..0x20].copy_from_slice(&1u32.to_le_bytes());
        self.with_ext_capability(0x0010, 1, &body)
    }

    /// Resizable BAR with one entry: `bar`, supported sizes (bit n = 1 MiB << n,
    /// n < 28) and the current size (log2 MiB).
    pub fn with_rebar(self, bar: u8, supported_mib_mask: u32, current: u8) -> ConfigBuilder {
        let mut body = [0u8; 8];
        body[0..4].copy_from_slice(&((supported_mib_mask & 0x0fff_ffff) << 4).to_le_bytes());
        let ctl: u32 = u32::from(bar & 7) | (1 << 5) | (u32::from(current & 0x3f) << 8);
        body[4..8].copy_from_slice(&ctl.to_le_bytes());
        self.with_ext_capability(0x0015, 1, &body)
    }

    /// Device Serial Number.
    pub fn with_dsn(self, serial: u64) -> ConfigBuilder {
        self.with_ext_capability(0x0003, 1, &serial.to_le_bytes())
    }

    /// PASID with `max_width` bits.
    pub fn with_pasid(self, max_width: u8) -> ConfigBuilder {
        self.with_ext_capability(0x001b, 1, &[0, max_width & 0x1f, 0, 0])
    }

    /// PRI with an outstanding request capacity.
    pub fn with_pri(self, capacity: u32) -> ConfigBuilder {
        let mut body = [0u8; 12];
        body[4..8].copy_from_slice(&capacity.to_le_bytes());
        self.with_ext_capability(0x0013, 1, &body)
    }

    /// DPC with software triggering supported.
    pub fn with_dpc(self) -> ConfigBuilder {
        self.with_ext_capability(0x001d, 1, &[0x80, 0, 0, 0, 0, 0, 0, 0])
    }

    /// LTR with raw max snoop / no-snoop latency registers.
    pub fn with_ltr(self, snoop: u16, no_snoop: u16) -> ConfigBuilder {
        let mut body = [0u8; 4];
        body[0..2].copy_from_slice(&snoop.to_le_bytes());
        body[2..4].copy_from_slice(&no_snoop.to_le_bytes());
        self.with_ext_capability(0x0018, 1, &body)
    }

    /// L1 PM Substates with a raw capabilities register.
    pub fn with_l1pm(self, capabilities: u32) -> ConfigBuilder {
        let mut body = [0u8; 12];
        body[0..4].copy_from_slice(&capabilities.to_le_bytes());
        self.with_ext_capability(0x001e, 1, &body)
    }

    /// Vendor-Specific Extended Capability (`length` includes both headers, >= 8).
    pub fn with_vsec(self, id: u16, revision: u8, length: u16) -> ConfigBuilder {
        let length = length.clamp(8, 0xeff);
        let mut body = [0u8; 0xefb];
        let h = u32::from(id) | (u32::from(revision & 0xf) << 16) | (u32::from(length) << 20);
        body[0..4].copy_from_slice(&h.to_le_bytes());
        self.with_ext_capability(0x000b, 1, &body[..usize::from(length) - 4])
    }

    /// Designated Vendor-Specific capability (`length` >= 10).
    pub fn with_dvsec(self, vendor: VendorId, revision: u8, length: u16, id: u16) -> ConfigBuilder {
        let length = length.clamp(10, 0xeff);
        let mut body = [0u8; 0xefb];
        let h = u32::from(vendor.0) | (u32::from(revision & 0xf) << 16) | (u32::from(length) << 20);
        body[0..4].copy_from_slice(&h.to_le_bytes());
        body[4..6].copy_from_slice(&id.to_le_bytes());
        self.with_ext_capability(0x0023, 1, &body[..usize::from(length) - 4])
    }

    /// The length [`Self::build_into`] will write.
    pub fn config_len(&self) -> usize {
        self.len
            .unwrap_or(if self.pcie.is_some() || self.ext_tail.is_some() {
                PCIE_LEN
            } else {
                PCI_LEN
            })
    }

    fn checked_len(&self) -> Result<usize, BuildError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let len = self.config_len();
        if (self.ext_tail.is_some() && len < PCIE_LEN) || (self.std_tail.is_some() && len < PCI_LEN)
        {
            return Err(BuildError::BadLength { len });
        }
        Ok(len)
    }

    /// Write the config space into `out` and return its length (256 or 4096, see the
    /// module docs), or the first error a `with_*` call met.
    ///
    /// # Errors
    ///
    /// The first [`BuildError`] a `with_*` call met, [`BuildError::BadLength`] when the
    /// length set with `with_config_len` cannot hold the capabilities added, or
    /// [`BuildError::BufferTooSmall`] when `out` is shorter than the config space.
    pub fn build_into(&self, out: &mut [u8]) -> Result<usize, BuildError> {
        let len = self.checked_len()?;
        let have = out.len();
        let dst = out.get_mut(..len).ok_or(BuildError::BufferTooSmall {
            needed: len,
            len: have,
        })?;
        dst.copy_from_slice(&self.image[..len]);
        Ok(len)
    }

    /// The built image (length [`Self::config_len`]), or the first error.
    ///
    /// # Errors
    ///
    /// The first [`BuildError`] a `with_*` call met, or [`BuildError::BadLength`] when the
    /// length set with `with_config_len` cannot hold the capabilities added.
    pub fn bytes(&self) -> Result<&[u8], BuildError> {
        Ok(&self.image[..self.checked_len()?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::{CapabilityId, ExtCapabilityId, PowerState};
    use crate::config::{Bar, ConfigSpace, HeaderType};

    fn gpu() -> ConfigBuilder {
        ConfigBuilder::endpoint(
            VendorId(0x1002),
            DeviceId(0x7300),
            ClassCode::from_u32(0x030000),
        )
    }

    #[test]
    fn scenario_fiji_gpu_round_trips_through_the_decoder() {
        let mut buf = [0u8; 4096];
        let len = gpu()
            .with_multifunction()
            .with_subsystem(VendorId(0x1002), DeviceId(0x0b36))
            .with_bar64(0, 0xe000_0000, true)
            .with_pm(true)
            .with_pcie(PortType::Endpoint, false)
            .with_msi(0, true)
            .with_af(true, true)
            .with_aer()
            .with_acs(AcsFlags::SV | AcsFlags::RR, AcsFlags::RR)
            .with_rebar(0, 0xff, 8)
            .build_into(&mut buf)
            .unwrap();
        assert_eq!(len, 4096);
        let c = ConfigSpace::new_checked(&buf[..len]).unwrap();
        assert_eq!(c.vendor_id(), VendorId(0x1002));
        assert!(c.class_code().is_vga() && c.multifunction());
        assert_eq!(c.header_type(), HeaderType::Normal);
        assert_eq!(c.subsystem_id(), Some(DeviceId(0x0b36)));
        assert_eq!(
            c.bar(0),
            Some(Bar::Memory64 {
                address: 0xe000_0000,
                prefetchable: true
            })
        );
        // documented layout: packed from 0x40, dword aligned, call order
        let std: [(CapabilityId, u16); 4] = [
            (CapabilityId::PowerManagement, 0x40),
            (CapabilityId::PciExpress, 0x48),
            (CapabilityId::Msi, 0x84),
            (CapabilityId::AdvancedFeatures, 0x94), // MSI 64-bit is 14 bytes
        ];
        let got: [(CapabilityId, u16); 4] = {
            let mut w = c
                .capabilities()
                .map(|r| r.unwrap())
                .map(|c| (c.id, c.offset));
            [
                w.next().unwrap(),
                w.next().unwrap(),
                w.next().unwrap(),
                w.next().unwrap(),
            ]
        };
        assert_eq!(got, std);
        assert_eq!(c.capabilities().count(), 4);
        let ext: [(ExtCapabilityId, u16); 3] = [
            (ExtCapabilityId::Aer, 0x100),
            (ExtCapabilityId::Acs, 0x148),
            (ExtCapabilityId::ResizableBar, 0x150),
        ];
        let mut w = c.extended_capabilities().map(|r| r.unwrap());
        for want in ext {
            let e = w.next().unwrap();
            assert_eq!((e.id, e.offset), want);
        }
        assert!(w.next().is_none());
        assert_eq!(c.pm_no_soft_reset(), Some(true));
        assert_eq!(c.power_management().unwrap().power_state, PowerState::D0);
        assert!(!c.flr());
        assert!(c.af_flr());
        let acs = c.acs().unwrap();
        assert_eq!(acs.control, AcsFlags::RR);
    }

    #[test]
    fn af_flr_needs_both_tp_and_flr() {
        // drivers/pci/pci.c pci_af_flr: the kernel and QEMU require TP and FLR.
        for (tp, flr, want) in [
            (true, true, true),
            (false, true, false),
            (true, false, false),
        ] {
            let b = gpu().with_af(tp, flr);
            let c = ConfigSpace::new_checked(b.bytes().unwrap()).unwrap();
            assert_eq!(c.af_flr(), want, "tp={tp} flr={flr}");
        }
    }

    #[test]
    fn bridge_with_slot_and_secondary_bus_reset() {
        let b = ConfigBuilder::bridge(VendorId(0x1022), DeviceId(0x1483), 0, 0x0b, 0x0b)
            .with_bridge_control(BridgeControl::SECONDARY_BUS_RESET)
            .with_bridge_subsystem(VendorId(0x1022), DeviceId(0x1234))
            .with_pcie(PortType::RootPort, false)
            .with_pcie_slot(3, true)
            .with_ari_forwarding(true);
        let c = ConfigSpace::new_checked(b.bytes().unwrap()).unwrap();
        assert_eq!(c.header_type(), HeaderType::Bridge);
        assert_eq!(c.bridge_buses().unwrap().secondary, 0x0b);
        assert!(c
            .bridge_control()
            .unwrap()
            .contains(BridgeControl::SECONDARY_BUS_RESET));
        let p = c.pcie().unwrap();
        assert_eq!(p.port_type, PortType::RootPort);
        assert!(p.hot_plug());
        assert_eq!(p.slot_capabilities.unwrap().physical_slot, 3);
        assert!(p.ari_forwarding_supported);
        assert_eq!(c.subsystem(), Some((VendorId(0x1022), DeviceId(0x1234))));
    }

    #[test]
    fn no_room_and_small_buffer_are_errors() {
        let mut b = gpu();
        for _ in 0..12 {
            b = b.with_pcie(PortType::Endpoint, true);
        }
        assert!(matches!(
            b.build_into(&mut [0u8; 4096]),
            Err(BuildError::NoRoom {
                id: 0x10,
                extended: false,
                ..
            })
        ));
        assert_eq!(
            gpu().with_pm(false).build_into(&mut [0u8; 100]),
            Err(BuildError::BufferTooSmall {
                needed: 256,
                len: 100
            })
        );
        assert_eq!(
            gpu()
                .with_acs(AcsFlags::SV, AcsFlags::SV)
                .with_config_len(256)
                .bytes()
                .err(),
            Some(BuildError::BadLength { len: 256 })
        );
        assert_eq!(
            gpu()
                .with_acs(AcsFlags::SV, AcsFlags::SV)
                .with_config_len(256)
                .build_into(&mut [0u8; 4096]),
            Err(BuildError::BadLength { len: 256 })
        );
    }
}
