//! The trial's host side against a stand-in VMM (tests/trial_support: a script
//! that crashes, hangs or writes garbage on request) and a recording fake of the
//! kernel's PCI sysfs (the binder seam: vfio-core's bind guard runs for real on
//! top of it): every outcome's verdict, timeouts, SIGINT's flag, and that every
//! driver is back and every temporary file gone afterwards.

mod trial_support;

use passthru::trial::protocol::{HealthLine, Record};
use passthru::trial::qemu::{Accel, VmSpec, Vmm};
use passthru::trial::run::{run, BootPlan, Observer, TrialReport};
use passthru::trial::{Function, HostSeen, TrialVerdict};
use passthru_pci_ids::Bdf;
use passthru_vfio_core::bind::{PciSysfs, RestoreLog};
use passthru_vfio_core::Result as VResult;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use trial_support::{healthy, StandIn};

/// A kernel's PCI binding rules as drivers/pci/pci-driver.c and bus.c have them:
/// `drivers_probe` binds an unbound device to `driver_override` when set, else to
/// the driver whose id table matches (here: the device's native driver); `unbind`
/// leaves it without one. Every write is recorded.
#[derive(Default)]
struct FakeSysfs {
    state: Mutex<FakeState>,
}

#[derive(Default, Clone)]
struct FakeState {
    native: BTreeMap<Bdf, String>,
    driver: BTreeMap<Bdf, Option<String>>,
    over: BTreeMap<Bdf, Option<String>>,
    log: Vec<String>,
    /// A host driver that will not take its device back (probe and bind leave it unbound).
    stuck: bool,
}

impl FakeSysfs {
    fn with(devs: &[(&str, &str)]) -> FakeSysfs {
        let f = FakeSysfs::default();
        {
            let mut s = f.state.lock().unwrap();
            for (b, d) in devs {
                let b: Bdf = b.parse().unwrap();
                s.native.insert(b, d.to_string());
                s.driver.insert(b, Some(d.to_string()));
                s.over.insert(b, None);
            }
        }
        f
    }
    fn drivers(&self) -> BTreeMap<Bdf, Option<String>> {
        self.state.lock().unwrap().driver.clone()
    }
    fn overrides_clear(&self) -> bool {
        self.state
            .lock()
            .unwrap()
            .over
            .values()
            .all(|o| o.is_none())
    }
}

impl PciSysfs for FakeSysfs {
    fn driver(&self, bdf: Bdf) -> VResult<Option<String>> {
        Ok(self
            .state
            .lock()
            .unwrap()
            .driver
            .get(&bdf)
            .cloned()
            .flatten())
    }
    fn driver_override(&self, bdf: Bdf) -> VResult<Option<String>> {
        Ok(self.state.lock().unwrap().over.get(&bdf).cloned().flatten())
    }
    fn set_driver_override(&self, bdf: Bdf, d: Option<&str>) -> VResult<()> {
        let mut s = self.state.lock().unwrap();
        s.log.push(format!("override {bdf} {d:?}"));
        s.over.insert(bdf, d.map(String::from));
        Ok(())
    }
    fn unbind(&self, bdf: Bdf, d: &str) -> VResult<()> {
        let mut s = self.state.lock().unwrap();
        s.log.push(format!("unbind {bdf} {d}"));
        s.driver.insert(bdf, None);
        Ok(())
    }
    fn probe(&self, bdf: Bdf) -> VResult<()> {
        let mut s = self.state.lock().unwrap();
        s.log.push(format!("probe {bdf}"));
        if s.driver.get(&bdf).cloned().flatten().is_none() {
            let d = s
                .over
                .get(&bdf)
                .cloned()
                .flatten()
                .or_else(|| s.native.get(&bdf).cloned().filter(|_| !s.stuck));
            s.driver.insert(bdf, d);
        }
        Ok(())
    }
    fn bind(&self, bdf: Bdf, d: &str) -> VResult<()> {
        let mut s = self.state.lock().unwrap();
        s.log.push(format!("bind {bdf} {d}"));
        if !s.stuck {
            s.driver.insert(bdf, Some(d.into()));
        }
        Ok(())
    }
}

