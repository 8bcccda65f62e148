//! Differential test against pciutils (issue 2 "Tests and evidence"): for every
//! captured config space (both QEMU runs, sysfs and VFIO reads), for builder-made
//! devices, and for this machine's own devices (`lspci -xxxx`, when it shows any),
//! the capability ids, offsets and versions `passthru decode` reports equal what
//! `lspci -vvv -F` prints, and the FLR / NoSoftRst / ACS / AF bits agree.
//!
//! Needs /usr/bin/lspci (Debian package `pciutils`); fails loudly without it.

use passthru::pci_ids::builder::ConfigBuilder;
use passthru::pci_ids::caps::{AcsFlags, PortType};
use passthru::pci_ids::dump::{write_device, Dump};
use passthru::pci_ids::{Bdf, ClassCode, DeviceId, VendorId};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// What lspci -vvv said about one device.
#[derive(Debug, Default)]
struct Lspci {
    /// (offset, id when lspci names it, version for extended)
    caps: Vec<(u64, Option<u64>)>,
    ext: Vec<(u64, Option<u64>, u64)>,
    flr: Option<bool>,
    no_soft_rst: Option<bool>,
    acs_cap: Option<u64>,
    acs_ctl: Option<u64>,
    af: Option<(bool, bool)>,
}

/// lspci's capability titles -> ids (ls-caps.c / ls-ecaps.c wording).
fn std_id(title: &str) -> Option<u64> {
    let table: [(&str, u64); 14] = [
        ("Power Management", 0x01),
        ("AGP", 0x02),
        ("Vital Product Data", 0x03),
        ("Slot ID", 0x04),
        ("MSI:", 0x05),
        ("HyperTransport", 0x08),
        ("Vendor Specific", 0x09),
        ("Hot-plug capable", 0x0c),
        ("Subsystem:", 0x0d),
        ("Secure device", 0x0f),
        ("Express", 0x10),
        ("MSI-X:", 0x11),
        ("SATA HBA", 0x12),
        ("PCI Advanced Features", 0x13),
    ];
    if let Some(hex) = title.strip_prefix('#') {
        return u64::from_str_radix(hex.trim(), 16).ok();
    }
    table
        .iter()
        .find(|(t, _)| title.starts_with(t))
        .map(|(_, id)| *id)
}

fn ext_id(title: &str) -> Option<u64> {
    let table: [(&str, u64); 20] = [
        ("Advanced Error Reporting", 0x01),
        ("Virtual Channel", 0x02),
        ("Device Serial Number", 0x03),
        ("Power Budgeting", 0x04),
        ("Vendor Specific Information", 0x0b),
        ("Access Control Services", 0x0d),
        ("Alternative Routing-ID Interpretation", 0x0e),
        ("Address Translation Service", 0x0f),
        ("Single Root I/O Virtualization", 0x10),
        ("Page Request Interface", 0x13),
        ("Physical Resizable BAR", 0x15),
        ("Transaction Processing Hints", 0x17),
        ("Latency Tolerance Reporting", 0x18),
        ("Secondary PCI Express", 0x19),
        ("Process Address Space ID", 0x1b),
        ("Downstream Port Containment", 0x1d),
        ("L1 PM Substates", 0x1e),
        ("Precision Time Measurement", 0x1f),
        ("Designated Vendor-Specific", 0x23),
        ("Data Link Feature", 0x25),
    ];
    if let Some(rest) = title.strip_prefix("Extended Capability ID ") {
        return u64::from_str_radix(rest.trim().trim_start_matches("0x"), 16).ok();
    }
    table
        .iter()
        .find(|(t, _)| title.starts_with(t))
        .map(|(_, id)| *id)
}

fn acs_bits(line: &str) -> u64 {
    let names = [
        ("SrcValid+", 0),
        ("TransBlk+", 1),
        ("ReqRedir+", 2),
        ("CmpltRedir+", 3),
        ("UpstreamFwd+", 4),
        ("EgressCtrl+", 5),
        ("DirectTrans+", 6),
    ];
    names
        .iter()
        .filter(|(n, _)| line.contains(n))
        .map(|(_, b)| 1u64 << b)
        .sum()
}

