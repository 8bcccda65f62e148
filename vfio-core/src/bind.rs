//! Temporarily bind a device to vfio-pci with `driver_override`, and put the original
//! driver back on drop, on error and on unwind. A device that had a driver is never
//! left without one: restoring tries `drivers_probe`, then an explicit `bind`.
//!
//! Those writes only mean something to a running kernel: [`SysfsRoot`] refuses them
//! unless its root is the live `/` with sysfs mounted on `/sys` ([`live_root`]), so a
//! snapshot or fixture tree passed as `--root` is never written to. [`in_use`] says
//! why a device should not be unbound (a mounted disk, an interface that is up, a
//! display on its driver).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use passthru_pci_ids::Bdf;

use crate::error::{Error, HostPath, Result};

/// The sysfs writes binding needs; [`SysfsRoot`] does them under a root directory.
pub trait PciSysfs {
    /// The device's driver (`None` when unbound).
    ///
    /// # Errors
    ///
    /// Error::Sysfs naming the path that cannot be read.
    fn driver(&self, bdf: Bdf) -> Result<Option<String>>;
    /// `driver_override` (`None` when empty or `(null)`).
    ///
    /// # Errors
    ///
    /// Error::Sysfs naming the path that cannot be read.
    fn driver_override(&self, bdf: Bdf) -> Result<Option<String>>;
    /// Write `driver_override` (`None` clears it).
    ///
    /// # Errors
    ///
    /// Error::Sysfs naming the file that cannot be written.
    fn set_driver_override(&self, bdf: Bdf, driver: Option<&str>) -> Result<()>;
    /// `echo BDF > drivers/DRIVER/unbind`.
    ///
    /// # Errors
    ///
    /// Error::Sysfs naming the file that cannot be written.
    fn unbind(&self, bdf: Bdf, driver: &str) -> Result<()>;
    /// `echo BDF > drivers_probe`.
    ///
    /// # Errors
    ///
    /// Error::Sysfs naming the file that cannot be written.
    fn probe(&self, bdf: Bdf) -> Result<()>;
    /// `echo BDF > drivers/DRIVER/bind`.
    ///
    /// # Errors
    ///
    /// Error::Sysfs naming the file that cannot be written.
    fn bind(&self, bdf: Bdf, driver: &str) -> Result<()>;
}

/// [`PciSysfs`] over `ROOT/sys/bus/pci`.
#[derive(Debug, Clone)]
pub struct SysfsRoot {
    root: PathBuf,
    /// Why writes are refused (`None`: the live root, writes allowed).
    refuse: Option<String>,
}

/// `SYSFS_MAGIC` (include/uapi/linux/magic.h): the `f_type` statfs(2) reports for sysfs.
pub const SYSFS_MAGIC: i128 = 0x6265_6572;

/// `Ok` when `root` is the running system's `/` and `/sys` is a mounted sysfs: the only
/// place where writing `driver_override`, `unbind` or `drivers_probe` reaches a kernel.
/// Otherwise a sentence saying why not.
///
/// # Errors
///
/// A sentence naming what is not the live system: `root` is not `/`, or `/sys` is not a
/// mounted sysfs or cannot be inspected.
pub fn live_root(root: &Path) -> std::result::Result<(), String> {
    match fs::canonicalize(root) {
        Ok(p) if p == Path::new("/") => {}
        Ok(p) => {
            return Err(format!(
                "{} is not the live / (a snapshot or fixture tree has no kernel behind its sys/)",
                p.display()
            ))
        }
        Err(e) => return Err(format!("{}: {e}", root.display())),
    }
    match rustix::fs::statfs("/sys") {
        Ok(s) if i128::from(s.f_type) == SYSFS_MAGIC => Ok(()),
        Ok(_) => Err("/sys is not a mounted sysfs".into()),
        Err(e) => Err(format!("/sys: {e}")),
    }
}

impl SysfsRoot {
    /// Work under `root`. Reads work under any root; writes only when it is the live
    /// `/` ([`live_root`]), else each write fails naming the reason.
    pub fn new(root: &Path) -> Self {
        SysfsRoot {
            root: root.to_path_buf(),
            refuse: live_root(root).err(),
        }
    }

