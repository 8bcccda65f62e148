//! `passthru trial DEVICE...`: bind the device to vfio-pci, boot a throwaway guest
//! with it N times, and judge each boot from the guest's own report.
//!
//! Refused (exit 2) when `check` fails the device (unless `--force`), when a
//! function or group peer is in use, when the root is not the live `/` and a
//! function is not on vfio-pci already, or when the kernel or module tree is
//! missing. Exit 0 when the trial is `trial-ok`, 1 on any other verdict, 2 when
//! interrupted (SIGINT/SIGTERM) or on an error. Drivers are restored and the
//! temporary files removed on every path.

use super::list::load_host;
use super::Global;
use anyhow::{bail, Context};
use clap::Args;
use passthru::trial::initramfs::{self, GuestDevice, GuestRequest, ModTree};
use passthru::trial::qemu::{Accel, VmSpec, Vmm};
use passthru::trial::run::{self, BootPlan, Observer};
use passthru::trial::{bind_set, Function, HostSeen, TrialVerdict};
use passthru_iommu_groups::{check, DeviceSpec, Host, Verdict};
use passthru_pci_ids::Bdf;
use passthru_vfio_core::bind::{self, RestoreLog};
use passthru_vfio_core::SysfsRoot;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `passthru trial`.
#[derive(Debug, Args)]
pub struct TrialArgs {
    /// Devices: a BDF, a slot or `vendor:device`, as for `check`; the other
    /// functions of a GPU's slot come along.
    #[arg(value_name = "DEVICE", required = true)]
    pub devices: Vec<String>,
    /// How many times to boot the guest (the reset bug shows on the second).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub boots: u32,
    /// Seconds each guest may run before it is killed.
    #[arg(long, default_value_t = 120, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    /// Go on although `check` fails the device.
    #[arg(long)]
    pub force: bool,
    /// The guest kernel (default: ROOT/boot/vmlinuz-RELEASE of the running kernel).
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// The kernel module tree (default: ROOT/lib/modules/RELEASE).
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// The VMM program (default: `qemu-system-x86_64` or `cloud-hypervisor` on PATH).
    #[arg(long, value_name = "PATH")]
    pub qemu: Option<PathBuf>,
    /// Which VMM boots the guest.
    #[arg(long, value_enum, default_value_t = Vmm::Qemu)]
    pub vmm: Vmm,
    /// QEMU's accelerator (`tcg` runs without KVM, slowly).
    #[arg(long, value_enum, default_value_t = Accel::Kvm)]
    pub accel: Accel,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024, value_name = "MiB", value_parser = clap::value_parser!(u32).range(128..=1_048_576))]
    pub memory: u32,
}

/// Between boots: the host model loaded again, through the one loader.
struct Reload(PathBuf);

impl Observer for Reload {
    fn observe(&self, bdfs: &[Bdf]) -> Vec<HostSeen> {
        match Host::load(&self.0) {
            Ok(h) => bdfs.iter().map(|b| HostSeen::of(&h, *b)).collect(),
            Err(e) => bdfs
                .iter()
                .map(|b| HostSeen {
                    bdf: *b,
                    config: format!("unreadable ({e})"),
                    reset_method: None,
                    power_state: None,
                    link: "unknown".into(),
                    driver: None,
                })
                .collect(),
        }
    }
}

