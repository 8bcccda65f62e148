//! Shared helpers: the repository paths, the bless switch, and fixture roots
//! built from the real-kernel captures in tests/data/captures.
#![allow(dead_code)]

use passthru_iommu_groups::fixture::{Fixture, FixtureDevice, IommuKind};
use passthru_iommu_groups::CpuVendor;
use passthru_pci_ids::Bdf;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `PASSTHRU_BLESS=1`: regenerate committed fixture trees and golden files.
pub fn bless() -> bool {
    std::env::var("PASSTHRU_BLESS").is_ok_and(|v| v == "1")
}

/// The capture directory of a run (`tcg-amd`, `tcg-intel`).
pub fn capture_dir(name: &str) -> PathBuf {
    repo().join("tests/data/captures").join(name)
}

/// One line of a capture's devices.txt.
#[derive(Debug, Clone)]
pub struct CapturedDevice {
    pub bdf: Bdf,
    pub group: Option<u32>,
    pub driver: Option<String>,
    pub reset_method: Option<String>,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let rest = &line[start..];
    if let Some(r) = rest.strip_prefix('[') {
        return r.find(']').map(|e| &r[..e]);
    }
    Some(rest.split_whitespace().next().unwrap_or(""))
}

/// Parse devices.txt.
pub fn captured_devices(name: &str) -> Vec<CapturedDevice> {
    let text = std::fs::read_to_string(capture_dir(name).join("devices.txt")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let bdf: Bdf = l.split_whitespace().next().unwrap().parse().unwrap();
            let group = field(l, " group=").and_then(|g| g.parse().ok());
            let driver = field(l, " driver=")
                .filter(|d| !d.is_empty() && !d.starts_with("cfgsize"))
                .map(str::to_string);
            let reset_method = field(l, " reset_method=")
                .filter(|r| !r.starts_with("cat:"))
                .map(str::to_string);
            CapturedDevice {
                bdf,
                group,
                driver,
                reset_method,
            }
        })
        .collect()
}

/// Parent bridges from iommu_groups.txt's link targets (`../../../../devices/pci0000:00/A/B`).
pub fn captured_parents(name: &str) -> BTreeMap<Bdf, Bdf> {
    let text = std::fs::read_to_string(capture_dir(name).join("iommu_groups.txt")).unwrap();
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let Some((_, target)) = l.split_once(" -> ") else {
            continue;
        };
        let chain: Vec<Bdf> = target
            .split('/')
            .filter_map(|c| c.parse::<Bdf>().ok())
            .collect();
        if chain.len() >= 2 {
            out.insert(chain[chain.len() - 1], chain[chain.len() - 2]);
        }
    }
    out
}

/// `== section` blocks of kinfo.txt.
fn kinfo(name: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(capture_dir(name).join("kinfo.txt")).unwrap();
    let mut out = BTreeMap::new();
    let mut cur = String::new();
    for l in text.lines() {
        if let Some(s) = l.strip_prefix("== ") {
            cur = s.to_string();
            out.insert(cur.clone(), String::new());
        } else if let Some(v) = out.get_mut(&cur) {
            v.push_str(l);
            v.push('\n');
        }
    }
    out
}

/// A fixture root from a capture run: real config bytes, groups, drivers,
/// `reset_method`, parents, kernel release, command line and modules. The CPU
/// vendor is not captured (`other`); the group type follows the run's
/// "Default domain type" log line (Passthrough -> identity, Translated/strict -> DMA).
pub fn capture_fixture(name: &str) -> Fixture {
    let k = kinfo(name);
    let iommu = if name.contains("intel") {
        IommuKind::Intel
    } else {
        IommuKind::Amd
    };
    let mut f = Fixture::new(CpuVendor::Other, iommu);
    let uname = k["uname"].split_whitespace().nth(2).unwrap().to_string();
    f.kernel = uname;
    f.cmdline = k["cmdline"].trim_end().to_string();
    f.modules = k["modules"]
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let passthrough = k
        .get("dmesg iommu/DMAR")
        .is_some_and(|d| d.contains("Default domain type: Passthrough"));
    let parents = captured_parents(name);
    for d in captured_devices(name) {
        let cfg = std::fs::read(capture_dir(name).join(format!("config/{}.bin", d.bdf))).unwrap();
        let mut fd = FixtureDevice::from_config(d.bdf, cfg);
        fd.parent = parents.get(&d.bdf).copied();
        fd.group = d.group;
        fd.driver = d.driver.clone();
        fd.reset_method = d.reset_method.clone();
        if let Some(g) = d.group {
            f.group_types
                .insert(g, if passthrough { "identity" } else { "DMA" }.into());
        }
        f = f.device(fd);
    }
    f
}

/// Write `f` as the committed fixture tree `tests/fixtures/NAME` (replacing it).
pub fn bless_tree(name: &str, f: &Fixture) {
    let dir = repo().join("tests/fixtures").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    f.write(&dir).unwrap();
}

/// What a capture's vfiotest file says: the RESET flag and the hot-reset dependencies.
#[derive(Debug)]
pub struct VfioAnswer {
    pub bdf: Bdf,
    pub reset_flag: Option<bool>,
    /// `None`: the hot-reset info ioctl failed (or was not reached).
    pub hot_reset_deps: Option<Vec<(u32, Bdf)>>,
    pub viable: Option<bool>,
}

/// Parse every vfiotest file of a run.
pub fn vfio_answers(name: &str) -> Vec<VfioAnswer> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(capture_dir(name)).unwrap() {
        let p = e.unwrap().path();
        let fname = p.file_name().unwrap().to_string_lossy().into_owned();
        let Some(b) = fname
            .strip_prefix("vfiotest-")
            .and_then(|s| s.strip_suffix(".txt"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&p).unwrap();
        let reset_flag = text
            .lines()
            .find_map(|l| l.split("RESET=").nth(1))
            .map(|r| r.starts_with('1'));
        let viable = text
            .lines()
            .find_map(|l| l.split(" viable=").nth(1))
            .map(|r| r.starts_with('1'));
        let deps: Vec<(u32, Bdf)> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("dep dev group="))
            .map(|r| {
                let (g, b) = r.split_once(' ').unwrap();
                (g.parse().unwrap(), b.trim().parse().unwrap())
            })
            .collect();
        let info_ok = text
            .lines()
            .any(|l| l.starts_with("  ok   VFIO_DEVICE_GET_PCI_HOT_RESET_INFO"));
        out.push(VfioAnswer {
            bdf: b.parse().unwrap(),
            reset_flag,
            hot_reset_deps: info_ok.then_some(deps),
            viable,
        });
    }
    out.sort_by_key(|a| a.bdf);
    out
}