/// Between boots: what the fake kernel has bound (the trial must hold every
/// function on vfio-pci across all boots), reported as the host would.
struct Watch<'a> {
    fake: &'a FakeSysfs,
    seen: Mutex<Vec<BTreeMap<Bdf, Option<String>>>>,
    all_ones_after: Option<u32>,
    boots: Mutex<u32>,
}

impl<'a> Watch<'a> {
    fn new(fake: &'a FakeSysfs) -> Watch<'a> {
        Watch {
            fake,
            seen: Mutex::new(Vec::new()),
            all_ones_after: None,
            boots: Mutex::new(0),
        }
    }
}

impl Observer for Watch<'_> {
    fn observe(&self, bdfs: &[Bdf]) -> Vec<HostSeen> {
        self.seen.lock().unwrap().push(self.fake.drivers());
        let mut n = self.boots.lock().unwrap();
        *n += 1;
        bdfs.iter()
            .map(|b| HostSeen {
                bdf: *b,
                config: if self.all_ones_after == Some(*n) {
                    "all-ones".into()
                } else {
                    "readable".into()
                },
                reset_method: Some(vec!["bus".into()]),
                power_state: Some("D0".into()),
                link: "up".into(),
                driver: Some("vfio-pci".into()),
            })
            .collect()
    }
}

const GPU: &str = "0000:0b:00.0";
const AUDIO: &str = "0000:0b:00.1";
const PEER: &str = "0000:0c:00.0";

fn host() -> FakeSysfs {
    FakeSysfs::with(&[
        (GPU, "amdgpu"),
        (AUDIO, "snd_hda_intel"),
        (PEER, "xhci_hcd"),
    ])
}

/// An RX 480 and its HDMI audio (their sysfs modalias and BAR sizes), on their host drivers.
fn functions() -> Vec<Function> {
    // RX 480: 256 MiB VRAM aperture, 2 MiB doorbell, 256 KiB registers; audio: 16 KiB.
    let gpu_bars: &[(u8, u64)] = &[(0, 256 << 20), (2, 2 << 20), (5, 256 << 10)];
    [
        (
            GPU,
            "67df",
            "pci:v00001002d000067DFsv00001DA2sd0000E387bc03sc00i00",
            "amdgpu",
            gpu_bars,
        ),
        (
            AUDIO,
            "aaf0",
            "pci:v00001002d0000AAF0sv00001DA2sd0000AAF0bc04sc03i00",
            "snd_hda_intel",
            &[(0, 16 << 10)],
        ),
    ]
    .iter()
    .map(|(bdf, device, modalias, driver, bars)| Function {
        bdf: bdf.parse().unwrap(),
        vendor: "1002".into(),
        device: (*device).into(),
        modalias: (*modalias).into(),
        modules: vec![(*driver).into()],
        host_driver: Some((*driver).into()),
        host_bars: bars
            .iter()
            .map(|&(index, size)| passthru::trial::protocol::GuestBar { index, size })
            .collect(),
    })
    .collect()
}

fn ok_records() -> Vec<Record> {
    healthy(&[
        ("1002", "67df", "amdgpu"),
        ("1002", "aaf0", "snd_hda_intel"),
    ])
}

struct Setup {
    standin: StandIn,
    kernel: tempfile::NamedTempFile,
}

fn setup() -> Setup {
    Setup {
        standin: StandIn::new(),
        kernel: tempfile::NamedTempFile::new().unwrap(),
    }
}

fn plan(s: &Setup, boots: u32, timeout: Duration, vmm: Vmm) -> BootPlan {
    BootPlan {
        program: s.standin.program.clone(),
        spec: VmSpec {
            vmm,
            accel: Accel::Tcg,
            memory_mib: 512,
            kernel: s.kernel.path().to_path_buf(),
            initrd: Default::default(),
            devices: vec![GPU.parse().unwrap(), AUDIO.parse().unwrap()],
            console: Default::default(),
            report: Default::default(),
        },
        boots,
        timeout,
        functions: functions(),
        bind: [GPU, AUDIO, PEER]
            .iter()
            .map(|b| b.parse().unwrap())
            .collect(),
    }
}

fn trial(
    s: &Setup,
    p: &BootPlan,
    fake: &FakeSysfs,
    watch: &Watch,
    stop: &AtomicBool,
) -> TrialReport {
    let log = RestoreLog::new();
    let r = run(fake, p, b"initramfs bytes", watch, stop, &log).unwrap();
    assert!(log.take().is_empty());
    assert_restored(s, fake, watch);
    r
}

