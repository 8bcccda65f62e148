//! Names from `pci.ids` for human and JSON output: `$PASSTHRU_PCI_IDS` when set,
//! else the database under `--root` (`usr/share/misc/pci.ids`, then
//! `usr/share/hwdata/pci.ids`). Only the root's own database is used, so a
//! snapshot (which carries the database it was taken with) replays the same names.

use passthru_pci_ids::db::{Database, PciIdsIndex, ENV_VAR};
use passthru_pci_ids::{DeviceId, VendorId};
use std::path::{Path, PathBuf};

/// Where a root keeps its `pci.ids` (relative paths), in lookup order.
pub const ROOT_PATHS: [&str; 2] = ["usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids"];

/// The `pci.ids` file under `root`, if any.
pub fn root_db_path(root: &Path) -> Option<PathBuf> {
    ROOT_PATHS
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_file())
}

/// Find a `pci.ids` database; `None` (names unknown) when there is none or it is unreadable.
pub fn load(root: &Path) -> Option<Database> {
    let res = match std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        Some(p) => Database::load(PathBuf::from(p)),
        None => Database::load(root_db_path(root)?),
    };
    match res {
        Ok(db) => Some(db),
        Err(e) => {
            eprintln!("passthru: note: device names unavailable: {e}");
            None
        }
    }
}

/// Build the lookup index; `None` when the database does not parse.
pub fn index(db: Option<&Database>) -> Option<PciIdsIndex<'_>> {
    match db?.index() {
        Ok(i) => Some(i),
        Err(e) => {
            eprintln!("passthru: note: device names unavailable: {e}");
            None
        }
    }
}

/// `Vendor Device`, or the vendor and the id when the device is unknown.
pub fn device_name(idx: Option<&PciIdsIndex<'_>>, v: VendorId, d: DeviceId) -> Option<String> {
    let idx = idx?;
    let vendor = idx.vendor(v)?;
    Some(match idx.device(v, d) {
        Some(dev) => format!("{vendor} {dev}"),
        None => format!("{vendor} Device {d}"),
    })
}
