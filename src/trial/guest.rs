//! The guest side: passthru's own binary as the trial guest's `/init` (pid 1).
//!
//! It mounts proc, sysfs and devtmpfs, loads the modules the request lists in
//! order, waits for the requested devices by vendor and device id (the guest's
//! addresses differ from the host's), reports each device, the driver bound and
//! the drivers' health lines from the kernel log over its own serial port as
//! [`protocol`](super::protocol) records, and powers the guest off.

use super::initramfs::{GuestDevice, GuestRequest, REQUEST_PATH};
use super::protocol::{encode, GuestBar, HealthLine, Record};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Whether this process is the trial guest's init: pid 1, started as `/init`, with
/// the trial's request in place. All three, so that passthru as a container's pid 1
/// (a DaemonSet, `docker run`) is never mistaken for a guest and never powers off.
pub fn is_trial_init() -> bool {
    std::process::id() == 1
        && std::env::args_os().next().is_some_and(|a| a == "/init")
        && Path::new(REQUEST_PATH).is_file()
}

/// Run as the guest's init. Never returns: the guest powers off.
pub fn main() -> ! {
    let mut out = Port::open();
    if let Err(e) = run(&mut out) {
        out.send(&Record::Health(HealthLine {
            driver: "passthru".into(),
            kind: "fail".into(),
            message: format!("guest init: {e:#}"),
        }));
    }
    out.send(&Record::Done);
    out.drain();
    let _ = rustix::system::reboot(rustix::system::RebootCommand::PowerOff);
    // Power-off failed: pid 1 exiting panics the kernel, and panic=-1 reboots it,
    // which the VMM's -no-reboot turns into its exit.
    std::process::exit(1)
}

/// Where records go: the report port once it can be opened, the console before.
struct Port {
    tty: Option<std::fs::File>,
}

impl Port {
    fn open() -> Port {
        mount_all();
        let name = std::fs::read_to_string("/proc/cmdline")
            .ok()
            .and_then(|c| port_from_cmdline(&c))
            .unwrap_or_else(|| "ttyS1".into());
        let tty = std::fs::OpenOptions::new()
            .write(true)
            .open(Path::new("/dev").join(&name))
            .ok();
        if let Some(t) = &tty {
            // Raw output: no \n -> \r\n translation (the parser copes either way).
            if let Ok(mut tio) = rustix::termios::tcgetattr(t) {
                tio.make_raw();
                let _ = rustix::termios::tcsetattr(t, rustix::termios::OptionalActions::Now, &tio);
            }
        } else {
            eprintln!("passthru guest: cannot open /dev/{name}; reporting on the console");
        }
        Port { tty }
    }

    fn send(&mut self, r: &Record) {
        let line = encode(r);
        match &mut self.tty {
            Some(t) => {
                let _ = t.write_all(line.as_bytes());
            }
            None => print!("{line}"),
        }
    }

    fn drain(&mut self) {
        if let Some(t) = &self.tty {
            let _ = rustix::termios::tcdrain(t);
        }
        let _ = std::io::stdout().flush();
    }
}

/// `passthru.port=NAME` from a kernel command line.
pub fn port_from_cmdline(c: &str) -> Option<String> {
    c.split_whitespace()
        .find_map(|w| w.strip_prefix("passthru.port="))
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(String::from)
}

fn mount_all() {
    use rustix::mount::{mount, MountFlags};
    for (src, dir, fs) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
    ] {
        let _ = std::fs::create_dir_all(dir);
        if let Err(e) = mount(src, dir, fs, MountFlags::empty(), None) {
            // EBUSY: already mounted (a kernel that automounts devtmpfs).
            if e != rustix::io::Errno::BUSY {
                eprintln!("passthru guest: mounting {fs} on {dir}: {e}");
            }
        }
    }
}