/// Every driver back, overrides cleared, vfio-pci held during each observed boot,
/// and the trial's temporary directory (where the initramfs was) gone.
fn assert_restored(s: &Setup, fake: &FakeSysfs, watch: &Watch) {
    let want = host().drivers();
    assert_eq!(fake.drivers(), want);
    assert!(fake.overrides_clear());
    for during in watch.seen.lock().unwrap().iter() {
        assert!(
            during.values().all(|d| d.as_deref() == Some("vfio-pci")),
            "not all on vfio-pci during a boot: {during:?}"
        );
    }
    for n in 1..=s.standin.count() {
        let initrd = s.standin.read("initrd", n);
        if initrd.is_empty() {
            continue;
        }
        let dir = Path::new(initrd.trim()).parent().unwrap();
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

/// Run a trial whose boot N does `boots[N-1]` (stand-in mode, records); the host
/// reads all ones after boot `all_ones_after`. Checks the restore and cleanup.
fn scenario(
    boots: &[(&str, Vec<Record>)],
    timeout: u64,
    vmm: Vmm,
    all_ones_after: Option<u32>,
) -> (Setup, TrialReport) {
    let s = setup();
    let fake = host();
    let mut watch = Watch::new(&fake);
    watch.all_ones_after = all_ones_after;
    for (i, (mode, recs)) in boots.iter().enumerate() {
        s.standin.boot(i as u32 + 1, mode, recs);
    }
    let p = plan(&s, boots.len() as u32, Duration::from_secs(timeout), vmm);
    let r = trial(&s, &p, &fake, &watch, &AtomicBool::new(false));
    (s, r)
}

fn has(r: &TrialReport, boot: usize, text: &str) -> bool {
    r.boots[boot].evidence.iter().any(|e| e.contains(text))
}

#[test]
fn two_good_boots_are_trial_ok_and_everything_is_restored() {
    let (s, r) = scenario(
        &[("ok", ok_records()), ("ok", ok_records())],
        30,
        Vmm::Qemu,
        None,
    );
    assert_eq!(r.verdict, Some(TrialVerdict::Ok), "{r:#?}");
    assert_eq!(r.boots.len(), 2);
    assert_eq!(s.standin.count(), 2);
    assert!(r.boots.iter().all(|b| b.verdict == TrialVerdict::Ok));
    assert!(has(
        &r,
        0,
        "0000:0b:00.0 (1002:67df) is 0000:01:00.0 in the guest, BAR0 16K, driver amdgpu"
    ));
    // The healthy records give every function one 16 KiB BAR: right for the audio,
    // not for the GPU, and the difference is said.
    assert!(has(
        &r,
        0,
        "0000:0b:00.0: BAR0 is 256M on the host, 16K in the guest"
    ));
    assert!(has(
        &r,
        0,
        "0000:0b:00.0: BAR2 is 2M on the host, absent in the guest"
    ));
    assert!(!has(&r, 0, "0000:0b:00.1: BAR"));
    // The stand-in got q35, vfio-pci on root ports, two serial files.
    let argv = s.standin.read("argv", 1);
    for want in [
        "q35",
        "vfio-pci,host=0000:0b:00.0,bus=rp0,addr=0x0.0,multifunction=on",
        "vfio-pci,host=0000:0b:00.1,bus=rp0,addr=0x0.1",
    ] {
        assert!(argv.lines().any(|l| l == want), "{want} not in {argv}");
    }
    assert_eq!(argv.lines().filter(|l| *l == "-serial").count(), 2);
}

#[test]
fn binding_goes_through_the_guard_for_functions_and_peers() {
    let s = setup();
    let fake = host();
    let watch = Watch::new(&fake);
    s.standin.boot(1, "ok", &ok_records());
    let p = plan(&s, 1, Duration::from_secs(30), Vmm::Qemu);
    trial(&s, &p, &fake, &watch, &AtomicBool::new(false));
    let log = fake.state.lock().unwrap().log.clone();
    for (b, d) in [
        (GPU, "amdgpu"),
        (AUDIO, "snd_hda_intel"),
        (PEER, "xhci_hcd"),
    ] {
        assert!(
            log.contains(&format!("override {b} Some(\"vfio-pci\")")),
            "{log:?}"
        );
        assert!(log.contains(&format!("unbind {b} {d}")), "{log:?}");
        assert!(log.contains(&format!("unbind {b} vfio-pci")), "{log:?}");
    }
}

#[test]
fn cloud_hypervisor_argv_and_a_good_boot() {
    let (s, r) = scenario(&[("ok", ok_records())], 30, Vmm::CloudHypervisor, None);
    assert_eq!(r.verdict, Some(TrialVerdict::Ok), "{r:#?}");
    let argv = s.standin.read("argv", 1);
    assert!(argv.contains("path=/sys/bus/pci/devices/0000:0b:00.0/"));
    assert!(argv.contains("--serial\nfile="));
}

/// `recs` with the GPU's device record changed by `f`.
fn gpu_changed(mut recs: Vec<Record>, f: impl Fn(&mut bool, &mut Option<String>)) -> Vec<Record> {
    for r in &mut recs {
        if let Record::Device {
            device,
            all_ones,
            driver,
            ..
        } = r
        {
            if device == "67df" {
                f(all_ones, driver);
            }
        }
    }
    recs
}

#[test]
fn second_boot_dead_is_reset_failed() {
    let dead = gpu_changed(ok_records(), |ones, drv| {
        *ones = true;
        *drv = None;
    });
    let (_, r) = scenario(&[("ok", ok_records()), ("ok", dead)], 30, Vmm::Qemu, None);
    assert_eq!(r.boots[0].verdict, TrialVerdict::Ok);
    assert_eq!(r.boots[1].verdict, TrialVerdict::ResetFailed, "{r:#?}");
    assert_eq!(r.verdict, Some(TrialVerdict::ResetFailed));
    assert!(has(&r, 1, "config space reads all ones"));
}

#[test]
fn host_reading_all_ones_after_good_boots_is_reset_failed() {
    let (_, r) = scenario(
        &[("ok", ok_records()), ("ok", ok_records())],
        30,
        Vmm::Qemu,
        Some(2),
    );
    assert!(r.boots.iter().all(|b| b.verdict == TrialVerdict::Ok));
    assert_eq!(r.verdict, Some(TrialVerdict::ResetFailed));
    assert!(has(
        &r,
        1,
        "host after boot 2: 0000:0b:00.0 config all-ones"
    ));
}

#[test]
fn driver_failure_on_the_first_boot() {
    let mut recs = gpu_changed(ok_records(), |_, drv| *drv = None);
    recs.insert(
        recs.len() - 1,
        Record::Health(HealthLine {
            driver: "amdgpu".into(),
            kind: "fail".into(),
            message: "amdgpu 0000:01:00.0: probe with driver amdgpu failed with error -22".into(),
        }),
    );
    let (_, r) = scenario(&[("ok", recs.clone()), ("ok", recs)], 30, Vmm::Qemu, None);
    assert_eq!(r.boots[0].verdict, TrialVerdict::DriverFailed, "{r:#?}");
    assert_eq!(r.boots[1].verdict, TrialVerdict::DriverFailed);
    assert_eq!(r.verdict, Some(TrialVerdict::DriverFailed));
    assert!(has(&r, 0, "probe with driver amdgpu failed with error -22"));
}

#[test]
fn a_function_the_guest_does_not_see_is_not_visible() {
    let recs = vec![
        Record::Hello {
            kernel: "6.12".into(),
        },
        Record::Missing {
            vendor: "1002".into(),
            device: "67df".into(),
        },
        Record::Done,
    ];
    let (_, r) = scenario(&[("ok", recs)], 30, Vmm::Qemu, None);
    assert_eq!(r.verdict, Some(TrialVerdict::NotVisible), "{r:#?}");
    assert!(has(
        &r,
        0,
        "0000:0b:00.0 (1002:67df): the guest did not see it"
    ));
}

#[test]
fn garbage_on_the_port_is_no_report() {
    let (_, r) = scenario(&[("garbage", vec![])], 30, Vmm::Qemu, None);
    assert_eq!(r.verdict, Some(TrialVerdict::NotVisible), "{r:#?}");
    assert!(r.boots[0].records.is_empty());
}

#[test]
fn a_guest_crash_mid_report_is_driver_failed_and_restores() {
    let (_, r) = scenario(&[("crash", ok_records())], 30, Vmm::Qemu, None);
    assert_eq!(r.boots[0].exit_status, Some(1));
    assert_eq!(r.verdict, Some(TrialVerdict::DriverFailed), "{r:#?}");
    assert!(r.boots[0]
        .console_tail
        .iter()
        .any(|l| l.contains("Kernel panic")));
    assert!(has(&r, 0, "console: Kernel panic - not syncing: fake"));
}

#[test]
fn a_hung_guest_is_killed_with_its_children_at_the_timeout() {
    let t = Instant::now();
    let (s, r) = scenario(&[("hang", ok_records()[..2].to_vec())], 2, Vmm::Qemu, None);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(r.verdict, Some(TrialVerdict::Timeout), "{r:#?}");
    assert_eq!(r.boots[0].exit_status, None);
    assert!(!s.standin.alive("pid", 1), "the stand-in survived");
    assert!(!s.standin.alive("child", 1), "its sleep child survived");
}

#[test]
fn the_stop_flag_kills_the_guest_and_restores() {
    let s = setup();
    let fake = host();
    let watch = Watch::new(&fake);
    s.standin.boot(1, "hang", &ok_records()[..1]);
    s.standin.boot(2, "ok", &ok_records());
    let p = plan(&s, 2, Duration::from_secs(120), Vmm::Qemu);
    let stop = Arc::new(AtomicBool::new(false));
    // What the SIGINT handler does: set the flag, once the guest runs.
    let flag = Arc::clone(&stop);
    let child_file = s.standin.dir.join("child-1");
    let t = std::thread::spawn(move || {
        let start = Instant::now();
        while !child_file.exists() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        flag.store(true, Ordering::SeqCst);
    });
    let r = trial(&s, &p, &fake, &watch, &stop);
    t.join().unwrap();
    assert!(r.interrupted);
    assert!(r.boots.is_empty());
    assert_eq!(r.verdict, None, "no boot finished: no verdict");
    assert_eq!(s.standin.count(), 1, "no second boot after the stop");
    assert!(!s.standin.alive("pid", 1));
    assert!(!s.standin.alive("child", 1));
}

#[test]
fn a_vmm_that_cannot_start_is_an_error_after_restoring() {
    let s = setup();
    let fake = host();
    let watch = Watch::new(&fake);
    let mut p = plan(&s, 1, Duration::from_secs(5), Vmm::Qemu);
    p.program = s.standin.dir.join("no-such-vmm");
    let log = RestoreLog::new();
    let e = run(&fake, &p, b"x", &watch, &AtomicBool::new(false), &log).unwrap_err();
    assert!(format!("{e:#}").contains("no-such-vmm"), "{e:#}");
    assert_eq!(fake.drivers(), host().drivers());
    assert!(fake.overrides_clear());
}

#[test]
fn a_driver_that_will_not_come_back_is_reported() {
    let s = setup();
    s.standin.boot(1, "ok", &ok_records());
    // The host drivers will not take their devices back; binding still works
    // (vfio-pci comes through driver_override).
    let fake = host();
    fake.state.lock().unwrap().stuck = true;
    let watch = Watch::new(&fake);
    let p = plan(&s, 1, Duration::from_secs(30), Vmm::Qemu);
    let log = RestoreLog::new();
    let r = run(&fake, &p, b"x", &watch, &AtomicBool::new(false), &log).unwrap();
    assert_eq!(r.verdict, Some(TrialVerdict::Ok));
    assert_eq!(r.restore_failures.len(), 3, "{:?}", r.restore_failures);
    assert!(
        r.restore_failures[0].contains("restoring the original driver"),
        "{:?}",
        r.restore_failures
    );
    // And when the trial itself fails, the error says both.
    let fake = host();
    fake.state.lock().unwrap().stuck = true;
    let mut p = plan(&s, 1, Duration::from_secs(5), Vmm::Qemu);
    p.program = s.standin.dir.join("no-such-vmm");
    let e = run(&fake, &p, b"x", &watch, &AtomicBool::new(false), &log).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("restoring drivers failed too"), "{msg}");
    assert!(msg.contains("no-such-vmm"), "{msg}");
}
