//! The host side of a trial: bind, boot N times, judge, restore, clean up.
//!
//! Binding goes through vfio-core's bind guard over a [`PciSysfs`] (the live
//! sysfs in the CLI, a recording fake in tests): every function bound is given
//! back to its driver at the end, after a guest crash, at a timeout and when
//! passthru gets SIGINT or SIGTERM (the signal only sets a flag; the loop kills the
//! guest's process group, and the guards and the temporary directory are dropped on
//! the way out).

use super::protocol::{self, Parsed, Record};
use super::qemu::VmSpec;
use super::{Function, HostSeen, TrialVerdict};
use anyhow::{Context, Result};
use passthru_pci_ids::Bdf;
use passthru_vfio_core::bind::{bind_all, PciSysfs, RestoreLog};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How to run the boots.
#[derive(Debug, Clone)]
pub struct BootPlan {
    /// The VMM program.
    pub program: PathBuf,
    /// The guest (kernel, memory, devices; its file paths are filled in per boot).
    pub spec: VmSpec,
    /// How many boots.
    pub boots: u32,
    /// Each guest's time limit.
    pub timeout: Duration,
    /// The functions passed through.
    pub functions: Vec<Function>,
    /// What is bound to vfio-pci for the trial (functions and group peers).
    pub bind: Vec<Bdf>,
}

/// What the host is asked between boots.
pub trait Observer {
    /// What the host shows of `bdfs` now.
    fn observe(&self, bdfs: &[Bdf]) -> Vec<HostSeen>;
}

/// One boot's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct BootReport {
    /// 1-based.
    pub boot: u32,
    /// Its verdict.
    pub verdict: TrialVerdict,
    /// Why: the records, log lines and host facts it rests on.
    pub evidence: Vec<String>,
    /// The guest's report records.
    pub records: Vec<Record>,
    /// Framed lines dropped as damaged.
    pub dropped_records: usize,
    /// The VMM's exit status (`None`: killed).
    pub exit_status: Option<i32>,
    /// Seconds the boot took.
    pub seconds: f64,
    /// The end of the guest's console.
    pub console_tail: Vec<String>,
    /// What the host saw of the functions after the boot.
    pub host_after: Vec<HostSeen>,
}

/// The whole trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct TrialReport {
    /// The overall verdict (`None`: interrupted before any boot finished).
    pub verdict: Option<TrialVerdict>,
    /// Each boot.
    pub boots: Vec<BootReport>,
    /// The functions passed through.
    pub functions: Vec<Function>,
    /// What was bound to vfio-pci.
    pub bound: Vec<Bdf>,
    /// Restores that failed (empty: every driver is back).
    pub restore_failures: Vec<String>,
    /// Stopped by SIGINT/SIGTERM before all boots ran.
    pub interrupted: bool,
}

/// The console lines kept as evidence.
const TAIL: usize = 30;

