//! `verify` against a mock kernel whose answers (values and errnos) are the ones the
//! real 6.12 kernel gave in tests/data/captures/*/vfiotest-*.txt and in the VM
//! harness' runs (tests/vm/README.md). The mock also keeps the books: every fd
//! opened must be closed, every mapping unmapped, every group unset.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::*;
use crate::bind::fake::FakeKernel;
use crate::info::testdata;
use crate::sys::{Fd, MockVfioSys, RawIrqInfo};
use crate::{Extension, IrqFlags};

/// 0000:06:00.0 as root read it from sysfs, and through the VFIO config region.
static CFG_06_SYSFS: &[u8] = include_bytes!("../tests/data/tcg-amd/0000-06-00.0.bin");
static CFG_06_VFIO: &[u8] = include_bytes!("../tests/data/tcg-amd/0000-06-00.0.via-vfio.bin");

fn e(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

#[derive(Clone)]
struct Knobs {
    /// VFIO_GROUP_GET_STATUS VIABLE bit.
    viable: bool,
    /// errno of opening the group node.
    group_open_errno: Option<i32>,
    /// VFIO_DEVICE_GET_INFO flags (capture: 0x3 = RESET|PCI).
    dev_flags: u32,
    /// Hot-reset info: dependent (group, bdf) or an errno.
    hot: std::result::Result<Vec<(u32, &'static str)>, i32>,
    reset_errno: Option<i32>,
    hot_reset_errno: Option<i32>,
    map_errno: Option<i32>,
    device_fd_errno: Option<i32>,
    bind_iommufd_errno: Option<i32>,
    dead_after_reset: bool,
    /// No-IOMMU mode: only `/dev/vfio/noiommu-N` exists, the container takes only
    /// VFIO_NOIOMMU_IOMMU, and vfio-noiommu answers ENOTTY to GET_INFO and MAP_DMA
    /// (drivers/vfio/container.c vfio_noiommu_ioctl).
    noiommu: bool,
    /// VFIO_DEVICE_BIND_IOMMUFD refuses the VF-token flag (6.12: flags must be 0).
    bind_token_einval: bool,
}

impl Default for Knobs {
    /// tcg-amd/vfiotest-0000:06:00.0.txt: viable group 16, RESET|PCI, hot reset
    /// touching 06:00.0 and 06:00.1 in group 16.
    fn default() -> Self {
        Knobs {
            viable: true,
            group_open_errno: None,
            dev_flags: 0x3,
            hot: Ok(vec![(16, "0000:06:00.0"), (16, "0000:06:00.1")]),
            reset_errno: None,
            hot_reset_errno: None,
            map_errno: None,
            device_fd_errno: None,
            bind_iommufd_errno: None,
            dead_after_reset: false,
            noiommu: false,
            bind_token_einval: false,
        }
    }
}

#[derive(Default, Debug)]
struct Books {
    next_fd: i32,
    open: BTreeMap<i32, String>,
    mapped: BTreeSet<u64>,
    attached: BTreeSet<i32>,
    ioas: BTreeSet<u32>,
    log: Vec<String>,
    reset_done: bool,
}

type Shared = Arc<Mutex<Books>>;

fn mock(k: Knobs, books: Shared) -> MockVfioSys {
    let mut m = MockVfioSys::new();
    let b = books.clone();
    let k2 = k.clone();
    m.expect_open().returning(move |p: &Path| {
        let s = p.to_string_lossy().into_owned();
        let mut bk = b.lock().unwrap();
        let kind = if s.ends_with("dev/vfio/vfio") {
            "container"
        } else if s.ends_with("dev/iommu") {
            "iommufd"
        } else if s.contains("dev/vfio/devices/") {
            "cdev"
        } else if s.contains("dev/vfio/") {
            if let Some(errno) = k2.group_open_errno {
                return Err(e(errno));
            }
            if k2.noiommu != s.contains("dev/vfio/noiommu-") {
                return Err(e(libc::ENOENT));
            }
            "group"
        } else {
            return Err(e(libc::ENOENT));
        };
        bk.next_fd += 1;
        let fd = bk.next_fd + 2;
        bk.open.insert(fd, format!("{kind} {s}"));
        bk.log.push(format!("open {kind}"));
        Ok(Fd(fd))
    });
    let b = books.clone();
    m.expect_close().returning(move |fd| {
        let mut bk = b.lock().unwrap();
        bk.attached.remove(&fd.0);
        match bk.open.remove(&fd.0) {
            Some(_) => Ok(()),
            None => Err(e(libc::EBADF)),
        }
    });
    m.expect_get_api_version().returning(|_| Ok(0));
    // capture: TYPE1 1, TYPE1v2 1, NOIOMMU 0, UNMAP_ALL 1.
    m.expect_check_extension()
        .returning(|_, x| Ok(matches!(x, 1 | 3 | 9) as i32));
    let b = books.clone();
    let k2 = k.clone();
    m.expect_set_iommu().returning(move |_, t| {
        let bk = b.lock().unwrap();
        if bk.attached.is_empty() {
            return Err(e(libc::EINVAL));
        }
        if k2.noiommu {
            assert_eq!(t, 8, "VFIO_NOIOMMU_IOMMU chosen for a no-IOMMU group");
        } else {
            assert_eq!(t, 3, "TYPE1v2 chosen");
        }
        Ok(())
    });
    // The kernel fills argsz with what it needs and copies caps only when they fit.
    let k2 = k.clone();
    m.expect_iommu_get_info()
        .returning(move |_, buf: &mut [u8]| {
            if k2.noiommu {
                return Err(e(libc::ENOTTY));
            }
            let full = testdata::iommu_info_amd();
            if buf.len() < full.len() {
                buf[..4].copy_from_slice(&(full.len() as u32).to_ne_bytes());
                buf[4..24].copy_from_slice(&full[4..24]);
                buf[16..20].copy_from_slice(&0u32.to_ne_bytes());
            } else {
                buf[..full.len()].copy_from_slice(&full);
            }
            Ok(())
        });
    let b = books.clone();
    let k2 = k.clone();
    m.expect_iommu_map_dma().returning(move |_, req| {
        let mut bk = b.lock().unwrap();
        if k2.noiommu {
            return Err(e(libc::ENOTTY));
        }
        if let Some(errno) = k2.map_errno {
            return Err(e(errno));
        }
        if !bk.mapped.insert(req.iova()) {
            return Err(e(libc::EEXIST));
        }
        bk.log
            .push(format!("map {:#x} {:#x}", req.iova(), req.size()));
        Ok(())
    });
    let b = books.clone();
    m.expect_iommu_unmap_dma()
        .returning(move |_, iova, size, _| {
            let mut bk = b.lock().unwrap();
            bk.mapped.remove(&iova);
            bk.log.push(format!("unmap {iova:#x}"));
            Ok(size)
        });
    let k2 = k.clone();
    let b = books.clone();
    m.expect_group_get_status().returning(move |g| {
        let bk = b.lock().unwrap();
        let mut f = if k2.viable { 1 } else { 0 };
        if bk.attached.contains(&g.0) {
            f |= 2;
        }
        Ok(f)
    });
    let k2 = k.clone();
    let b = books.clone();
    m.expect_group_set_container().returning(move |g, _| {
        if !k2.viable {
            return Err(e(libc::EPERM));
        }
        let mut bk = b.lock().unwrap();
        bk.attached.insert(g.0);
        bk.log.push("set_container".into());
        Ok(())
    });
    let b = books.clone();
    m.expect_group_unset_container().returning(move |g| {
        let mut bk = b.lock().unwrap();
        bk.attached.remove(&g.0);
        bk.log.push("unset_container".into());
        Ok(())
    });
    let b = books.clone();
    let k2 = k.clone();
    m.expect_group_get_device_fd()
        .returning(move |g, name: &str| {
            let mut bk = b.lock().unwrap();
            if !bk.attached.contains(&g.0) {
                return Err(e(libc::EINVAL));
            }
            if let Some(errno) = k2.device_fd_errno {
                return Err(e(errno));
            }
            if !name.starts_with("0000:06:00.") {
                return Err(e(libc::ENODEV));
            }
            bk.next_fd += 1;
            let fd = bk.next_fd + 2;
            bk.open.insert(fd, format!("device {name}"));
            Ok(Fd(fd))
        });
    let k2 = k.clone();
    m.expect_device_get_info()
        .returning(move |_, buf: &mut [u8]| {
            let mut d = testdata::device_info_e1000e();
            d[4..8].copy_from_slice(&k2.dev_flags.to_ne_bytes());
            buf[..24].copy_from_slice(&d);
            Ok(())
        });
    m.expect_device_get_region_info()
        .returning(|_, index, buf: &mut [u8]| match index {
            7 => {
                buf[..32].copy_from_slice(&testdata::region_config());
                Ok(())
            }
            3 => {
                let r = testdata::region_bar3_msix();
                if buf.len() < r.len() {
                    buf[..4].copy_from_slice(&(r.len() as u32).to_ne_bytes());
                    buf[4..32].copy_from_slice(&r[4..32]);
                    buf[12..16].copy_from_slice(&0u32.to_ne_bytes());
                } else {
                    buf[..r.len()].copy_from_slice(&r);
                }
                Ok(())
            }
            _ => Err(e(libc::EINVAL)),
        });
    m.expect_device_get_irq_info().returning(|_, i| match i {
        // capture: irq 2 MSIX count=5 flags=0x1
        2 => Ok(RawIrqInfo { flags: 1, count: 5 }),
        _ => Err(e(libc::EINVAL)),
    });
    let b = books.clone();
    let k2 = k.clone();
    m.expect_pread().returning(move |_, buf: &mut [u8], off| {
        let base = 0x70000000000u64;
        let rel = off.checked_sub(base).ok_or(e(libc::EINVAL))? as usize;
        let bk = b.lock().unwrap();
        if bk.reset_done && k2.dead_after_reset {
            buf.fill(0xff);
            return Ok(buf.len());
        }
        let src = CFG_06_VFIO.get(rel..).unwrap_or(&[]);
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        Ok(n)
    });
    let b = books.clone();
    let k2 = k.clone();
    m.expect_device_reset().returning(move |_| {
        // Real kernel: DEVICE_RESET without the RESET flag answers EINVAL.
        if k2.dev_flags & 1 == 0 {
            return Err(e(libc::EINVAL));
        }
        if let Some(errno) = k2.reset_errno {
            return Err(e(errno));
        }
        let mut bk = b.lock().unwrap();
        bk.reset_done = true;
        bk.log.push("device_reset".into());
        Ok(())
    });
    let k2 = k.clone();
    m.expect_device_get_pci_hot_reset_info()
        .returning(move |_, buf: &mut [u8]| {
            let devs = match &k2.hot {
                Ok(d) => d.clone(),
                Err(errno) => return Err(e(*errno)),
            };
            let need = 12 + 8 * devs.len();
            buf[8..12].copy_from_slice(&(devs.len() as u32).to_ne_bytes());
            if buf.len() < need {
                return Err(e(libc::ENOSPC));
            }
            for (i, (g, bdf)) in devs.iter().enumerate() {
                let bdf: Bdf = bdf.parse().unwrap();
                let o = 12 + i * 8;
                buf[o..o + 4].copy_from_slice(&g.to_ne_bytes());
                buf[o + 4..o + 6].copy_from_slice(&bdf.domain.to_ne_bytes());
                buf[o + 6] = bdf.bus;
                buf[o + 7] = (bdf.device << 3) | bdf.function;
            }
            Ok(())
        });
    let b = books.clone();
    let k2 = k.clone();
    m.expect_device_pci_hot_reset()
        .returning(move |_, fds: &[Fd]| {
            let mut bk = b.lock().unwrap();
            let cdev = bk.open.values().any(|v| v.starts_with("cdev"));
            if fds.is_empty() && !cdev {
                // capture: HOT_RESET with 0 group fds -> EINVAL
                return Err(e(libc::EINVAL));
            }
            if let Some(errno) = k2.hot_reset_errno {
                return Err(e(errno));
            }
            bk.reset_done = true;
            bk.log.push(format!("hot_reset {} fds", fds.len()));
            Ok(())
        });
    let k2 = k.clone();
    m.expect_device_bind_iommufd()
        .returning(move |_, _, token| match k2.bind_iommufd_errno {
            _ if k2.bind_token_einval && token.is_some() => Err(e(libc::EINVAL)),
            Some(errno) => Err(e(errno)),
            None => Ok(1),
        });
    m.expect_device_attach_iommufd_pt()
        .returning(|_, pt| Ok(pt));
    let b = books.clone();
    m.expect_iommufd_ioas_alloc().returning(move |_| {
        b.lock().unwrap().ioas.insert(2);
        Ok(2)
    });
    let b = books.clone();
    m.expect_iommufd_destroy().returning(move |_, id| {
        b.lock().unwrap().ioas.remove(&id);
        Ok(())
    });
    // Two ranges; the first call gets a too-small buffer only if out.len() < 2.
    m.expect_iommufd_ioas_iova_ranges()
        .returning(|_, _, out: &mut [IovaRange]| {
            let all = [
                IovaRange {
                    start: 0,
                    end: 0xfedfffff,
                },
                IovaRange {
                    start: 0xfef00000,
                    end: 0xffffffffff,
                },
            ];
            for (o, r) in out.iter_mut().zip(all.iter()) {
                *o = *r;
            }
            Ok(crate::sys::IovaRangesAnswer {
                num_iovas: 2,
                alignment: 4096,
            })
        });
    let b = books.clone();
    m.expect_iommufd_ioas_map().returning(move |_, _, req| {
        b.lock().unwrap().mapped.insert(req.iova());
        Ok(())
    });
    let b = books;
    m.expect_iommufd_ioas_unmap()
        .returning(move |_, _, iova, len| {
            b.lock().unwrap().mapped.remove(&iova);
            Ok(len)
        });
    m
}

fn root_amd() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    crate::host::fixture::amd(t.path());
    std::fs::write(
        t.path().join("sys/bus/pci/devices/0000:06:00.0/config"),
        CFG_06_SYSFS,
    )
    .unwrap();
    std::fs::create_dir_all(t.path().join("dev/vfio")).unwrap();
    t
}

fn run(k: Knobs, opts: impl FnOnce(&mut VerifyOptions), root: &Path) -> (VerifyReport, Shared) {
    let books: Shared = Arc::default();
    let m = mock(k, books.clone());
    let mut o = VerifyOptions::new(root, "0000:06:00.0".parse().unwrap());
    o.api = ApiChoice::Container;
    opts(&mut o);
    let sysfs = FakeKernel::default();
    let m = Arc::new(m);
    let r = verify(&m, &sysfs, &o).unwrap();
    (r, books)
}

fn assert_clean(b: &Shared) {
    let b = b.lock().unwrap();
    assert!(b.open.is_empty(), "left open: {:?}", b.open);
    assert!(b.mapped.is_empty(), "left mapped: {:?}", b.mapped);
    assert!(b.attached.is_empty(), "left attached: {:?}", b.attached);
    assert!(b.ioas.is_empty(), "left IOAS: {:?}", b.ioas);
}

fn codes(r: &VerifyReport) -> Vec<&'static str> {
    r.findings.iter().map(|f| f.code.name()).collect()
}

