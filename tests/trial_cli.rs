//! `passthru trial` end to end: the real binary on a fixture host whose function
//! is on vfio-pci already (so the bind guard has nothing to write: binding cannot
//! happen on this machine, see tests/trial_run.rs for the binder), the committed
//! module subset, and the stand-in VMM. Checks the refusal when `check` fails, the
//! JSON report and exit codes, a timeout, SIGINT, and that the temporary directory
//! (TMPDIR of the child) is empty afterwards.

mod trial_support;

use passthru_iommu_groups::fixture::{Fixture, FixtureDevice, IommuKind};
use passthru_iommu_groups::CpuVendor;
use passthru_pci_ids::builder::ConfigBuilder;
use passthru_pci_ids::caps::PortType;
use passthru_pci_ids::{ClassCode, DeviceId, VendorId};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use trial_support::{healthy, subset_tree, StandIn, RELEASE};

const NVME: &str = "0000:01:00.0";

/// QEMU's nvme controller (hw/nvme/ctrl.c: 1b36:0010, class 010802) behind a root
/// port, in its own group, already on vfio-pci.
fn host(iommu: IommuKind) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rp = FixtureDevice::root_port("00:1c.0".parse().unwrap(), 1).group(1);
    let b = ConfigBuilder::endpoint(
        VendorId(0x1b36),
        DeviceId(0x0010),
        ClassCode::from_u32(0x010802),
    )
    .with_subsystem(VendorId(0x1af4), DeviceId(0x1100))
    .with_pm(false)
    .with_pcie(PortType::Endpoint, true);
    let mut nvme = FixtureDevice::from_builder("01:00.0".parse().unwrap(), &b)
        .expect("the builder makes a valid device")
        .parent("00:1c.0".parse().unwrap())
        .driver("vfio-pci")
        .reset_method("flr bus");
    if iommu != IommuKind::None {
        nvme = nvme.group(2);
    }
    Fixture::new(CpuVendor::Intel, iommu)
        .kernel(RELEASE)
        .cmdline("BOOT_IMAGE=/vmlinuz intel_iommu=on iommu=pt")
        .file(&format!("boot/vmlinuz-{RELEASE}"), "stand-in kernel")
        .device(rp)
        .device(nvme)
        .write(dir.path())
        .unwrap();
    dir
}

struct Run {
    out: Output,
    tmp: tempfile::TempDir,
}

fn passthru(
    root: &Path,
    standin: &StandIn,
    extra: &[&str],
) -> (std::process::Child, PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let mods = subset_tree().display().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_passthru"));
    cmd.arg("--root")
        .arg(root)
        .args(["trial", NVME, "--qemu"])
        .arg(&standin.program)
        .args(extra);
    // Defaults for what `extra` does not set (clap refuses a flag given twice).
    for (flag, value) in [("--accel", "tcg"), ("--modules", mods.as_str())] {
        if !extra.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    cmd.env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    (child, tmp.path().to_path_buf(), tmp)
}

fn run(root: &Path, standin: &StandIn, extra: &[&str]) -> Run {
    let (child, _, tmp) = passthru(root, standin, extra);
    Run {
        out: child.wait_with_output().unwrap(),
        tmp,
    }
}

fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

/// `trial --json` of a stand-in run as a golden under tests/golden/trial (checked by
/// tests/json_schema.rs against docs/schema/trial.json), as printed but for each
/// boot's `seconds` (the one fact that differs between runs) set to 0.0 and the
/// fixture root made `ROOT`. `PASSTHRU_BLESS=1` rewrites the file.
fn trial_golden(name: &str, stdout: &[u8], root: &Path) {
    let text = String::from_utf8(stdout.to_vec()).unwrap();
    let mut seconds = 0;
    let text: String = text
        .lines()
        .map(|l| {
            let key = l.trim_start().strip_prefix("\"seconds\": ");
            let Some(value) = key else {
                return format!("{l}\n");
            };
            let comma = if value.ends_with(',') { "," } else { "" };
            let secs: f64 = value.trim_end_matches(',').parse().unwrap();
            assert!(secs >= 0.0, "{l}");
            seconds += 1;
            let indent = &l[..l.len() - l.trim_start().len()];
            format!("{indent}\"seconds\": 0.0{comma}\n")
        })
        .collect();
    let v: serde_json::Value = serde_json::from_slice(stdout).unwrap();
    assert_eq!(seconds, v["boots"].as_array().unwrap().len(), "{text}");
    let text = text.replace(&root.display().to_string(), "ROOT");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/trial")
        .join(format!("{name}.json"));
    if std::env::var("PASSTHRU_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    } else {
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} missing: PASSTHRU_BLESS=1", path.display()));
        assert_eq!(text, want, "{name}: differs from {}", path.display());
    }
}

fn nvme_ok() -> Vec<passthru::trial::protocol::Record> {
    healthy(&[("1b36", "0010", "nvme")])
}

