//! `passthru verify` on fixture roots shaped like tests/data/captures/tcg-amd
//! (devices.txt, iommu_groups.txt): group 16 = 06:00.0 + 06:00.1 on vfio-pci, group 20 =
//! 0b:00.0 on virtio-pci + 0b:00.1 on vfio-pci. No /dev/vfio exists under these roots,
//! so only the paths that stop before the kernel are exercised here; the kernel paths
//! run in the QEMU harness (vfio-core/examples/vm_vfio.rs).

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};

/// A device with relative links, as sysfs makes them, and its id files.
fn add(root: &Path, bdf: &str, group: Option<u32>, driver: Option<&str>) {
    let dev = root.join("sys/devices/pci0000:00").join(bdf);
    std::fs::create_dir_all(&dev).unwrap();
    for (f, v) in [
        ("vendor", "0x8086"),
        ("device", "0x10d3"),
        ("class", "0x020000"),
    ] {
        std::fs::write(dev.join(f), format!("{v}\n")).unwrap();
    }
    if let Some(group) = group {
        let gdir = root.join(format!("sys/kernel/iommu_groups/{group}/devices"));
        std::fs::create_dir_all(&gdir).unwrap();
        symlink(
            format!("../../../../devices/pci0000:00/{bdf}"),
            gdir.join(bdf),
        )
        .unwrap();
        symlink(
            format!("../../../kernel/iommu_groups/{group}"),
            dev.join("iommu_group"),
        )
        .unwrap();
    }
    if let Some(d) = driver {
        std::fs::create_dir_all(root.join("sys/bus/pci/drivers").join(d)).unwrap();
        symlink(format!("../../../bus/pci/drivers/{d}"), dev.join("driver")).unwrap();
    }
    let bus = root.join("sys/bus/pci/devices");
    std::fs::create_dir_all(&bus).unwrap();
    symlink(format!("../../../devices/pci0000:00/{bdf}"), bus.join(bdf)).unwrap();
}

fn amd_root() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    add(t.path(), "0000:06:00.0", Some(16), Some("vfio-pci"));
    add(t.path(), "0000:06:00.1", Some(16), Some("vfio-pci"));
    add(t.path(), "0000:0b:00.0", Some(20), Some("virtio-pci"));
    add(t.path(), "0000:0b:00.1", Some(20), Some("vfio-pci"));
    t
}

fn passthru(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_passthru"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn has_finding(v: &serde_json::Value, code: &str) -> bool {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == code)
}

// "Without --bind a device not on vfio-pci is reported, not touched".
#[test]
fn device_on_a_host_driver_is_reported_and_fails_with_exit_1() {
    let t = amd_root();
    let o = passthru(t.path(), &["verify", "0b:00.0", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["bdf"], "0000:0b:00.0");
    assert_eq!(v["api"], "container");
    assert_eq!(v["group"], 20);
    assert_eq!(v["viable"], false);
    assert!(v["dma_map"]
        .as_str()
        .unwrap()
        .contains("not bound to vfio-pci"));
    assert_eq!(v["iova_ranges"], serde_json::json!([]));
    assert_eq!(v["reset"]["device_reset"], false);
    assert_eq!(v["reset"]["performed"], serde_json::Value::Null);
    assert!(has_finding(&v, "not-vfio-pci"), "{v}");
    // The driver link is untouched.
    let link =
        std::fs::read_link(t.path().join("sys/bus/pci/devices/0000:0b:00.0/driver")).unwrap();
    assert!(link.ends_with("virtio-pci"));
}

#[test]
fn device_on_vfio_pci_without_vfio_nodes_fails_naming_the_node() {
    let t = amd_root();
    let o = passthru(
        t.path(),
        &["verify", "0000:06:00.0", "--api", "container", "--json"],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["group"], 16);
    assert_eq!(
        v["viable"], true,
        "sysfs view: every device of group 16 is on vfio-pci"
    );
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "vfio-unavailable")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(f["severity"], "fail");
    // The node by its system path, from the library's error (no rewriting of the
    // message in the CLI): the temporary root appears nowhere.
    let msg = f["message"].as_str().unwrap();
    assert!(msg.starts_with("cannot open /dev/vfio/vfio ("), "{f}");
    let root = t.path().display().to_string();
    assert!(!v.to_string().contains(&root), "{v}");
    assert_eq!(f["evidence"], serde_json::json!(["/dev/vfio/vfio"]));
    assert_eq!(f["device"], "0000:06:00.0");
}

