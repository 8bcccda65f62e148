//! Several nodes in one run: `check` over many roots (the fleet report) and
//! `config --guest proxmox-mapping` (a Proxmox VE cluster mapping), on the fixture
//! roots. The nodes: `scenario-amd` (its GTX 760 10de:1187 warns), `finding-unresponsive`
//! (the same tree with that GPU's config space reading all ones: it fails),
//! `finding-unresponsive-twin` (its control) and `vm-amd-vga-audio` (no 10de:1187).
//!
//! Goldens in tests/golden/fleet; regenerate with
//! `PASSTHRU_BLESS=1 cargo test --test cli_fleet` and review the diff.

#[path = "cli_list_check_support/mod.rs"]
mod cli_common;

use cli_common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const NODES: [&str; 4] = [
    "scenario-amd",
    "finding-unresponsive",
    "finding-unresponsive-twin",
    "vm-amd-vga-audio",
];

/// `passthru ARGS...` run in the repository (so roots print as relative paths), the
/// golden pci.ids, no colour.
fn run(args: &[&str]) -> Out {
    run_cmd(command(args))
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_passthru"));
    c.current_dir(repo()).args(args);
    c.env("PASSTHRU_PCI_IDS", pci_ids()).env_remove("NO_COLOR");
    c
}

/// `--root tests/fixtures/N` for each node.
fn roots(nodes: &[&str]) -> Vec<String> {
    nodes
        .iter()
        .flat_map(|n| ["--root".to_string(), format!("tests/fixtures/{n}")])
        .collect()
}

fn run_on(nodes: &[&str], args: &[&str]) -> Out {
    let mut v = roots(nodes);
    v.extend(args.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = v.iter().map(String::as_str).collect();
    run(&argv)
}

fn golden(name: &str, actual: &str) {
    let path = repo().join("tests/golden/fleet").join(name);
    if bless() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (PASSTHRU_BLESS=1 creates it)", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs (PASSTHRU_BLESS=1 regenerates; review the change)",
        path.display()
    );
}

/// A usage error (exit 2) whose message says `says`.
fn assert_usage(o: &Out, says: &str, what: &str) {
    assert_eq!(o.code, 2, "{what}: {}", o.stdout);
    assert!(o.stderr.contains(says), "{what}: {}", o.stderr);
}

/// Exit status `code`, and standard output holds `text`.
fn assert_prints(o: &Out, code: i32, text: &str) {
    assert_eq!(o.code, code, "{}", o.stderr);
    assert!(o.stdout.contains(text), "{text:?} not in: {}", o.stdout);
}

fn json(o: &Out) -> serde_json::Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
}

