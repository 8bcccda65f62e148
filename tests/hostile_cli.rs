//! The CLI on bad roots: clear errors with exit status 2, or
//! absent facts with notes on stderr, never a panic or a hang (each run under a
//! 60 s timeout).

#[path = "cli_list_check_support/mod.rs"]
mod cli_common;

use cli_common::*;
use passthru_iommu_groups::fixture::{Fixture, FixtureDevice, IommuKind};
use passthru_iommu_groups::CpuVendor;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

fn small_root() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    Fixture::new(CpuVendor::Amd, IommuKind::Amd)
        .device(FixtureDevice::root_port("00:01.0".parse().unwrap(), 1).group(1))
        .device(
            FixtureDevice::gpu("01:00.0".parse().unwrap(), 0x1002, 0x7300)
                .parent("00:01.0".parse().unwrap())
                .group(2)
                .driver("amdgpu"),
        )
        .write(&root)
        .unwrap();
    (t, root)
}

#[test]
fn empty_root_exits_2_naming_the_path() {
    let t = tempfile::tempdir().unwrap();
    for cmd in ["list", "check"] {
        let o = passthru(t.path(), &[cmd]);
        assert_eq!(o.code, 2, "{cmd}");
        assert!(o.stderr.contains("sys/bus/pci/devices"), "{}", o.stderr);
        assert!(o.stderr.contains(&t.path().display().to_string()));
        assert!(!o.stderr.contains("panicked"));
    }
    let o = passthru(
        t.path(),
        &["snapshot", t.path().join("out").to_str().unwrap()],
    );
    assert_eq!(o.code, 2);
}

#[test]
fn missing_root_exits_2() {
    let o = passthru(
        std::path::Path::new("/nonexistent/root"),
        &["list", "--json"],
    );
    assert_eq!(o.code, 2);
    // Under --json the error is a JSON object on standard output.
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["error"]["path"], "/nonexistent/root", "{}", o.stdout);
    assert!(o.stderr.is_empty(), "{}", o.stderr);
    let o = passthru(std::path::Path::new("/nonexistent/root"), &["list"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("/nonexistent/root"), "{}", o.stderr);
    assert!(o.stdout.is_empty());
}

#[test]
fn escaping_and_looping_links_become_notes_not_failures() {
    let (_t, root) = small_root();
    let d = root.join("sys/bus/pci/devices");
    symlink("../../../../../../../../etc", d.join("0000:00:1f.0")).unwrap();
    symlink("0000:00:1e.1", d.join("0000:00:1e.0")).unwrap();
    symlink("0000:00:1e.0", d.join("0000:00:1e.1")).unwrap();
    let o = passthru(&root, &["list", "--json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("leads outside the root"), "{}", o.stderr);
    assert!(o.stderr.contains("too many levels of symbolic links"));
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["groups"].as_array().unwrap().len(), 2);
}

#[test]
fn fifo_config_and_truncated_files_do_not_hang_the_cli() {
    let (_t, root) = small_root();
    let dev = fs::canonicalize(root.join("sys/bus/pci/devices/0000:01:00.0")).unwrap();
    fs::remove_file(dev.join("config")).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(dev.join("config"))
        .status()
        .unwrap()
        .success());
    // A tree without modalias (a snapshot of an older passthru): the id attributes count.
    fs::remove_file(dev.join("modalias")).unwrap();
    fs::write(dev.join("vendor"), [0xffu8, 0x00]).unwrap();
    fs::write(dev.join("device"), "0x7300\n").unwrap();
    let o = passthru(&root, &["check", "--json", "01:00.0"]);
    // No config and no readable vendor id: the device is ignored, so the spec matches nothing.
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("not a regular file"), "{}", o.stderr);
    assert!(o.stdout.contains("no PCI device matches"), "{}", o.stdout);
}

