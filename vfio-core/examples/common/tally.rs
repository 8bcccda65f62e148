//! The pass/fail tally the real-kernel example programs (`vm_vfio`, `vm_edu`) keep:
//! one line per check, `ok` or `FAIL`, and the counts the VM harness reads.
//! Each program uses part of it.
#![allow(dead_code)]

use passthru_vfio_core::{verify, Error};

/// Checks passed and failed.
pub struct Tally {
    pub passed: u32,
    pub failed: u32,
    /// With `--fault-log FILE` (`vm_edu`): the kernel-log fault checks, kept apart
    /// (written to FILE, not counted in the exit status) so that the harness reports
    /// them as a step of their own; without it they count like every other check.
    pub faults: Option<Vec<String>>,
}

impl Tally {
    /// A tally with every check counted.
    pub fn new() -> Tally {
        Tally {
            passed: 0,
            failed: 0,
            faults: None,
        }
    }

    /// A check that the kernel logged an IOMMU fault.
    pub fn fault_check(&mut self, ok: bool, what: &str) -> bool {
        let Some(f) = self.faults.as_mut() else {
            return self.check(ok, what);
        };
        let line = format!("{} {what}", if ok { "ok  " } else { "FAIL" });
        println!("{line} [fault log]");
        f.push(line);
        ok
    }

    pub fn check(&mut self, ok: bool, what: &str) -> bool {
        if ok {
            self.passed += 1;
            println!("ok   {what}");
        } else {
            self.failed += 1;
            println!("FAIL {what}");
        }
        ok
    }

    /// A step that must succeed; returns its value.
    pub fn must<T>(&mut self, r: Result<T, Error>, what: &str) -> Option<T> {
        match r {
            Ok(v) => {
                self.check(true, what);
                Some(v)
            }
            Err(e) => {
                self.check(false, &format!("{what}: {}", verify::error_chain(&e)));
                None
            }
        }
    }

    /// A step that must fail with `errno`.
    pub fn errno<T>(&mut self, r: Result<T, Error>, errno: i32, what: &str) {
        match r {
            Ok(_) => {
                self.check(false, &format!("{what}: succeeded, expected errno {errno}"));
            }
            Err(e) => {
                let got = e.errno();
                self.check(
                    got == Some(errno),
                    &format!(
                        "{what}: errno {got:?} (want {errno}): {}",
                        verify::error_chain(&e)
                    ),
                );
            }
        }
    }
}