/// Run the trial: bind, boot `plan.boots` times with `initrd`, restore. The
/// temporary directory (initramfs, logs) is removed on every path out, and so is
/// every binding; a restore that fails is reported in the result (or, on an
/// early error, in `log`).
///
/// # Errors
/// The temporary directory or the initramfs file cannot be written, or a function
/// cannot be bound to vfio-pci. A boot that fails or times out is a verdict in the
/// report, not an error.
pub fn run<F: PciSysfs + ?Sized>(
    sysfs: &F,
    plan: &BootPlan,
    initrd: &[u8],
    observer: &dyn Observer,
    stop: &AtomicBool,
    log: &RestoreLog,
) -> Result<TrialReport> {
    let tmp = tempfile::Builder::new()
        .prefix("passthru-trial-")
        .tempdir()
        .context("creating the trial's temporary directory")?;
    let initrd_path = tmp.path().join("initrd.img");
    std::fs::write(&initrd_path, initrd)
        .with_context(|| format!("writing {}", initrd_path.display()))?;
    let guards =
        bind_all(sysfs, &plan.bind, log).context("binding the trial's functions to vfio-pci")?;
    let mut boots = Vec::new();
    let mut interrupted = false;
    let mut result = Ok(());
    for n in 1..=plan.boots {
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        match boot_once(plan, n, tmp.path(), &initrd_path, stop) {
            Ok((outcome, was_stopped)) => {
                if was_stopped {
                    interrupted = true;
                    break;
                }
                let earlier_ok = boots
                    .iter()
                    .any(|b: &BootReport| b.verdict == TrialVerdict::Ok);
                let fns: Vec<Bdf> = plan.functions.iter().map(|f| f.bdf).collect();
                let host_after = observer.observe(&fns);
                boots.push(judge(n, &outcome, &plan.functions, earlier_ok, host_after));
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // Give every function back now, in reverse order, reporting failures.
    let mut restore_failures = Vec::new();
    for g in guards.into_iter().rev() {
        if let Err(e) = g.restore() {
            restore_failures.push(format!("{e:#}"));
        }
    }
    restore_failures.extend(
        log.take()
            .into_iter()
            .map(|f| format!("{}: {:#}", f.bdf, f.error)),
    );
    drop(tmp);
    if let Err(e) = result {
        if restore_failures.is_empty() {
            return Err(e);
        }
        return Err(e.context(format!(
            "the trial stopped, and restoring drivers failed too: {}",
            restore_failures.join("; ")
        )));
    }
    Ok(TrialReport {
        verdict: overall(&boots),
        boots,
        functions: plan.functions.clone(),
        bound: plan.bind.clone(),
        restore_failures,
        interrupted,
    })
}

/// What one boot left behind.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Killed at the timeout.
    pub timed_out: bool,
    /// The VMM's exit status.
    pub exit_status: Option<i32>,
    /// The guest's report.
    pub parsed: Parsed,
    /// The console's last lines.
    pub console_tail: Vec<String>,
    /// The VMM's own output (its errors), last lines.
    pub vmm_tail: Vec<String>,
    /// Console lines anywhere in the log that say why a guest could not get going
    /// ([`CONSOLE_MARKS`]).
    pub console_marks: Vec<String>,
    /// Seconds.
    pub seconds: f64,
}

/// Kernel messages that explain a guest that never reported: the initramfs did not
/// unpack (init/initramfs.c; "write error" when guest memory ran out), no init could
/// run (init/main.c), a panic, the OOM killer.
pub const CONSOLE_MARKS: &[&str] = &[
    "Initramfs unpacking failed",
    "No working init found",
    "Kernel panic",
    "Out of memory",
    "Oops:",
    "PANIC: double fault",
    "BUG: unable to handle",
    "general protection fault",
];

/// The marks of a guest kernel that crashed rather than failed to start its init:
/// x86's die() prints "Oops: ..." (arch/x86/kernel/dumpstack.c), a double fault
/// "PANIC: double fault" (arch/x86/kernel/traps.c), a bad access "BUG: unable to
/// handle" (arch/x86/mm/fault.c), and a panic "Kernel panic" (kernel/panic.c) unless
/// it is init/main.c's "No working init found", which is a setup error.
pub fn crash_line(marks: &[String]) -> Option<&str> {
    marks
        .iter()
        .find(|l| {
            [
                "Oops:",
                "PANIC: double fault",
                "BUG: unable to handle",
                "general protection fault",
            ]
            .iter()
            .any(|m| l.contains(m))
                || (l.contains("Kernel panic") && !l.contains("No working init found"))
        })
        .map(String::as_str)
}

/// The console lines holding one of [`CONSOLE_MARKS`] (at most 10).
pub fn console_marks(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| CONSOLE_MARKS.iter().any(|m| l.contains(m)))
        .take(10)
        .map(String::from)
        .collect()
}

fn tail(bytes: &[u8], n: usize) -> Vec<String> {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().map(|l| l.trim_end_matches('\r')).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// How much of a guest's console, report or VMM output is read (the start of it).
pub const MAX_LOG: u64 = 16 << 20;

/// The first `max` bytes of `p` (empty when unreadable).
fn read_capped(p: &Path, max: u64) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    if let Ok(f) = std::fs::File::open(p) {
        let _ = f.take(max).read_to_end(&mut out);
    }
    out
}

/// Boot once; `true` with the outcome when a signal stopped it.
fn boot_once(
    plan: &BootPlan,
    n: u32,
    dir: &Path,
    initrd: &Path,
    stop: &AtomicBool,
) -> Result<(Outcome, bool)> {
    let mut spec = plan.spec.clone();
    spec.initrd = initrd.to_path_buf();
    spec.console = dir.join(format!("console-{n}.log"));
    spec.report = dir.join(format!("report-{n}.log"));
    for f in [&spec.console, &spec.report] {
        std::fs::write(f, b"").with_context(|| format!("creating {}", f.display()))?;
    }
    let vmm_out = dir.join(format!("vmm-{n}.log"));
    let out = std::fs::File::create(&vmm_out)
        .with_context(|| format!("creating {}", vmm_out.display()))?;
    let err = out.try_clone()?;
    let start = Instant::now();
    let mut child = Command::new(&plan.program)
        .args(spec.argv())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: a terminal's Ctrl-C reaches passthru only, and the
        // whole group (the VMM and anything it started) is killed together.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", plan.program.display()))?;
    let pid = child.id();
    let kill_group = || {
        if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
        }
    };
    let mut timed_out = false;
    let mut stopped = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) => {}
            Err(e) => {
                kill_group();
                let _ = child.wait();
                return Err(e).context("waiting for the VMM");
            }
        }
        if stop.load(Ordering::SeqCst) {
            stopped = true;
        } else if start.elapsed() >= plan.timeout {
            timed_out = true;
        } else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        kill_group();
        let _ = child.wait();
        break None;
    };
    // The VMM is gone; anything left in its group goes too.
    kill_group();
    // A guest can write without end: read a bounded part of each file.
    let read = |p: &Path| read_capped(p, MAX_LOG);
    let console = read(&spec.console);
    Ok((
        Outcome {
            timed_out,
            exit_status: status.and_then(|s| s.code()),
            parsed: protocol::parse(&read(&spec.report)),
            console_tail: tail(&console, TAIL),
            console_marks: console_marks(&console),
            vmm_tail: tail(&read(&vmm_out), 10),
            seconds: start.elapsed().as_secs_f64(),
        },
        stopped,
    ))
}

