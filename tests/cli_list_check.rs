//! `passthru list`, `check` and `snapshot` on the committed fixture roots:
//! golden JSON (regenerated with `PASSTHRU_BLESS=1`, reviewed against docs/rules.md's
//! rules), exit statuses, human output and colour.

#[path = "cli_list_check_support/mod.rs"]
mod cli_common;

use cli_common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Fixture roots under tests/fixtures (any directory with `sys/`).
fn fixtures() -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(repo().join("tests/fixtures"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            p.join("sys")
                .is_dir()
                .then(|| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        })
        .collect();
    v.sort();
    v
}

fn golden(name: &str, what: &str) -> PathBuf {
    repo()
        .join("tests/fixtures/golden")
        .join(format!("{name}.{what}"))
}

/// The devices a fixture's golden `check` names: tests/fixtures/golden/NAME.check.args.
fn check_args(name: &str) -> Vec<String> {
    std::fs::read_to_string(golden(name, "check.args"))
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The pci.ids subset: the vendor and device lines of every device in the
/// fixtures, copied from the system's pci.ids (Debian package `pci.ids`).
fn bless_pci_ids(fx: &[(String, PathBuf)]) {
    let mut want: BTreeSet<(String, String)> = BTreeSet::new();
    for (_, root) in fx {
        let h = passthru_iommu_groups::Host::load(root).unwrap();
        for d in h.devices.values() {
            want.insert((d.vendor.to_string(), d.device.to_string()));
        }
    }
    let vendors: BTreeSet<&String> = want.iter().map(|w| &w.0).collect();
    let src = std::fs::read_to_string("/usr/share/misc/pci.ids").unwrap();
    let mut out = String::from(
        "# A subset of pci.ids (the Debian `pci.ids` package's /usr/share/misc/pci.ids)\n\
         # holding the devices of tests/fixtures, for golden tests. Regenerated with\n\
         # PASSTHRU_BLESS=1 cargo test --test cli_list_check.\n",
    );
    for l in src.lines().take(20) {
        if l.starts_with("#\tVersion:") || l.starts_with("#\tDate:") {
            out.push_str(l);
            out.push('\n');
        }
    }
    let mut vendor: Option<String> = None;
    for l in src.lines() {
        if l.starts_with("C ") {
            break;
        }
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        if !l.starts_with('\t') {
            let id = l[..4].to_string();
            vendor = vendors.contains(&id).then_some(id);
            if vendor.is_some() {
                out.push_str(l);
                out.push('\n');
            }
        } else if let (Some(v), false) = (&vendor, l.starts_with("\t\t")) {
            let dev = l[1..5].to_string();
            if want.contains(&(v.clone(), dev)) {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    std::fs::write(pci_ids(), out).unwrap();
}

fn compare(path: &Path, got: &str) {
    if bless() {
        std::fs::write(path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "{} missing: run PASSTHRU_BLESS=1 cargo test --test cli_list_check",
            path.display()
        )
    });
    let a: serde_json::Value = serde_json::from_str(&want).unwrap();
    let b: serde_json::Value = serde_json::from_str(got).unwrap();
    assert_eq!(
        a,
        b,
        "{} differs (bless to update after review)",
        path.display()
    );
}

#[test]
fn golden_list_and_check_json_on_every_fixture() {
    let fx = fixtures();
    let names: BTreeSet<&str> = fx.iter().map(|f| f.0.as_str()).collect();
    for required in ["host-noiommu", "scenario-amd", "tcg-amd", "tcg-intel"] {
        assert!(names.contains(required), "fixture {required} missing");
    }
    if bless() {
        bless_pci_ids(&fx);
    }
    for (name, root) in &fx {
        if !bless() && !golden(name, "list.json").exists() {
            eprintln!("note: {name} has no golden files yet (bless to add)");
            continue;
        }
        let l = passthru(root, &["list", "--json"]);
        assert_eq!(l.code, 0, "{name} list: {}", l.stderr);
        // The names came from $PASSTHRU_PCI_IDS, whose path is this checkout's.
        let mut v: serde_json::Value = serde_json::from_str(&l.stdout).unwrap();
        let src = v.as_object_mut().unwrap().remove("pci_ids").unwrap();
        assert_eq!(src["from"], "env", "{name}");
        assert_eq!(src["path"], pci_ids().display().to_string(), "{name}");
        compare(
            &golden(name, "list.json"),
            &serde_json::to_string_pretty(&v).unwrap(),
        );

        let args = check_args(name);
        let mut argv = vec!["check", "--json"];
        argv.extend(args.iter().map(String::as_str));
        let c = passthru(root, &argv);
        compare(&golden(name, "check.json"), &c.stdout);
        // Exit status: 1 exactly when a device or the host fails.
        let v: serde_json::Value = serde_json::from_str(&c.stdout).unwrap();
        let fails = v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["verdict"] == "fail")
            || v["host"]["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["severity"] == "fail");
        assert_eq!(c.code, if fails { 1 } else { 0 }, "{name}: {}", c.stderr);
    }
}

/// The documented JSON keys, exactly.
#[test]
fn json_keys_are_the_issues() {
    let root = repo().join("tests/fixtures/scenario-amd");
    let l: serde_json::Value =
        serde_json::from_str(&passthru(&root, &["list", "--json"]).stdout).unwrap();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&l),
        ["groups", "iommu", "iommu_units", "pci_ids", "ungrouped"]
    );
    assert_eq!(l["iommu_units"][0], "ivhd0");
    assert_eq!(keys(&l["pci_ids"]), ["from", "path"]);
    assert_eq!(l["iommu"], "enabled");
    assert_eq!(keys(&l["groups"][0]), ["devices", "id", "noiommu"]);
    assert_eq!(
        keys(&l["groups"][0]["devices"][0]),
        [
            "bdf",
            "class",
            "class_name",
            "device_id",
            "driver",
            "iommu_group",
            "name",
            "vendor_id"
        ]
    );
    // A device's group under the key check and verify use, beside the group's `id`.
    assert_eq!(
        l["groups"][0]["devices"][0]["iommu_group"],
        l["groups"][0]["id"]
    );
    // The AMD IOMMU function has no group.
    assert_eq!(l["ungrouped"][0]["bdf"], "0000:00:00.2");

    let c: serde_json::Value =
        serde_json::from_str(&passthru(&root, &["check", "--json", "0b:00"]).stdout).unwrap();
    assert_eq!(keys(&c), ["devices", "host"]);
    assert_eq!(
        keys(&c["host"]),
        ["cmdline", "cpu_vendor", "findings", "iommu", "kernel"]
    );
    assert_eq!(c["host"]["cpu_vendor"], "amd");
    let d = &c["devices"][0];
    assert_eq!(
        keys(d),
        [
            "bdf",
            "class",
            "class_name",
            "device_id",
            "driver",
            "findings",
            "group_peers",
            "iommu_group",
            "name",
            "reset_methods",
            "vendor_id",
            "verdict"
        ]
    );
    assert_eq!(d["bdf"], "0000:0b:00.0");
    // The same keys mean the same as in `list`.
    let listed = l["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["devices"].as_array().unwrap())
        .find(|x| x["bdf"] == d["bdf"])
        .unwrap();
    for k in [
        "class",
        "class_name",
        "driver",
        "name",
        "vendor_id",
        "device_id",
        "iommu_group",
    ] {
        assert_eq!(d[k], listed[k], "{k}");
    }
    assert_eq!(d["iommu_group"], 13);
    assert_eq!(
        keys(&d["findings"][0]),
        ["code", "device", "evidence", "message", "severity"]
    );
    assert_eq!(d["findings"][0]["device"], d["bdf"]);
    // verify names the device with the same keys and values (and keeps its `group`).
    let v: serde_json::Value =
        serde_json::from_str(&passthru(&root, &["verify", "--json", "0b:00.0"]).stdout).unwrap();
    for k in [
        "bdf",
        "class",
        "driver",
        "name",
        "vendor_id",
        "device_id",
        "iommu_group",
    ] {
        assert_eq!(v[k], d[k], "verify {k}");
    }
    assert_eq!(v["group"], v["iommu_group"]);
    for f in v["findings"].as_array().unwrap() {
        assert_eq!(
            keys(f),
            ["code", "device", "evidence", "message", "severity"]
        );
    }
    let codes: Vec<&str> = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    for c in [
        "reset-bug",
        "host-driver",
        "boot-vga",
        "no-reset",
        "companion-function",
    ] {
        assert!(codes.contains(&c), "{c} missing from {codes:?}");
    }
}

#[test]
fn exit_status_follows_the_verdicts() {
    let fx = repo().join("tests/fixtures");
    // The scenario only warns.
    assert_eq!(passthru(&fx.join("scenario-amd"), &["check"]).code, 0);
    // A non-viable group (the kernel refused it) fails.
    assert_eq!(passthru(&fx.join("tcg-amd"), &["check", "0b:00.1"]).code, 1);
    // No IOMMU fails, even with no display device to check.
    let o = passthru(&fx.join("host-noiommu"), &["check"]);
    assert_eq!(o.code, 1);
    assert!(o.stdout.contains("iommu-off"), "{}", o.stdout);
    // Usage and input errors: 2, naming what was wrong.
    let o = passthru(&fx.join("scenario-amd"), &["check", "0b:00.9"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("\"0b:00.9\""), "{}", o.stderr);
    let o = passthru(&fx.join("scenario-amd"), &["check", "1234:5678"]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("no PCI device matches \"1234:5678\""),
        "{}",
        o.stderr
    );
}

/// `iommu-off`: the report says what to enable for this CPU vendor and
/// whether the firmware table exists.
#[test]
fn iommu_off_report_names_vendor_setting_and_table() {
    let t = tempfile::tempdir().unwrap();
    use passthru_iommu_groups::fixture::{Fixture, FixtureDevice, IommuKind};
    use passthru_iommu_groups::CpuVendor;
    let gpu = FixtureDevice::gpu("01:00.0".parse().unwrap(), 0x10de, 0x1187);
    Fixture::new(CpuVendor::Intel, IommuKind::FirmwareOnly)
        .device(gpu.clone())
        .write(&t.path().join("intel"))
        .unwrap();
    Fixture::new(CpuVendor::Amd, IommuKind::None)
        .device(gpu)
        .write(&t.path().join("amd"))
        .unwrap();
    let o = passthru(&t.path().join("intel"), &["check", "--json"]);
    assert_eq!(o.code, 1);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let f = &v["host"]["findings"][0];
    assert_eq!(f["code"], "iommu-off");
    assert!(f["message"].as_str().unwrap().contains("intel_iommu=on"));
    assert!(f["message"]
        .as_str()
        .unwrap()
        .contains("DMAR table present"));
    assert_eq!(v["devices"][0]["findings"][0]["code"], "iommu-off");
    assert!(v["devices"][0]["iommu_group"].is_null());
    let o = passthru(&t.path().join("amd"), &["check"]);
    assert_eq!(o.code, 1);
    assert!(o.stdout.contains("no ACPI IVRS table"), "{}", o.stdout);
    assert!(o.stdout.contains("firmware setup"), "{}", o.stdout);
}

#[test]
fn human_output_is_a_table_without_colour_when_piped() {
    let root = repo().join("tests/fixtures/scenario-amd");
    let o = passthru(&root, &["check"]);
    assert!(!o.stdout.contains('\x1b'));
    assert!(o.stdout.contains("DEVICE"));
    assert!(o.stdout.contains("VERDICT"));
    assert!(o.stdout.contains("0000:0b:00.0  1002:7300"));
    assert!(
        o.stdout.contains("Fiji"),
        "names from pci.ids: {}",
        o.stdout
    );
    let l = passthru(&root, &["list"]);
    assert!(l.stdout.contains("IOMMU group 13"));
    assert!(l.stdout.contains("amdgpu"));
}

/// Colour only on a terminal, and never with NO_COLOR (util-linux `script` gives a pty).
#[test]
fn colour_on_a_terminal_unless_no_color() {
    let root = repo().join("tests/fixtures/scenario-amd");
    let cmdline = format!(
        "{} --root {} check",
        env!("CARGO_BIN_EXE_passthru"),
        root.display()
    );
    let mut tty = Command::new("script");
    tty.args(["-qec", &cmdline, "/dev/null"])
        .env("PASSTHRU_PCI_IDS", pci_ids())
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    let o = run_cmd(tty);
    assert!(
        o.stdout.contains("\x1b[33m"),
        "no colour on a tty: {:?}",
        o.stdout
    );
    let mut plain = Command::new("script");
    plain
        .args(["-qec", &cmdline, "/dev/null"])
        .env("PASSTHRU_PCI_IDS", pci_ids())
        .env("TERM", "xterm")
        .env("NO_COLOR", "1");
    let o = run_cmd(plain);
    assert!(o.stdout.contains("VERDICT"));
    assert!(!o.stdout.contains("\x1b["), "colour despite NO_COLOR");
}

/// `passthru snapshot` of a fixture replays to the same `list` (and carries pci.ids).
#[test]
fn snapshot_replays_the_same_list() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    passthru_iommu_groups::fixture::scenario_amd()
        .write(&src)
        .unwrap();
    std::fs::create_dir_all(src.join("usr/share/misc")).unwrap();
    std::fs::copy(pci_ids(), src.join("usr/share/misc/pci.ids")).unwrap();
    let snap = t.path().join("snap");
    let o = passthru(&src, &["snapshot", snap.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(snap.join("usr/share/misc/pci.ids").is_file());
    for args in [&["list", "--json"][..], &["check", "--json"][..]] {
        let a = passthru(&src, args);
        let b = passthru(&snap, args);
        assert_eq!(a.stdout, b.stdout, "{args:?}");
    }
    // Without the env var, names come from the snapshot's own pci.ids.
    let mut c = Command::new(env!("CARGO_BIN_EXE_passthru"));
    c.arg("--root").arg(&snap).args(["list", "--json"]);
    c.env_remove("PASSTHRU_PCI_IDS");
    let o = run_cmd(c);
    assert!(o.stdout.contains("Fiji"));
    // A second snapshot into the same (now non-empty) directory is refused.
    let o = passthru(&src, &["snapshot", snap.to_str().unwrap()]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("not empty"), "{}", o.stderr);
}

// In VFIO's no-IOMMU mode `list` shows the group VFIO made (`noiommu: true`) but the
// device's `iommu_group` is null, as `check` says it: no IOMMU stands behind it.
#[test]
fn no_iommu_group_is_the_same_null_in_list_and_check() {
    let root = repo().join("tests/fixtures/vm-noiommu-rootports");
    let l: serde_json::Value =
        serde_json::from_str(&passthru(&root, &["list", "--json"]).stdout).unwrap();
    let g = &l["groups"][0];
    assert_eq!(g["noiommu"], true, "{l}");
    let bdf = g["devices"][0]["bdf"].as_str().unwrap().to_string();
    assert!(g["devices"][0]["iommu_group"].is_null(), "{l}");
    let c: serde_json::Value =
        serde_json::from_str(&passthru(&root, &["check", "--json", &bdf]).stdout).unwrap();
    assert_eq!(c["devices"][0]["bdf"], bdf.as_str(), "{c}");
    assert!(c["devices"][0]["iommu_group"].is_null(), "{c}");
}
