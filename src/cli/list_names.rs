//! Names from `pci.ids` for human and JSON output: `$PASSTHRU_PCI_IDS` when set, else
//! the database under `--root` (`usr/share/misc/pci.ids`, then
//! `usr/share/hwdata/pci.ids`, found through the host model's confined layer), else,
//! for a tree that has none (a fixture, a snapshot taken without one), this machine's
//! own. A snapshot carries the database it was taken with, so it replays the same
//! names; which database was used is said in `--json` output.

use passthru_iommu_groups::sysfs::{Kind, Root};
use passthru_pci_ids::db::{Database, PciIdsIndex, ENV_VAR};
use std::path::{Path, PathBuf};

/// Where a root keeps its `pci.ids` (system paths), in lookup order.
pub const DB_PATHS: [&str; 2] = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"];

/// The database used for names, and where it came from.
pub struct Names {
    /// The database, when one was found and read.
    pub db: Option<Database>,
    /// Where it came from (for `--json`).
    pub source: NamesSource,
}

pub use passthru::report::{NamesFrom, NamesSource};

/// The `pci.ids` under `root` (its real path and its system path), if any.
pub fn root_db_path(root: &Path) -> Option<(PathBuf, &'static str)> {
    let r = Root::new(root).ok()?;
    DB_PATHS.iter().find_map(|p| {
        let rel = Path::new(p.trim_start_matches('/'));
        match r.resolve(rel) {
            Ok(Some((real, Kind::File))) => Some((root.join(real), *p)),
            _ => None,
        }
    })
}

/// Where the names for `root` come from, without reading the database: the file to
/// read and its source; `None` when there is no database.
pub fn locate(root: &Path) -> Option<(PathBuf, NamesSource)> {
    if let Some(p) = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(p);
        let from = NamesSource::new(NamesFrom::Env, Some(path.display().to_string()));
        return Some((path, from));
    }
    let own = root_db_path(root).map(|(real, sys)| (real, sys, NamesFrom::Root));
    let (real, sys, from) = own.or_else(|| {
        (root != Path::new("/"))
            .then(|| root_db_path(Path::new("/")))
            .flatten()
            .map(|(real, sys)| (real, sys, NamesFrom::Machine))
    })?;
    Some((real, NamesSource::new(from, Some(sys.to_string()))))
}

/// Read the database [`locate`] found (`None`: names unknown).
pub fn load_located(found: Option<(PathBuf, NamesSource)>) -> Names {
    let Some((real, source)) = found else {
        return Names {
            db: None,
            source: NamesSource::new(NamesFrom::None, None),
        };
    };
    match Database::load(real) {
        Ok(db) => Names {
            db: Some(db),
            source,
        },
        Err(e) => {
            eprintln!("passthru: note: device names unavailable: {e}");
            Names { db: None, source }
        }
    }
}

/// Find a `pci.ids` database; names are unknown when there is none or it is unreadable.
pub fn load(root: &Path) -> Names {
    load_located(locate(root))
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

pub use passthru::decode::device_name;
