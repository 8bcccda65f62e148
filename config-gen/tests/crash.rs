//! Fault injection: a process killed between any two writes of `apply` leaves every
//! target either old or new (never truncated), and whenever a target changed, a
//! complete backup set restores the old bytes.
//!
//! The parent re-runs this test binary as a child (`crash_child`) with the step to die
//! at; the child's hook calls `std::process::abort()` there: no destructors, no
//! flushing, like `kill -9`.

use passthru_config_gen::apply::{self, Step};
use passthru_config_gen::FileChange;
use std::fs;
use std::path::Path;
use std::process::Command;

const OLD_GRUB: &str = "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n";
const NEW_GRUB: &str = "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt\"\n";

/// (path, old, new): two existing files changed, one created.
fn cases() -> Vec<(&'static str, Option<String>, String)> {
    let big_old: String = (0..20_000).map(|i| format!("# user line {i}\n")).collect();
    let big_new =
        format!("{big_old}# >>> passthru\noptions vfio-pci ids=1002:7300\n# <<< passthru\n");
    vec![
        ("/etc/default/grub", Some(OLD_GRUB.into()), NEW_GRUB.into()),
        ("/etc/modprobe.d/vfio.conf", Some(big_old), big_new),
        (
            "/etc/modules-load.d/vfio.conf",
            None,
            "vfio\nvfio_pci\n".into(),
        ),
    ]
}

fn changes() -> Vec<FileChange> {
    cases()
        .into_iter()
        .map(|(p, o, n)| FileChange::new(p, o, n))
        .collect()
}

fn setup(root: &Path) {
    for (p, old, _) in cases() {
        if let Some(o) = old {
            let t = apply::under(root, p);
            fs::create_dir_all(t.parent().unwrap()).unwrap();
            fs::write(t, o).unwrap();
        }
    }
}

/// The child: apply, dying at step `PASSTHRU_CRASH_AT`.
#[test]
fn crash_child() {
    let (Some(root), Some(at)) = (
        std::env::var_os("PASSTHRU_CRASH_ROOT"),
        std::env::var_os("PASSTHRU_CRASH_AT"),
    ) else {
        return; // Only meaningful when spawned by the parent below.
    };
    let at: usize = at.to_str().unwrap().parse().unwrap();
    let mut n = 0;
    let mut hook = |_s: Step| {
        n += 1;
        if n == at {
            std::process::abort();
        }
    };
    apply::apply_with(Path::new(&root), &changes(), "20260101T000000Z", &mut hook).unwrap();
}

/// The child for rollbacks: apply fully, then roll back dying at step `PASSTHRU_CRASH_AT`.
#[test]
fn crash_rollback_child() {
    let (Some(root), Some(at)) = (
        std::env::var_os("PASSTHRU_CRASH_ROLLBACK_ROOT"),
        std::env::var_os("PASSTHRU_CRASH_AT"),
    ) else {
        return;
    };
    let at: usize = at.to_str().unwrap().parse().unwrap();
    let mut n = 0;
    let mut hook = |_s: Step| {
        n += 1;
        if n == at {
            std::process::abort();
        }
    };
    apply::rollback_with(Path::new(&root), false, &mut hook).unwrap();
}

#[test]
fn kill_during_rollback_then_rollback_again_restores_everything() {
    let exe = std::env::current_exe().unwrap();
    let probe = tempfile::tempdir().unwrap();
    setup(probe.path());
    apply::apply(probe.path(), &changes()).unwrap();
    let mut total = 0;
    apply::rollback_with(probe.path(), false, &mut |_| total += 1).unwrap();
    // Two restored files: a temp write and a rename each.
    assert_eq!(total, 4);
    for at in 1..=total {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        setup(root);
        apply::apply(root, &changes()).unwrap();
        let st = Command::new(&exe)
            .args([
                "--exact",
                "crash_rollback_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PASSTHRU_CRASH_ROLLBACK_ROOT", root)
            .env("PASSTHRU_CRASH_AT", at.to_string())
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            st.status.signal(),
            Some(6),
            "rollback child was meant to abort at step {at}"
        );
        for (p, old, new) in cases() {
            let now = fs::read(apply::under(root, p)).ok();
            assert!(
                now.as_deref() == old.as_deref().map(str::as_bytes)
                    || now.as_deref() == Some(new.as_bytes()),
                "step {at}: {p} torn"
            );
        }
        apply::rollback(root, false).unwrap();
        for (p, old, _) in cases() {
            let now = fs::read(apply::under(root, p)).ok();
            assert_eq!(
                now.as_deref(),
                old.as_deref().map(str::as_bytes),
                "step {at}: {p} after the second rollback"
            );
        }
    }
}

fn count_steps() -> usize {
    let d = tempfile::tempdir().unwrap();
    setup(d.path());
    let mut n = 0;
    apply::apply_with(d.path(), &changes(), "20260101T000000Z", &mut |_| n += 1).unwrap();
    n
}

#[test]
fn kill_between_any_two_writes_leaves_old_or_new() {
    let total = count_steps();
    // 3 copies of what is written + 2 backups + manifest + 3 targets, each a temp write
    // then a rename.
    assert_eq!(total, 18);
    let exe = std::env::current_exe().unwrap();
    for at in 1..=total {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        setup(root);
        let st = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("PASSTHRU_CRASH_ROOT", root)
            .env("PASSTHRU_CRASH_AT", at.to_string())
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            st.status.signal(),
            Some(6),
            "child was meant to abort (SIGABRT) at step {at}: {}",
            String::from_utf8_lossy(&st.stdout)
        );
        let mut any_new = false;
        for (p, old, new) in cases() {
            let now = fs::read(apply::under(root, p)).ok();
            let is_old = now.as_deref() == old.as_deref().map(str::as_bytes);
            let is_new = now.as_deref() == Some(new.as_bytes());
            assert!(
                is_old || is_new,
                "step {at}: {p} is neither old nor new ({} bytes)",
                now.map_or(0, |b| b.len())
            );
            any_new |= is_new;
        }
        let backup = apply::last_backup(root).unwrap();
        if any_new {
            assert!(
                backup.is_some(),
                "step {at}: a target changed without a complete backup set"
            );
        }
        // Recovery: roll back when a set exists, then everything is old again.
        if backup.is_some() {
            apply::rollback(root, false).unwrap();
            for (p, old, _) in cases() {
                let now = fs::read(apply::under(root, p)).ok();
                assert_eq!(
                    now.as_deref(),
                    old.as_deref().map(str::as_bytes),
                    "step {at}: {p} after rollback"
                );
            }
        }
        // And a fresh apply over the debris (stale temp files) succeeds.
        let fresh: Vec<FileChange> = cases()
            .into_iter()
            .map(|(p, _, n)| FileChange::new(p, fs::read_to_string(apply::under(root, p)).ok(), n))
            .collect();
        apply::apply(root, &fresh).unwrap();
        for (p, _, new) in cases() {
            assert_eq!(
                fs::read_to_string(apply::under(root, p)).unwrap(),
                new,
                "step {at}: {p} after re-apply"
            );
        }
    }
}
