//! The trial guest for real: the Debian kernel the VM harness uses, under QEMU TCG,
//! with passthru's own binary as /init and the committed e1000e/nvme modules, and
//! QEMU's emulated e1000e (8086:10d3) and nvme (1b36:0010) standing in for passed-
//! through functions (the guest finds devices by id, whatever brought them).
//!
//! Ignored by default (a TCG boot takes tens of seconds on a loaded machine, and
//! needs the harness's kernel): `cargo test --test trial_guest_boot -- --ignored`.

mod trial_support;

use passthru::trial::initramfs::{self, GuestDevice, GuestRequest, ModTree};
use passthru::trial::protocol::{self, Record};
use passthru::trial::qemu::{Accel, VmSpec, Vmm};
use std::time::{Duration, Instant};

#[test]
// Not in CI: its committed modules are for one kernel release and the harness fetches
// the newest 6.12 apt offers. CI boots a real trial guest in the VM harness instead
// (the `nested` topology's `nested-trial` step, modules taken from the fetched tree).
#[ignore = "boots a TCG guest: needs qemu-system-x86_64 and tests/vm/fetch-kernel.sh's kernel (CI covers it with the VM harness's nested-trial step)"]
fn guest_init_loads_modules_finds_devices_and_reports() {
    trial_support::need("qemu-system-x86_64", "qemu-system-x86");
    let kdir = trial_support::harness_kernel();
    let kernel = kdir.join("vmlinuz");
    assert!(
        kernel.is_file(),
        "{} is missing: run tests/vm/fetch-kernel.sh",
        kernel.display()
    );
    let tree = ModTree::open(&trial_support::subset_tree()).unwrap();
    let mut wanted = tree.matching("pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00");
    wanted.extend(tree.matching("pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02"));
    assert_eq!(wanted, ["e1000e", "nvme"]);
    let modules = tree.load_order(&wanted).unwrap();
    let req = GuestRequest {
        modules: modules.iter().map(|m| m.name.clone()).collect(),
        devices: [("8086", "10d3"), ("1b36", "0010")]
            .iter()
            .map(|(v, d)| GuestDevice {
                vendor: (*v).into(),
                device: (*d).into(),
                expect_driver: true,
            })
            .collect(),
        wait_secs: 60,
    };
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_passthru"));
    let cpio = initramfs::build(
        exe,
        std::path::Path::new("/"),
        Some(&tree),
        &modules,
        None,
        &req,
    )
    .unwrap()
    .cpio;
    let tmp = tempfile::tempdir().unwrap();
    let initrd = tmp.path().join("initrd.img");
    // Uncompressed, as `passthru trial` hands it over.
    std::fs::write(&initrd, &cpio).unwrap();
    let spec = VmSpec {
        vmm: Vmm::Qemu,
        accel: Accel::Tcg,
        memory_mib: std::env::var("PT_TRIAL_MEM")
            .ok()
            .and_then(|m| m.parse().ok())
            .unwrap_or(1024),
        kernel,
        initrd,
        devices: vec![],
        console: tmp.path().join("console.log"),
        report: tmp.path().join("report.log"),
    };
    let mut args = spec.argv();
    args.extend(
        ["-device", "e1000e", "-device", "nvme,serial=trial0"]
            .iter()
            .map(|s| s.to_string()),
    );
    let start = Instant::now();
    let mut child = std::process::Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(400) {
            let _ = child.kill();
            let _ = child.wait();
            let console = std::fs::read_to_string(&spec.console).unwrap_or_default();
            panic!("guest still running after 400 s; console:\n{console}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let console = std::fs::read_to_string(&spec.console).unwrap_or_default();
    let report = std::fs::read(&spec.report).unwrap();
    let p = protocol::parse(&report);
    eprintln!(
        "boot took {:.1} s, QEMU {status}; records: {:#?}",
        start.elapsed().as_secs_f64(),
        p.records
    );
    assert_eq!(p.dropped, 0, "damaged records; console:\n{console}");
    assert!(
        matches!(p.records.last(), Some(Record::Done)),
        "no done record; console:\n{console}"
    );
    for m in ["nvme_auth", "nvme_core", "nvme", "e1000e"] {
        assert!(
            p.records
                .iter()
                .any(|r| matches!(r, Record::Module { name, error: None } if name == m)),
            "module {m} not loaded: {:?}",
            p.records
        );
    }
    let driver_of = |v: &str, d: &str| {
        p.records.iter().find_map(|r| match r {
            Record::Device {
                vendor,
                device,
                driver,
                bars,
                all_ones,
                ..
            } if vendor == v && device == d => Some((driver.clone(), bars.clone(), *all_ones)),
            _ => None,
        })
    };
    let (drv, bars, ones) = driver_of("8086", "10d3").expect("e1000e device seen");
    assert_eq!(drv.as_deref(), Some("e1000e"));
    assert!(!ones);
    // QEMU's e1000e (hw/net/e1000e.c): BAR0 MMIO and BAR1 flash 128 KiB, BAR2 I/O 32, BAR3 MSI-X 16 KiB.
    assert!(
        bars.iter().any(|b| b.index == 0 && b.size == 128 * 1024),
        "{bars:?}"
    );
    let (drv, _, _) = driver_of("1b36", "0010").expect("nvme device seen");
    assert_eq!(drv.as_deref(), Some("nvme"));
    let fails: Vec<_> = p
        .records
        .iter()
        .filter(|r| matches!(r, Record::Health(h) if h.kind == "fail"))
        .collect();
    assert!(fails.is_empty(), "health failures: {fails:?}");
    assert!(
        p.records
            .iter()
            .any(|r| matches!(r, Record::Health(h) if h.driver == "e1000e" && h.kind == "ok")),
        "no e1000e health line said it initialised"
    );
    assert!(
        p.records
            .iter()
            .any(|r| matches!(r, Record::Health(h) if h.driver == "nvme" && h.kind == "ok")),
        "no nvme health line said its queues are up"
    );
}
