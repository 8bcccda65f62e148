//! One host model, read once: a snapshot of a tree holds everything every command
//! reads, so `list`, `check`, `config` and `verify` print on the snapshot exactly what
//! they print on the tree itself. Also: snapshots taken without root say so, and trees
//! without a pci.ids get names from this machine's database.

#[path = "cli_list_check_support/mod.rs"]
mod cli_common;

use cli_common::*;
use std::path::Path;
use std::process::Command;

/// Run passthru with `--root root`, names from the test database.
fn run(root: &Path, args: &[&str]) -> Out {
    passthru(root, args)
}

/// The first display device's slot of a root (what `config` is asked about), or
/// the first endpoint's.
fn a_slot(root: &Path) -> Option<String> {
    let h = passthru_iommu_groups::Host::load(root).unwrap();
    let d = h
        .devices
        .values()
        .find(|d| d.class.class == 0x03)
        .or_else(|| h.devices.values().find(|d| !d.is_any_bridge()))?;
    Some(d.bdf.slot().to_string())
}

fn snapshot_of(root: &Path, out: &Path) {
    let o = run(root, &["snapshot", out.to_str().unwrap()]);
    assert_eq!(o.code, 0, "snapshot of {}: {}", root.display(), o.stderr);
}

/// Every fixture root, snapshotted, replays every command's output byte for byte:
/// list and check (human and JSON), config's dry run (human and JSON), and verify's
/// read-only run.
#[test]
fn every_command_replays_on_a_snapshot_of_every_fixture() {
    let t = tempfile::tempdir().unwrap();
    let mut compared = 0;
    let roots = fixtures();
    // scenario-amd, host-noiommu, tcg-*, 15 vm-*.
    assert!(roots.len() >= 19, "{} fixture roots", roots.len());
    for (i, root) in roots.iter().enumerate() {
        let snap = t.path().join(format!("snap{i}"));
        snapshot_of(root, &snap);
        let slot = a_slot(root);
        let mut cmds: Vec<Vec<String>> = vec![
            vec!["list".into()],
            vec!["list".into(), "--json".into()],
            vec!["check".into()],
            vec!["check".into(), "--json".into()],
            vec!["labels".into(), "--stdout".into()],
        ];
        if let Some(s) = &slot {
            cmds.push(vec!["config".into(), s.clone()]);
            cmds.push(vec!["config".into(), s.clone(), "--json".into()]);
            // The KubeVirt documents (resource names from pci.ids) replay too.
            cmds.push(vec![
                "config".into(),
                s.clone(),
                "--guest".into(),
                "kubevirt".into(),
            ]);
            cmds.push(vec!["verify".into(), format!("{s}.0"), "--json".into()]);
        }
        for args in &cmds {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let a = run(root, &argv);
            let b = run(&snap, &argv);
            let what = format!("{} {argv:?}", root.display());
            assert_eq!(a.code, b.code, "{what}: {} / {}", a.stderr, b.stderr);
            assert_eq!(a.stdout, b.stdout, "{what}");
            assert!(!a.stdout.is_empty() || a.code != 0, "{what}: no output");
            compared += 1;
        }
    }
    // Nine commands on every root (each has a device to configure).
    assert_eq!(compared, roots.len() * 9);
}

/// The configuration files, the boot tools present and the kernel's build options
/// travel with the snapshot; the rest of the kernel config does not.
#[test]
fn a_snapshot_carries_what_config_reads() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    passthru_iommu_groups::fixture::scenario_amd()
        .write(&src)
        .unwrap();
    let release = std::fs::read_to_string(src.join("proc/sys/kernel/osrelease")).unwrap();
    let kconfig = src.join(format!("boot/config-{}", release.trim()));
    std::fs::create_dir_all(kconfig.parent().unwrap()).unwrap();
    std::fs::write(
        &kconfig,
        "# Automatically generated file; DO NOT EDIT.\nCONFIG_64BIT=y\nCONFIG_MODULES=y\n\
         # CONFIG_INTEL_IOMMU_DEFAULT_ON is not set\nCONFIG_VFIO_PCI=m\n",
    )
    .unwrap();
    std::fs::create_dir_all(src.join("usr/sbin")).unwrap();
    std::fs::write(src.join("usr/sbin/update-initramfs"), "#!/bin/sh\n").unwrap();
    let snap = t.path().join("snap");
    snapshot_of(&src, &snap);
    for f in [
        "etc/default/grub",
        "etc/modprobe.d/vfio.conf",
        "etc/modules",
        "etc/os-release",
        "usr/sbin/update-initramfs",
    ] {
        assert!(snap.join(f).exists(), "{f} missing from the snapshot");
    }
    let kept = std::fs::read_to_string(snap.join(kconfig.strip_prefix(&src).unwrap())).unwrap();
    assert_eq!(
        kept,
        "CONFIG_MODULES=y\n# CONFIG_INTEL_IOMMU_DEFAULT_ON is not set\nCONFIG_VFIO_PCI=m\n"
    );
    let h = passthru_iommu_groups::Host::load(&snap).unwrap();
    assert_eq!(h.boot.kernel_config["CONFIG_VFIO_PCI"], "m");
    assert!(h.boot.has("/usr/sbin/update-initramfs"));
}