fn finding<'a>(r: &'a VerifyReport, code: &str) -> &'a Finding {
    r.findings
        .iter()
        .find(|f| f.code.name() == code)
        .unwrap_or_else(|| panic!("no {code} in {:?}", r.findings))
}

// tcg-amd/vfiotest-0000:06:00.0.txt, end to end.
#[test]
fn container_path_reproduces_the_capture_and_leaves_nothing_behind() {
    let t = root_amd();
    let (r, b) = run(Knobs::default(), |_| {}, t.path());
    assert!(r.passed(), "{:?}", r.findings);
    assert_eq!(r.api, Api::Container);
    assert_eq!(r.iommu_group, Some(16));
    assert!(r.viable);
    assert_eq!(r.dma_map, "ok");
    assert_eq!(
        r.iova_ranges,
        vec![
            [0, 0xfedfffff],
            [0xfef00000, 0xfcffffffff],
            [0x10000000000, u64::MAX]
        ]
    );
    assert!(r.reset.device_reset);
    assert_eq!(r.reset.hot_reset_devices, ["0000:06:00.0", "0000:06:00.1"]);
    assert_eq!(r.reset.performed, None);
    assert!(finding(&r, "hot-reset-scope")
        .message
        .contains("group(s) 16"));
    assert!(finding(&r, "config-read").message.contains("matches sysfs"));
    let log = b.lock().unwrap().log.clone();
    assert_eq!(
        log,
        [
            "open container",
            "open group",
            "set_container",
            "map 0x100000 0x10000",
            "unmap 0x100000",
            "unset_container"
        ]
    );
    assert_clean(&b);
}

