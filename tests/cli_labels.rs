//! `passthru labels`: the NFD feature file on every fixture root (golden files under
//! tests/golden/labels, regenerated with `PASSTHRU_BLESS=1 cargo test --test cli_labels`),
//! `check --format nfd` printing the same lines, the atomic write under `--root`, a
//! second run writing the same bytes, `--expiry`, and every line within NFD's rules.

#[path = "cli_list_check_support/mod.rs"]
mod cli_common;

use cli_common::*;
use passthru::labels::{valid_name, valid_value, MAX_FILE_BYTES, PREFIX};
use std::path::Path;

fn golden(name: &str, actual: &str) {
    let path = repo()
        .join("tests/golden/labels")
        .join(format!("{name}.txt"));
    check_golden(&path, actual);
}

/// Every label line of a feature file, checked against the syntax NFD and the API
/// server accept; returns name -> value.
fn parse(file: &str) -> std::collections::BTreeMap<String, String> {
    assert!(file.len() <= MAX_FILE_BYTES);
    let mut m = std::collections::BTreeMap::new();
    for line in file.lines().filter(|l| !l.starts_with('#')) {
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("{line}"));
        let name = k
            .strip_prefix(&format!("{PREFIX}/"))
            .unwrap_or_else(|| panic!("{line}: not under {PREFIX}"));
        assert!(valid_name(name), "{line}");
        assert!(valid_value(v), "{line}");
        assert!(
            m.insert(name.to_string(), v.to_string()).is_none(),
            "{line} twice"
        );
    }
    m
}

#[test]
fn golden_labels_on_every_fixture_root() {
    let roots = fixtures();
    assert!(roots.len() >= 19, "{} fixture roots", roots.len());
    for root in &roots {
        let name = root.file_name().unwrap().to_str().unwrap();
        let o = passthru(root, &["labels", "--stdout"]);
        assert_eq!(o.code, 0, "{name}: {}", o.stderr);
        parse(&o.stdout);
        golden(name, &o.stdout);
        let c = passthru(root, &["check", "--format", "nfd"]);
        assert_eq!(c.code, 0, "{name}: {}", c.stderr);
        assert_eq!(
            c.stdout, o.stdout,
            "{name}: check --format nfd differs from labels"
        );
    }
}