fn parse_lspci(out: &str) -> BTreeMap<String, Lspci> {
    let mut map = BTreeMap::new();
    let mut cur: Option<(String, Lspci)> = None;
    let mut in_express_devcap = false;
    for line in out.lines() {
        if !line.starts_with(['\t', ' ']) && !line.is_empty() {
            if let Some((k, v)) = cur.take() {
                map.insert(k, v);
            }
            let addr = line.split_whitespace().next().unwrap().to_string();
            cur = Some((addr, Lspci::default()));
            continue;
        }
        let Some((_, d)) = cur.as_mut() else { continue };
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Capabilities: [") {
            in_express_devcap = false;
            let (inside, title) = rest
                .split_once("] ")
                .unwrap_or((rest.trim_end_matches(']'), ""));
            if let Some((off, ver)) = inside.split_once(" v") {
                let off = u64::from_str_radix(off, 16).unwrap();
                d.ext.push((off, ext_id(title), ver.parse().unwrap()));
            } else {
                let off = u64::from_str_radix(inside, 16).unwrap();
                d.caps.push((off, std_id(title)));
                if title.starts_with("Express") {
                    in_express_devcap = true;
                }
            }
            continue;
        }
        if t.starts_with("DevCtl:") {
            in_express_devcap = false;
        }
        if in_express_devcap && t.contains("FLReset") {
            d.flr = Some(t.contains("FLReset+"));
        }
        if t.starts_with("Status: D") && t.contains("NoSoftRst") {
            d.no_soft_rst = Some(t.contains("NoSoftRst+"));
        }
        if t.starts_with("ACSCap:") {
            d.acs_cap = Some(acs_bits(t));
        }
        if t.starts_with("ACSCtl:") {
            d.acs_ctl = Some(acs_bits(t));
        }
        if t.starts_with("AFCap:") {
            d.af = Some((t.contains("TP+"), t.contains("FLR+")));
        }
    }
    if let Some((k, v)) = cur.take() {
        map.insert(k, v);
    }
    map
}

fn captures() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for run in ["tcg-intel", "tcg-amd"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/captures")
            .join(run)
            .join("config");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            out.push(std::fs::read(f).unwrap());
        }
    }
    out
}

fn generated() -> Vec<Vec<u8>> {
    let gpu = || {
        ConfigBuilder::endpoint(
            VendorId(0x1002),
            DeviceId(0x7300),
            ClassCode::from_u32(0x030000),
        )
    };
    let all = AcsFlags::SV | AcsFlags::RR | AcsFlags::CR | AcsFlags::UF;
    let builders = [
        gpu()
            .with_multifunction()
            .with_pm(true)
            .with_pcie(PortType::Endpoint, false)
            .with_msi(0, true)
            .with_aer()
            .with_rebar(0, 0xff, 8)
            .with_dsn(0x0123_4567_89ab_cdef),
        gpu()
            .with_pm(false)
            .with_pcie(PortType::Endpoint, true)
            .with_msix(16, 2, 0, 2, 0x800)
            .with_af(true, true)
            .with_ats()
            .with_pasid(20)
            .with_pri(32)
            .with_ltr(0x1003, 0x1003)
            .with_l1pm(0x1f),
        gpu()
            .with_pcie(PortType::Endpoint, false)
            .with_af(false, true)
            .with_vendor_specific(12)
            .with_capability(0x42, &[0; 6])
            .with_sriov(8, 2, 4, 1, DeviceId(0x7301))
            .with_ari(1)
            .with_vsec(0x1234, 1, 24)
            .with_dvsec(VendorId(0x1e98), 1, 16, 3)
            .with_ext_capability(0x0abc, 1, &[0; 8]),
        ConfigBuilder::bridge(VendorId(0x1022), DeviceId(0x1483), 0, 5, 5)
            .with_pm(false)
            .with_pcie(PortType::DownstreamPort, false)
            .with_pcie_slot(5, true)
            .with_msi(0, false)
            .with_aer()
            .with_acs(
                all | AcsFlags::TB | AcsFlags::DT,
                AcsFlags::RR | AcsFlags::CR,
            )
            .with_dpc(),
        ConfigBuilder::bridge(VendorId(0x8086), DeviceId(0x7a38), 0, 1, 3)
            .with_pcie(PortType::RootPort, false)
            .with_acs(all | AcsFlags::EC, all),
        ConfigBuilder::endpoint(
            VendorId(0x10de),
            DeviceId(0x0e0a),
            ClassCode::from_u32(0x040300),
        )
        .with_pm(false)
        .with_msi(2, true)
        .with_pcie(PortType::LegacyEndpoint, false),
        // conventional PCI with AF (256 bytes)
        ConfigBuilder::endpoint(
            VendorId(0x1234),
            DeviceId(0x5678),
            ClassCode::from_u32(0x020000),
        )
        .with_pm(true)
        .with_af(true, true),
    ];
    builders
        .iter()
        .map(|b| b.bytes().unwrap().to_vec())
        .collect()
}

