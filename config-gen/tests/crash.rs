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

/// Re-run this test binary as the child test `name` on `root` (passed in `root_var`),
/// told to abort at step `at`; it must die of SIGABRT there.
fn run_child(name: &str, root_var: &str, root: &Path, at: usize) {
    use std::os::unix::process::ExitStatusExt;
    let st = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(root_var, root)
        .env("PASSTHRU_CRASH_AT", at.to_string())
        .output()
        .unwrap();
    assert_eq!(
        st.status.signal(),
        Some(6),
        "{name} was meant to abort (SIGABRT) at step {at}: {}{}",
        String::from_utf8_lossy(&st.stdout),
        String::from_utf8_lossy(&st.stderr)
    );
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
        run_child(
            "crash_rollback_child",
            "PASSTHRU_CRASH_ROLLBACK_ROOT",
            root,
            at,
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
    for at in 1..=total {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        setup(root);
        run_child("crash_child", "PASSTHRU_CRASH_ROOT", root, at);
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

// ---- a whole `config --apply` on a host the user configured by hand ----------------------
//
// The root is the generated scenario-amd tree (committed as tests/fixtures/scenario-amd;
// the scenario host (docs/rules.md): GTX 760 at 05:00 and Fury at 0b:00, both bound to vfio-pci by the user's own
// `options vfio-pci ids=` line), with more of the user's hand edits: comments and a
// softdep in vfio.conf, a grub with its own settings, /etc/modules, an initramfs-tools
// module list and a modules-load.d file. The plan is the one `passthru config 0b:00`
// makes (facts read from the root, then generate).

use passthru_config_gen::{facts, generate, Request};

const USER_VFIO: &str = "# my GPUs, bound by hand\noptions vfio-pci ids=10de:1187,10de:0e0a,1002:7300,1002:aae8 disable_vga=1\nsoftdep nouveau pre: vfio-pci\n";
const USER_GRUB: &str = "# If you change this file, run 'update-grub' afterwards\nGRUB_DEFAULT=saved\nGRUB_SAVEDEFAULT=true\nGRUB_TIMEOUT=3\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet amd_iommu=on  video=efifb:off\"   # mine\nGRUB_CMDLINE_LINUX=\"\"\n#GRUB_TERMINAL=console\n";
const USER_MODULES: &str = "# /etc/modules: kernel modules to load at boot time.\nvfio\nvfio_iommu_type1\nvfio_pci\nkvm_amd\n";
const USER_INITRAMFS: &str =
    "# List of modules that you want to include in your initramfs.\nraid1\n";
const USER_LOAD: &str = "# mine\nnct6775\n";

/// The user's files: (system path, bytes before any run).
fn user_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("/etc/modprobe.d/vfio.conf", USER_VFIO),
        ("/etc/default/grub", USER_GRUB),
        ("/etc/modules", USER_MODULES),
        ("/etc/initramfs-tools/modules", USER_INITRAMFS),
        ("/etc/modules-load.d/vfio.conf", USER_LOAD),
    ]
}

fn user_host() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    // The generator writes the committed tests/fixtures/scenario-amd tree (checked by
    // iommu-groups' tests/scenario.rs); writing it here keeps the test in the package.
    passthru_iommu_groups::fixture::scenario_amd()
        .write(d.path())
        .unwrap();
    for (p, text) in user_files() {
        let t = apply::under(d.path(), p);
        fs::create_dir_all(t.parent().unwrap()).unwrap();
        fs::write(t, text).unwrap();
    }
    // Debian's initramfs-tools is installed.
    let marker = apply::under(d.path(), "/usr/sbin/update-initramfs");
    fs::create_dir_all(marker.parent().unwrap()).unwrap();
    fs::write(marker, "").unwrap();
    d
}

fn config_plan(root: &Path) -> passthru_config_gen::Plan {
    let host = passthru_iommu_groups::Host::load(root).unwrap();
    let f = facts::from_host(&host).unwrap();
    let req = Request {
        sets: vec![vec!["0b:00".parse().unwrap()]],
        ..Request::default()
    };
    let plan = generate(&f, &req).unwrap();
    plan.check_applicable().unwrap();
    plan
}

/// Whether `old` is a subsequence of `new`, byte by byte: every byte the user wrote is
/// still there, in order (passthru only inserts).
fn keeps_every_byte(old: &[u8], new: &[u8]) -> bool {
    let mut it = new.iter();
    old.iter().all(|b| it.any(|n| n == b))
}