/// tests/fixtures/finding-unresponsive: the GTX 760 (10de:1187) reads all ones, so
/// `check` fails it and its slot (its HDMI audio 10de:0e0a with it); the Fury's slot
/// still passes with warnings, and its reset bug shows.
#[test]
fn a_node_whose_gpu_fails_says_so() {
    let root = repo().join("tests/fixtures/finding-unresponsive");
    let o = passthru(&root, &["labels", "--stdout"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let m = parse(&o.stdout);
    assert_eq!(m["pci-10de_1187.worst"], "fail");
    assert_eq!(m["pci-10de_1187.pass"], "0");
    assert_eq!(m["pci-10de_0e0a.worst"], "fail");
    assert_eq!(m["class-0300.count"], "2");
    assert_eq!(m["class-0300.pass"], "1");
    assert_eq!(m["pci-1002_7300.worst"], "warn");
    assert_eq!(m["pci-1002_7300.reset"], "bug");
    // `check` agrees: exit 1, the GTX 760 failing.
    let c = passthru(&root, &["check", "--json"]);
    assert_eq!(c.code, 1);
    let v: serde_json::Value = serde_json::from_str(&c.stdout).unwrap();
    let gtx = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == "1187")
        .unwrap();
    assert_eq!(gtx["verdict"], "fail");
    // Its twin with a responsive card passes.
    let twin = parse(
        &passthru(
            &repo().join("tests/fixtures/finding-unresponsive-twin"),
            &["labels", "--stdout"],
        )
        .stdout,
    );
    assert_eq!(twin["pci-10de_1187.worst"], "warn");
}

/// The IOMMU-off fixture: `iommu=false`, nothing counted as passing.
#[test]
fn iommu_off_shows() {
    let m = parse(
        &passthru(
            &repo().join("tests/fixtures/vm-noiommu-rootports"),
            &["labels", "--stdout"],
        )
        .stdout,
    );
    assert_eq!(m["iommu"], "false");
    assert_eq!(m["devices.pass"], "0");
    assert_eq!(m["devices.count"], "2");
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The default target is NFD's features.d under --root; a second run writes the same
/// bytes, and no temporary file is left behind.
#[test]
fn writes_atomically_under_root_and_reruns_identically() {
    let t = tempfile::tempdir().unwrap();
    passthru_iommu_groups::fixture::scenario_amd()
        .write(t.path())
        .unwrap();
    let o = passthru(t.path(), &["labels"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let dir = t
        .path()
        .join("etc/kubernetes/node-feature-discovery/features.d");
    assert_eq!(files_in(&dir), ["passthru"]);
    let first = std::fs::read(dir.join("passthru")).unwrap();
    let stdout = passthru(t.path(), &["labels", "--stdout"]).stdout;
    assert_eq!(first, stdout.as_bytes());
    let o = passthru(t.path(), &["labels"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(std::fs::read(dir.join("passthru")).unwrap(), first);
    assert_eq!(files_in(&dir), ["passthru"]);
    // --output elsewhere; --json says where.
    let out = t.path().join("elsewhere/labels");
    let o = passthru(
        t.path(),
        &["labels", "--output", out.to_str().unwrap(), "--json"],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), first);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["path"], out.to_str().unwrap());
}

/// A target that cannot be written: an error naming it, exit 2, nothing left over.
#[test]
fn an_unwritable_target_is_an_error_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let blocker = t.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let target = blocker.join("sub/passthru");
    let o = passthru(
        &repo().join("tests/fixtures/scenario-amd"),
        &["labels", "--output", target.to_str().unwrap()],
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains(blocker.to_str().unwrap()), "{}", o.stderr);
}

/// `--expiry 2h`: one `# +expiry-time=` line (RFC 3339 UTC, as NFD's local source
/// parses it: `time.Parse(time.RFC3339, ...)` in source/local/local.go) about two hours
/// from now, before every label.
#[test]
fn expiry_directive() {
    let root = repo().join("tests/fixtures/scenario-amd");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let o = passthru(&root, &["labels", "--stdout", "--expiry", "2h"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with("# +expiry-time="))
        .unwrap();
    assert!(lines[..i].iter().all(|l| l.starts_with('#')));
    let t = lines[i].trim_start_matches("# +expiry-time=");
    let lo = passthru::labels::rfc3339(before + 7200);
    let hi = passthru::labels::rfc3339(before + 7200 + 120);
    assert!(t.len() == 20 && t.ends_with('Z'), "{t}");
    assert!(
        lo.as_str() <= t && t <= hi.as_str(),
        "{t} not in [{lo}, {hi}]"
    );
    let bad = passthru(&root, &["labels", "--stdout", "--expiry", "2 hours"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("2 hours"), "{}", bad.stderr);
}

/// `intremap`: `true` when /proc/interrupts shows remapped (`IR-`) chips, `false` when
/// it shows only plain ones (the host's `no-intremap` finding), `unknown` without the
/// file. The lines follow kernel/irq/proc.c (chip names as in tests/host_findings.rs).
#[test]
fn intremap_follows_proc_interrupts() {
    for (ir, want) in [
        (Some(true), "true"),
        (Some(false), "false"),
        (None, "unknown"),
    ] {
        let t = tempfile::tempdir().unwrap();
        passthru_iommu_groups::fixture::scenario_amd()
            .write(t.path())
            .unwrap();
        let f = t.path().join("proc/interrupts");
        match ir {
            Some(on) => {
                let p = if on { "IR-" } else { "" };
                std::fs::write(
                    &f,
                    format!(
                        "           CPU0       CPU1       \n  1:          0          9  {p}IO-APIC    1-edge      i8042\n 25:        312          0  {p}PCI-MSI-0000:01:00.1    0-edge      snd_hda_intel:card0\n"
                    ),
                )
                .unwrap();
            }
            None => {
                let _ = std::fs::remove_file(&f);
            }
        }
        let m = parse(&passthru(t.path(), &["labels", "--stdout"]).stdout);
        assert_eq!(m["intremap"], want, "{ir:?}");
    }
}

/// Every label the README and docs/labels.md name is one passthru writes (ids
/// generalised: `pci-VVVV_DDDD`, `class-CCSS`), so the documentation cannot drift from
/// the interface; and every label the goldens hold is documented.
#[test]
fn documented_labels_are_the_written_ones() {
    fn shape(name: &str) -> String {
        let mut out = String::new();
        for part in name.split('.') {
            let p = if part.starts_with("pci-") && part.len() == 13 {
                "pci-VVVV_DDDD".to_string()
            } else if part.starts_with("class-") && part.len() == 10 {
                "class-CCSS".to_string()
            } else {
                part.to_string()
            };
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&p);
        }
        out
    }
    let mut written = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(repo().join("tests/golden/labels")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        written.extend(parse(&text).keys().map(|k| shape(k)));
    }
    // The size limit's marker never appears on a fixture.
    written.insert("truncated".to_string());
    let docs = std::fs::read_to_string(repo().join("docs/labels.md")).unwrap();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let prefix = format!("{PREFIX}/");
    for (what, text) in [("README.md", &readme), ("docs/labels.md", &docs)] {
        let mut n = 0;
        for (i, _) in text.match_indices(&prefix) {
            let rest = &text[i + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .collect();
            let name = name.trim_end_matches('.');
            if name.is_empty() {
                continue;
            }
            assert!(
                written.contains(&shape(name)),
                "{what} names {name}, which passthru never writes"
            );
            n += 1;
        }
        assert!(n >= 4, "{what}: {n} labels named");
    }
    // docs/labels.md's table: one row per written shape.
    let table: std::collections::BTreeSet<String> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    for w in &written {
        assert!(
            table.contains(w),
            "{w} is written but not in docs/labels.md's table"
        );
    }
}

/// A real capture of a 6.12 guest booted with `intremap=off`: the host check fails
/// (`no-intremap`; vfio_iommu_type1 refuses devices without interrupt remapping), so
/// no device of the node may be counted as passing, though the devices themselves only
/// warn; its twin without `intremap=off` shows the same devices passing.
#[test]
fn a_host_that_fails_passes_nothing() {
    let off = repo().join("tests/fixtures/vm-intel-vga-audio-intremap-off");
    let o = passthru(&off, &["labels", "--stdout"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let m = parse(&o.stdout);
    assert_eq!(m["intremap"], "false");
    assert_eq!(m["devices.count"], "2");
    assert_eq!(m["devices.pass"], "0");
    assert_eq!(m["class-0300.worst"], "fail");
    let c = passthru(&off, &["check"]);
    assert_eq!(c.code, 1, "check fails on this host: {}", c.stdout);

    let on = repo().join("tests/fixtures/vm-intel-vga-audio");
    let m = parse(&passthru(&on, &["labels", "--stdout"]).stdout);
    assert_eq!(m["devices.count"], "2");
    assert_eq!(m["devices.pass"], "2");
    assert_ne!(m["class-0300.worst"], "fail");
}