#[test]
fn report_serializes_to_the_issue_json_shape() {
    let t = root_amd();
    let (r, _) = run(Knobs::default(), |_| {}, t.path());
    // The documented shape, in its order: bdf, api, group, viable, dma_map, iova_ranges,
    // reset, findings; keys added later (iommu_group) come after them.
    let text = serde_json::to_string(&r).unwrap();
    assert!(
        text.starts_with(
            r#"{"bdf":"0000:06:00.0","api":"container","group":16,"viable":true,"dma_map":"ok","iova_ranges":[[0,4276092927],"#
        ),
        "{text}"
    );
    assert!(text.contains(r#""reset":{"device_reset":true,"hot_reset_devices":["0000:06:00.0","0000:06:00.1"],"performed":null},"findings":["#), "{text}");
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["api"], "container");
    assert_eq!(v["iova_ranges"][0], serde_json::json!([0, 4276092927u64]));
    assert_eq!(v["reset"]["performed"], serde_json::Value::Null);
    let rk: Vec<&str> = v["reset"]
        .as_object()
        .unwrap()
        .keys()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(rk, ["device_reset", "hot_reset_devices", "performed"]);
    // `iommu_group`, check's key, beside verify's own `group`; every finding names its
    // device and has evidence (possibly empty).
    assert_eq!(v["iommu_group"], 16);
    assert_eq!(v["group"], v["iommu_group"]);
    for f in v["findings"].as_array().unwrap() {
        assert_eq!(f["device"], "0000:06:00.0", "{f}");
        assert!(f["evidence"].is_array(), "{f}");
    }
    // A Rust reader gets the same report back from the JSON.
    let back: VerifyReport = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
}

// tcg-amd/vfiotest-0000:0b:00.1.txt: flags=0x0 viable=0, SET_CONTAINER -> EPERM;
// 0b:00.0 is on virtio-pci in the same group 20.
#[test]
fn non_viable_group_names_the_blocking_device_and_what_to_do() {
    let t = root_amd();
    std::fs::write(
        t.path().join("sys/bus/pci/devices/0000:0b:00.1/config"),
        CFG_06_SYSFS,
    )
    .unwrap();
    let books: Shared = Arc::default();
    let m = mock(
        Knobs {
            viable: false,
            ..Knobs::default()
        },
        books.clone(),
    );
    let mut o = VerifyOptions::new(t.path(), "0b:00.1".parse().unwrap());
    o.api = ApiChoice::Container;
    let m = Arc::new(m);
    let r = verify(&m, &FakeKernel::default(), &o).unwrap();
    assert!(!r.passed());
    assert!(!r.viable);
    assert_eq!(r.iommu_group, Some(20));
    let f = finding(&r, "group-not-viable");
    assert!(f.message.contains("IOMMU group 20"), "{}", f.message);
    assert!(
        f.message.contains("0000:0b:00.0 is bound to virtio-pci"),
        "{}",
        f.message
    );
    assert!(
        f.message
            .contains("bind every device of the group to vfio-pci"),
        "{}",
        f.message
    );
    // The library names no CLI flag; the CLI adds that advice.
    assert!(!f.message.contains("--"), "{}", f.message);
    assert_eq!(r.dma_map, "not attempted");
    assert_clean(&books);
}

// Seen on 6.12 (tests/vm/README.md): second open of a group -> EBUSY.
#[test]
fn busy_group_is_reported_as_in_use() {
    let t = root_amd();
    let (r, b) = run(
        Knobs {
            group_open_errno: Some(libc::EBUSY),
            ..Knobs::default()
        },
        |_| {},
        t.path(),
    );
    let f = finding(&r, "group-busy");
    assert!(
        f.message.contains("IOMMU group 16 is busy"),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("Device or resource busy"),
        "{}",
        f.message
    );
    assert_clean(&b);
}

#[test]
fn device_not_on_vfio_pci_without_bind_is_reported_not_touched() {
    let t = root_amd();
    let books: Shared = Arc::default();
    let mut m = MockVfioSys::new();
    m.expect_open().times(0);
    let o = VerifyOptions::new(t.path(), "0b:00.0".parse().unwrap());
    let m = Arc::new(m);
    let r = verify(&m, &FakeKernel::default(), &o).unwrap();
    let f = finding(&r, "not-vfio-pci");
    assert!(f.message.contains("bound to virtio-pci"), "{}", f.message);
    assert!(
        f.message.contains("must be bound to vfio-pci"),
        "{}",
        f.message
    );
    assert!(!f.message.contains("--"), "{}", f.message);
    assert!(!r.viable, "group 20 has a device on virtio-pci");
    assert_clean(&books);
}

#[test]
fn bind_binds_the_device_for_the_check_then_restores_its_driver() {
    let t = root_amd();
    let a: Bdf = "0b:00.0".parse().unwrap();
    let k = FakeKernel::with(a, Some("virtio-pci"));
    let books: Shared = Arc::default();
    let m = mock(Knobs::default(), books.clone());
    let mut o = VerifyOptions::new(t.path(), a);
    o.api = ApiChoice::Container;
    o.bind = true;
    let m = Arc::new(m);
    let r = verify(&m, &k, &o).unwrap();
    assert!(
        finding(&r, "bound").message.contains("0000:0b:00.0"),
        "{:?}",
        r.findings
    );
    assert_eq!(k.driver(a).unwrap().as_deref(), Some("virtio-pci"));
    assert_eq!(
        *k.log.borrow(),
        [
            "override vfio-pci",
            "unbind virtio-pci",
            "probe",
            "override -",
            "unbind vfio-pci",
            "probe"
        ]
    );
    assert_clean(&books);
}

// A bind that fails (vfio-pci refuses the device) and whose restore fails too (the
// original driver refuses it back): the restore failure, which happens in the guard's
// drop, reaches the report through its log instead of standard error.
#[test]
fn a_failed_restore_after_a_failed_bind_is_a_finding() {
    let t = root_amd();
    let a: Bdf = "0b:00.0".parse().unwrap();
    let mut k = FakeKernel::with(a, Some("virtio-pci"));
    k.native.clear();
    k.refuse = vec!["vfio-pci".into(), "virtio-pci".into()];
    let mut o = VerifyOptions::new(t.path(), a);
    o.api = ApiChoice::Container;
    o.bind = true;
    let m = Arc::new(MockVfioSys::new());
    let r = verify(&m, &k, &o).unwrap();
    assert!(codes(&r).contains(&"bind-failed"), "{:?}", r.findings);
    let f = finding(&r, "restore-failed");
    assert!(
        f.message.contains("restoring the original driver"),
        "{}",
        f.message
    );
    assert_eq!(
        k.driver(a).unwrap(),
        None,
        "left without a driver, and said so"
    );
}

// tcg-amd captures: devices without the RESET flag answer DEVICE_RESET with EINVAL;
// verify then uses the hot reset with its own group, as QEMU does.
#[test]
fn reset_without_reset_flag_uses_hot_reset_with_the_group_fd() {
    let t = root_amd();
    let (r, b) = run(
        Knobs {
            dev_flags: 0x2,
            ..Knobs::default()
        },
        |o| o.reset = true,
        t.path(),
    );
    assert!(!r.reset.device_reset);
    assert_eq!(r.reset.performed.as_deref(), Some("ok"));
    assert!(codes(&r).contains(&"hot-reset-only"));
    assert!(b
        .lock()
        .unwrap()
        .log
        .contains(&"hot_reset 1 fds".to_string()));
    assert_clean(&b);
}

#[test]
fn device_reset_is_performed_and_the_device_checked() {
    let t = root_amd();
    let (r, b) = run(Knobs::default(), |o| o.reset = true, t.path());
    assert_eq!(r.reset.performed.as_deref(), Some("ok"));
    assert!(b.lock().unwrap().log.contains(&"device_reset".to_string()));
    assert!(r.passed());
    assert_clean(&b);
}

// The device reads 0xffff after the reset: it did not come back.
#[test]
fn device_that_does_not_come_back_fails() {
    let t = root_amd();
    let (r, b) = run(
        Knobs {
            dead_after_reset: true,
            ..Knobs::default()
        },
        |o| o.reset = true,
        t.path(),
    );
    assert!(!r.passed());
    assert!(r.reset.performed.as_deref().unwrap().contains("0xffff"));
    assert!(codes(&r).contains(&"reset-dead"));
    assert_clean(&b);
}

// tcg captures: PCI_HOT_RESET behind a root port at default link speed -> ENOTTY.
#[test]
fn hot_reset_enotty_is_reported_with_the_link_hint() {
    let t = root_amd();
    let k = Knobs {
        dev_flags: 0x2,
        hot_reset_errno: Some(libc::ENOTTY),
        ..Knobs::default()
    };
    let (r, b) = run(k, |o| o.reset = true, t.path());
    let p = r.reset.performed.clone().unwrap();
    assert!(
        p.contains("VFIO_DEVICE_PCI_HOT_RESET on device 0000:06:00.0 failed"),
        "{p}"
    );
    assert!(p.contains("link"), "{p}");
    assert!(!r.passed());
    assert_clean(&b);
}

// tcg captures: hot-reset info on a root-bus device (00:08.0) -> ENODEV.
#[test]
fn hot_reset_info_enodev_means_no_hot_reset() {
    let t = root_amd();
    let (r, b) = run(
        Knobs {
            dev_flags: 0x2,
            hot: Err(libc::ENODEV),
            ..Knobs::default()
        },
        |_| {},
        t.path(),
    );
    assert!(r.reset.hot_reset_devices.is_empty());
    assert!(codes(&r).contains(&"no-hot-reset"));
    assert!(codes(&r).contains(&"no-reset"));
    assert!(r.passed(), "no reset is a warning, not a failure");
    assert_clean(&b);
}

#[test]
fn reset_requested_with_no_method_fails() {
    let t = root_amd();
    let k = Knobs {
        dev_flags: 0x2,
        hot: Err(libc::ENODEV),
        ..Knobs::default()
    };
    let (r, b) = run(k, |o| o.reset = true, t.path());
    assert_eq!(r.reset.performed.as_deref(), Some("no reset available"));
    assert!(!r.passed());
    assert_clean(&b);
}

// Hot reset touching a second group: that group is opened, attached to the same
// container, passed to PCI_HOT_RESET and released afterwards.
#[test]
fn hot_reset_across_two_groups_passes_both_fds() {
    let t = root_amd();
    crate::host::fixture::add(t.path(), "0000:07:00.0", 17, Some("vfio-pci"));
    let k = Knobs {
        dev_flags: 0x2,
        hot: Ok(vec![(16, "0000:06:00.0"), (17, "0000:07:00.0")]),
        ..Knobs::default()
    };
    let (r, b) = run(k, |o| o.reset = true, t.path());
    assert_eq!(r.reset.performed.as_deref(), Some("ok"), "{:?}", r.findings);
    let scope = &finding(&r, "hot-reset-scope").message;
    assert!(scope.contains("group(s) 16, 17"), "{scope}");
    // The other group is named with its device; the device's own group is not "other".
    assert!(
        scope.contains("besides this device's group it touches group 17 (0000:07:00.0)"),
        "{scope}"
    );
    assert!(!scope.contains("group 16 ("), "{scope}");
    assert!(b
        .lock()
        .unwrap()
        .log
        .contains(&"hot_reset 2 fds".to_string()));
    assert_clean(&b);
}

// Seen on 6.12 (tests/vm/README.md): duplicate MAP_DMA -> EEXIST.
#[test]
fn dma_map_eexist_is_reported_with_its_meaning() {
    let t = root_amd();
    let (r, b) = run(
        Knobs {
            map_errno: Some(libc::EEXIST),
            ..Knobs::default()
        },
        |_| {},
        t.path(),
    );
    assert!(
        r.dma_map.contains("overlaps an existing mapping"),
        "{}",
        r.dma_map
    );
    assert!(r.dma_map.contains("File exists"), "{}", r.dma_map);
    assert!(!r.passed());
    assert_clean(&b);
}

// Seen on 6.12 (tests/vm/README.md): VF opened without its token -> EACCES.
#[test]
fn vf_without_token_eacces_says_a_token_is_needed() {
    let t = root_amd();
    let (r, b) = run(
        Knobs {
            device_fd_errno: Some(libc::EACCES),
            ..Knobs::default()
        },
        |_| {},
        t.path(),
    );
    let f = finding(&r, "vfio");
    assert!(f.message.contains("VF token"), "{}", f.message);
    assert_clean(&b);
}

#[test]
fn missing_container_node_is_vfio_unavailable() {
    let t = root_amd();
    let books: Shared = Arc::default();
    let mut m = MockVfioSys::new();
    m.expect_open().returning(|_| Err(e(libc::ENOENT)));
    let mut o = VerifyOptions::new(t.path(), "06:00.0".parse().unwrap());
    o.api = ApiChoice::Container;
    let m = Arc::new(m);
    let r = verify(&m, &FakeKernel::default(), &o).unwrap();
    let f = finding(&r, "vfio-unavailable");
    assert!(f.message.contains("dev/vfio/vfio"), "{}", f.message);
    assert!(f.message.contains("module loaded"), "{}", f.message);
    assert_clean(&books);
}

#[test]
fn unknown_device_is_an_input_error() {
    let t = root_amd();
    let m = MockVfioSys::new();
    let o = VerifyOptions::new(t.path(), "0000:42:00.0".parse().unwrap());
    let m = Arc::new(m);
    let e = verify(&m, &FakeKernel::default(), &o).unwrap_err();
    assert!(matches!(e, Error::NoDevice { .. }));
    assert!(e.to_string().contains("0000:42:00.0"));
}

fn with_iommufd(t: &tempfile::TempDir) {
    std::fs::write(t.path().join("dev/iommu"), "").unwrap();
    std::fs::create_dir_all(
        t.path()
            .join("sys/devices/pci0000:00/0000:06:00.0/vfio-dev/vfio3"),
    )
    .unwrap();
}

#[test]
fn auto_uses_iommufd_when_the_kernel_offers_it() {
    let t = root_amd();
    with_iommufd(&t);
    let (r, b) = run(
        Knobs {
            dev_flags: 0x2,
            ..Knobs::default()
        },
        |o| {
            o.api = ApiChoice::Auto;
            o.reset = true;
        },
        t.path(),
    );
    assert_eq!(r.api, Api::Iommufd, "{:?}", r.findings);
    assert!(r.viable);
    assert_eq!(r.dma_map, "ok");
    assert_eq!(
        r.iova_ranges,
        vec![[0, 0xfedfffff], [0xfef00000, 0xffffffffff]]
    );
    // cdev mode: hot reset with no group fds.
    assert_eq!(r.reset.performed.as_deref(), Some("ok"));
    assert!(b
        .lock()
        .unwrap()
        .log
        .contains(&"hot_reset 0 fds".to_string()));
    assert_clean(&b);
}

#[test]
fn auto_falls_back_to_the_container_when_bind_iommufd_is_refused() {
    let t = root_amd();
    with_iommufd(&t);
    let (r, b) = run(
        Knobs {
            bind_iommufd_errno: Some(libc::ENOTTY),
            ..Knobs::default()
        },
        |o| o.api = ApiChoice::Auto,
        t.path(),
    );
    assert_eq!(r.api, Api::Container);
    assert!(codes(&r).contains(&"iommufd-fallback"));
    assert_eq!(r.dma_map, "ok");
    assert!(r.passed(), "{:?}", r.findings);
    assert_clean(&b);
}

// Group API pieces, against the mock with the real errnos.

#[test]
fn get_device_fd_before_set_container_is_einval_with_hint() {
    let t = root_amd();
    let books: Shared = Arc::default();
    let m = mock(Knobs::default(), books.clone());
    {
        let m = Arc::new(m);
        let g = Group::open(&m, t.path(), 16).unwrap();
        let e = g.device("0000:06:00.0").unwrap_err();
        assert_eq!(e.errno(), Some(libc::EINVAL));
        assert!(e.to_string().contains("no container"), "{e}");
    }
    assert_clean(&books);
}

#[test]
fn status_keeps_viable_and_container_set_apart() {
    let t = root_amd();
    let books: Shared = Arc::default();
    let m = mock(Knobs::default(), books.clone());
    {
        let m = Arc::new(m);
        let c = Container::open(&m, t.path().join("dev/vfio/vfio")).unwrap();
        let g = Group::open(&m, t.path(), 16).unwrap();
        let s = g.status().unwrap();
        assert!(s.viable && !s.container_set);
        g.set_container(&c).unwrap();
        let s = g.status().unwrap();
        // capture: "group flags after=0x3": still viable once attached.
        assert!(s.viable && s.container_set);
        assert_eq!(s.flags.bits(), 0x3);
        // capture: "GET_DEVICE_FD bogus name: ENODEV".
        let e = g.device("bogus").unwrap_err();
        assert!(
            e.to_string().contains("no such device in this group"),
            "{e}"
        );
    }
    assert_clean(&books);
}

#[test]
fn region_info_asks_again_for_the_capability_chain() {
    let t = root_amd();
    let books: Shared = Arc::default();
    let m = mock(Knobs::default(), books.clone());
    {
        let m = Arc::new(m);
        let c = Container::open(&m, t.path().join("dev/vfio/vfio")).unwrap();
        let g = Group::open(&m, t.path(), 16).unwrap();
        g.set_container(&c).unwrap();
        c.set_iommu(Extension::Type1v2).unwrap();
        let d = g.device("0000:06:00.0").unwrap();
        let r = d.region_info(3).unwrap();
        assert!(r.msix_mappable, "cap id 3 read on the second call");
        assert_eq!(r.size, 0x4000);
        // capture: region 8 (VGA) -> EINVAL on an e1000e.
        assert_eq!(d.region_info(8).unwrap_err().errno(), Some(libc::EINVAL));
        let irq = d.irq_info(2).unwrap();
        assert_eq!((irq.count, irq.flags), (5, IrqFlags::EVENTFD));
        let ext = c.extensions().unwrap();
        assert!(ext.type1 && ext.type1v2 && ext.unmap_all && !ext.noiommu);
    }
    assert_clean(&books);
}

#[test]
fn map_in_the_msi_window_never_reaches_the_kernel() {
    let t = root_amd();
    let books: Shared = Arc::default();
    let m = mock(Knobs::default(), books.clone());
    {
        let m = Arc::new(m);
        let c = Container::open(&m, t.path().join("dev/vfio/vfio")).unwrap();
        let g = Group::open(&m, t.path(), 16).unwrap();
        g.set_container(&c).unwrap();
        c.set_iommu(Extension::Type1v2).unwrap();
        let space = c.dma_space().unwrap();
        let buf = vm_memory::MmapRegion::<()>::new(0x2000).unwrap();
        let e = space.map(buf, 0xfee00000, true).unwrap_err();
        assert!(matches!(e, Error::IovaOutOfRange { .. }));
        assert!(space.mapped().is_empty());
    }
    let b = books.lock().unwrap();
    assert!(!b.log.iter().any(|l| l.starts_with("map")), "{:?}", b.log);
}

// Peers are bound only on request; then the blocking peer of group 20
// (0b:00.0 on virtio-pci) is bound for the check and restored afterwards.
#[test]
fn bind_peers_binds_the_blocking_peer_and_restores_it() {
    let t = root_amd();
    let dev: Bdf = "0b:00.1".parse().unwrap();
    let peer: Bdf = "0b:00.0".parse().unwrap();
    let k = FakeKernel::with(peer, Some("virtio-pci"));
    let books: Shared = Arc::default();
    let m = mock(Knobs::default(), books.clone());
    let mut o = VerifyOptions::new(t.path(), dev);
    o.api = ApiChoice::Container;
    o.bind = true;
    o.bind_peers = true;
    let m = Arc::new(m);
    let r = verify(&m, &k, &o).unwrap();
    assert!(
        finding(&r, "bound").message.contains("0000:0b:00.0"),
        "{:?}",
        r.findings
    );
    assert!(
        r.viable,
        "the kernel (mock) reports VIABLE once the peer is on vfio-pci"
    );
    assert_eq!(k.driver(peer).unwrap().as_deref(), Some("virtio-pci"));
    assert!(k.log.borrow().iter().any(|l| l == "unbind vfio-pci"));
    assert_clean(&books);
}

#[test]
fn without_bind_peers_the_blocking_peer_is_not_touched() {
    let t = root_amd();
    let peer: Bdf = "0b:00.0".parse().unwrap();
    let k = FakeKernel::with(peer, Some("virtio-pci"));
    let books: Shared = Arc::default();
    let m = mock(
        Knobs {
            viable: false,
            ..Knobs::default()
        },
        books.clone(),
    );
    let mut o = VerifyOptions::new(t.path(), "0b:00.1".parse().unwrap());
    o.api = ApiChoice::Container;
    o.bind = true;
    let m = Arc::new(m);
    let r = verify(&m, &k, &o).unwrap();
    assert!(codes(&r).contains(&"group-not-viable"));
    assert!(k.log.borrow().is_empty(), "{:?}", k.log.borrow());
    assert_clean(&books);
}

// Wrapper branches, one mock each.

fn counted() -> (Arc<Mutex<u32>>, impl Fn() -> u32) {
    let c = Arc::new(Mutex::new(0u32));
    let c2 = c.clone();
    (c, move || *c2.lock().unwrap())
}

#[test]
fn api_version_other_than_zero_is_refused() {
    let mut m = MockVfioSys::new();
    m.expect_open().returning(|_| Ok(Fd(3)));
    m.expect_close().times(1).returning(|_| Ok(()));
    m.expect_get_api_version().returning(|_| Ok(1));
    let m = Arc::new(m);
    let c = Container::open(&m, Path::new("/dev/vfio/vfio")).unwrap();
    let e = c.require_api_version().unwrap_err();
    assert!(matches!(e, Error::ApiVersion { found: 1, .. }), "{e}");
}

#[test]
fn container_without_type1_has_no_backend() {
    let mut m = MockVfioSys::new();
    m.expect_open().returning(|_| Ok(Fd(3)));
    m.expect_close().returning(|_| Ok(()));
    m.expect_check_extension().returning(|_, _| Ok(0));
    let m = Arc::new(m);
    let c = Container::open(&m, Path::new("/dev/vfio/vfio")).unwrap();
    let e = c.best_iommu().unwrap_err();
    assert!(
        e.to_string().contains("neither the TYPE1v2 nor the TYPE1"),
        "{e}"
    );
}

#[test]
fn container_with_type1_only_falls_back_to_type1() {
    let mut m = MockVfioSys::new();
    m.expect_open().returning(|_| Ok(Fd(3)));
    m.expect_close().returning(|_| Ok(()));
    m.expect_check_extension()
        .returning(|_, x| Ok((x == 1) as i32));
    let m = Arc::new(m);
    let c = Container::open(&m, Path::new("/dev/vfio/vfio")).unwrap();
    assert_eq!(c.best_iommu().unwrap(), Extension::Type1);
}

// The kernel answers a short argsz with the size it needs: exactly one more call.
#[test]
fn iommu_info_is_asked_twice_when_the_chain_does_not_fit() {
    let mut m = MockVfioSys::new();
    let (c, calls) = counted();
    m.expect_open().returning(|_| Ok(Fd(3)));
    m.expect_close().returning(|_| Ok(()));
    m.expect_iommu_get_info()
        .returning(move |_, buf: &mut [u8]| {
            *c.lock().unwrap() += 1;
            let full = testdata::iommu_info_amd();
            if buf.len() < full.len() {
                buf[..4].copy_from_slice(&(full.len() as u32).to_ne_bytes());
            } else {
                buf.copy_from_slice(&full[..buf.len()]);
            }
            Ok(())
        });
    let m = Arc::new(m);
    let ct = Container::open(&m, Path::new("/dev/vfio/vfio")).unwrap();
    let info = ct.iommu_info().unwrap();
    assert_eq!(calls(), 2);
    assert_eq!(info.iova_ranges.len(), 3);
}

// A self-pointing capability from the "kernel" is a Malformed error naming the ioctl.
#[test]
fn malformed_iommu_info_names_the_ioctl_and_offset() {
    let mut m = MockVfioSys::new();
    m.expect_open().returning(|_| Ok(Fd(3)));
    m.expect_close().returning(|_| Ok(()));
    m.expect_iommu_get_info().returning(|_, buf: &mut [u8]| {
        let mut full = testdata::iommu_info_amd();
        full[28..32].copy_from_slice(&24u32.to_ne_bytes());
        let n = buf.len().min(full.len());
        buf[..n].copy_from_slice(&full[..n]);
        if n < full.len() {
            buf[..4].copy_from_slice(&(full.len() as u32).to_ne_bytes());
        }
        Ok(())
    });
    let m = Arc::new(m);
    let ct = Container::open(&m, Path::new("/dev/vfio/vfio")).unwrap();
    let e = ct.iommu_info().unwrap_err();
    let msg = error_chain(&e);
    assert!(
        msg.contains("malformed VFIO_IOMMU_GET_INFO answer"),
        "{msg}"
    );
    assert!(msg.contains("offset 0x1c"), "{msg}");
}

// tcg-amd capture: "HOT_RESET_INFO (small argsz): errno=28 count=2": one retry.
#[test]
fn hot_reset_info_retries_once_after_enospc() {
    let mut m = MockVfioSys::new();
    let (c, calls) = counted();
    m.expect_close().returning(|_| Ok(()));
    m.expect_device_get_pci_hot_reset_info()
        .returning(move |_, buf: &mut [u8]| {
            *c.lock().unwrap() += 1;
            let full = testdata::hot_reset_06();
            if buf.len() < full.len() {
                buf[8..12].copy_from_slice(&full[8..12]);
                return Err(e(libc::ENOSPC));
            }
            buf.copy_from_slice(&full[..buf.len()]);
            Ok(())
        });
    let m = Arc::new(m);
    let d = Device::from_fd(&m, Fd(5), "0000:06:00.0".into(), None);
    let h = d.hot_reset_info().unwrap();
    assert_eq!(calls(), 2);
    assert_eq!(h.devices.len(), 2);
}

// An ENOSPC whose count does not grow the buffer must not loop: it is returned.
#[test]
fn hot_reset_info_enospc_without_a_usable_count_is_an_error() {
    let mut m = MockVfioSys::new();
    let (c, calls) = counted();
    m.expect_close().returning(|_| Ok(()));
    m.expect_device_get_pci_hot_reset_info()
        .returning(move |_, _buf: &mut [u8]| {
            *c.lock().unwrap() += 1;
            Err(e(libc::ENOSPC))
        });
    let m = Arc::new(m);
    let d = Device::from_fd(&m, Fd(5), "0000:06:00.0".into(), None);
    let err = d.hot_reset_info().unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOSPC));
    assert_eq!(calls(), 1);
}