#[test]
fn device_without_iommu_group_fails_with_what_to_do() {
    let t = amd_root();
    add(t.path(), "0000:01:00.0", None, Some("vfio-pci"));
    let o = passthru(t.path(), &["verify", "01:00.0", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["group"], serde_json::Value::Null);
    assert!(has_finding(&v, "no-iommu-group"), "{v}");
}

#[test]
fn unknown_device_is_an_input_error_with_exit_2() {
    let t = amd_root();
    let o = passthru(t.path(), &["verify", "0000:42:00.0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("0000:42:00.0"), "{err}");
    assert!(err.contains("sys/bus/pci/devices"), "{err}");
}

#[test]
fn malformed_device_argument_is_exit_2() {
    let t = amd_root();
    let o = passthru(t.path(), &["verify", "0b:00.9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("0b:00.9"));
}

#[test]
fn human_output_names_group_findings_and_verdict() {
    let t = amd_root();
    let o = passthru(t.path(), &["verify", "0b:00.0"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("0000:0b:00.0  IOMMU group 20 (not viable)"),
        "{out}"
    );
    assert!(out.contains("FAIL not-vfio-pci"), "{out}");
    assert!(out.contains("verdict: FAIL"), "{out}");
}

/// The committed real-kernel fixture root (tcg-amd guest, see tests/data/captures).
fn tcg_amd() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tcg-amd")
}

// tcg-amd devices.txt: 0b:00.0 is on virtio-pci in group 20 with 0b:00.1 on vfio-pci.
#[test]
fn real_fixture_root_reports_the_virtio_device_in_group_20() {
    let o = passthru(&tcg_amd(), &["verify", "0000:0b:00.0", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["group"], 20);
    assert_eq!(v["viable"], false);
    assert!(has_finding(&v, "not-vfio-pci"), "{v}");
}

// The fixture's dev/vfio/vfio is a plain file: the container ioctl answers ENOTTY,
// reported as a failure that says what the node is, not a crash or a pass.
#[test]
fn real_fixture_root_container_node_is_not_a_vfio_node() {
    let o = passthru(
        &tcg_amd(),
        &["verify", "06:00.0", "--api", "container", "--json"],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["group"], 16);
    assert_eq!(v["viable"], true);
    let msg = v["findings"][0]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("VFIO_GET_API_VERSION"), "{msg}");
    assert!(msg.contains("not a VFIO node"), "{msg}");
}

/// Every file under `root/sys/bus/pci` a bind would write.
fn bind_writes(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let bus = root.join("sys/bus/pci");
    if bus.join("drivers_probe").exists() {
        out.push(bus.join("drivers_probe"));
    }
    for d in std::fs::read_dir(bus.join("drivers")).unwrap().flatten() {
        for f in ["unbind", "bind"] {
            if d.path().join(f).exists() {
                out.push(d.path().join(f));
            }
        }
    }
    for d in std::fs::read_dir(root.join("sys/devices/pci0000:00"))
        .unwrap()
        .flatten()
    {
        if d.path().join("driver_override").exists() {
            out.push(d.path().join("driver_override"));
        }
    }
    out
}

// Issue "Never break a working host", item 2: `verify 0b:00.0 --bind` under --root
// wrote driver_override, unbind and drivers_probe into the tree. Binding only means
// something to the running kernel: refused unless the root is the live /.
#[test]
fn bind_under_a_root_that_is_not_the_live_one_is_refused_and_writes_nothing() {
    let t = amd_root();
    for args in [
        &["verify", "0b:00.0", "--bind"][..],
        &["verify", "0b:00.0", "--bind-group"],
    ] {
        let o = passthru(t.path(), args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("is not the live /"), "{err}");
        assert!(
            bind_writes(t.path()).is_empty(),
            "{:?}",
            bind_writes(t.path())
        );
    }
}

// Item 2: `--bind-group` unbound a NIC peer with no question asked. It now lists the
// peers it would unbind, and refuses one in use (here an interface that is up, sysfs
// net/<if>/operstate) unless --force; nothing is written either way under a fixture.
#[test]
fn bind_group_lists_peers_and_refuses_one_in_use() {
    let t = tempfile::tempdir().unwrap();
    add(t.path(), "0000:0b:00.0", Some(20), Some("virtio-pci"));
    add(t.path(), "0000:0b:00.1", Some(20), Some("e1000e"));
    let net = t
        .path()
        .join("sys/devices/pci0000:00/0000:0b:00.1/net/enp11s0f1");
    std::fs::create_dir_all(&net).unwrap();
    std::fs::write(net.join("operstate"), "up\n").unwrap();
    std::fs::write(net.join("flags"), "0x1003\n").unwrap();
    let o = passthru(t.path(), &["verify", "0b:00.0", "--bind-group"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--bind-group unbinds 0000:0b:00.1 from e1000e")
            && err.contains("network interface enp11s0f1 is up")
            && err.contains("refusing to unbind peers in use")
            && err.contains("--force"),
        "{err}"
    );
    assert!(bind_writes(t.path()).is_empty());
    // --force passes the peer check; the root rule still stops the writes here.
    let o = passthru(t.path(), &["verify", "0b:00.0", "--bind-group", "--force"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("refusing to unbind"), "{err}");
    assert!(err.contains("is not the live /"), "{err}");
    assert!(bind_writes(t.path()).is_empty());
}

// Item 5: the parse error listed a slot and a vendor:device id as valid DEVICE forms,
// then refused them. Both now work when they name one function, and say which
// functions they match when they name several (tcg-amd devices.txt).
#[test]
fn device_slot_and_vendor_device_forms_resolve_to_one_function() {
    for (spec, bdf) in [("00:08", "0000:00:08.0"), ("1af4:1009", "0000:00:1e.0")] {
        let o = passthru(&tcg_amd(), &["verify", spec, "--json"]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{spec}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(json(&o)["bdf"], bdf, "{spec}");
    }
    for (spec, listed) in [
        ("06:00", "0000:06:00.0, 0000:06:00.1"),
        ("1af4:1041", "0000:03:00.0, 0000:0b:00.0"),
    ] {
        let o = passthru(&tcg_amd(), &["verify", spec]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{spec}: {err}");
        assert!(err.contains(listed) && err.contains("name one"), "{err}");
    }
    let o = passthru(&tcg_amd(), &["verify", "1af4:7777"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no PCI device with id 1af4:7777"));
}

// Item 5: `--vf-token notauuid` was accepted.
#[test]
fn vf_token_must_be_a_uuid() {
    let o = passthru(&tcg_amd(), &["verify", "06:00.0", "--vf-token", "notauuid"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not a UUID"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = passthru(
        &tcg_amd(),
        &[
            "verify",
            "06:00.0",
            "--vf-token",
            "2ab74924-c335-45f4-9b16-8569e5b08258",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "a valid token reaches the check");
}
