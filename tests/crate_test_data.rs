//! The library crates carry copies of some real config-space captures in their own
//! `tests/data/tcg-amd/` so their packaged tests run outside the repository. Each copy
//! must be byte-identical to the capture in tests/data/captures/tcg-amd/config it was
//! taken from (the `:` of the BDF written `-`).

use std::fs;
use std::path::Path;

/// `0000-06-00.0.via-vfio.bin` -> `0000:06:00.0.via-vfio.bin`: only the BDF's two
/// separators were renamed.
fn capture_name(copy: &str) -> String {
    copy.replacen('-', ":", 2)
}

#[test]
fn crate_copies_equal_the_captures() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let captures = repo.join("tests/data/captures/tcg-amd/config");
    for krate in ["pci-ids", "iommu-groups", "vfio-core"] {
        let dir = repo.join(krate).join("tests/data/tcg-amd");
        let mut n = 0;
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let copy = e.unwrap().path();
            let name = copy.file_name().unwrap().to_str().unwrap().to_owned();
            if !name.ends_with(".bin") {
                continue;
            }
            let original = captures.join(capture_name(&name));
            let (a, b) = (fs::read(&copy).unwrap(), fs::read(&original));
            let b = b.unwrap_or_else(|e| panic!("{}: {e}", original.display()));
            assert!(
                a == b,
                "{} differs from {}",
                copy.display(),
                original.display()
            );
            n += 1;
        }
        assert!(n > 0, "no copies in {}", dir.display());
    }
}