// IOMMU_IOAS_IOVA_RANGES answers EMSGSIZE with the count; the wrapper asks again.
#[test]
fn ioas_ranges_grow_the_buffer_when_the_kernel_has_more() {
    let mut m = MockVfioSys::new();
    let (c, calls) = counted();
    m.expect_open().returning(|_| Ok(Fd(3)));
    m.expect_close().returning(|_| Ok(()));
    m.expect_iommufd_ioas_alloc().returning(|_| Ok(7));
    m.expect_iommufd_destroy().times(1).returning(|_, id| {
        assert_eq!(id, 7);
        Ok(())
    });
    m.expect_iommufd_ioas_iova_ranges()
        .returning(move |_, _, out: &mut [IovaRange]| {
            *c.lock().unwrap() += 1;
            if out.len() >= 10 {
                for (i, r) in out.iter_mut().enumerate() {
                    *r = IovaRange {
                        start: (i as u64) << 32,
                        end: ((i as u64) << 32) + 0xfff,
                    };
                }
            }
            Ok(crate::sys::IovaRangesAnswer {
                num_iovas: 10,
                alignment: 4096,
            })
        });
    let m = Arc::new(m);
    let f = Iommufd::open(&m, Path::new("/dev/iommu")).unwrap();
    let ioas = f.alloc_ioas().unwrap();
    assert_eq!(ioas.refresh_ranges().unwrap().len(), 10);
    assert_eq!(calls(), 2);
}

