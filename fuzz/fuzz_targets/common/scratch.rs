//! Scratch directories for targets that write trees (shared with `#[path]`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A scratch directory for this process, in memory when /dev/shm exists.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("passthru-fuzz-host-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    })
}

/// Remove `p` (and what is under it) if it exists.
pub fn fresh(p: &Path) {
    match std::fs::remove_dir_all(p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot clear {}: {e}", p.display()),
    }
}
