//! Shared by the trial tests: where the real module data lives.
#![allow(dead_code)]

use std::path::PathBuf;

/// The Debian kernel release of the committed module subset and the VM harness.
pub const RELEASE: &str = "6.12.118+deb12-amd64";

/// The committed subset (tests/data/trial/modtree/README.md says where it is from).
pub fn subset_tree() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/trial/modtree/lib/modules")
        .join(RELEASE)
}

/// The VM harness's kernel directory (tests/vm/fetch-kernel.sh): `vmlinuz` there.
pub fn harness_kernel() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_default();
    let cache = std::env::var_os("PT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(home).join(".cache/passthru"));
    cache.join("kernel").join(RELEASE)
}

/// A tool the test needs; a missing one fails the test with what to install.
pub fn need(tool: &str, package: &str) {
    let ok = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{tool} is missing: install the Debian package {package} (scripts/test-all.sh does)"
    );
}

/// A stand-in for QEMU and cloud-hypervisor: a shell script that logs its argv,
/// finds the console and report files it was given (`-serial file:X` twice, or
/// `--console file=X` / `--serial file=X`), checks that the kernel and initramfs it
/// was given exist, and then does what `mode-N` in its directory says for boot N:
///
/// - `ok`: copies `records-N` to the report file and exits 0;
/// - `crash`: writes the first 200 bytes of `records-N`, a panic line on the
///   console, and exits 1;
/// - `hang`: writes `records-N`, starts a `sleep` child (its pid in `child-N`) and
///   waits for it: only a kill of the whole process group ends both;
/// - `garbage`: writes random bytes to the report and exits 0.
pub struct StandIn {
    /// The script.
    pub program: PathBuf,
    /// Its directory (argv-N, pid-N, child-N, count, mode-N, records-N).
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl StandIn {
    /// A fresh stand-in.
    pub fn new() -> StandIn {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let program = dir.join("fake-vmm");
        let script = r#"#!/bin/bash
dir=$(dirname "$0")
n=$(( $(cat "$dir/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$dir/count"
printf '%s\n' "$@" > "$dir/argv-$n"
echo $$ > "$dir/pid-$n"
serials=(); console=""; report=""; kernel=""; initrd=""; prev=""
for a in "$@"; do
	case $prev in
	-serial) serials+=("${a#file:}") ;;
	--serial) report=${a#file=} ;;
	--console) console=${a#file=} ;;
	-kernel|--kernel) kernel=$a ;;
	-initrd|--initramfs) initrd=$a ;;
	esac
	prev=$a
done
if [[ ${#serials[@]} -gt 0 ]]; then console=${serials[0]}; report=${serials[1]}; fi
[[ -f $kernel ]] || { echo "fake-vmm: no kernel at $kernel" >&2; exit 3; }
[[ -f $initrd ]] || { echo "fake-vmm: no initramfs at $initrd" >&2; exit 3; }
echo "$initrd" > "$dir/initrd-$n"
mode=$(cat "$dir/mode-$n" 2>/dev/null || echo ok)
echo "[    0.000000] Linux version 6.12 (fake boot $n)" >> "$console"
case $mode in
ok) cat "$dir/records-$n" >> "$report"; exit 0 ;;
crash) head -c 200 "$dir/records-$n" >> "$report"; echo "Kernel panic - not syncing: fake" >> "$console"; exit 1 ;;
hang) cat "$dir/records-$n" >> "$report"; sleep 300 & echo $! > "$dir/child-$n"; wait ;;
garbage) head -c 3000 /dev/urandom >> "$report"; exit 0 ;;
esac
echo "fake-vmm: unknown mode $mode" >&2
exit 4
"#;
        std::fs::write(&program, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        StandIn {
            program,
            dir,
            _tmp: tmp,
        }
    }

    /// Boot `n` does `mode` and reports `records`.
    pub fn boot(&self, n: u32, mode: &str, records: &[passthru::trial::protocol::Record]) {
        std::fs::write(self.dir.join(format!("mode-{n}")), mode).unwrap();
        let text: String = records
            .iter()
            .map(passthru::trial::protocol::encode)
            .collect();
        std::fs::write(self.dir.join(format!("records-{n}")), text).unwrap();
    }

    /// How many times it was started.
    pub fn count(&self) -> u32 {
        std::fs::read_to_string(self.dir.join("count"))
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(0)
    }

    /// A file it wrote for boot `n` (`argv`, `pid`, `child`, `initrd`).
    pub fn read(&self, what: &str, n: u32) -> String {
        std::fs::read_to_string(self.dir.join(format!("{what}-{n}"))).unwrap_or_default()
    }

    /// Whether the process whose pid it wrote as `what-n` is still there 5 s on
    /// (SIGKILL is delivered asynchronously: a killed process can linger a moment).
    pub fn alive(&self, what: &str, n: u32) -> bool {
        let pid = self.read(what, n);
        let pid = pid.trim();
        assert!(!pid.is_empty(), "no {what}-{n} written");
        let start = std::time::Instant::now();
        // A zombie has no cmdline left; a live process does (the stand-in or sleep).
        while std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty()) {
            if start.elapsed() > std::time::Duration::from_secs(5) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }
}

/// The records a healthy guest sends for `devices` (vendor, device, driver).
pub fn healthy(devices: &[(&str, &str, &str)]) -> Vec<passthru::trial::protocol::Record> {
    use passthru::trial::protocol::{GuestBar, HealthLine, Record};
    let mut r = vec![Record::Hello {
        kernel: RELEASE.into(),
    }];
    for (i, (v, d, drv)) in devices.iter().enumerate() {
        r.push(Record::Device {
            vendor: (*v).into(),
            device: (*d).into(),
            guest_bdf: format!("0000:0{}:00.0", i + 1),
            bars: vec![GuestBar {
                index: 0,
                size: 0x4000,
            }],
            all_ones: false,
            driver: Some((*drv).into()),
        });
        r.push(Record::Health(HealthLine {
            driver: (*drv).into(),
            kind: "info".into(),
            message: format!("{drv} 0000:0{}:00.0: probed", i + 1),
        }));
    }
    r.push(Record::Done);
    r
}