// Seen on 6.12 (tests/vm/README.md): a VF opened without its token answers EACCES; with the token the
// name carries `vf_token=UUID` (the kernel's syntax).
#[test]
fn device_with_token_passes_the_token_in_the_name() {
    let mut m = MockVfioSys::new();
    m.expect_open().returning(|_| Ok(Fd(4)));
    m.expect_close().returning(|_| Ok(()));
    m.expect_group_get_device_fd().returning(|_, name: &str| {
        if name == "0000:0c:00.1 vf_token=6e2c9b4a-1d7f-4c59-9c36-1f0a8f5e0b21" {
            Ok(Fd(9))
        } else {
            Err(e(libc::EACCES))
        }
    });
    let m = Arc::new(m);
    let g = Group::open(&m, Path::new("/"), 21).unwrap();
    let err = g.device("0000:0c:00.1").unwrap_err();
    assert!(err.to_string().contains("VF token"), "{err}");
    let d = g
        .device_with_token("0000:0c:00.1", "6e2c9b4a-1d7f-4c59-9c36-1f0a8f5e0b21")
        .unwrap();
    assert_eq!(d.fd(), Fd(9));
}

// include/uapi/linux/vfio.h: VFIO_DEVICE_FEATURE_SET is 1 << 17 and
// VFIO_DEVICE_FEATURE_PCI_VF_TOKEN is feature 0 (feature 1, MIGRATION, is what 6.12
// answered ENOTTY to when this sent 1).
#[test]
fn set_vf_token_sends_the_uuid_with_feature_set() {
    let mut m = MockVfioSys::new();
    m.expect_close().returning(|_| Ok(()));
    m.expect_device_feature()
        .withf(|_, flags, data: &[u8]| *flags == 1 << 17 && data == [0xab; 16])
        .times(1)
        .returning(|_, _, _| Ok(0));
    let m = Arc::new(m);
    let d = Device::from_fd(&m, Fd(5), "0000:0c:00.0".into(), None);
    d.set_vf_token([0xab; 16]).unwrap();
}

