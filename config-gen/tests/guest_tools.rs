//! Generated guest configuration checked by the real tools: libvirt's own schema
//! (`virt-xml-validate`, Debian package libvirt-clients) and QEMU's own option parser
//! (`qemu-system-x86_64`, Debian package qemu-system-x86).
//!
//! Both tools are required: a missing tool fails the test with the package to install
//! (virt-xml-validate also needs `xmllint`, Debian package libxml2-utils).

use passthru_config_gen::guest::{self, GuestSet};
use passthru_config_gen::{DeviceFacts, GuestKind};
use passthru_pci_ids::{Bdf, ClassCode, Slot};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn dev(bdf: &str, vendor: u16, device: u16, class: u32) -> DeviceFacts {
    DeviceFacts {
        bdf: bdf.parse().unwrap(),
        vendor: vendor.into(),
        device: device.into(),
        class: ClassCode::from_u32(class),
        driver: None,
        boot_vga: false,
        name: None,
        bars64: 0,
        msix_relocation: None,
    }
}

/// docs/rules.md's two GPUs, each with its HDMI audio, one set each; plus a set of two slots.
fn devices() -> Vec<DeviceFacts> {
    vec![
        dev("0000:05:00.0", 0x10de, 0x1187, 0x030000),
        dev("0000:05:00.1", 0x10de, 0x0e0a, 0x040300),
        dev("0000:0b:00.0", 0x1002, 0x7300, 0x030000),
        dev("0000:0b:00.1", 0x1002, 0xaae8, 0x040300),
        dev("0000:0c:00.0", 0x1b21, 0x2142, 0x0c0330),
    ]
}

fn sets(devs: &[DeviceFacts]) -> Vec<GuestSet<'_>> {
    let mk = |slots: Vec<Slot>| GuestSet {
        functions: devs
            .iter()
            .filter(|d| slots.contains(&d.bdf.slot()))
            .collect(),
        slots,
    };
    let s = |x: &str| x.parse::<Bdf>().unwrap().slot();
    vec![mk(vec![s("05:00.0")]), mk(vec![s("0b:00.0"), s("0c:00.0")])]
}

fn tool(path: &str, package: &str) -> &'static str {
    assert!(
        std::path::Path::new(path).exists(),
        "{path} is needed for this test: install the Debian package {package}"
    );
    Box::leak(path.to_string().into_boxed_str())
}

fn domain(devices_xml: &str) -> String {
    format!(
        "<domain type='kvm'>\n<name>passthru-test</name>\n<memory unit='MiB'>1024</memory>\n<os>\n<type arch='x86_64' machine='q35'>hvm</type>\n<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>\n</os>\n<devices>\n{devices_xml}</devices>\n</domain>\n"
    )
}