/// Run `passthru trial`.
pub fn run(g: &Global, a: &TrialArgs) -> anyhow::Result<ExitCode> {
    let specs = a
        .devices
        .iter()
        .map(|s| s.parse::<DeviceSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let host = load_host(g)?;
    let report = check(&host, &specs)?;
    let busy: Vec<String> = report
        .devices
        .iter()
        .flat_map(|d| {
            d.findings
                .iter()
                .filter(|f| f.code.name() == "device-busy")
                .map(move |f| format!("{}: {}", d.bdf, f.message))
        })
        .collect();
    if !busy.is_empty() {
        bail!(
            "refusing the trial: a function is in use (device-busy): {}",
            busy.join("; ")
        );
    }
    if report.worst() == Verdict::Fail && !a.force {
        let fails: Vec<String> = report
            .host
            .findings
            .iter()
            .chain(report.devices.iter().flat_map(|d| d.findings.iter()))
            .filter(|f| f.severity == passthru_iommu_groups::Severity::Fail)
            .map(|f| f.code.name().to_string())
            .collect();
        bail!(
            "refusing the trial: `passthru check` fails these devices ({}); see `passthru check {}`, or pass --force",
            fails.join(", "),
            a.devices.join(" ")
        );
    }
    let functions_bdf: Vec<Bdf> = report.devices.iter().map(|d| d.bdf).collect();
    let bind = bind_set(&host, &functions_bdf);
    // Group peers are not in the check report: ask the bind guard's own test.
    for p in bind.iter().filter(|b| !functions_bdf.contains(b)) {
        let why = bind::in_use(&g.root, *p);
        if !why.is_empty() {
            bail!(
                "refusing the trial: group peer {p} is in use: {}",
                why.join(", ")
            );
        }
    }
    let needs_bind = bind
        .iter()
        .any(|b| host.device(*b).is_some_and(|d| !d.is_vfio_bound()));
    if needs_bind {
        if let Err(why) = bind::live_root(&g.root) {
            bail!("refusing the trial: binding to vfio-pci needs the live root: {why}");
        }
    }

    if a.vmm == Vmm::Qemu && a.accel == Accel::Kvm && !host.platform.dev_kvm {
        bail!(
            "no /dev/kvm under {} (KVM is not available): pass --accel tcg to emulate, slowly",
            g.root.display()
        );
    }
    let release = host
        .kernel
        .clone()
        .context("the running kernel's release is unknown (proc/sys/kernel/osrelease): give --kernel and --modules")?;
    let kernel = a
        .kernel
        .clone()
        .unwrap_or_else(|| g.root.join(format!("boot/vmlinuz-{release}")));
    if !kernel.is_file() {
        bail!(
            "no guest kernel at {}: give one with --kernel",
            kernel.display()
        );
    }
    let mod_dir = a
        .modules
        .clone()
        .unwrap_or_else(|| g.root.join(format!("lib/modules/{release}")));
    let tree = ModTree::open(&mod_dir)
        .with_context(|| format!("opening the module tree {}", mod_dir.display()))?;
    let functions: Vec<Function> = functions_bdf
        .iter()
        .filter_map(|b| host.device(*b))
        .map(|d| Function::of(d, Some(&tree)))
        .collect();
    let wanted: Vec<String> = functions.iter().flat_map(|f| f.modules.clone()).collect();
    let modules = tree.load_order(&wanted)?;
    let wait_secs = (a.timeout * 2 / 3).clamp(1, 60);
    let request = GuestRequest {
        modules: modules.iter().map(|m| m.name.clone()).collect(),
        devices: functions
            .iter()
            .map(|f| GuestDevice {
                vendor: f.vendor.clone(),
                device: f.device.clone(),
                expect_driver: f.expects_driver(),
            })
            .collect(),
        wait_secs,
    };
    let exe = std::env::current_exe().context("finding passthru's own binary")?;
    let fw_root = g.root.join("lib/firmware");
    let built = initramfs::build(
        &exe,
        Path::new("/"),
        Some(&tree),
        &modules,
        Some(&fw_root),
        &request,
    )?;
    if !built.firmware_missing.is_empty() {
        // Drivers declare the firmware of every chip they drive: most are not this one's.
        eprintln!(
            "passthru: {} firmware file(s) the modules declare are not under {} ({} included); a driver that needs one of them will fail in the guest",
            built.firmware_missing.len(),
            fw_root.display(),
            built.firmware.len()
        );
    }
    // Uncompressed: the kernel unpacks a plain cpio as it is, and copying costs a
    // guest less than inflating (most of all under TCG, where every instruction of
    // the inflate is emulated).
    let initrd = built.cpio;
    let program = a.qemu.clone().unwrap_or_else(|| {
        match a.vmm {
            Vmm::Qemu => "qemu-system-x86_64",
            Vmm::CloudHypervisor => "cloud-hypervisor",
        }
        .into()
    });
    let plan = BootPlan {
        program,
        spec: VmSpec {
            vmm: a.vmm,
            accel: a.accel,
            memory_mib: a.memory,
            kernel,
            initrd: PathBuf::new(),
            devices: functions_bdf.clone(),
            console: PathBuf::new(),
            report: PathBuf::new(),
        },
        boots: a.boots,
        timeout: Duration::from_secs(a.timeout),
        functions,
        bind,
    };
    let stop = Arc::new(AtomicBool::new(false));
    // The first signal asks for a clean stop (guest killed, drivers restored); a
    // second one while that is under way ends passthru at once (exit 130), for a
    // restore that hangs in the kernel.
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .context("installing the SIGINT/SIGTERM handler")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing the SIGINT/SIGTERM handler")?;
    }
    let sysfs = SysfsRoot::new(&g.root);
    let log = RestoreLog::new();
    let result = run::run(&sysfs, &plan, &initrd, &Reload(g.root.clone()), &stop, &log);
    let tr = match result {
        Ok(r) => r,
        Err(e) => {
            for f in log.take() {
                eprintln!("passthru: restoring {} failed: {:#}", f.bdf, f.error);
            }
            return Err(e);
        }
    };
    if g.json {
        outln!("{}", serde_json::to_string_pretty(&tr)?)?;
    } else {
        for b in &tr.boots {
            outln!("boot {}: {} ({:.1} s)", b.boot, b.verdict.name(), b.seconds)?;
            for e in &b.evidence {
                outln!("  - {e}")?;
            }
            for h in &b.host_after {
                outln!(
                    "  host after: {} config {}, link {}, reset {}, {}",
                    h.bdf,
                    h.config,
                    h.link,
                    h.reset_method
                        .as_ref()
                        .map_or("unknown".into(), |m| m.join(",")),
                    h.power_state.as_deref().unwrap_or("power state unknown")
                )?;
            }
            if b.verdict != TrialVerdict::Ok && !b.console_tail.is_empty() {
                outln!("  console (last lines):")?;
                for l in b.console_tail.iter().rev().take(10).rev() {
                    outln!("    {l}")?;
                }
            }
        }
        match tr.verdict {
            Some(v) => outln!("trial: {}", v.name())?,
            None => outln!("trial: no verdict (interrupted before a boot finished)")?,
        }
    }
    for f in &tr.restore_failures {
        eprintln!("passthru: a driver was not restored: {f}");
    }
    if tr.interrupted {
        eprintln!("passthru: interrupted; the guest was killed and every binding restored");
        return Ok(ExitCode::from(2));
    }
    Ok(
        if tr.verdict == Some(TrialVerdict::Ok) && tr.restore_failures.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}