/// Judge one boot. `earlier_ok`: a previous boot was `trial-ok`, so a failure
/// now is the device not coming back (the reset bug's signature).
pub fn judge(
    n: u32,
    o: &Outcome,
    functions: &[Function],
    earlier_ok: bool,
    host_after: Vec<HostSeen>,
) -> BootReport {
    let mut ev: Vec<String> = Vec::new();
    let recs = &o.parsed.records;
    let mut verdict = TrialVerdict::Ok;
    let mut worse = |v: TrialVerdict, why: String, ev: &mut Vec<String>| {
        ev.push(why);
        if verdict == TrialVerdict::Ok {
            verdict = v;
        }
    };
    if o.parsed.dropped > 0 {
        ev.push(format!(
            "{} damaged report line(s) dropped",
            o.parsed.dropped
        ));
    }
    let said_hello = recs.iter().any(|r| matches!(r, Record::Hello { .. }));
    let done = recs.iter().any(|r| matches!(r, Record::Done));
    if o.timed_out {
        worse(
            TrialVerdict::Timeout,
            format!(
                "guest killed at the timeout after {:.0} s{}",
                o.seconds,
                if said_hello {
                    ""
                } else {
                    " before its init reported"
                }
            ),
            &mut ev,
        );
    } else if let (false, Some(line)) = (said_hello, crash_line(&o.console_marks)) {
        worse(
            TrialVerdict::GuestCrashed,
            format!(
                "the guest kernel crashed before its init reported ({}): this boot never reached the device and says nothing about it; run the trial again",
                line.trim()
            ),
            &mut ev,
        );
    } else if !said_hello {
        worse(
            TrialVerdict::NotVisible,
            format!(
                "the guest sent no report (VMM exit status {}): the VMM could not start with the device or the guest died early",
                o.exit_status.map_or("none".into(), |c| c.to_string())
            ),
            &mut ev,
        );
        ev.extend(o.vmm_tail.iter().map(|l| format!("vmm: {l}")));
    }
    ev.extend(o.console_marks.iter().map(|l| format!("console: {l}")));
    if o.console_marks
        .iter()
        .any(|l| l.contains("Initramfs unpacking failed"))
    {
        ev.push("the guest kernel could not unpack the initramfs: give the guest more memory (--memory)".into());
    }
    for r in recs {
        if let Record::Module {
            name,
            error: Some(e),
        } = r
        {
            ev.push(format!("module {name} did not load: {e}"));
        }
    }
    // Device records, each given to the first function with its ids.
    let mut used = vec![false; recs.len()];
    for f in functions {
        let found = recs.iter().enumerate().find(|(i, r)| {
            !used[*i]
                && matches!(r, Record::Device { vendor, device, .. }
                    if *vendor == f.vendor && *device == f.device)
        });
        let Some((
            i,
            Record::Device {
                guest_bdf,
                all_ones,
                driver,
                bars,
                ..
            },
        )) = found
        else {
            // Only a complete report says a function is absent; a cut one is
            // judged as a crash below.
            if said_hello && done && !o.timed_out {
                worse(
                    TrialVerdict::NotVisible,
                    format!(
                        "{} ({}:{}): the guest did not see it",
                        f.bdf, f.vendor, f.device
                    ),
                    &mut ev,
                );
            }
            continue;
        };
        used[i] = true;
        let sizes: Vec<String> = bars
            .iter()
            .map(|b| format!("BAR{} {}", b.index, human_size(b.size)))
            .collect();
        ev.push(format!(
            "{} ({}:{}) is {guest_bdf} in the guest, {}, driver {}",
            f.bdf,
            f.vendor,
            f.device,
            if sizes.is_empty() {
                "no BARs".into()
            } else {
                sizes.join(", ")
            },
            driver.as_deref().unwrap_or("none")
        ));
        // The guest sizes the BARs QEMU gives it from the host's: say where they differ
        // (the ROM is left out when the VMM does not expose it).
        for hb in &f.host_bars {
            let g = bars.iter().find(|b| b.index == hb.index).map(|b| b.size);
            if g != Some(hb.size) && !(hb.index == 6 && g.is_none()) {
                ev.push(format!(
                    "{}: BAR{} is {} on the host, {} in the guest",
                    f.bdf,
                    hb.index,
                    human_size(hb.size),
                    g.map_or("absent".into(), human_size)
                ));
            }
        }
        if *all_ones {
            worse(
                TrialVerdict::NotVisible,
                format!("{}: its config space reads all ones in the guest", f.bdf),
                &mut ev,
            );
        } else if f.expects_driver() && driver.is_none() {
            worse(
                TrialVerdict::DriverFailed,
                format!(
                    "{}: no driver bound (expected {})",
                    f.bdf,
                    if f.modules.is_empty() {
                        f.host_driver.clone().unwrap_or_default()
                    } else {
                        f.modules.join(" or ")
                    }
                ),
                &mut ev,
            );
        }
    }
    for r in recs {
        if let Record::Health(h) = r {
            ev.push(format!("{} [{}]: {}", h.driver, h.kind, h.message));
            if h.kind == "fail" {
                worse(
                    TrialVerdict::DriverFailed,
                    format!("{} reported a failure", h.driver),
                    &mut ev,
                );
            }
        }
    }
    if said_hello && !done && !o.timed_out {
        worse(
            TrialVerdict::DriverFailed,
            "the guest stopped before its report ended (a crash or panic; see the console)".into(),
            &mut ev,
        );
    }
    for h in &host_after {
        if h.config != "readable" {
            ev.push(format!(
                "host after boot {n}: {} config {} (link {})",
                h.bdf, h.config, h.link
            ));
        }
    }
    if !matches!(
        verdict,
        TrialVerdict::Ok | TrialVerdict::Timeout | TrialVerdict::GuestCrashed
    ) && earlier_ok
    {
        ev.push(format!(
            "boot {n} failed after an earlier boot worked: the device did not come back"
        ));
        verdict = TrialVerdict::ResetFailed;
    }
    BootReport {
        boot: n,
        verdict,
        evidence: ev,
        records: o.parsed.records.clone(),
        dropped_records: o.parsed.dropped,
        exit_status: o.exit_status,
        seconds: o.seconds,
        console_tail: o.console_tail.clone(),
        host_after,
    }
}