#[test]
fn trial_ok_in_json_with_the_modules_resolved_and_nothing_left() {
    let root = host(IommuKind::Intel);
    let s = StandIn::new();
    s.boot(1, "ok", &nvme_ok());
    s.boot(2, "ok", &nvme_ok());
    let r = run(root.path(), &s, &["--json"]);
    let stderr = String::from_utf8_lossy(&r.out.stderr);
    assert_eq!(r.out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&r.out.stdout).unwrap();
    assert_eq!(v["verdict"], "trial-ok");
    assert_eq!(v["boots"].as_array().unwrap().len(), 2);
    assert_eq!(v["functions"][0]["modules"], serde_json::json!(["nvme"]));
    assert_eq!(
        v["functions"][0]["modalias"],
        "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02"
    );
    assert_eq!(
        v["boots"][0]["host_after"][0]["reset_method"],
        serde_json::json!(["flr", "bus"])
    );
    assert_eq!(s.count(), 2);
    let argv = s.read("argv", 1);
    assert!(argv
        .lines()
        .any(|l| l == "vfio-pci,host=0000:01:00.0,bus=rp0,addr=0x0.0"));
    assert!(argv.lines().any(|l| l == "tcg"));
    assert!(argv.contains(&format!("{}/boot/vmlinuz-{RELEASE}", root.path().display())));
    assert!(empty(r.tmp.path()), "temporary files left");
    trial_golden("trial-ok", &r.out.stdout, root.path());
}

#[test]
fn a_failing_check_refuses_unless_forced() {
    let root = host(IommuKind::None);
    let s = StandIn::new();
    let r = run(root.path(), &s, &[]);
    let stderr = String::from_utf8_lossy(&r.out.stderr);
    assert_eq!(r.out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refusing the trial"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(s.count(), 0, "a refused trial booted");
    s.boot(1, "ok", &nvme_ok());
    let r = run(root.path(), &s, &["--force", "--boots", "1"]);
    let stdout = String::from_utf8_lossy(&r.out.stdout);
    assert_eq!(
        r.out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&r.out.stderr)
    );
    assert!(stdout.contains("boot 1: trial-ok"), "{stdout}");
    // The fixture's reset_method and its root port's link: pci-ids' ConfigBuilder::with_pcie
    // writes Link Capabilities without DLLLA reporting and Link Status speed 1, width 1.
    assert!(
        stdout
            .contains("host after: 0000:01:00.0 config readable, link gen1 x1, reset flr,bus, D0"),
        "{stdout}"
    );
    assert!(stdout.contains("trial: trial-ok"), "{stdout}");
}

#[test]
fn a_hung_guest_times_out_with_exit_1() {
    let root = host(IommuKind::Intel);
    let s = StandIn::new();
    s.boot(1, "hang", &nvme_ok()[..1]);
    s.boot(2, "ok", &nvme_ok());
    let r = run(root.path(), &s, &["--timeout", "1", "--json"]);
    assert_eq!(r.out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&r.out.stdout).unwrap();
    // Killed at its 1 s limit (the loop polls every 50 ms), not left to sleep 300 s.
    let secs = v["boots"][0]["seconds"].as_f64().unwrap();
    assert!((1.0..10.0).contains(&secs), "boot 1 took {secs} s");
    assert_eq!(v["boots"][0]["verdict"], "trial-timeout");
    assert_eq!(v["boots"][1]["verdict"], "trial-ok");
    assert_eq!(v["verdict"], "trial-timeout");
    assert!(!s.alive("child", 1));
    assert!(empty(r.tmp.path()));
    trial_golden("trial-timeout", &r.out.stdout, root.path());
}

#[test]
fn sigint_kills_the_guest_and_cleans_up() {
    let root = host(IommuKind::Intel);
    let s = StandIn::new();
    s.boot(1, "hang", &nvme_ok()[..1]);
    let (child, tmp_path, _tmp) = passthru(root.path(), &s, &["--timeout", "300"]);
    let start = Instant::now();
    while s.read("child", 1).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the guest never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(start.elapsed() < Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("trial: no verdict (interrupted"),
        "{stdout}"
    );
    assert!(!s.alive("pid", 1));
    assert!(!s.alive("child", 1));
    assert!(empty(&tmp_path), "temporary files left");
    assert_eq!(s.count(), 1);
}

/// `passthru trial` with `extra` on the nvme fixture host refuses with exit 2, its
/// message holding every one of `wants`, and never starts the VMM.
fn refused(extra: &[&str], wants: &[&str]) {
    let root = host(IommuKind::Intel);
    let s = StandIn::new();
    let r = run(root.path(), &s, extra);
    let stderr = String::from_utf8_lossy(&r.out.stderr);
    assert_eq!(r.out.status.code(), Some(2), "{stderr}");
    for w in wants {
        assert!(stderr.contains(w), "{w:?} not in {stderr}");
    }
    assert_eq!(s.count(), 0);
}

#[test]
fn kvm_is_required_unless_tcg_is_asked_for() {
    // The fixture host has no dev/kvm.
    refused(&["--accel", "kvm"], &["no /dev/kvm", "--accel tcg"]);
}

#[test]
fn a_missing_kernel_is_an_error_naming_it() {
    refused(
        &["--kernel", "/nonexistent/vmlinuz"],
        &["/nonexistent/vmlinuz"],
    );
}

#[test]
fn a_missing_module_tree_is_an_error_naming_it() {
    refused(
        &["--modules", "/nonexistent/modules"],
        &["/nonexistent/modules/modules.alias"],
    );
}
