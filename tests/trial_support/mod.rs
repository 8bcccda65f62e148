//! Shared by the trial tests: where the real module data lives.
#![allow(dead_code)]

use std::path::PathBuf;

/// The Debian kernel release of the committed module subset and the VM harness.
pub const RELEASE: &str = "6.12.118+deb12-amd64";

/// The committed subset (tests/data/trial/modtree/README.md says where it is from).
pub fn subset_tree() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/trial/modtree/lib/modules")
        .join(RELEASE)
}

/// The VM harness's kernel directory (tests/vm/fetch-kernel.sh): `vmlinuz` there.
pub fn harness_kernel() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_default();
    let cache = std::env::var_os("PT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(home).join(".cache/passthru"));
    cache.join("kernel").join(RELEASE)
}

/// A tool the test needs; a missing one fails the test with what to install.
pub fn need(tool: &str, package: &str) {
    let ok = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{tool} is missing: install the Debian package {package} (scripts/test-all.sh does)"
    );
}