    /// A root whose writes land in plain files (unit tests of the write paths).
    #[cfg(test)]
    fn scratch(root: &Path) -> Self {
        SysfsRoot {
            root: root.to_path_buf(),
            refuse: None,
        }
    }

    fn bus(&self) -> HostPath {
        HostPath::new(&self.root, "sys/bus/pci")
    }

    fn write(&self, path: HostPath, data: &str) -> Result<()> {
        if let Some(why) = &self.refuse {
            return Err(Error::Sysfs {
                path,
                source: io::Error::other(format!("not written: {why}")),
            });
        }
        fs::write(path.full(), data).map_err(|source| Error::Sysfs { path, source })
    }
}

/// Why unbinding `bdf` from its driver would take something away from the host, read
/// under `root`: each reason is one phrase (empty: nothing seen in use). Looked at: its
/// network interfaces (`net/*`, up when `flags` has IFF_UP or `operstate` is `up`),
/// the disks below it (`.../block/*`, in use when a partition or the disk itself is
/// mounted per `proc/self/mountinfo`, is swap per `proc/swaps`, or has holders such as
/// LVM or RAID), and a display controller (class 03) bound to a host driver.
pub fn in_use(root: &Path, bdf: Bdf) -> Vec<String> {
    let dev = crate::host::device_dir(root, bdf);
    let read = |p: &Path| fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let mut out = Vec::new();
    // Network interfaces.
    if let Ok(rd) = fs::read_dir(dev.join("net")) {
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            let d = dev.join("net").join(&n);
            // include/uapi/linux/if.h: IFF_UP is 0x1.
            let flags_up = read(&d.join("flags"))
                .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
                .is_some_and(|f| f & 0x1 != 0);
            let oper_up = read(&d.join("operstate")).as_deref() == Some("up");
            if flags_up || oper_up {
                out.push(format!("network interface {n} is up"));
            }
        }
    }
    // Disks below the device (nvme/nvme0/nvme0n1, host0/.../block/sda).
    let mut disks = Vec::new();
    find_block_dirs(&dev, 0, &mut disks);
    disks.sort();
    if !disks.is_empty() {
        let mountinfo = read(&root.join("proc/self/mountinfo")).unwrap_or_default();
        let swaps = read(&root.join("proc/swaps")).unwrap_or_default();
        for disk in disks {
            let name = disk
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut parts = vec![disk.clone()];
            if let Ok(rd) = fs::read_dir(&disk) {
                parts.extend(
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.join("partition").exists()),
                );
            }
            parts.sort();
            for p in parts {
                let pname = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if let Some(mm) = read(&p.join("dev")) {
                    // proc_pid_mountinfo(5): field 3 is the filesystem's major:minor, 5 the mount point.
                    for l in mountinfo.lines() {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        if f.get(2) == Some(&mm.as_str()) {
                            out.push(format!(
                                "disk {name}: {pname} is mounted on {}",
                                f.get(4).unwrap_or(&"?")
                            ));
                        }
                    }
                }
                if swaps
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(&format!("/dev/{pname}")))
                {
                    out.push(format!("disk {name}: {pname} is in use as swap"));
                }
                if fs::read_dir(p.join("holders")).is_ok_and(|mut h| h.next().is_some()) {
                    out.push(format!(
                        "disk {name}: {pname} is held by another block device (LVM, RAID, dm)"
                    ));
                }
            }
        }
    }
    // A display controller on a host driver drives a screen (or could at any moment).
    let class = read(&dev.join("class"))
        .and_then(|c| u32::from_str_radix(c.trim_start_matches("0x"), 16).ok());
    if class.is_some_and(|c| c >> 16 == 0x03) {
        if let Ok(Some(d)) = crate::host::driver(root, bdf) {
            if !crate::host::driver_keeps_viable(Some(&d)) {
                out.push(format!("display controller bound to {d}"));
            }
        }
    }
    out
}

