//! Shared by the CLI integration tests: run the binary under a timeout.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `PASSTHRU_BLESS=1`: regenerate golden files.
pub fn bless() -> bool {
    std::env::var("PASSTHRU_BLESS").is_ok_and(|v| v == "1")
}

/// Compare `actual` with the golden file at `path` (under `PASSTHRU_BLESS=1`: write it).
pub fn check_golden(path: &Path, actual: &str) {
    if bless() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (PASSTHRU_BLESS=1 creates it)", path.display()));
    assert_eq!(
        actual,
        want,
        "{} differs (PASSTHRU_BLESS=1 regenerates; review the change)",
        path.display()
    );
}

/// The pci.ids subset the golden files were made with.
pub fn pci_ids() -> PathBuf {
    repo().join("tests/fixtures/pci.ids")
}

/// Fixture roots under tests/fixtures (any directory with `sys/`), sorted.
pub fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("sys").is_dir())
        .collect();
    v.sort();
    v
}

/// What a run gave.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run `cmd` with a 60 s timeout (killed and failed after it).
pub fn run_cmd(mut cmd: Command) -> Out {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = Vec::new();
        so.read_to_end(&mut s).ok();
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = Vec::new();
        se.read_to_end(&mut s).ok();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().ok();
            child.wait().ok();
            panic!("timed out after 60 s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&t1.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&t2.join().unwrap()).into_owned(),
    }
}

/// `passthru --root ROOT ARGS...` with the golden pci.ids and no colour.
pub fn passthru(root: &Path, args: &[&str]) -> Out {
    let mut c = Command::new(env!("CARGO_BIN_EXE_passthru"));
    c.arg("--root").arg(root).args(args);
    c.env("PASSTHRU_PCI_IDS", pci_ids()).env_remove("NO_COLOR");
    run_cmd(c)
}