#[test]
fn config_read_past_the_region_is_short_not_an_error() {
    let t = root_amd();
    let books: Shared = Arc::default();
    let m = mock(Knobs::default(), books.clone());
    {
        let m = Arc::new(m);
        let c = Container::open(&m, t.path().join("dev/vfio/vfio")).unwrap();
        let g = Group::open(&m, t.path(), 16).unwrap();
        g.set_container(&c).unwrap();
        c.set_iommu(Extension::Type1v2).unwrap();
        let d = g.device("0000:06:00.0").unwrap();
        let mut b = [0u8; 64];
        assert_eq!(d.read_config(0x1000 - 16, &mut b).unwrap(), 16);
        assert_eq!(d.read_config(0x1000, &mut b).unwrap(), 0);
        assert_eq!(d.vendor_id().unwrap(), 0x8086, "capture: vendor=8086");
    }
    assert_clean(&books);
}

// tcg-amd/vfiotest-0000:06:00.0.txt: region 3 `flags=0xf R W MMAP CAPS`; region 7
// (config) `flags=0x3`, no MMAP: refused before any mmap.
#[test]
fn mmap_of_a_mappable_region_reads_volatile_and_config_is_refused() {
    let mut m = MockVfioSys::new();
    m.expect_close().returning(|_| Ok(()));
    m.expect_device_get_region_info()
        .returning(|_, index, buf: &mut [u8]| {
            let r = if index == 3 {
                testdata::region_bar3_msix()
            } else {
                testdata::region_config()
            };
            let n = buf.len().min(r.len());
            buf[..n].copy_from_slice(&r[..n]);
            if n < r.len() {
                buf[..4].copy_from_slice(&(r.len() as u32).to_ne_bytes());
            }
            Ok(())
        });
    m.expect_mmap()
        .withf(|_, off, len, w| *off == 0x30000000000 && *len == 0x4000 && *w)
        .times(1)
        .returning(|_, _, len, _| {
            let r = vm_memory::MmapRegion::<()>::new(len).unwrap();
            // capture: "mmap BAR0 first dword=0x00140241"
            vm_memory::VolatileMemory::get_ref::<u32>(&r, 0)
                .unwrap()
                .store(0x00140241);
            Ok(r)
        });
    let m = Arc::new(m);
    let d = Device::from_fd(&m, Fd(5), "0000:06:00.0".into(), None);
    let map = d.mmap_region(3).unwrap();
    assert_eq!(map.len(), 0x4000);
    assert_eq!(map.read_u32(0), Some(0x00140241));
    assert_eq!(map.read_u32(0x4000), None, "past the end");
    let e = d.mmap_region(7).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EINVAL));
}