fn validate(xml: &str) -> (bool, String) {
    let exe = tool("/usr/bin/virt-xml-validate", "libvirt-clients");
    tool("/usr/bin/xmllint", "libxml2-utils");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("domain.xml");
    std::fs::write(&f, xml).unwrap();
    let o = Command::new(exe).arg(&f).arg("domain").output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn libvirt_hostdev_blocks_validate_against_libvirts_schema() {
    let devs = devices();
    let xml = guest::render(GuestKind::Libvirt, &sets(&devs), false);
    let (ok, out) = validate(&domain(&xml));
    assert!(ok, "virt-xml-validate rejected:\n{out}\n{xml}");
    // Negative control: the validator does reject a broken hostdev (function out of range).
    let broken = xml.replacen("function='0x1'/>", "function='0x9'/>", 1);
    assert_ne!(broken, xml);
    let (ok, _) = validate(&domain(&broken));
    assert!(
        !ok,
        "virt-xml-validate accepted function 0x9: the check proves nothing"
    );
}

/// Run QEMU far enough to parse `args`; returns its stderr. Killed after 20 s.
fn qemu(args: &[String]) -> String {
    let exe = tool("/usr/bin/qemu-system-x86_64", "qemu-system-x86");
    let mut child = Command::new(exe)
        .args([
            "-machine",
            "q35",
            "-accel",
            "tcg",
            "-nodefaults",
            "-display",
            "none",
            "-S",
            "-monitor",
            "none",
            "-serial",
            "none",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("qemu did not exit: the arguments were all accepted and realized, which needs the host device: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// Whether QEMU's error is vfio-pci's realize failing for the absent host device, which
/// it reaches only after every property was parsed and the bus and address accepted.
fn parsed_up_to_realize(stderr: &str, host: &str) -> bool {
    stderr.contains(&format!(
        "vfio /sys/bus/pci/devices/{host}: no such host device"
    ))
}

#[test]
fn qemu_accepts_every_generated_argument() {
    let devs = devices();
    let sets = sets(&devs);
    for x_vga in [false, true] {
        for (i, set) in sets.iter().enumerate() {
            let args = guest::qemu_args(set, i, x_vga);
            let ports: Vec<&String> = args
                .iter()
                .map(|(a, _)| a)
                .filter(|a| a.contains("pcie-root-port"))
                .collect();
            assert_eq!(ports.len(), set.slots.len());
            // One run per vfio-pci device (QEMU stops at the first realize failure), with
            // every root port before it so the bus exists.
            for (arg, _) in args.iter().filter(|(a, _)| a.contains("vfio-pci")) {
                let mut argv = Vec::new();
                for p in &ports {
                    let (flag, val) = p.split_once(' ').unwrap();
                    argv.push(flag.to_string());
                    argv.push(val.to_string());
                }
                let (flag, val) = arg.split_once(' ').unwrap();
                argv.push(flag.to_string());
                argv.push(val.to_string());
                let host = val
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("host="))
                    .unwrap();
                let err = qemu(&argv);
                assert!(
                    parsed_up_to_realize(&err, host),
                    "QEMU rejected {val}:\n{err}"
                );
            }
        }
    }
}

#[test]
fn qemu_check_distinguishes_a_parse_error() {
    // Negative control: an unknown property fails before realize, and is told apart.
    let err = qemu(&[
        "-device".into(),
        "vfio-pci,host=0000:0b:00.0,bogus=on".into(),
    ]);
    assert!(err.contains("Property 'vfio-pci.bogus' not found"), "{err}");
    assert!(!parsed_up_to_realize(&err, "0000:0b:00.0"));
    let err = qemu(&[
        "-device".into(),
        "vfio-pci,host=0000:0b:00.0,bus=pt-rp1,addr=00.0".into(),
    ]);
    assert!(
        !parsed_up_to_realize(&err, "0000:0b:00.0"),
        "a missing bus must not pass: {err}"
    );
}

#[test]
fn cloud_hypervisor_and_proxmox_lines_name_every_function() {
    let devs = devices();
    let sets = sets(&devs);
    let ch = guest::render(GuestKind::CloudHypervisor, &sets, false);
    for d in &devs {
        assert!(
            ch.contains(&format!("--device path=/sys/bus/pci/devices/{}/\n", d.bdf)),
            "{ch}"
        );
    }
    // Proxmox (qemu-server's PCI.pm): bus:dev without a function passes all functions;
    // pcie=1 with q35.
    let px = guest::render(GuestKind::Proxmox, &sets, false);
    assert!(px.contains("hostpci0: 0000:05:00,pcie=1\n"), "{px}");
    assert!(
        px.contains("hostpci0: 0000:0b:00,pcie=1\nhostpci1")
            || px.contains("hostpci0: 0000:0b:00,pcie=1\n# hostpci1"),
        "{px}"
    );
    assert!(px.contains("hostpci1: 0000:0c:00,pcie=1\n"), "{px}");
    assert_eq!(px.matches("machine: q35\n").count(), 2);
    // Each guest's qm command sets exactly its config lines.
    for guest in px.split("# guest ").skip(1) {
        let lines: Vec<(&str, &str)> = guest
            .lines()
            .skip(1) // the rest of the "# guest N: slots" header
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(": "))
            .collect();
        let qm = guest
            .lines()
            .find_map(|l| l.strip_prefix("# qm set VMID "))
            .unwrap_or_else(|| panic!("no qm line: {guest}"));
        let words: Vec<&str> = qm.split(' ').collect();
        let pairs: Vec<(&str, &str)> = words
            .chunks(2)
            .map(|c| (c[0].trim_start_matches("--"), c[1]))
            .collect();
        assert_eq!(pairs, lines, "{guest}");
    }
    let px = guest::render(GuestKind::Proxmox, &sets, true);
    assert!(px.contains("hostpci0: 0000:05:00,pcie=1,x-vga=1\n"), "{px}");
    assert!(px.contains("--hostpci0 0000:05:00,pcie=1,x-vga=1"), "{px}");
    // x-vga only on a slot with a VGA function (the USB controller gets none).
    assert!(px.contains("hostpci1: 0000:0c:00,pcie=1\n"), "{px}");
}