/// The ids vfio-pci binds by modprobe.d, read as modprobe does: every `options vfio-pci`
/// (or `vfio_pci`) line of /etc/modprobe.d/*.conf, files in name order, the last `ids=`
/// wins.
fn bound_ids(root: &Path) -> Vec<String> {
    let dir = apply::under(root, "/etc/modprobe.d");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    names.sort();
    let mut last = String::new();
    for n in names {
        for l in fs::read_to_string(dir.join(n)).unwrap().lines() {
            let t: Vec<&str> = l.split_whitespace().collect();
            if t.len() > 2 && t[0] == "options" && t[1].replace('-', "_") == "vfio_pci" {
                if let Some(v) = t[2..].iter().find_map(|o| o.strip_prefix("ids=")) {
                    last = v.to_string();
                }
            }
        }
    }
    let mut ids: Vec<String> = last.split(',').map(str::to_string).collect();
    ids.sort();
    ids
}

fn check_user_kept(root: &Path, step: &str) {
    for (p, text) in user_files() {
        let now = fs::read(apply::under(root, p)).unwrap();
        assert!(
            keeps_every_byte(text.as_bytes(), &now),
            "{step}: {p} lost bytes the user wrote:\n{}",
            String::from_utf8_lossy(&now)
        );
    }
    assert_eq!(
        bound_ids(root),
        ["1002:7300", "1002:aae8", "10de:0e0a", "10de:1187"],
        "{step}: a device bound to vfio-pci before is not any more"
    );
}

fn check_exactly_as_before(root: &Path, step: &str) {
    for (p, text) in user_files() {
        assert_eq!(
            fs::read_to_string(apply::under(root, p)).unwrap(),
            text,
            "{step}: {p}"
        );
    }
}

/// The child: `config 0b:00 --apply` on `PASSTHRU_CONFIG_CRASH_ROOT`, dying at step
/// `PASSTHRU_CRASH_AT`.
#[test]
fn config_crash_child() {
    let (Some(root), Some(at)) = (
        std::env::var_os("PASSTHRU_CONFIG_CRASH_ROOT"),
        std::env::var_os("PASSTHRU_CRASH_AT"),
    ) else {
        return;
    };
    let at: usize = at.to_str().unwrap().parse().unwrap();
    let plan = config_plan(Path::new(&root));
    let mut n = 0;
    apply::apply_with(
        Path::new(&root),
        &plan.files,
        "20260101T000000Z",
        &mut |_| {
            n += 1;
            if n == at {
                std::process::abort();
            }
        },
    )
    .unwrap();
}

#[test]
fn config_apply_on_a_hand_configured_host_keeps_every_user_byte_and_binding() {
    // The whole run once: apply, a second apply that changes nothing, rollback.
    let d = user_host();
    let root = d.path();
    let plan = config_plan(root);
    let written: Vec<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        written,
        [
            "/etc/default/grub",
            "/etc/modprobe.d/vfio.conf",
            "/etc/modules-load.d/vfio.conf",
            "/etc/initramfs-tools/modules"
        ]
    );
    let mut total = 0;
    let a = apply::apply_with(root, &plan.files, "20260101T000000Z", &mut |_| total += 1).unwrap();
    assert!(a.backup.is_some());
    // 4 files: a copy of what is written, a backup and the target each, then the
    // manifest; every one a temp write and a rename.
    assert_eq!(total, (4 * 3 + 1) * 2);
    check_user_kept(root, "after apply");
    let again = config_plan(root);
    assert!(again.is_noop(), "second plan changes {:?}", again.files);
    assert_eq!(
        apply::apply(root, &again.all_files).unwrap().changed,
        Vec::<String>::new()
    );
    assert_eq!(
        fs::read_dir(root.join(apply::BACKUP_DIR)).unwrap().count(),
        1
    );
    check_user_kept(root, "after the second apply");
    apply::rollback(root, false).unwrap();
    check_exactly_as_before(root, "after rollback");

    // Killed between any two durable steps: the user's bytes and bindings hold; a
    // rollback (when a set exists) gives the exact starting files; a new apply works.
    for at in 1..=total {
        let d = user_host();
        let root = d.path();
        run_child("config_crash_child", "PASSTHRU_CONFIG_CRASH_ROOT", root, at);
        let step = format!("killed at step {at}");
        check_user_kept(root, &step);
        if apply::last_backup(root).unwrap().is_some() {
            apply::rollback(root, false).unwrap();
            check_exactly_as_before(root, &step);
        }
        let plan = config_plan(root);
        apply::apply(root, &plan.files).unwrap();
        check_user_kept(root, &step);
        assert!(
            config_plan(root).is_noop(),
            "{step}: not idempotent after recovery"
        );
    }
}
