//! `passthru decode` end to end: JSON keys verbatim, values
//! checked against the guest's own `lspci -vvv` (tests/data/captures), and every
//! kind of malformed input exits 2 with a message naming the file and the offset.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_passthru"));
    c.env_remove("PASSTHRU_PCI_IDS");
    c
}

fn capture(run: &str, bdf: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/captures")
        .join(run)
        .join("config")
        .join(format!("{bdf}.bin"))
}

fn decode_json(args: &[&std::ffi::OsStr]) -> (Value, Output) {
    let out = bin()
        .arg("decode")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (serde_json::from_slice(&out.stdout).unwrap(), out)
}

fn write_dump(text: &mut String, bdf: &str, bytes: &[u8]) {
    let bdf: passthru_pci_ids_bdf::Bdf = bdf.parse().unwrap();
    passthru_pci_ids_bdf::write_device(text, &bdf, "test device", bytes).unwrap();
}

/// The library's dump writer (the binary's own dependency).
mod passthru_pci_ids_bdf {
    pub use passthru::pci_ids::dump::write_device;
    pub use passthru::pci_ids::Bdf;
}

#[test]
fn raw_nvme_config_json_matches_lspci() {
    // tcg-amd lspci -vvv for 0c:00.0: "[40] MSI-X", "[80] Express (v2) Endpoint ... FLReset+",
    // "[60] Power Management version 3 ... NoSoftRst+", "[100 v1] ARI", "[120 v1] SR-IOV".
    let p = capture("tcg-amd", "0000:0c:00.0");
    let (v, _) = decode_json(&[p.as_os_str()]);
    let d = &v["devices"][0];
    assert_eq!(v["devices"].as_array().unwrap().len(), 1);
    assert!(
        d["bdf"].is_null(),
        "a raw file has no address: none is invented"
    );
    assert_eq!(d["vendor_id"], "1b36");
    assert_eq!(d["device_id"], "0010");
    assert_eq!(d["class"], "010802");
    assert_eq!(d["header_type"], 0);
    let caps: Vec<(u64, u64, &str)> = d["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_u64().unwrap(),
                c["offset"].as_u64().unwrap(),
                c["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        caps,
        vec![
            (0x11, 0x40, "MSI-X"),
            (0x10, 0x80, "PCI Express"),
            (0x01, 0x60, "Power Management")
        ]
    );
    let ext: Vec<(u64, u64, u64)> = d["extended_capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_u64().unwrap(),
                c["offset"].as_u64().unwrap(),
                c["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ext, vec![(0x0e, 0x100, 1), (0x10, 0x120, 1)]);
    assert_eq!(d["flr"], true);
    assert_eq!(d["af_flr"], false);
    assert_eq!(d["pm_no_soft_reset"], true);
    // "Initial VFs: 2, Total VFs: 2, Number of VFs: 0 ... VF offset: 1, stride: 1, Device ID: 0010"
    let sriov = &d["extended_capabilities"][1]["fields"];
    assert_eq!(sriov["total_vfs"], 2);
    assert_eq!(sriov["vf_device_id"], 0x10);
    // "[40] MSI-X: Enable- Count=63"
    assert_eq!(d["capabilities"][0]["fields"]["table_size"], 63);
}

#[test]
fn root_port_acs_and_bridge_in_json() {
    // tcg-intel 00:02.0: "[148 v1] Access Control Services", ACSCtl SrcValid+ ReqRedir+
    // CmpltRedir+ UpstreamFwd+; "Bus: primary=00, secondary=01, subordinate=01"
    let p = capture("tcg-intel", "0000:00:02.0");
    let (v, _) = decode_json(&[p.as_os_str()]);
    let d = &v["devices"][0];
    assert_eq!(d["header_type"], 1);
    assert_eq!(d["pcie_port_type"], "Root Port");
    assert_eq!(d["acs"]["control"], 0x1d);
    assert_eq!(d["bridge"]["secondary"], 1);
    assert_eq!(d["bridge"]["secondary_bus_reset"], false);
    // "Capabilities: [40] Subsystem: Red Hat, Inc. Device [1b36:0000]"
    assert_eq!(d["subsystem_vendor_id"], "1b36");
    assert_eq!(d["subsystem_id"], "0000");
    let acs = d["extended_capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == 13)
        .unwrap();
    assert_eq!(acs["name"], "Access Control Services");
    assert_eq!(acs["fields"]["ctrl_sv"], true);
    assert_eq!(acs["fields"]["ctrl_ec"], false);
    assert_eq!(d["pm_no_soft_reset"], Value::Null, "no PM capability");
}

#[test]
fn dump_with_several_devices_keeps_addresses_and_order() {
    let mut text = String::new();
    let devs = [
        ("0000:0c:00.0", "tcg-amd"),
        ("0000:00:08.0", "tcg-amd"),
        ("0000:00:02.0", "tcg-intel"),
    ];
    for (bdf, run) in devs {
        write_dump(&mut text, bdf, &std::fs::read(capture(run, bdf)).unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("dump.txt");
    std::fs::write(&f, &text).unwrap();
    let (v, _) = decode_json(&[f.as_os_str()]);
    let bdfs: Vec<&str> = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["bdf"].as_str().unwrap())
        .collect();
    assert_eq!(bdfs, vec!["0000:0c:00.0", "0000:00:08.0", "0000:00:02.0"]);
    // lspci: 00:08.0 edu "[40] MSI", 256 bytes -> no extended capabilities
    assert_eq!(v["devices"][1]["capabilities"][0]["id"], 5);
    assert_eq!(
        v["devices"][1]["extended_capabilities"],
        Value::Array(vec![])
    );
    // the human report names the same devices
    let out = bin().arg("decode").arg(&f).output().unwrap();
    assert!(out.status.success());
    let human = String::from_utf8(out.stdout).unwrap();
    assert!(human.contains("0000:0c:00.0 [1b36:0010]"), "{human}");
    assert!(
        human.contains("Reset: FLR yes, AF FLR no, NoSoftRst+"),
        "{human}"
    );
}

#[test]
fn bad_raw_lengths_exit_2_naming_file_and_length() {
    // the hardening rule: 0, 1, 63, 65, 255, 4097-byte `config` files
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(capture("tcg-amd", "0000:0c:00.0")).unwrap();
    for len in [0usize, 1, 63, 65, 255, 4097] {
        let f = dir.path().join(format!("config-{len}"));
        let mut bytes: Vec<u8> = real.iter().copied().cycle().take(len).collect();
        if len > 0 {
            bytes[0] = 0; // binary, not text
        }
        std::fs::write(&f, &bytes).unwrap();
        let out = bin().arg("decode").arg(&f).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "len {len}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("config-{len}")), "{err}");
        assert!(err.contains(&format!("{len} bytes")), "{err}");
        assert!(err.contains("byte offset"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn malformed_dumps_exit_2_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, usize); 5] = [
        (
            "0b:00.0 VGA\n00: 02 10 zz\n",
            "not a two-digit hex byte",
            22,
        ),
        ("0b:00.0 VGA\n00: 02 10\n", "gap", 0),
        ("\n00: 02 10\n", "before any device header", 1),
        ("0b:00.0 VGA\n\n", "without data lines", 0),
        ("0b:00.0 VGA\nthis is not a dump\n", "unrecognised line", 12),
    ];
    for (i, (text, what, offset)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("dump-{i}.txt"));
        std::fs::write(&f, text).unwrap();
        let out = bin().arg("decode").arg("--json").arg(&f).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{text:?}");
        // Under --json the error is a JSON object on standard output.
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let err = v["error"]["message"].as_str().unwrap().to_string();
        assert!(err.contains(&format!("dump-{i}.txt")), "{err}");
        assert!(err.contains(what), "{err}");
        assert!(err.contains(&format!("byte offset {offset} ")), "{err}");
    }
    // an endless input is cut off and named, never a hang
    let out = bin().args(["decode", "/dev/zero"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/dev/zero") && err.contains("byte offset"),
        "{err}"
    );
    let missing = dir.path().join("nope.bin");
    let out = bin().arg("decode").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.bin"));
}

#[test]
fn sixty_four_byte_read_and_looping_capability_do_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(capture("tcg-amd", "0000:0c:00.0")).unwrap();
    let f = dir.path().join("config64");
    std::fs::write(&f, &real[..64]).unwrap();
    let (v, _) = decode_json(&[f.as_os_str()]);
    assert_eq!(v["devices"][0]["capabilities_readable"], false);
    assert_eq!(v["devices"][0]["device_id"], "0010");
    // a capability pointing at itself: the walk ends with an error value, no hang
    let mut looped = real[..256].to_vec();
    looped[0x41] = 0x40; // MSI-X at 0x40 now points to itself
    let f = dir.path().join("looped");
    std::fs::write(&f, &looped).unwrap();
    let (v, _) = decode_json(&[f.as_os_str()]);
    let d = &v["devices"][0];
    assert_eq!(d["capabilities"].as_array().unwrap().len(), 1);
    assert_eq!(d["capability_errors"][0]["offset"], 0x41);
    assert!(d["capability_errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("loops back"));
}

#[test]
fn names_come_from_the_given_pci_ids() {
    let dir = tempfile::tempdir().unwrap();
    let ids = dir.path().join("pci.ids");
    std::fs::write(
        &ids,
        "1b36  Red Hat, Inc.\n\t0010  QEMU NVM Express Controller\nC 01  Mass storage controller\n\t08  Non-Volatile memory controller\n\t\t02  NVM Express\n",
    )
    .unwrap();
    let p = capture("tcg-amd", "0000:0c:00.0");
    let (v, _) = decode_json(&[
        std::ffi::OsStr::new("--pci-ids"),
        ids.as_os_str(),
        p.as_os_str(),
    ]);
    let d = &v["devices"][0];
    assert_eq!(d["vendor_name"], "Red Hat, Inc.");
    assert_eq!(d["device_name"], "QEMU NVM Express Controller");
    assert_eq!(d["subclass_name"], "Non-Volatile memory controller");
    assert_eq!(d["prog_if_name"], "NVM Express");
    // an explicit database that does not exist is an error, not a silent default
    let out = bin()
        .args(["decode", "--pci-ids"])
        .arg(dir.path().join("missing.ids"))
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.ids"));
}

fn pciutils_dump(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pciutils")
        .join(name)
}

#[test]
fn cardbus_bridge_capabilities_start_at_0x14() {
    // pciutils' tests/tree-fujitsu-p8010, 1c:03.0 (O2 Micro OZ711SP1, header 0x82);
    // lspci: "Capabilities: [a0] Power Management version 2", "Bus: primary=1c,
    // secondary=1d, subordinate=20", "Subsystem: Fujitsu Limited. Device [10cf:143d]"
    let p = pciutils_dump("tree-fujitsu-p8010");
    let (v, _) = decode_json(&[p.as_os_str()]);
    let d = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["bdf"] == "0000:1c:03.0")
        .unwrap();
    assert_eq!(d["header_type"], 2);
    assert_eq!(d["capabilities"].as_array().unwrap().len(), 1);
    assert_eq!(d["capabilities"][0]["offset"], 0xa0);
    assert_eq!(d["capabilities"][0]["id"], 1);
    assert_eq!(d["capability_errors"].as_array().unwrap().len(), 0);
    assert_eq!(d["pm_no_soft_reset"], false);
    assert_eq!(d["bridge"]["secondary"], 0x1d);
    assert_eq!(d["bridge"]["subordinate"], 0x20);
    assert_eq!(d["subsystem_vendor_id"], "10cf");
    assert_eq!(d["subsystem_id"], "143d");
    assert_eq!(d["bars"].as_array().unwrap().len(), 1);
}

#[test]
fn conventional_function_read_as_4k_raw_has_no_extended_capabilities() {
    // pciutils' tests/cap-ht, 00:00.0 (AMD RD890, no PCIe capability), as a raw
    // 4 KiB sysfs-style file repeating its 256 bytes: dword 0x100 (5a131002) is no
    // extended capability header, and nothing is "not dword aligned"
    let text = std::fs::read_to_string(pciutils_dump("cap-ht")).unwrap();
    let dev = passthru::pci_ids::dump::Dump::new(&text)
        .next()
        .unwrap()
        .unwrap();
    let raw: Vec<u8> = dev.bytes().iter().copied().cycle().take(4096).collect();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("config");
    std::fs::write(&f, &raw).unwrap();
    let (v, _) = decode_json(&[f.as_os_str()]);
    let d = &v["devices"][0];
    assert_eq!(d["config_len"], 4096);
    assert_eq!(d["device_id"], "5a13");
    assert_eq!(d["extended_config"], false);
    assert_eq!(d["extended_capabilities"].as_array().unwrap().len(), 0);
    assert_eq!(d["capability_errors"].as_array().unwrap().len(), 0);
    assert_eq!(d["capabilities"].as_array().unwrap().len(), 6);
}

/// A raw file names no address it did not give, and a 64-byte (non-root) copy states
/// no reset fact it cannot see: unknown, as `check` says, not "FLR no".
#[test]
fn a_short_raw_copy_claims_nothing_it_cannot_see() {
    let full = std::fs::read(capture("tcg-amd", "0000:0c:00.0")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("config64.bin");
    std::fs::write(&short, &full[..64]).unwrap();
    let out = bin().arg("decode").arg(&short).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("0000:00:00.0"), "{text}");
    assert!(text.contains("no address"), "{text}");
    assert!(text.contains("Reset: unknown"), "{text}");
    assert!(!text.contains("FLR no"), "{text}");
    let (v, _) = decode_json(&[short.as_os_str()]);
    let d = &v["devices"][0];
    assert!(d["flr"].is_null() && d["af_flr"].is_null() && d["pm_no_soft_reset"].is_null());
    // The whole file: the facts are there (lspci: "FLReset+", "NoSoftRst+").
    let (v, _) = decode_json(&[capture("tcg-amd", "0000:0c:00.0").as_os_str()]);
    assert_eq!(v["devices"][0]["flr"], true);
    assert_eq!(v["devices"][0]["pm_no_soft_reset"], true);
    // A Rust consumer reads the JSON back into the library's type.
    let back: Vec<passthru::decode::DecodedDevice> =
        serde_json::from_value(v["devices"].clone()).unwrap();
    assert_eq!(back[0].vendor_id, "1b36");
}