/// The trial's verdict: the first failing boot's, `trial-reset-failed` when every
/// boot worked but the host read a function as all ones after one, else `trial-ok`.
/// No boot at all (interrupted first) has none.
pub fn overall(boots: &[BootReport]) -> Option<TrialVerdict> {
    if boots.is_empty() {
        return None;
    }
    if let Some(b) = boots.iter().find(|b| b.verdict != TrialVerdict::Ok) {
        return Some(b.verdict);
    }
    if boots
        .iter()
        .any(|b| b.host_after.iter().any(|h| h.config == "all-ones"))
    {
        return Some(TrialVerdict::ResetFailed);
    }
    Some(TrialVerdict::Ok)
}

fn human_size(b: u64) -> String {
    const K: u64 = 1024;
    match b {
        b if b >= K * K * K && b % (K * K * K) == 0 => format!("{}G", b / (K * K * K)),
        b if b >= K * K && b % (K * K) == 0 => format!("{}M", b / (K * K)),
        b if b >= K && b % K == 0 => format!("{}K", b / K),
        b => format!("{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_marks_pick_the_reasons_a_guest_never_reported() {
        // From Debian's 6.12 kernel under QEMU TCG with 192 MiB for a 62 MB initramfs.
        let log = b"[    2.158598] Trying to unpack rootfs image as initramfs...\r\n\
[    3.199503] Initramfs unpacking failed: write error\r\n\
[    3.375387] rtc_cmos 00:04: setting system clock to 2026-12-06T14:18:18 UTC (1796566698)\r\n\
[    5.452128] Failed to execute /init (error -2)\r\n\
[    5.453363] Kernel panic - not syncing: No working init found.  Try passing init= option to kernel.\r\n";
        let marks = console_marks(log);
        assert_eq!(marks.len(), 2);
        assert!(marks[0].ends_with("Initramfs unpacking failed: write error"));
        let o = Outcome {
            exit_status: Some(0),
            console_marks: marks,
            ..Outcome::default()
        };
        let r = judge(1, &o, &[], false, Vec::new());
        assert_eq!(r.verdict, TrialVerdict::NotVisible);
        assert!(r
            .evidence
            .iter()
            .any(|e| e.contains("give the guest more memory")));
    }

    /// A second boot whose kernel died before init (a double fault at boot, seen with
    /// Debian's 6.12 kernel under TCG nested in TCG) is a crash, not the device failing
    /// to come back after the first boot; an init that could not run stays a start
    /// failure (not-visible), and a panic after init reported is the driver's.
    #[test]
    fn a_kernel_crash_before_init_is_not_a_reset_failure() {
        let log = b"[    0.412345] traps: PANIC: double fault, error_code: 0x0\r\n\
[    0.412400] Kernel panic - not syncing: Fatal exception in interrupt\r\n";
        let o = Outcome {
            exit_status: Some(0),
            console_marks: console_marks(log),
            ..Outcome::default()
        };
        let r = judge(2, &o, &[], true, Vec::new());
        assert_eq!(r.verdict, TrialVerdict::GuestCrashed, "{r:#?}");
        assert!(r.evidence.iter().any(|e| e.contains("PANIC: double fault")));
        assert!(!r.evidence.iter().any(|e| e.contains("did not come back")));

        let no_init = b"[    5.453363] Kernel panic - not syncing: No working init found.\r\n";
        let o = Outcome {
            exit_status: Some(0),
            console_marks: console_marks(no_init),
            ..Outcome::default()
        };
        assert_eq!(
            judge(1, &o, &[], false, Vec::new()).verdict,
            TrialVerdict::NotVisible
        );
    }
}