/// Collect the disks below `dir`: directories whose `subsystem` link names `block`
/// (`.../block/sda` for SCSI and ATA, `nvme/nvme0/nvme0n1` for NVMe), without following
/// links and a few levels deep; their partitions are found from the disk.
fn find_block_dirs(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    if depth > 8 {
        return;
    }
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let p = e.path();
        let subsystem = fs::read_link(p.join("subsystem")).ok();
        if subsystem.is_some_and(|l| l.file_name().is_some_and(|n| n == "block")) {
            out.push(p);
        } else {
            find_block_dirs(&p, depth + 1, out);
        }
    }
}

impl PciSysfs for SysfsRoot {
    fn driver(&self, bdf: Bdf) -> Result<Option<String>> {
        crate::host::driver(&self.root, bdf)
    }

    fn driver_override(&self, bdf: Bdf) -> Result<Option<String>> {
        let path = self
            .bus()
            .join("devices")
            .join(bdf.to_string())
            .join("driver_override");
        match fs::read_to_string(path.full()) {
            Ok(s) => {
                let s = s.trim();
                Ok((!s.is_empty() && s != "(null)").then(|| s.to_owned()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Sysfs { path, source }),
        }
    }

    fn set_driver_override(&self, bdf: Bdf, driver: Option<&str>) -> Result<()> {
        let path = self
            .bus()
            .join("devices")
            .join(bdf.to_string())
            .join("driver_override");
        self.write(path, driver.unwrap_or("\n"))
    }

    fn unbind(&self, bdf: Bdf, driver: &str) -> Result<()> {
        self.write(
            self.bus().join("drivers").join(driver).join("unbind"),
            &bdf.to_string(),
        )
    }

    fn probe(&self, bdf: Bdf) -> Result<()> {
        self.write(self.bus().join("drivers_probe"), &bdf.to_string())
    }

    fn bind(&self, bdf: Bdf, driver: &str) -> Result<()> {
        self.write(
            self.bus().join("drivers").join(driver).join("bind"),
            &bdf.to_string(),
        )
    }
}

/// The driver VFIO needs.
pub const VFIO_PCI: &str = "vfio-pci";

/// A driver restore that failed while a [`BindGuard`] was dropped (drop cannot return
/// it; [`BindGuard::restore`] returns it instead).
#[derive(Debug)]
pub struct RestoreFailure {
    /// The device left on the wrong driver (or none).
    pub bdf: Bdf,
    /// What went wrong.
    pub error: Error,
}

/// Where dropped [`BindGuard`]s record failed restores: the guard's own log when it
/// was given one ([`BindGuard::with_log`]), else a process-wide one read with
/// [`take_restore_failures`]. The library prints nothing.
#[derive(Debug, Clone, Default)]
pub struct RestoreLog(Arc<Mutex<Vec<RestoreFailure>>>);

impl RestoreLog {
    /// An empty log.
    pub fn new() -> Self {
        RestoreLog::default()
    }

    fn push(&self, f: RestoreFailure) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(f);
    }

    /// The failures recorded so far, oldest first; the log is left empty.
    pub fn take(&self) -> Vec<RestoreFailure> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The process-wide log of guards dropped without a log of their own.
static UNLOGGED: Mutex<Vec<RestoreFailure>> = Mutex::new(Vec::new());

/// Failed restores of dropped guards that had no [`RestoreLog`], oldest first; a
/// program binding devices should read these before it exits and report them.
pub fn take_restore_failures() -> Vec<RestoreFailure> {
    std::mem::take(&mut *UNLOGGED.lock().unwrap_or_else(|p| p.into_inner()))
}

/// A device bound to vfio-pci for as long as the guard lives.
#[derive(Debug)]
#[must_use = "dropping the guard rebinds the original driver at once"]
pub struct BindGuard<'a, F: PciSysfs + ?Sized> {
    sysfs: &'a F,
    bdf: Bdf,
    original: Option<String>,
    original_override: Option<String>,
    changed: bool,
    log: Option<RestoreLog>,
}

impl<'a, F: PciSysfs + ?Sized> BindGuard<'a, F> {
    /// Bind `bdf` to vfio-pci (nothing to do, and nothing to restore, when it is
    /// already there). On any failure the original driver is restored before returning.
    ///
    /// # Errors
    ///
    /// Error::Sysfs naming a sysfs file that cannot be read or written, or Error::BindState
    /// when the device is not on the expected driver after a step; the original driver is
    /// restored first.
    pub fn bind(sysfs: &'a F, bdf: Bdf) -> Result<Self> {
        Self::bind_with(sysfs, bdf, None)
    }