#[test]
fn garbage_everywhere_still_gives_a_report() {
    let (_t, root) = small_root();
    let dev = fs::canonicalize(root.join("sys/bus/pci/devices/0000:01:00.0")).unwrap();
    fs::write(dev.join("config"), b"\x02\x10\x00\x73").unwrap();
    fs::remove_file(dev.join("modalias")).unwrap();
    fs::write(dev.join("class"), "0xzzzzzz\n").unwrap();
    fs::write(dev.join("boot_vga"), "maybe\n").unwrap();
    fs::write(root.join("proc/cmdline"), vec![b'a'; 1 << 20]).unwrap();
    let o = passthru(&root, &["check", "--json", "1002:7300"]);
    assert!(o.code == 0 || o.code == 1, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert!(v["host"]["cmdline"].is_null());
    assert_eq!(v["devices"][0]["bdf"], "0000:01:00.0");
    assert!(o.stderr.contains("truncated: 4 bytes"));
    assert!(o.stderr.contains("0xzzzzzz"));
}

#[test]
fn usage_errors_exit_2() {
    let (_t, root) = small_root();
    for bad in [
        &["check", "gpu"][..],
        &["check", "0b:00.8"],
        &["snapshot"],
        &["list", "--bogus"],
    ] {
        let o = passthru(&root, bad);
        assert_eq!(o.code, 2, "{bad:?}: {}", o.stderr);
        assert!(!o.stderr.is_empty());
    }
}

/// A non-root reader's 64-byte config files: one summary note, not one per device.
#[test]
fn non_root_config_reads_are_summarized_once() {
    let (_t, root) = small_root();
    for bdf in ["0000:00:01.0", "0000:01:00.0"] {
        let cfg = fs::canonicalize(root.join("sys/bus/pci/devices").join(bdf))
            .unwrap()
            .join("config");
        let full = fs::read(&cfg).unwrap();
        fs::write(&cfg, &full[..64]).unwrap();
    }
    let o = passthru(&root, &["check", "01:00.0"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stderr.matches("64 bytes").count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains("2 devices"), "{}", o.stderr);
    // The topology alone still gives the bus reset (alone behind its root port).
    let j = passthru(&root, &["check", "--json", "01:00.0"]);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["devices"][0]["reset_methods"], serde_json::json!(["bus"]));
}

/// "A non-root reader's 64-byte config is handled (fewer facts, said so)",
/// on this machine's real sysfs: run as uid 65534 (via setpriv when root).
#[test]
fn live_sysfs_read_as_non_root_says_config_is_short() {
    let uid = run_cmd({
        let mut c = std::process::Command::new("id");
        c.arg("-u");
        c
    });
    let as_nobody = |args: &[&str]| {
        let mut c = if uid.stdout.trim() == "0" {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_passthru"));
            c
        } else {
            std::process::Command::new(env!("CARGO_BIN_EXE_passthru"))
        };
        c.args(args).env("PASSTHRU_PCI_IDS", pci_ids());
        run_cmd(c)
    };
    // `list` reads no config space: every device, and no note about its length.
    let o = as_nobody(&["list", "--json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let listed = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["devices"].as_array().unwrap().len())
        .sum::<usize>()
        + v["ungrouped"].as_array().unwrap().len();
    let live = fs::read_dir("/sys/bus/pci/devices").map_or(0, |d| d.count());
    assert_eq!(listed, live);
    assert!(!o.stderr.contains("64 bytes"), "{}", o.stderr);
    // `check` reads it: one line for all the short ones.
    let o = as_nobody(&["check", "--json"]);
    assert!(o.code == 0 || o.code == 1, "{}", o.stderr);
    if live >= 2 {
        assert!(
            o.stderr
                .contains(&format!("{live} devices: config readable only to 64 bytes")),
            "{}",
            o.stderr
        );
    }
}

/// Hostile input: a `config` of 0, 1, 63, 65, 255 and 4097 bytes, all-ones
/// config space (a device that fell off the bus), capability pointers into the header,
/// past the end and to themselves. Each run ends (timeout), exits 0 or 1 with a report
/// that still names the device (its ids come from the sysfs attributes), and a length
/// the kernel never produces is named on stderr by `check` with the path it was read
/// from (`list` never reads the config space).
#[test]
fn hostile_config_spaces_give_a_report_and_a_note() {
    let good = {
        let (_t, root) = small_root();
        let dev = fs::canonicalize(root.join("sys/bus/pci/devices/0000:01:00.0")).unwrap();
        fs::read(dev.join("config")).unwrap()
    };
    assert!(good.len() >= 256, "fixture config is {} bytes", good.len());
    let mut cases: Vec<(String, Vec<u8>)> = [0usize, 1, 63, 65, 255, 4097]
        .iter()
        .map(|&n| {
            let mut b = good.clone();
            b.resize(n, 0);
            (format!("{n} bytes"), b)
        })
        .collect();
    cases.push(("all ones".into(), vec![0xff; 256]));
    let with_cap_ptr = |p: u8, at: Option<(usize, u8)>| {
        let mut b = good[..256].to_vec();
        b[0x06] |= 0x10; // Status: capabilities list
        b[0x34] = p;
        if let Some((off, next)) = at {
            b[off] = 0x01; // PM
            b[off + 1] = next;
        }
        b
    };
    cases.push((
        "cap pointer into the header".into(),
        with_cap_ptr(0x10, None),
    ));
    cases.push(("cap pointer past the end".into(), with_cap_ptr(0xff, None)));
    cases.push((
        "self-pointing capability".into(),
        with_cap_ptr(0x40, Some((0x40, 0x40))),
    ));
    for (what, bytes) in cases {
        let (_t, root) = small_root();
        let dev = fs::canonicalize(root.join("sys/bus/pci/devices/0000:01:00.0")).unwrap();
        fs::write(dev.join("config"), &bytes).unwrap();
        for args in [&["check", "--json", "01:00.0"][..], &["list", "--json"][..]] {
            let o = passthru(&root, args);
            assert!(o.code == 0 || o.code == 1, "{what} {args:?}: {}", o.stderr);
            assert!(!o.stderr.contains("panicked"), "{what}: {}", o.stderr);
            let v: serde_json::Value = serde_json::from_str(&o.stdout)
                .unwrap_or_else(|e| panic!("{what} {args:?}: {e}: {}", o.stdout));
            assert!(
                o.stdout.contains("0000:01:00.0"),
                "{what} {args:?}: device missing: {v}"
            );
            // `list` reads no config space (its ids come from the attributes).
            if ![256usize, 4096].contains(&bytes.len()) && args[0] == "check" {
                assert!(
                    o.stderr.contains("config"),
                    "{what}: the short/odd config is not named: {}",
                    o.stderr
                );
            }
        }
    }
}

/// `passthru list | head`: the reader goes away before the output is written. The
/// command ends quietly with status 141 (as a SIGPIPE would give), never a panic,
/// for every printing command in both output forms.
#[test]
fn closed_stdout_ends_quietly_with_141() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    // 1,200 functions: far more output than a pipe holds.
    Fixture::many_gpus(400).write(dir.path()).unwrap();
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["check"],
        &["check", "--json"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_passthru"))
            .arg("--root")
            .arg(dir.path())
            .args(args)
            .env("PASSTHRU_PCI_IDS", pci_ids())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone
        let o = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}