fn run(out: &mut Port) -> anyhow::Result<()> {
    use anyhow::Context;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    out.send(&Record::Hello {
        kernel: kernel.trim().into(),
    });
    let req: GuestRequest = serde_json::from_slice(
        &std::fs::read(REQUEST_PATH).with_context(|| format!("reading {REQUEST_PATH}"))?,
    )
    .with_context(|| format!("parsing {REQUEST_PATH}"))?;
    let mut kmsg = Kmsg::open();
    for m in &req.modules {
        let error = load_module(m).err();
        out.send(&Record::Module {
            name: m.clone(),
            error,
        });
    }
    let deadline = Instant::now() + Duration::from_secs(req.wait_secs);
    let found = loop {
        let found = find_devices(&req.devices);
        let settled = found.iter().zip(&req.devices).all(|(f, want)| {
            f.as_ref()
                .is_some_and(|d| !want.expect_driver || read_driver(d).is_some())
        });
        if settled || Instant::now() >= deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut names: Vec<String> = req.modules.clone();
    let mut bdfs = Vec::new();
    for (GuestDevice { vendor, device, .. }, f) in req.devices.iter().zip(&found) {
        match f {
            None => out.send(&Record::Missing {
                vendor: vendor.clone(),
                device: device.clone(),
            }),
            Some(dir) => {
                let driver = read_driver(dir);
                names.extend(driver.clone());
                let guest_bdf = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                bdfs.push(guest_bdf.clone());
                out.send(&Record::Device {
                    vendor: vendor.clone(),
                    device: device.clone(),
                    guest_bdf,
                    bars: read_bars(dir),
                    all_ones: std::fs::read(dir.join("config"))
                        .map(|c| c.len() >= 4 && c[..4] == [0xff; 4])
                        .unwrap_or(true),
                    driver,
                })
            }
        }
    }
    for line in kmsg.read_all() {
        if let Some(h) = health_line(&line, &names, &bdfs) {
            out.send(&Record::Health(h));
        }
    }
    Ok(())
}

fn load_module(name: &str) -> Result<(), String> {
    let path = format!("/lib/modules/{name}.ko");
    let image = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    match rustix::system::init_module(&image, c"") {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::EXIST => Ok(()),
        Err(e) => Err(format!("init_module {name}: {e}")),
    }
}

/// The guest's device directory for each requested (vendor, device), in order; a
/// directory is given to one request only.
fn find_devices(want: &[GuestDevice]) -> Vec<Option<std::path::PathBuf>> {
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir("/sys/bus/pci/devices")
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    let id = |d: &Path, f: &str| {
        std::fs::read_to_string(d.join(f))
            .map(|s| s.trim().trim_start_matches("0x").to_ascii_lowercase())
            .unwrap_or_default()
    };
    let mut taken = vec![false; dirs.len()];
    want.iter()
        .map(
            |GuestDevice {
                 vendor: v,
                 device: d,
                 ..
             }| {
                let i = dirs.iter().enumerate().position(|(i, dir)| {
                    !taken[i] && id(dir, "vendor") == *v && id(dir, "device") == *d
                })?;
                taken[i] = true;
                Some(dirs[i].clone())
            },
        )
        .collect()
}

fn read_driver(dir: &Path) -> Option<String> {
    std::fs::read_link(dir.join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Non-empty BARs from the device's `resource` file (start end flags per line;
/// lines 0-5 the BARs, 6 the ROM).
pub fn parse_bars(resource: &str) -> Vec<GuestBar> {
    resource
        .lines()
        .take(7)
        .enumerate()
        .filter_map(|(i, l)| {
            let mut w = l
                .split_whitespace()
                .map(|x| u64::from_str_radix(x.trim_start_matches("0x"), 16).unwrap_or_default());
            let (start, end) = (w.next()?, w.next()?);
            (end > start).then(|| GuestBar {
                index: i as u8,
                size: end - start + 1,
            })
        })
        .collect()
}

fn read_bars(dir: &Path) -> Vec<GuestBar> {
    std::fs::read_to_string(dir.join("resource"))
        .map(|s| parse_bars(&s))
        .unwrap_or_default()
}

/// `/dev/kmsg`, read without blocking from the start of the log.
struct Kmsg {
    fd: Option<rustix::fd::OwnedFd>,
}

impl Kmsg {
    fn open() -> Kmsg {
        use rustix::fs::{Mode, OFlags};
        Kmsg {
            fd: rustix::fs::open(
                "/dev/kmsg",
                OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok(),
        }
    }

    /// Every message so far, text only (one read returns one record,
    /// `prio,seq,usec,flags;text`, per Documentation/ABI/testing/dev-kmsg).
    fn read_all(&mut self) -> Vec<String> {
        let Some(fd) = &self.fd else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        for _ in 0..100_000 {
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    if let Some((_, text)) = rec.split_once(';') {
                        out.push(text.lines().next().unwrap_or_default().to_string());
                    }
                }
                // Overwritten records: the next read goes on from the oldest kept.
                Err(e) if e == rustix::io::Errno::PIPE => continue,
                Err(_) => break,
            }
        }
        out
    }
}

/// Whether a kernel log line is about one of the drivers in `names` or the
/// devices at `bdfs`, and if so what it says about their health.
pub fn health_line(text: &str, names: &[String], bdfs: &[String]) -> Option<HealthLine> {
    // DRM's own "[drm] Initialized NAME ..." (drm_dev_register in
    // drivers/gpu/drm/drm_drv.c, before drm_info() prefixed the device) is NAME's.
    let first = match text.strip_prefix("[drm] Initialized ") {
        Some(rest) => rest,
        None => text,
    }
    .split([' ', ':'])
    .next()
    .unwrap_or_default();
    let norm = |s: &str| s.replace('-', "_").to_ascii_lowercase();
    let driver = names
        .iter()
        .find(|n| norm(n) == norm(first))
        .cloned()
        .or_else(|| {
            bdfs.iter()
                .any(|b| !b.is_empty() && text.contains(b.as_str()))
                .then(|| first.to_string())
        })?;
    let lower = text.to_ascii_lowercase();
    // Whole words (or word starts, for `fail*` and `error*`), so that `default`
    // is not a fault and `terrorist` not an error.
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .collect();
    let starts = |p: &str| words.iter().any(|w| w.starts_with(p));
    let word = |p: &str| words.contains(&p);
    let phrase = |p: &str| lower.contains(p);
    let fail = starts("fail")
        || starts("error")
        || [
            "timeout", "unable", "cannot", "can't", "hang", "hung", "bad",
        ]
        .iter()
        .any(|w| word(w))
        || ["timed out", "not supported"].iter().any(|p| phrase(p));
    let ok = [
        "initialized",
        "initialised",
        "registered",
        "ready",
        "enabled",
    ]
    .iter()
    .any(|w| word(w))
        || phrase("link is up")
        // nvme's last probe step (drivers/nvme/host/pci.c, nvme_setup_io_queues) and
        // the Intel NIC drivers' probe line (e1000e/netdev.c, igb_main.c, ...).
        || phrase("default/read/poll queues")
        || phrase("network connection");
    let kind = if fail {
        "fail"
    } else if ok {
        "ok"
    } else {
        "info"
    };
    Some(HealthLine {
        driver,
        kind: kind.into(),
        message: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_comes_from_the_cmdline_and_must_be_a_plain_name() {
        assert_eq!(
            port_from_cmdline("console=ttyS0 passthru.port=ttyS1 panic=-1"),
            Some("ttyS1".into())
        );
        assert_eq!(port_from_cmdline("passthru.port=../x"), None);
        assert_eq!(port_from_cmdline("console=ttyS0"), None);
    }

    #[test]
    fn bars_from_a_resource_file() {
        // The layout of drivers/pci/pci-sysfs.c resource_show: "0x%016llx 0x%016llx 0x%016llx".
        let r = "0x00000000fe000000 0x00000000fe01ffff 0x0000000000040200\n\
                 0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                 0x000000000000c000 0x000000000000c01f 0x0000000000040101\n";
        assert_eq!(
            parse_bars(r),
            vec![
                GuestBar {
                    index: 0,
                    size: 0x20000
                },
                GuestBar {
                    index: 2,
                    size: 0x20
                }
            ]
        );
    }

    #[test]
    fn health_lines_by_driver_and_address() {
        let names = vec![
            "e1000e".to_string(),
            "nvme".to_string(),
            "amdgpu".to_string(),
        ];
        let bdfs = vec!["0000:01:00.0".to_string()];
        // (kernel line, the driver it is given to, its kind). Message shapes of
        // drivers/base/dd.c (probe failure), e1000e's netdev.c, nvme's pci.c and
        // drm_drv.c (old and new registration line); the nvme queues line as seen
        // from a TCG guest ("default" is no fault).
        let cases = [
            (
                "e1000e 0000:01:00.0: probe with driver e1000e failed with error -5",
                "e1000e",
                "fail",
            ),
            ("e1000e: Intel(R) PRO/1000 Network Driver", "e1000e", "info"),
            (
                "e1000e 0000:01:00.0 eth0: Intel(R) PRO/1000 Network Connection",
                "e1000e",
                "ok",
            ),
            ("pcieport 0000:01:00.0: AER: enabled", "pcieport", "ok"),
            ("nvme nvme0: 1/0/0 default/read/poll queues", "nvme", "ok"),
            (
                "nvme nvme0: I/O 12 QID 0 timeout, reset controller",
                "nvme",
                "fail",
            ),
            (
                "[drm] Initialized amdgpu 3.42.0 20150101 for 0000:01:00.0 on minor 0",
                "amdgpu",
                "ok",
            ),
            (
                "amdgpu 0000:01:00.0: [drm] Initialized amdgpu 3.59.0 for 0000:01:00.0 on minor 0",
                "amdgpu",
                "ok",
            ),
        ];
        for (text, driver, kind) in cases {
            let h = health_line(text, &names, &bdfs).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(
                (h.driver.as_str(), h.kind.as_str()),
                (driver, kind),
                "{text}"
            );
        }
        assert!(health_line("ACPI: bus type PCI registered", &names, &bdfs).is_none());
    }
}