    /// [`BindGuard::bind`] whose guard records a failed restore in `log`, including
    /// the restore after a failed bind.
    ///
    /// # Errors
    ///
    /// As BindGuard::bind.
    pub fn bind_logged(sysfs: &'a F, bdf: Bdf, log: &RestoreLog) -> Result<Self> {
        Self::bind_with(sysfs, bdf, Some(log.clone()))
    }

    fn bind_with(sysfs: &'a F, bdf: Bdf, log: Option<RestoreLog>) -> Result<Self> {
        let original = sysfs.driver(bdf)?;
        let original_override = sysfs.driver_override(bdf)?;
        let mut guard = BindGuard {
            sysfs,
            bdf,
            original,
            original_override,
            changed: false,
            log,
        };
        if guard.original.as_deref() == Some(VFIO_PCI) {
            return Ok(guard);
        }
        guard.changed = true;
        sysfs.set_driver_override(bdf, Some(VFIO_PCI))?;
        if let Some(d) = guard.original.clone() {
            sysfs.unbind(bdf, &d)?;
        }
        sysfs.probe(bdf)?;
        let now = sysfs.driver(bdf)?;
        if now.as_deref() != Some(VFIO_PCI) {
            return Err(Error::BindState {
                bdf,
                step: "binding to vfio-pci",
                expected: VFIO_PCI.into(),
                found: now,
            });
        }
        Ok(guard)
        // On every `?` above, `guard` drops and restores.
    }

    /// Record a failed restore on drop in `log` (instead of the process-wide log).
    pub fn with_log(mut self, log: &RestoreLog) -> Self {
        self.log = Some(log.clone());
        self
    }

    /// The driver the device had before.
    pub fn original_driver(&self) -> Option<&str> {
        self.original.as_deref()
    }

    /// Whether this guard changed the binding (and will restore it).
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Put the original driver back now, reporting failures.
    ///
    /// # Errors
    ///
    /// Error::Sysfs naming a file that cannot be written, or Error::BindState when the
    /// device is not back on its original driver.
    pub fn restore(mut self) -> Result<()> {
        let r = self.restore_inner();
        self.changed = false;
        r
    }

    fn restore_inner(&mut self) -> Result<()> {
        if !self.changed {
            return Ok(());
        }
        let s = self.sysfs;
        let bdf = self.bdf;
        s.set_driver_override(bdf, self.original_override.as_deref())?;
        let now = s.driver(bdf)?;
        if now.is_some() && now != self.original {
            s.unbind(bdf, now.as_deref().unwrap_or_default())?;
        }
        let Some(orig) = self.original.clone() else {
            return Ok(());
        };
        if s.driver(bdf)?.as_deref() == Some(orig.as_str()) {
            return Ok(());
        }
        s.probe(bdf)?;
        if s.driver(bdf)?.as_deref() == Some(orig.as_str()) {
            return Ok(());
        }
        s.bind(bdf, &orig)?;
        let found = s.driver(bdf)?;
        if found.as_deref() == Some(orig.as_str()) {
            Ok(())
        } else {
            Err(Error::BindState {
                bdf,
                step: "restoring the original driver",
                expected: orig,
                found,
            })
        }
    }
}

impl<F: PciSysfs + ?Sized> Drop for BindGuard<'_, F> {
    fn drop(&mut self) {
        if self.changed {
            if let Err(error) = self.restore_inner() {
                let f = RestoreFailure {
                    bdf: self.bdf,
                    error,
                };
                match &self.log {
                    Some(log) => log.push(f),
                    None => UNLOGGED.lock().unwrap_or_else(|p| p.into_inner()).push(f),
                }
            }
            self.changed = false;
        }
    }
}