/// The fleet report: each node's value is exactly what `check --json` prints on that
/// root alone (derived here, not copied), the summary answers which nodes can take
/// the GPU, the node without it is reported (not an abort), and the exit status is
/// the worst node's (2: a node lacks the device).
#[test]
fn fleet_check_is_the_single_host_reports_keyed_by_node() {
    let o = run_on(&NODES, &["check", "--json", "10de:1187"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    golden("check-10de-1187.json", &o.stdout);
    let v = json(&o);
    for n in NODES {
        let alone = run(&[
            "--root",
            &format!("tests/fixtures/{n}"),
            "check",
            "--json",
            "10de:1187",
        ]);
        assert_eq!(v["nodes"][n], json(&alone), "node {n}");
        assert_eq!(v["sources"][n]["name_from"], "directory", "node {n}");
    }
    let s = &v["summary"];
    assert_eq!(s["nodes"], 4);
    assert_eq!(
        s["can_take"],
        serde_json::json!(["finding-unresponsive-twin", "scenario-amd"])
    );
    assert_eq!(s["fail"], serde_json::json!(["finding-unresponsive"]));
    assert_eq!(s["error"], serde_json::json!(["vm-amd-vga-audio"]));
    assert_eq!(
        v["nodes"]["vm-amd-vga-audio"]["error"]["kind"],
        "unknown-device"
    );

    // Human: one line per node, the worst exit status again.
    let h = run_on(&NODES, &["check", "10de:1187"]);
    assert_eq!(h.code, 2);
    golden("check-10de-1187.txt", &h.stdout);
    for n in NODES {
        assert_eq!(
            h.stdout
                .lines()
                .filter(|l| l.starts_with(&format!("{n}* ")))
                .count(),
            1,
            "{n}: {}",
            h.stdout
        );
    }
}

/// Without a device named (every display device), every node has one: the exit
/// status is 1 (a GPU fails on one node), as `check` gives on that node alone.
#[test]
fn fleet_exit_status_is_the_worst_single_host_status() {
    let nodes = ["scenario-amd", "finding-unresponsive", "vm-amd-vga-audio"];
    let o = run_on(&nodes, &["check", "--json"]);
    let worst = nodes
        .iter()
        .map(|n| run(&["--root", &format!("tests/fixtures/{n}"), "check", "--json"]).code)
        .max()
        .unwrap();
    assert_eq!(worst, 1);
    assert_eq!(o.code, worst, "{}", o.stderr);
    let ok = run_on(&["scenario-amd", "vm-amd-vga-audio"], &["check", "--json"]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
}

/// Two loader threads (`PASSTHRU_FLEET_JOBS=2`, the benchmark's knob) print the
/// same report as one.
#[test]
fn fleet_threads_print_the_same_report() {
    let mut argv = roots(&NODES);
    argv.extend(["check", "--json"].map(String::from));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let one = run(&argv);
    let mut c = command(&argv);
    c.env("PASSTHRU_FLEET_JOBS", "2");
    let two = run_cmd(c);
    assert_eq!((one.code, &one.stdout), (two.code, &two.stdout));
    assert_eq!(json(&one)["nodes"].as_object().unwrap().len(), NODES.len());
}

/// Two roots with the same node name: a usage error naming both.
#[test]
fn duplicate_node_names_are_a_usage_error() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a/scenario-amd");
    std::fs::create_dir_all(a.parent().unwrap()).unwrap();
    snapshot(&repo().join("tests/fixtures/scenario-amd"), &a);
    let argv = [
        "--root",
        "tests/fixtures/scenario-amd",
        "--root",
        a.to_str().unwrap(),
        "check",
        "--json",
    ];
    let o = run(&argv[..5]);
    assert_usage(&o, "two nodes are named \"scenario-amd\"", "");
    assert!(o.stderr.contains(a.to_str().unwrap()), "{}", o.stderr);
    let j = run(&argv);
    assert_eq!(j.code, 2);
    assert_eq!(json(&j)["error"]["kind"], "usage");
}

fn snapshot(root: &Path, out: &Path) {
    let o = run(&[
        "--root",
        root.to_str().unwrap(),
        "snapshot",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

/// A copy of a fixture root (symlinks kept) with a host name, snapshotted into `out`.
fn named_snapshot(fixture: &str, host_name: &str, out: &Path) {
    let t = tempfile::tempdir().unwrap();
    let copy = t.path().join("tree");
    let st = Command::new("cp")
        .arg("-a")
        .arg(repo().join("tests/fixtures").join(fixture))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(
        copy.join("proc/sys/kernel/hostname"),
        format!("{host_name}\n"),
    )
    .unwrap();
    snapshot(&copy, out);
}

/// `--roots-dir`: each subdirectory with the snapshot marker is a node, named by its
/// host name when the snapshot has one (else its directory); a subdirectory that is
/// not a snapshot is refused, naming it.
#[test]
fn roots_dir_takes_every_snapshot_and_names_a_stray_directory() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("fleet");
    std::fs::create_dir_all(&dir).unwrap();
    named_snapshot("scenario-amd", "pve1.example.org", &dir.join("a"));
    snapshot(
        &repo().join("tests/fixtures/finding-unresponsive"),
        &dir.join("b"),
    );
    std::fs::write(dir.join("README"), "plain files are skipped\n").unwrap();
    let d = dir.to_str().unwrap();
    let o = run(&["--roots-dir", d, "check", "--json", "10de:1187"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let v = json(&o);
    let names: Vec<&String> = v["nodes"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["b", "pve1.example.org"]);
    assert_eq!(v["sources"]["pve1.example.org"]["name_from"], "hostname");
    assert_eq!(v["sources"]["b"]["name_from"], "directory");
    assert_eq!(
        v["summary"]["can_take"],
        serde_json::json!(["pve1.example.org"])
    );

    // Proxmox node names stop at the first dot.
    let m = run(&[
        "--roots-dir",
        d,
        "config",
        "--guest",
        "proxmox-mapping",
        "10de:1187",
    ]);
    assert_prints(&m, 1, ",node=pve1,path=0000:05:00,");
    assert!(!m.stdout.contains("node=b,"), "{}", m.stdout);

    std::fs::create_dir_all(dir.join("c/sys")).unwrap();
    let o = run(&["--roots-dir", d, "check"]);
    let stray = format!("{} is not a passthru snapshot", dir.join("c").display());
    assert_usage(&o, &stray, "stray directory");
}

/// Commands that read one host refuse several roots, naming the flag (exit 2).
#[test]
fn single_host_commands_refuse_several_roots() {
    let two = ["scenario-amd", "vm-amd-vga-audio"];
    for args in [
        vec!["list"],
        vec!["verify", "05:00.0"],
        vec!["config", "05:00"],
        vec!["config", "05:00", "--guest", "proxmox"],
        vec!["snapshot", "/nonexistent/out"],
    ] {
        let o = run_on(&two, &args);
        assert_usage(&o, "--root (given 2 times)", &format!("{args:?}"));
    }
    let o = run(&["--roots-dir", "tests/fixtures", "list"]);
    assert_usage(&o, "--roots-dir: `list` reads one host", "");
    // Fixture roots are not snapshots: the directory of them is refused, naming one.
    let o = run(&["--roots-dir", "tests/fixtures", "check"]);
    assert_usage(&o, "is not a passthru snapshot", "");
}

/// The Proxmox mapping over the fixture nodes: the failing GPU's node is not mapped
/// without --force and the output says why; with --force it is, its finding named;
/// the node without the GPU is reported.
#[test]
fn proxmox_mapping_leaves_out_a_failing_node_unless_forced() {
    let nodes = ["scenario-amd", "finding-unresponsive", "vm-amd-vga-audio"];
    let o = run_on(
        &nodes,
        &["config", "--guest", "proxmox-mapping", "10de:1187"],
    );
    golden("mapping-10de-1187.txt", &o.stdout);
    assert_prints(&o, 2, "node=scenario-amd,path=0000:05:00,");
    assert!(
        !o.stdout.contains("node=finding-unresponsive"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("fails check: unresponsive (--force maps it anyway)"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("hostpci0: mapping=pci-10de-1187,pcie=1"),
        "{}",
        o.stdout
    );

    let j = run_on(
        &nodes,
        &[
            "config",
            "--guest",
            "proxmox-mapping",
            "10de:1187",
            "--json",
        ],
    );
    assert_eq!(j.code, 2);
    golden("mapping-10de-1187.json", &j.stdout);

    let forced = [
        "config",
        "--guest",
        "proxmox-mapping",
        "10de:1187",
        "--force",
        "--json",
    ];
    let f = run_on(&nodes[..2], &forced);
    assert_eq!(f.code, 1, "a forced node still fails: {}", f.stderr);
    let v = json(&f);
    let m = &v["mappings"][0];
    assert_eq!(m["map"].as_array().unwrap().len(), 2);
    let slot = &m["nodes"]["finding-unresponsive"]["slots"][0];
    assert_eq!(slot["mapped"], true);
    assert_eq!(slot["verdict"], "fail");
    assert_eq!(slot["findings"], serde_json::json!(["unresponsive"]));
    let human = run_on(&nodes[..2], &forced[..5]);
    golden("mapping-10de-1187-force.txt", &human.stdout);
}

/// The mapping's facts are the host model's: id and subsystem of function 0, its
/// IOMMU group, the slot without function when the slot has several functions, one
/// function's address when it has one.
#[test]
fn proxmox_mapping_entries_come_from_the_host_model() {
    for (node, dev) in [
        ("scenario-amd", "05:00"),
        ("vm-amd-multifunction", "01:00"),
        ("vm-amd-nonviable", "01:00.0"),
    ] {
        let root: PathBuf = repo().join("tests/fixtures").join(node);
        let h = passthru_iommu_groups::Host::load(&root).unwrap();
        let o = run(&[
            "--root",
            root.to_str().unwrap(),
            "config",
            "--guest",
            "proxmox-mapping",
            "--force",
            dev,
            "--json",
        ]);
        let v = json(&o);
        let spec: passthru_iommu_groups::DeviceSpec = dev.parse().unwrap();
        let slot = h.resolve(&spec).unwrap()[0].slot();
        let fns: Vec<_> = h
            .devices
            .values()
            .filter(|d| d.bdf.slot() == slot)
            .collect();
        let f0 = fns[0];
        let path = if fns.len() > 1 {
            slot.to_string()
        } else {
            f0.bdf.to_string()
        };
        let mut want = format!("id={}:{}", f0.vendor, f0.device);
        if let Some(g) = f0.iommu_group {
            want.push_str(&format!(",iommugroup={g}"));
        }
        want.push_str(&format!(",node={node},path={path}"));
        if let (Some(v), Some(d)) = (f0.subsystem_vendor, f0.subsystem_device) {
            want.push_str(&format!(",subsystem-id={v}:{d}"));
        }
        assert_eq!(
            v["mappings"][0]["map"][0],
            want.as_str(),
            "{node}: {}",
            o.stdout
        );
    }
}

/// Mapping mode's own usage errors.
#[test]
fn proxmox_mapping_usage_errors() {
    let one = ["scenario-amd"];
    for (args, says) in [
        (
            vec![
                "config",
                "--guest",
                "proxmox-mapping",
                "--guest",
                "proxmox",
                "05:00",
            ],
            "give it alone",
        ),
        (
            vec!["config", "--guest", "proxmox-mapping", "05:00", "--apply"],
            "only prints",
        ),
        (
            vec!["config", "--guest", "proxmox-mapping"],
            "name the device to map",
        ),
        (
            vec!["config", "--guest", "proxmox-mapping", "05:00", "--x-vga"],
            "--x-vga configures one host",
        ),
        (
            vec!["config", "--guest", "proxmox-mapping", "05:00,0b:00"],
            "each DEVICE argument is one mapping",
        ),
        (
            vec![
                "config",
                "--guest",
                "proxmox-mapping",
                "05:00",
                "--mapping-id",
                "1x",
            ],
            "--mapping-id \"1x\"",
        ),
        (vec!["config", "05:00", "--force"], "--force goes with"),
        (
            vec!["config", "05:00", "--mapping-id", "gpu"],
            "--mapping-id goes with",
        ),
    ] {
        let o = run_on(&one, &args);
        assert_usage(&o, says, &format!("{args:?}"));
    }
    let o = run_on(
        &one,
        &[
            "config",
            "--guest",
            "proxmox-mapping",
            "05:00",
            "--mapping-id",
            "gpu0",
        ],
    );
    assert_prints(&o, 0, "\ngpu0\n\tmap id=10de:1187,");
}