/// A snapshot taken without root says so (output and marker file); its replay
/// says the facts are partial instead of "run as root".
#[test]
fn a_snapshot_without_root_says_its_facts_are_partial() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    passthru_iommu_groups::fixture::scenario_amd()
        .write(&src)
        .unwrap();
    // What a non-root reader sees: 64 bytes of config space.
    let h = passthru_iommu_groups::Host::load(&src).unwrap();
    let fiji = &h.devices[&"0b:00.0".parse().unwrap()];
    let cfg = src.join(&fiji.sysfs_path).join("config");
    let bytes = std::fs::read(&cfg).unwrap();
    std::fs::write(&cfg, &bytes[..64]).unwrap();
    // Everyone may read the tree and write the output directory.
    let st = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(t.path())
        .status()
        .unwrap();
    assert!(st.success());
    let snap = t.path().join("snap");
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_passthru"))
        .arg("--root")
        .arg(&src)
        .arg("snapshot")
        .arg(&snap)
        .env("PASSTHRU_PCI_IDS", pci_ids());
    let o = run_cmd(c);
    assert_eq!(o.code, 0, "setpriv (util-linux) as nobody: {}", o.stderr);
    assert!(
        o.stdout.contains("taken without root privileges"),
        "{}",
        o.stdout
    );
    let marker =
        std::fs::read_to_string(snap.join(passthru_iommu_groups::snapshot::MARKER)).unwrap();
    assert!(marker.contains("as_root=no"), "{marker}");

    let live = run(&src, &["check", "0b:00.0"]);
    let replay = run(&snap, &["check", "0b:00.0"]);
    assert!(
        live.stdout.contains("run passthru as root"),
        "{}",
        live.stdout
    );
    assert!(
        !replay.stdout.contains("run passthru as root"),
        "{}",
        replay.stdout
    );
    assert!(
        replay.stdout.contains(
            "this snapshot was taken without root privileges, so these facts are partial"
        ),
        "{}",
        replay.stdout
    );

    // Taken as root: the marker says so and nothing changes in the replay.
    let snap2 = t.path().join("snap2");
    snapshot_of(&src, &snap2);
    let marker =
        std::fs::read_to_string(snap2.join(passthru_iommu_groups::snapshot::MARKER)).unwrap();
    assert!(marker.contains("as_root=yes"), "{marker}");
    assert_eq!(run(&snap2, &["check", "0b:00.0"]).stdout, live.stdout);
}

/// A tree without a pci.ids gets names from this machine's database, and `--json`
/// says which database it was.
#[test]
fn names_come_from_this_machine_when_the_tree_has_none() {
    let root = repo().join("tests/fixtures/scenario-amd");
    assert!(
        !root.join("usr/share/misc/pci.ids").exists(),
        "the fixture carries no database"
    );
    let mut c = Command::new(env!("CARGO_BIN_EXE_passthru"));
    c.arg("--root")
        .arg(&root)
        .args(["list", "--json"])
        .env_remove("PASSTHRU_PCI_IDS");
    let o = run_cmd(c);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["pci_ids"]["from"], "machine", "{}", v["pci_ids"]);
    assert_eq!(v["pci_ids"]["path"], "/usr/share/misc/pci.ids");
    let fiji = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["devices"].as_array().unwrap())
        .find(|d| d["bdf"] == "0000:0b:00.0")
        .unwrap();
    assert!(
        fiji["name"].as_str().unwrap().contains("Fiji"),
        "{}",
        fiji["name"]
    );
    // The human output shows the names too, in list and check.
    let mut c = Command::new(env!("CARGO_BIN_EXE_passthru"));
    c.arg("--root")
        .arg(&root)
        .args(["check", "0b:00"])
        .env_remove("PASSTHRU_PCI_IDS");
    let o = run_cmd(c);
    assert!(o.stdout.contains("Fiji"), "{}", o.stdout);
}