/// Bind several devices (a device and its group peers); restored in reverse order on
/// drop. On failure the ones already bound are restored. Every guard records a failed
/// restore on drop in `log`.
///
/// # Errors
///
/// As BindGuard::bind, for the first device that fails; the devices bound before it are
/// restored.
pub fn bind_all<'a, F: PciSysfs + ?Sized>(
    sysfs: &'a F,
    bdfs: &[Bdf],
    log: &RestoreLog,
) -> Result<Vec<BindGuard<'a, F>>> {
    let mut out: Vec<BindGuard<'a, F>> = Vec::new();
    for &b in bdfs {
        match BindGuard::bind_logged(sysfs, b, log) {
            Ok(g) => out.push(g),
            Err(e) => {
                while let Some(g) = out.pop() {
                    drop(g);
                }
                return Err(e);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod fake {
    //! A kernel stand-in with the bind rules of drivers/pci/pci-driver.c: probe binds
    //! an unbound device to `driver_override` when set, else to its id-matched driver.
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    #[derive(Default, Debug)]
    pub struct FakeKernel {
        pub drivers: RefCell<HashMap<Bdf, Option<String>>>,
        pub overrides: RefCell<HashMap<Bdf, Option<String>>>,
        /// The driver matching each device by id (what probe picks without override).
        pub native: HashMap<Bdf, String>,
        /// Drivers that refuse to bind (probe fails).
        pub refuse: Vec<String>,
        pub log: RefCell<Vec<String>>,
    }

    impl FakeKernel {
        pub fn with(bdf: Bdf, driver: Option<&str>) -> Self {
            let mut k = FakeKernel::default();
            k.drivers
                .borrow_mut()
                .insert(bdf, driver.map(str::to_owned));
            if let Some(d) = driver {
                k.native.insert(bdf, d.to_owned());
            }
            k
        }
        fn try_bind(&self, bdf: Bdf, d: &str) {
            if !self.refuse.iter().any(|r| r == d) {
                self.drivers.borrow_mut().insert(bdf, Some(d.to_owned()));
            }
        }
    }

    impl PciSysfs for FakeKernel {
        fn driver(&self, bdf: Bdf) -> Result<Option<String>> {
            Ok(self.drivers.borrow().get(&bdf).cloned().flatten())
        }
        fn driver_override(&self, bdf: Bdf) -> Result<Option<String>> {
            Ok(self.overrides.borrow().get(&bdf).cloned().flatten())
        }
        fn set_driver_override(&self, bdf: Bdf, d: Option<&str>) -> Result<()> {
            self.log
                .borrow_mut()
                .push(format!("override {}", d.unwrap_or("-")));
            self.overrides
                .borrow_mut()
                .insert(bdf, d.map(str::to_owned));
            Ok(())
        }
        fn unbind(&self, bdf: Bdf, d: &str) -> Result<()> {
            self.log.borrow_mut().push(format!("unbind {d}"));
            self.drivers.borrow_mut().insert(bdf, None);
            Ok(())
        }
        fn probe(&self, bdf: Bdf) -> Result<()> {
            self.log.borrow_mut().push("probe".into());
            if self.driver(bdf)?.is_some() {
                return Ok(());
            }
            let want = self
                .driver_override(bdf)?
                .or_else(|| self.native.get(&bdf).cloned());
            if let Some(d) = want {
                self.try_bind(bdf, &d);
            }
            Ok(())
        }
        fn bind(&self, bdf: Bdf, d: &str) -> Result<()> {
            self.log.borrow_mut().push(format!("bind {d}"));
            self.try_bind(bdf, d);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeKernel;
    use super::*;

    fn gpu() -> Bdf {
        "0b:00.0".parse().unwrap()
    }

    // The kernel's binding interface (Documentation/ABI/testing/sysfs-bus-pci): driver_override, unbind, drivers_probe.
    #[test]
    fn binds_with_override_and_restores_on_drop() {
        let k = FakeKernel::with(gpu(), Some("amdgpu"));
        {
            let g = BindGuard::bind(&k, gpu()).unwrap();
            assert!(g.changed());
            assert_eq!(k.driver(gpu()).unwrap().as_deref(), Some("vfio-pci"));
        }
        assert_eq!(k.driver(gpu()).unwrap().as_deref(), Some("amdgpu"));
        assert_eq!(k.driver_override(gpu()).unwrap(), None);
        assert_eq!(
            *k.log.borrow(),
            [
                "override vfio-pci",
                "unbind amdgpu",
                "probe",
                "override -",
                "unbind vfio-pci",
                "probe"
            ]
        );
    }

    #[test]
    fn already_on_vfio_pci_is_left_alone() {
        let k = FakeKernel::with(gpu(), Some("vfio-pci"));
        let g = BindGuard::bind(&k, gpu()).unwrap();
        assert!(!g.changed());
        drop(g);
        assert!(k.log.borrow().is_empty());
    }

    #[test]
    fn failed_bind_restores_the_original_driver() {
        let mut k = FakeKernel::with(gpu(), Some("amdgpu"));
        k.refuse.push("vfio-pci".into());
        let e = BindGuard::bind(&k, gpu()).unwrap_err();
        assert!(matches!(e, Error::BindState { .. }), "{e}");
        assert!(e.to_string().contains("0000:0b:00.0"), "{e}");
        assert_eq!(k.driver(gpu()).unwrap().as_deref(), Some("amdgpu"));
    }

    #[test]
    fn panic_while_bound_restores_the_original_driver() {
        let k = FakeKernel::with(gpu(), Some("snd_hda_intel"));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = BindGuard::bind(&k, gpu()).unwrap();
            panic!("boom");
        }));
        assert!(r.is_err());
        assert_eq!(k.driver(gpu()).unwrap().as_deref(), Some("snd_hda_intel"));
    }

    #[test]
    fn probe_that_does_not_rebind_falls_back_to_explicit_bind() {
        let mut k = FakeKernel::with(gpu(), Some("amdgpu"));
        k.native.clear(); // drivers_probe finds nothing matching
        let g = BindGuard::bind(&k, gpu()).unwrap();
        g.restore().unwrap();
        assert_eq!(k.driver(gpu()).unwrap().as_deref(), Some("amdgpu"));
        assert!(k.log.borrow().iter().any(|l| l == "bind amdgpu"));
    }

    #[test]
    fn driverless_device_stays_driverless_after_restore() {
        let k = FakeKernel::with(gpu(), None);
        drop(BindGuard::bind(&k, gpu()).unwrap());
        assert_eq!(k.driver(gpu()).unwrap(), None);
    }

    #[test]
    fn previous_override_is_put_back() {
        let k = FakeKernel::with(gpu(), Some("amdgpu"));
        k.overrides
            .borrow_mut()
            .insert(gpu(), Some("amdgpu".into()));
        drop(BindGuard::bind(&k, gpu()).unwrap());
        assert_eq!(k.driver_override(gpu()).unwrap().as_deref(), Some("amdgpu"));
    }

    #[test]
    fn sysfs_root_writes_land_in_the_right_files() {
        let t = tempfile::tempdir().unwrap();
        crate::host::fixture::add(t.path(), "0000:0b:00.0", 20, Some("amdgpu"));
        let dev = t.path().join("sys/bus/pci/devices/0000:0b:00.0");
        std::fs::write(dev.join("driver_override"), "(null)\n").unwrap();
        std::fs::create_dir_all(t.path().join("sys/bus/pci/drivers/amdgpu")).unwrap();
        let s = SysfsRoot::scratch(t.path());
        assert_eq!(s.driver(gpu()).unwrap().as_deref(), Some("amdgpu"));
        assert_eq!(s.driver_override(gpu()).unwrap(), None);
        s.set_driver_override(gpu(), Some("vfio-pci")).unwrap();
        s.unbind(gpu(), "amdgpu").unwrap();
        s.probe(gpu()).unwrap();
        let read = |p: &str| std::fs::read_to_string(t.path().join(p)).unwrap();
        assert_eq!(
            read("sys/bus/pci/devices/0000:0b:00.0/driver_override"),
            "vfio-pci"
        );
        assert_eq!(read("sys/bus/pci/drivers/amdgpu/unbind"), "0000:0b:00.0");
        assert_eq!(read("sys/bus/pci/drivers_probe"), "0000:0b:00.0");
        // On a fixture tree nothing rebinds, so binding reports the state it found.
        let e = BindGuard::bind(&s, gpu()).unwrap_err();
        assert!(
            e.to_string()
                .contains("driver is amdgpu instead of vfio-pci"),
            "{e}"
        );
    }

    #[test]
    fn a_root_other_than_the_live_one_is_never_written() {
        let t = tempfile::tempdir().unwrap();
        crate::host::fixture::add(t.path(), "0000:0b:00.0", 20, Some("amdgpu"));
        let s = SysfsRoot::new(t.path());
        let e = s.set_driver_override(gpu(), Some("vfio-pci")).unwrap_err();
        assert!(
            crate::verify::error_chain(&e).contains("is not the live /"),
            "{}",
            crate::verify::error_chain(&e)
        );
        let e = BindGuard::bind(&s, gpu()).unwrap_err();
        assert!(matches!(e, Error::Sysfs { .. }), "{e}");
        let dev = t.path().join("sys/bus/pci/devices/0000:0b:00.0");
        assert!(!dev.join("driver_override").exists());
        assert!(!t.path().join("sys/bus/pci/drivers_probe").exists());
        assert!(!t.path().join("sys/bus/pci/drivers/amdgpu/unbind").exists());
        assert!(live_root(t.path()).is_err());
    }

    /// sysfs shapes: net/<if>/{flags,operstate} (include/uapi/linux/if.h IFF_UP = 0x1),
    /// nvme/nvme0/<ns> with a `subsystem` link to the block class and `dev` major:minor,
    /// partitions marked by a `partition` file; mountinfo field 3 is major:minor.
    #[test]
    fn in_use_sees_up_links_mounted_disks_and_bound_displays() {
        use std::os::unix::fs::symlink;
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let nic: Bdf = "04:00.0".parse().unwrap();
        let ssd: Bdf = "01:00.0".parse().unwrap();
        let idle: Bdf = "05:00.0".parse().unwrap();
        crate::host::fixture::add(r, "0000:04:00.0", 7, Some("igb"));
        crate::host::fixture::add(r, "0000:01:00.0", 7, Some("nvme"));
        crate::host::fixture::add(r, "0000:05:00.0", 7, Some("igb"));
        crate::host::fixture::add(r, "0000:0b:00.0", 7, Some("amdgpu"));
        let dev = |b: &str| r.join("sys/devices/pci0000:00").join(b);
        fs::write(dev("0000:0b:00.0").join("class"), "0x030000\n").unwrap();
        let net = dev("0000:04:00.0").join("net/enp4s0");
        fs::create_dir_all(&net).unwrap();
        fs::write(net.join("flags"), "0x1003\n").unwrap();
        fs::write(net.join("operstate"), "up\n").unwrap();
        let down = dev("0000:05:00.0").join("net/enp5s0");
        fs::create_dir_all(&down).unwrap();
        fs::write(down.join("flags"), "0x1002\n").unwrap();
        fs::write(down.join("operstate"), "down\n").unwrap();
        let ns = dev("0000:01:00.0").join("nvme/nvme0/nvme0n1");
        fs::create_dir_all(ns.join("nvme0n1p2")).unwrap();
        fs::create_dir_all(r.join("sys/class/block")).unwrap();
        symlink("../../../../../../class/block", ns.join("subsystem")).unwrap();
        fs::write(ns.join("dev"), "259:0\n").unwrap();
        fs::write(ns.join("nvme0n1p2/partition"), "2\n").unwrap();
        fs::write(ns.join("nvme0n1p2/dev"), "259:2\n").unwrap();
        fs::create_dir_all(r.join("proc/self")).unwrap();
        fs::write(
            r.join("proc/self/mountinfo"),
            "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n",
        )
        .unwrap();
        // A SATA controller: ata1/host0/target0:0:0/0:0:0:0/block/sda, sda1 in swap,
        // sda2 held by a device-mapper volume.
        let sata: Bdf = "06:00.0".parse().unwrap();
        crate::host::fixture::add(r, "0000:06:00.0", 7, Some("ahci"));
        let sda = dev("0000:06:00.0").join("ata1/host0/target0:0:0/0:0:0:0/block/sda");
        fs::create_dir_all(sda.join("sda1")).unwrap();
        fs::create_dir_all(sda.join("sda2/holders/dm-0")).unwrap();
        symlink(
            "../../../../../../../../../../class/block",
            sda.join("subsystem"),
        )
        .unwrap();
        fs::write(sda.join("dev"), "8:0\n").unwrap();
        for (p, mm) in [("sda1", "8:1"), ("sda2", "8:2")] {
            fs::write(sda.join(p).join("partition"), "1\n").unwrap();
            fs::write(sda.join(p).join("dev"), format!("{mm}\n")).unwrap();
        }
        fs::create_dir_all(r.join("proc")).unwrap();
        fs::write(
            r.join("proc/swaps"),
            "Filename\tType\tSize\tUsed\tPriority\n/dev/sda1 partition 1048572 0 -2\n",
        )
        .unwrap();
        assert_eq!(
            in_use(r, sata),
            [
                "disk sda: sda1 is in use as swap",
                "disk sda: sda2 is held by another block device (LVM, RAID, dm)"
            ]
        );
        assert_eq!(in_use(r, nic), ["network interface enp4s0 is up"]);
        assert_eq!(in_use(r, ssd), ["disk nvme0n1: nvme0n1p2 is mounted on /"]);
        assert_eq!(in_use(r, gpu()), ["display controller bound to amdgpu"]);
        assert!(in_use(r, idle).is_empty());
        // Unmounted: the disk is free.
        fs::write(r.join("proc/self/mountinfo"), "").unwrap();
        assert!(in_use(r, ssd).is_empty());
    }

    #[test]
    fn bind_all_restores_earlier_devices_when_one_fails() {
        let a: Bdf = "0b:00.0".parse().unwrap();
        let b: Bdf = "0b:00.1".parse().unwrap();
        let mut k = FakeKernel::with(a, Some("amdgpu"));
        k.drivers
            .borrow_mut()
            .insert(b, Some("snd_hda_intel".into()));
        k.native.insert(b, "snd_hda_intel".into());
        k.refuse.push("vfio-pci".into());
        assert!(bind_all(&k, &[a, b], &RestoreLog::new()).is_err());
        assert_eq!(k.driver(a).unwrap().as_deref(), Some("amdgpu"));
        assert_eq!(k.driver(b).unwrap().as_deref(), Some("snd_hda_intel"));
    }

    /// A kernel whose restore fails: the original driver refuses to bind back.
    #[test]
    fn a_restore_failing_on_drop_is_logged_not_printed() {
        let mut k = FakeKernel::with(gpu(), Some("amdgpu"));
        let log = RestoreLog::new();
        let g = BindGuard::bind(&k, gpu()).unwrap().with_log(&log);
        assert!(g.changed());
        drop(g);
        assert!(log.take().is_empty(), "restored cleanly");
        k.native.clear();
        k.refuse.push("amdgpu".into());
        drop(BindGuard::bind(&k, gpu()).unwrap().with_log(&log));
        let failures = log.take();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].bdf, gpu());
        assert!(
            matches!(failures[0].error, Error::BindState { .. }),
            "{}",
            failures[0].error
        );
        assert!(log.take().is_empty(), "take empties the log");
    }
}