// A hot reset confined to the device's own group names no other group.
#[test]
fn hot_reset_scope_in_one_group_names_no_other_group() {
    let t = root_amd();
    let (r, b) = run(Knobs::default(), |_| {}, t.path());
    let scope = &finding(&r, "hot-reset-scope").message;
    assert!(scope.contains("group(s) 16"), "{scope}");
    assert!(!scope.contains("besides"), "{scope}");
    assert_clean(&b);
}

/// `root_amd` with 06:00.0 as an SR-IOV VF: a `physfn` link and the VF's sysfs config
/// space, whose vendor and device ids read 0xffff (seen on QEMU 7.2's nvme VF in a 6.12
/// guest: `ff ff ff ff 00 00 10 00 02 02 08 01`).
fn root_vf(physfn: bool) -> tempfile::TempDir {
    let t = root_amd();
    let dev = t.path().join("sys/bus/pci/devices/0000:06:00.0");
    let mut cfg = CFG_06_SYSFS.to_vec();
    cfg[0..4].fill(0xff);
    std::fs::write(dev.join("config"), cfg).unwrap();
    if physfn {
        crate::host::fixture::add(t.path(), "0000:05:00.0", 15, Some("vfio-pci"));
        std::os::unix::fs::symlink("../0000:05:00.0", dev.join("physfn")).unwrap();
    }
    t
}

// vfio-pci shows a VF's vendor and device id (drivers/vfio/pci/vfio_pci_config.c), its
// sysfs config space 0xffff: the VF's ids are compared with sysfs vendor/device.
#[test]
fn vf_config_ids_are_compared_with_the_sysfs_id_files() {
    let t = root_vf(true);
    let (r, b) = run(Knobs::default(), |_| {}, t.path());
    assert!(!codes(&r).contains(&"config-mismatch"), "{:?}", r.findings);
    assert!(finding(&r, "config-read").message.contains("matches sysfs"));
    assert!(r.passed(), "{:?}", r.findings);
    assert_clean(&b);
}

// The same 0xffff ids on a device that is not a VF are a real mismatch.
#[test]
fn all_ones_ids_on_a_device_that_is_not_a_vf_are_a_mismatch() {
    let t = root_vf(false);
    let (r, b) = run(Knobs::default(), |_| {}, t.path());
    assert!(finding(&r, "config-mismatch").message.contains("vendor id"));
    assert!(!r.passed());
    assert_clean(&b);
}

fn root_noiommu() -> tempfile::TempDir {
    let t = root_amd();
    std::fs::write(
        t.path().join("sys/kernel/iommu_groups/16/name"),
        "vfio-noiommu\n",
    )
    .unwrap();
    t
}

