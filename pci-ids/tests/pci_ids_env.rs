//! The loader's search order: explicit path, then `$PASSTHRU_PCI_IDS`, then the
//! default paths. Its own test binary, since it sets the environment variable.
#![cfg(feature = "std")]

use passthru_pci_ids::db::{Database, LoadError, ENV_VAR};
use passthru_pci_ids::VendorId;

#[test]
fn loader_honours_explicit_path_then_env_var() {
    let dir = std::env::temp_dir().join(format!("passthru-pci-ids-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mine = dir.join("mine.ids");
    std::fs::write(&mine, "abcd  Test Vendor\n\t0001  Test Device\n").unwrap();
    let env = dir.join("env.ids");
    std::fs::write(&env, "dcba  Env Vendor\n").unwrap();

    let db = Database::find(Some(&mine)).unwrap();
    assert_eq!(db.path(), mine);
    assert_eq!(
        db.ids().unwrap().vendor(VendorId(0xabcd)),
        Some("Test Vendor")
    );

    // env var: the only test in this binary that touches it
    std::env::set_var(ENV_VAR, &env);
    let db = Database::find(None).unwrap();
    assert_eq!(db.path(), env);
    assert_eq!(
        db.index().unwrap().vendor(VendorId(0xdcba)),
        Some("Env Vendor")
    );
    // an env path that does not exist is an error naming it, never a silent fallback
    let missing = dir.join("missing.ids");
    std::env::set_var(ENV_VAR, &missing);
    match Database::find(None) {
        Err(e @ LoadError::Io { .. }) => assert!(e.to_string().contains("missing.ids"), "{e}"),
        other => panic!("expected an Io error, got {other:?}"),
    }
    std::env::remove_var(ENV_VAR);

    // a malformed file names the path and the line
    std::fs::write(&mine, "abcd  Vendor\n\tzzzz  bad\n").unwrap();
    let err = Database::load(&mine).unwrap().index().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("mine.ids") && msg.contains("line 2"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}