/// This machine's devices as lspci dumps them (empty when it shows none).
fn host_dump() -> String {
    match Command::new("lspci").args(["-D", "-xxxx"]).output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            // keep only devices our reader accepts in full (non-root sees 64 bytes: fine too)
            if Dump::new(&text).all(|d| d.is_ok()) {
                text
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

#[test]
fn capabilities_and_reset_bits_agree_with_lspci() {
    let mut text = String::new();
    let mut n = 0u8;
    for bytes in captures().iter().chain(generated().iter()) {
        // distinct addresses so lspci keeps every device apart
        let bdf = Bdf::new(0x0100, n, 0, 0).unwrap();
        write_device(&mut text, &bdf, "dev", bytes).unwrap();
        n = n.checked_add(1).expect("fewer than 256 devices");
    }
    text.push_str(&host_dump());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("dump.txt");
    std::fs::write(&f, &text).unwrap();

    let lspci = Command::new("lspci")
        .args(["-D", "-vvv", "-F"])
        .arg(&f)
        .env("LC_ALL", "C")
        .output()
        .expect("lspci (Debian package pciutils) must be installed");
    assert!(
        lspci.status.success(),
        "{}",
        String::from_utf8_lossy(&lspci.stderr)
    );
    let theirs = parse_lspci(&String::from_utf8(lspci.stdout).unwrap());

    let ours = Command::new(env!("CARGO_BIN_EXE_passthru"))
        .args(["decode", "--json"])
        .arg(&f)
        .env_remove("PASSTHRU_PCI_IDS")
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let ours: Value = serde_json::from_slice(&ours.stdout).unwrap();
    let devices = ours["devices"].as_array().unwrap();
    assert_eq!(devices.len(), theirs.len(), "device count");
    assert!(devices.len() >= usize::from(n));

    let (mut caps, mut flr, mut nsr, mut acs, mut af) = (0, 0, 0, 0, 0);
    for d in devices {
        let bdf = d["bdf"].as_str().unwrap();
        let l = theirs
            .get(bdf)
            .unwrap_or_else(|| panic!("lspci does not list {bdf}"));
        let our_caps: Vec<(u64, u64)> = d["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["offset"].as_u64().unwrap(), c["id"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            our_caps.iter().map(|c| c.0).collect::<Vec<_>>(),
            l.caps.iter().map(|c| c.0).collect::<Vec<_>>(),
            "{bdf}: standard capability offsets"
        );
        for ((_, ours), (off, theirs)) in our_caps.iter().zip(&l.caps) {
            if let Some(t) = theirs {
                assert_eq!(ours, t, "{bdf}: id of capability at {off:#x}");
                caps += 1;
            }
        }
        let our_ext: Vec<(u64, u64, u64)> = d["extended_capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["offset"].as_u64().unwrap(),
                    c["id"].as_u64().unwrap(),
                    c["version"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            our_ext.iter().map(|c| (c.0, c.2)).collect::<Vec<_>>(),
            l.ext.iter().map(|c| (c.0, c.2)).collect::<Vec<_>>(),
            "{bdf}: extended capability offsets and versions"
        );
        for ((_, ours, _), (off, theirs, _)) in our_ext.iter().zip(&l.ext) {
            if let Some(t) = theirs {
                assert_eq!(ours, t, "{bdf}: id of extended capability at {off:#x}");
                caps += 1;
            }
        }
        if let Some(f) = l.flr {
            assert_eq!(d["flr"], f, "{bdf}: FLReset");
            flr += 1;
        }
        match l.no_soft_rst {
            Some(v) => {
                assert_eq!(d["pm_no_soft_reset"], v, "{bdf}: NoSoftRst");
                nsr += 1;
            }
            None => assert!(
                d["pm_no_soft_reset"].is_null() || !l.caps.iter().any(|c| c.1 == Some(1)),
                "{bdf}: lspci shows no PM status"
            ),
        }
        if let (Some(c), Some(k)) = (l.acs_cap, l.acs_ctl) {
            assert_eq!(
                d["acs"]["capability"].as_u64().unwrap() & 0x7f,
                c,
                "{bdf}: ACSCap"
            );
            assert_eq!(
                d["acs"]["control"].as_u64().unwrap() & 0x7f,
                k,
                "{bdf}: ACSCtl"
            );
            acs += 1;
        }
        if let Some((tp, f)) = l.af {
            assert_eq!(d["af_flr"], tp && f, "{bdf}: AFCap TP/FLR");
            af += 1;
        }
    }
    eprintln!(
        "compared {} devices: {caps} capability ids, {flr} FLR, {nsr} NoSoftRst, {acs} ACS, {af} AF",
        devices.len()
    );
    // the comparison must have had something to compare
    assert!(caps > 100, "only {caps} capability ids compared");
    assert!(
        flr >= 10 && nsr >= 10 && acs >= 10 && af >= 3,
        "flr {flr} nsr {nsr} acs {acs} af {af}"
    );
}