// No-IOMMU mode (vfio.enable_unsafe_noiommu_mode=1): the group is opened as
// /dev/vfio/noiommu-16, the container gets VFIO_NOIOMMU_IOMMU, the kernel's refusal of
// MAP_DMA (ENOTTY) is the dma_map answer, and the report fails with no-iommu: no DMA
// isolation. Before, verify opened /dev/vfio/16 (absent) and said only "vfio-unavailable".
#[test]
fn noiommu_group_fails_saying_there_is_no_dma_isolation() {
    let t = root_noiommu();
    let k = Knobs {
        noiommu: true,
        ..Knobs::default()
    };
    let (r, b) = run(k, |o| o.api = ApiChoice::Auto, t.path());
    assert_eq!(r.api, Api::Container);
    assert_eq!(r.iommu_group, Some(16));
    assert!(r.viable);
    assert!(r.dma_map.starts_with("refused"), "{}", r.dma_map);
    assert!(r.dma_map.contains("no-IOMMU mode"), "{}", r.dma_map);
    assert_ne!(r.dma_map, "ok");
    assert!(r.iova_ranges.is_empty());
    let f = finding(&r, "no-iommu");
    assert_eq!(f.severity, Severity::Fail);
    assert!(
        f.message.contains("no IOMMU isolates the device's DMA"),
        "{}",
        f.message
    );
    assert!(f.message.contains("/dev/vfio/noiommu-16"), "{}", f.message);
    assert!(!codes(&r).contains(&"vfio-unavailable"), "{:?}", r.findings);
    // The device itself still opens: config space and reset facts are reported.
    assert!(finding(&r, "config-read").message.contains("matches sysfs"));
    assert!(r.reset.device_reset);
    assert!(!r.passed());
    let bk = b.lock().unwrap();
    assert!(!bk.log.iter().any(|l| l.starts_with("map")), "{:?}", bk.log);
    drop(bk);
    assert_clean(&b);
}

// The node alone (no sysfs name file) is enough to recognise a no-IOMMU group.
#[test]
fn noiommu_node_alone_selects_the_noiommu_path() {
    let t = root_amd();
    std::fs::write(t.path().join("dev/vfio/noiommu-16"), "").unwrap();
    let k = Knobs {
        noiommu: true,
        ..Knobs::default()
    };
    let (r, b) = run(k, |_| {}, t.path());
    assert_eq!(finding(&r, "no-iommu").severity, Severity::Fail);
    assert!(r.dma_map.starts_with("refused"), "{}", r.dma_map);
    assert_clean(&b);
}

// 6.12 (device_cdev.c vfio_df_ioctl_bind_iommufd) refuses the VF-token bind flag with
// EINVAL: verify binds again without it, says so, and stays on iommufd.
#[test]
fn iommufd_bind_without_token_support_binds_again_without_the_token() {
    let t = root_amd();
    with_iommufd(&t);
    let k = Knobs {
        bind_token_einval: true,
        ..Knobs::default()
    };
    let (r, b) = run(
        k,
        |o| {
            o.api = ApiChoice::Auto;
            o.vf_token = Some("5b3c8a2e-0f1d-4c6b-9a7e-3d2f1e0c9b8a".into());
        },
        t.path(),
    );
    assert_eq!(r.api, Api::Iommufd, "{:?}", r.findings);
    let f = finding(&r, "vf-token-ignored");
    assert_eq!(f.severity, Severity::Warn);
    assert!(
        f.message.contains("VFIO_DEVICE_BIND_IOMMUFD"),
        "{}",
        f.message
    );
    assert!(r.passed(), "{:?}", r.findings);
    assert_eq!(r.dma_map, "ok");
    assert_clean(&b);
}

// 6.12 with QEMU's nvme PF and two VFs: the hot-reset info lists the PF and the VFs,
// but vfio-pci gives each VF a reset set of its own, so PCI_HOT_RESET is EINVAL whatever
// groups are passed. verify keeps the kernel's list, says the reset is refused, and
// never attempts it.
#[test]
fn hot_reset_with_an_sriov_vf_on_the_bus_is_reported_unusable_and_not_attempted() {
    let t = root_vf(true);
    let k = Knobs {
        dev_flags: 0x2,
        ..Knobs::default()
    };
    let (r, b) = run(k.clone(), |_| {}, t.path());
    assert_eq!(r.reset.hot_reset_devices, ["0000:06:00.0", "0000:06:00.1"]);
    let f = finding(&r, "hot-reset-sriov");
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.message.contains("0000:06:00.0"), "{}", f.message);
    assert!(f.message.contains("EINVAL"), "{}", f.message);
    assert!(codes(&r).contains(&"no-reset"), "{:?}", r.findings);
    assert!(!codes(&r).contains(&"hot-reset-only"), "{:?}", r.findings);
    assert!(r.passed(), "{:?}", r.findings);
    assert_clean(&b);

    let (r, b) = run(k, |o| o.reset = true, t.path());
    assert_eq!(r.reset.performed.as_deref(), Some("no reset available"));
    assert!(!r.passed());
    let bk = b.lock().unwrap();
    assert!(
        !bk.log.iter().any(|l| l.starts_with("hot_reset")),
        "{:?}",
        bk.log
    );
    drop(bk);
    assert_clean(&b);
}

// The kernel takes a container's IOMMU away when its last group leaves
// (drivers/vfio/container.c vfio_group_detach_container: the type1 driver's
// detach_group unmaps and unpins everything), after which VFIO_IOMMU_UNMAP_DMA fails.
// A VMM dropping its group handle before its DMA space must not leak the space's
// memory: the space keeps the container's groups in until it has unmapped.
#[test]
fn a_space_keeps_its_groups_in_the_container_until_it_has_unmapped() {
    let attached = Arc::new(Mutex::new(false));
    let mut m = MockVfioSys::new();
    let next = Arc::new(Mutex::new(2));
    m.expect_open().returning(move |_| {
        let mut n = next.lock().unwrap();
        *n += 1;
        Ok(Fd(*n))
    });
    m.expect_close().returning(|_| Ok(()));
    let a = attached.clone();
    m.expect_group_set_container().returning(move |_, _| {
        *a.lock().unwrap() = true;
        Ok(())
    });
    let a = attached.clone();
    m.expect_group_unset_container().returning(move |_| {
        *a.lock().unwrap() = false;
        Ok(())
    });
    m.expect_set_iommu().returning(|_, _| Ok(()));
    m.expect_iommu_get_info().returning(|_, buf: &mut [u8]| {
        let full = testdata::iommu_info_amd();
        if buf.len() < full.len() {
            buf[..4].copy_from_slice(&(full.len() as u32).to_ne_bytes());
        } else {
            buf[..full.len()].copy_from_slice(&full);
        }
        Ok(())
    });
    m.expect_iommu_map_dma().returning(|_, _| Ok(()));
    let a = attached.clone();
    m.expect_iommu_unmap_dma().returning(move |_, _, size, _| {
        if *a.lock().unwrap() {
            Ok(size)
        } else {
            Err(e(libc::EINVAL))
        }
    });
    let m = Arc::new(m);
    let mem = Arc::new(vm_memory::MmapRegion::<()>::new(0x1000).unwrap());
    {
        let container = Container::open(&m, Path::new("/dev/vfio/vfio")).unwrap();
        let group = Group::open(&m, Path::new("/"), 16).unwrap();
        group.set_container(&container).unwrap();
        container.set_iommu(Extension::Type1v2).unwrap();
        let space = container.dma_space().unwrap();
        space.map(mem.clone(), 0x100000, true).unwrap();
        // The handles go first, the space last.
        drop(group);
        drop(container);
        assert!(*attached.lock().unwrap(), "the space keeps the group in");
        drop(space);
    }
    assert!(!*attached.lock().unwrap(), "unset once the space is gone");
    assert_eq!(
        Arc::strong_count(&mem),
        1,
        "unmapped and released, not leaked"
    );
}
