//! vfio-core against a real kernel: run as root inside a QEMU guest (tests/vm) with the
//! devices under test bound to vfio-pci.
//!
//! usage: vm_vfio [BDF...]   (default: `$VFIO_BIND`; `$HOST_BIND` = "BDF=driver ...")
//!
//! Prints one line per check (`ok   ...` / `FAIL ...`) and a last line exactly
//! `N passed, N failed`; exits 1 when a check failed. The expected errnos are the real
//! kernel's answers recorded in ../shared/VM-TESTING.md and tests/data/captures.

use std::collections::BTreeSet;
use std::path::Path;

use passthru_pci_ids::Bdf;
use passthru_vfio_core::bind::{BindGuard, SysfsRoot};
use passthru_vfio_core::container::{Container, Extension};
use passthru_vfio_core::device::Device;
use passthru_vfio_core::device::CONFIG_REGION;
use passthru_vfio_core::dma::{check_iova, find_iova, DmaMapping, DmaSpace};
use passthru_vfio_core::group::Group;
use passthru_vfio_core::info::{DeviceFlags, RegionFlags};
use passthru_vfio_core::iommufd::Iommufd;
use passthru_vfio_core::verify::{self, ApiChoice, VerifyOptions};
use passthru_vfio_core::{host, Error, RealSys};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn check(&mut self, ok: bool, what: &str) -> bool {
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
    fn must<T>(&mut self, r: Result<T, Error>, what: &str) -> Option<T> {
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
    fn errno<T>(&mut self, r: Result<T, Error>, errno: i32, what: &str) {
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

fn buffer(size: usize) -> GuestMemoryMmap<()> {
    GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), size)]).expect("anonymous mmap")
}

fn test_device(t: &mut Tally, bdf: Bdf) {
    let sys = RealSys::new();
    let root = Path::new("/");
    println!("== {bdf}");
    let Some(gid) = t.must(
        host::iommu_group(root, bdf),
        &format!("{bdf}: iommu group from sysfs"),
    ) else {
        return;
    };
    let blockers = host::blockers(root, gid).unwrap_or_default();
    let sysfs_viable = blockers.is_empty();

    let Some(container) = t.must(
        Container::open(&sys, Path::new("/dev/vfio/vfio")),
        "open /dev/vfio/vfio",
    ) else {
        return;
    };
    t.check(
        container.api_version().ok() == Some(0),
        "VFIO_GET_API_VERSION == 0",
    );
    match container.extensions() {
        Ok(x) => {
            t.check(x.type1 && x.type1v2, "CHECK_EXTENSION TYPE1 and TYPE1v2");
            t.check(x.unmap_all, "CHECK_EXTENSION UNMAP_ALL");
            t.check(!x.noiommu, "CHECK_EXTENSION NOIOMMU is 0 with an IOMMU");
        }
        Err(e) => {
            t.check(false, &format!("extensions: {e}"));
        }
    }
    let Some(mut group) = t.must(
        Group::open(&sys, root, gid),
        &format!("open /dev/vfio/{gid}"),
    ) else {
        return;
    };
    // VM-TESTING.md: second open of a group -> EBUSY.
    match Group::open(&sys, root, gid) {
        Err(Error::GroupBusy { .. }) => {
            t.check(true, "second open of the group is GroupBusy (EBUSY)")
        }
        other => t.check(
            false,
            &format!("second open of the group: {:?}", other.map(|g| g.id())),
        ),
    };
    let st = group.status();
    let Some(st) = t.must(st, "VFIO_GROUP_GET_STATUS") else {
        return;
    };
    t.check(
        st.viable == sysfs_viable,
        &format!(
            "VIABLE={} agrees with sysfs drivers (blockers {:?})",
            st.viable, blockers
        ),
    );
    t.check(
        !st.container_set,
        "CONTAINER_SET clear before SET_CONTAINER",
    );
    // VM-TESTING.md: GET_DEVICE_FD before SET_CONTAINER -> EINVAL.
    t.errno(
        group.device(&bdf.to_string()),
        libc::EINVAL,
        "GET_DEVICE_FD before SET_CONTAINER",
    );

    if !st.viable {
        // VM-TESTING.md: SET_CONTAINER on a non-viable group -> EPERM.
        t.errno(
            group.set_container(&container),
            libc::EPERM,
            "SET_CONTAINER on a non-viable group",
        );
        match group.require_viable(root) {
            Err(e @ Error::GroupNotViable { .. }) => {
                let msg = e.to_string();
                let named = blockers
                    .iter()
                    .all(|b| msg.contains(&b.bdf.to_string()) && msg.contains(&b.driver));
                t.check(
                    named,
                    &format!("not-viable error names the blockers: {msg}"),
                );
            }
            other => {
                t.check(
                    false,
                    &format!(
                        "require_viable on a non-viable group: {:?}",
                        other.map(|s| s.flags)
                    ),
                );
            }
        }
        drop(group);
        test_bind_peers(t, bdf, gid, &blockers);
        return;
    }

    if t.must(group.set_container(&container), "VFIO_GROUP_SET_CONTAINER")
        .is_none()
    {
        return;
    }
    if let Ok(s) = group.status() {
        t.check(
            s.viable && s.container_set,
            &format!(
                "status after SET_CONTAINER {:#x}: viable and container_set",
                s.flags.bits()
            ),
        );
    }
    if t.must(
        container.set_iommu(Extension::Type1v2),
        "VFIO_SET_IOMMU TYPE1v2",
    )
    .is_none()
    {
        return;
    }
    let Some(space) = t.must(container.dma_space(), "VFIO_IOMMU_GET_INFO") else {
        return;
    };
    let info = space.info().clone();
    t.check(
        !info.iova_ranges.is_empty(),
        &format!("IOVA ranges reported: {:x?}", info.iova_ranges),
    );
    t.check(
        info.dma_avail.is_some_and(|n| n > 0),
        &format!("DMA_AVAIL cap: {:?}", info.dma_avail),
    );
    t.check(
        info.min_page_size() == 4096,
        &format!("min page size {:#x}", info.min_page_size()),
    );
    // VM-TESTING.md: MAP_DMA in the MSI window at 0xfee00000 -> EINVAL; the reported
    // ranges leave it out, so the guard refuses it before the ioctl.
    t.check(
        matches!(
            check_iova(space.iova_ranges(), 4096, 0xfee00000, 0x200000),
            Err(Error::IovaOutOfRange { .. })
        ),
        "IOVA 0xfee00000 (MSI window) refused before the ioctl",
    );

    let size = 0x10000u64;
    let iova = find_iova(space.iova_ranges(), 4096, size, 0x100000).unwrap_or(0x100000);
    let mem_a = buffer(size as usize);
    let mem_b = buffer(size as usize);
    let ra = mem_a.iter().next().expect("region");
    let rb = mem_b.iter().next().expect("region");
    {
        let m = t.must(
            DmaMapping::map_region(&space, ra, iova, true),
            &format!("MAP_DMA {size:#x} @ {iova:#x}"),
        );
        // VM-TESTING.md: duplicate MAP_DMA -> EEXIST.
        t.errno(
            DmaMapping::map_region(&space, rb, iova, true),
            libc::EEXIST,
            "duplicate MAP_DMA",
        );
        if let Some(m) = m {
            t.check(
                m.unmap().ok() == Some(size),
                "UNMAP_DMA returns the size mapped",
            );
        }
    }
    {
        let _m = t.must(
            DmaMapping::map_region(&space, ra, iova, false),
            "read-only MAP_DMA at the same IOVA after unmap",
        );
    }
    // The guard above dropped: the IOVA is free again.
    match DmaMapping::map_region(&space, rb, iova, true) {
        Ok(m) => {
            t.check(true, "drop of a mapping guard unmapped it (remap succeeds)");
            drop(m);
        }
        Err(e) => {
            t.check(false, &format!("remap after guard drop: {e}"));
        }
    }
    {
        let mut plain = vec![0u8; 0x3000];
        let off = (0x1000 - (plain.as_ptr() as usize % 0x1000)) % 0x1000;
        let r = DmaMapping::map_buffer(&space, &mut plain[off..off + 0x1000], iova);
        t.must(
            r.and_then(|m| m.unmap()),
            "map and unmap a plain page-aligned buffer",
        );
    }

    // VM-TESTING.md: unknown device name -> ENODEV.
    t.errno(
        group.device("0000:ff:1f.7"),
        libc::ENODEV,
        "GET_DEVICE_FD with a bogus name",
    );
    let Some(dev) = t.must(group.device(&bdf.to_string()), "VFIO_GROUP_GET_DEVICE_FD") else {
        return;
    };
    let Some(di) = t.must(dev.info(), "VFIO_DEVICE_GET_INFO") else {
        return;
    };
    t.check(
        di.flags.contains(DeviceFlags::PCI),
        &format!("device flags {:#x} include PCI", di.flags.bits()),
    );
    t.check(
        di.num_regions >= 9,
        &format!("num_regions {} >= 9", di.num_regions),
    );
    for i in 0..di.num_regions.min(16) {
        match dev.region_info(i) {
            Ok(r) => {
                t.check(r.index == i, &format!("region {i}: size {:#x} offset {:#x} flags {:#x} sparse {:?} msix_mappable {}", r.size, r.offset, r.flags.bits(), r.sparse_mmap, r.msix_mappable));
            }
            // VGA region on a non-VGA device: EINVAL (capture: region 8 errno=22).
            Err(e) if i == 8 && e.errno() == Some(libc::EINVAL) => {
                t.check(true, "region 8 (VGA) absent: EINVAL");
            }
            Err(e) => {
                t.check(false, &format!("region {i}: {e}"));
            }
        }
    }
    for i in 0..di.num_irqs.min(8) {
        match dev.irq_info(i) {
            Ok(q) => t.check(
                q.index == i,
                &format!("irq {i}: count {} flags {:#x}", q.count, q.flags.bits()),
            ),
            // capture: irq 3 (ERR) on a device without AER: EINVAL
            Err(e) if e.errno() == Some(libc::EINVAL) => {
                t.check(true, &format!("irq {i}: EINVAL (not offered)"))
            }
            Err(e) => t.check(false, &format!("irq {i}: {e}")),
        };
    }
    // BAR mmap: the first dword through the mapping equals a pread of the same offset.
    if let Some(i) = (0..6).find(|&i| {
        dev.region_info(i)
            .is_ok_and(|r| r.flags.contains(RegionFlags::MMAP) && r.sparse_mmap.is_none())
    }) {
        match dev.mmap_region(i) {
            Ok(map) => {
                // Device registers may change between reads (the e1000e CTRL register
                // did): compare at the first dword that reads the same twice by pread.
                let pread = |off: u64| {
                    let mut b = [0u8; 4];
                    dev.read_region(i, off, &mut b)
                        .ok()
                        .map(|_| u32::from_le_bytes(b))
                };
                let stable = (0..16u64)
                    .map(|k| k * 4)
                    .find(|&o| pread(o).is_some() && pread(o) == pread(o));
                match stable {
                    Some(o) => {
                        let before = pread(o);
                        let mm = map.read_u32(o as usize);
                        t.check(
                            mm == before || mm == pread(o),
                            &format!(
                                "mmap BAR{i} dword at {o:#x} {mm:x?} equals pread {before:x?}"
                            ),
                        );
                    }
                    None => {
                        t.check(
                            map.read_u32(0).is_some(),
                            &format!("mmap BAR{i} readable (no stable register to compare)"),
                        );
                    }
                }
            }
            Err(e) => {
                t.check(false, &format!("mmap BAR{i}: {}", verify::error_chain(&e)));
            }
        }
    }
    let cfg = host::read_config(root, bdf).unwrap_or_default();
    let mut via = vec![0u8; 64];
    match dev.read_config(0, &mut via) {
        Ok(n) => {
            t.check(n == 64, &format!("pread config region: {n} bytes"));
            t.check(
                cfg.len() >= 16 && via[0..4] == cfg[0..4] && via[8..12] == cfg[8..12],
                &format!(
                    "ids and class through VFIO equal sysfs ({:02x?})",
                    &via[0..12]
                ),
            );
        }
        Err(e) => {
            t.check(false, &format!("pread config: {e}"));
        }
    }
    t.check(
        dev.region_info(CONFIG_REGION).map(|r| r.size).unwrap_or(0) >= 256,
        "config region >= 256 bytes",
    );
    // pwrite of COMMAND with the same value (capture: pwrite config -> 2).
    let mut cmd = [0u8; 2];
    if dev.read_config(4, &mut cmd).is_ok() {
        t.check(
            dev.write_config(4, &cmd).ok() == Some(2),
            "pwrite config COMMAND (same value)",
        );
    }

    let has_reset = di.flags.contains(DeviceFlags::RESET);
    if has_reset {
        t.must(dev.reset(), "VFIO_DEVICE_RESET (RESET flag set)");
    } else {
        // VM-TESTING.md: DEVICE_RESET without the RESET flag -> EINVAL.
        t.errno(
            dev.reset(),
            libc::EINVAL,
            "VFIO_DEVICE_RESET without the RESET flag",
        );
    }
    match dev.hot_reset_info() {
        Ok(h) => {
            let names: Vec<String> = h.devices.iter().map(|d| d.bdf.to_string()).collect();
            t.check(
                h.devices.iter().any(|d| d.bdf == bdf) && h.count as usize == h.devices.len(),
                &format!("GET_PCI_HOT_RESET_INFO (ENOSPC retry) lists itself: {names:?}"),
            );
            let groups: BTreeSet<u32> = h.devices.iter().map(|d| d.group_or_devid).collect();
            // capture: HOT_RESET with 0 group fds -> EINVAL.
            t.errno(
                dev.hot_reset(&[]),
                libc::EINVAL,
                "PCI_HOT_RESET with no group fds",
            );
            let mut others = Vec::new();
            let mut ok = true;
            for &g in groups.iter().filter(|&&g| g != gid) {
                match Group::open(&sys, root, g)
                    .and_then(|mut og| og.set_container(&container).map(|_| og))
                {
                    Ok(og) => others.push(og),
                    Err(e) => {
                        println!(
                            "     group {g} not usable for the hot reset: {}",
                            verify::error_chain(&e)
                        );
                        ok = false;
                    }
                }
            }
            if ok {
                let mut all = vec![&group];
                all.extend(others.iter());
                t.must(
                    dev.hot_reset(&all),
                    &format!("PCI_HOT_RESET with groups {groups:?}"),
                );
                t.check(
                    dev.vendor_id().is_ok_and(|v| v != 0xffff),
                    "vendor id readable after hot reset",
                );
            }
        }
        Err(e) if bdf.bus == 0 => {
            // VM-TESTING.md: hot-reset info on a root-bus device -> ENODEV.
            t.check(
                e.errno() == Some(libc::ENODEV),
                &format!("root-bus device: hot-reset info ENODEV ({e})"),
            );
        }
        Err(e) => {
            t.check(
                false,
                &format!("GET_PCI_HOT_RESET_INFO: {}", verify::error_chain(&e)),
            );
        }
    }
    drop(dev);
    drop(space);
    drop(group);
    drop(container);
    // Everything released: the group opens again and is attached to nothing.
    match Group::open(&sys, root, gid) {
        Ok(g) => {
            let s = g.status();
            t.check(
                s.is_ok_and(|s| !s.container_set),
                "after drop: group reopens, CONTAINER_SET clear",
            );
        }
        Err(e) => {
            t.check(false, &format!("after drop the group is still held: {e}"));
        }
    }

    // The whole sequence as `passthru verify --reset` runs it.
    let mut o = VerifyOptions::new(root, bdf);
    o.reset = true;
    o.api = ApiChoice::Auto;
    match verify::verify(&sys, &SysfsRoot::new(root), &o) {
        Ok(r) => {
            let fails: Vec<String> = r
                .findings
                .iter()
                .filter(|f| f.severity == verify::Severity::Fail)
                .map(|f| format!("{}: {}", f.code, f.message))
                .collect();
            t.check(r.dma_map == "ok", &format!("verify: dma_map {}", r.dma_map));
            t.check(
                r.reset.device_reset == has_reset,
                "verify: device_reset equals the RESET flag",
            );
            // A hot reset needs the bus to reset: behind the harness's root ports it works.
            t.check(
                fails.is_empty(),
                &format!(
                    "verify --reset: {fails:?} performed {:?}",
                    r.reset.performed
                ),
            );
        }
        Err(e) => {
            t.check(false, &format!("verify: {e}"));
        }
    }
    t.check(
        host::driver(root, bdf).ok().flatten().as_deref() == Some("vfio-pci"),
        "device still on vfio-pci after verify",
    );
    if Path::new("/dev/iommu").exists() {
        test_iommufd(t, bdf, has_reset);
    }
}

/// iommufd + device cdev (kernels with CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV).
fn test_iommufd(t: &mut Tally, bdf: Bdf, has_reset: bool) {
    let root = Path::new("/");
    let sys = RealSys::new();
    println!("-- iommufd {bdf}");
    let Some(cdev) = host::vfio_cdev(root, bdf) else {
        t.check(false, "device has a vfio-dev/vfioN cdev");
        return;
    };
    let Some(fd) = t.must(
        Iommufd::open(&sys, Path::new("/dev/iommu")),
        "open /dev/iommu",
    ) else {
        return;
    };
    let Some(mut ioas) = t.must(fd.alloc_ioas(), "IOMMU_IOAS_ALLOC") else {
        return;
    };
    let path = Path::new("/dev/vfio/devices").join(&cdev);
    let Some(dev) = t.must(
        Device::open_cdev(&sys, &path, &bdf.to_string()),
        &format!("open {}", path.display()),
    ) else {
        return;
    };
    let Some(devid) = t.must(dev.bind_iommufd(&fd, None), "VFIO_DEVICE_BIND_IOMMUFD") else {
        return;
    };
    let pt = t.must(dev.attach_ioas(&ioas), "VFIO_DEVICE_ATTACH_IOMMUFD_PT");
    // Real 6.12: the kernel answers the id of the HW page table it made for the IOAS.
    t.check(
        pt.is_some_and(|p| p != 0),
        &format!("attached to IOAS {}: hwpt {pt:?}", ioas.id()),
    );
    let ranges = t.must(
        ioas.refresh_ranges().map(|r| r.to_vec()),
        "IOMMU_IOAS_IOVA_RANGES",
    );
    let ranges = ranges.unwrap_or_default();
    t.check(!ranges.is_empty(), &format!("IOAS ranges {ranges:x?}"));
    t.check(
        matches!(
            check_iova(&ranges, 4096, 0xfee00000, 0x1000),
            Err(Error::IovaOutOfRange { .. })
        ),
        "IOAS ranges leave out the MSI window",
    );
    let size = 0x10000u64;
    let iova = find_iova(&ranges, ioas.page_size(), size, 0x100000).unwrap_or(0x100000);
    let mem_a = buffer(size as usize);
    let mem_b = buffer(size as usize);
    let ra = mem_a.iter().next().expect("region");
    let rb = mem_b.iter().next().expect("region");
    {
        let m = t.must(
            DmaMapping::map_region(&ioas, ra, iova, true),
            &format!("IOMMU_IOAS_MAP {size:#x} @ {iova:#x}"),
        );
        match DmaMapping::map_region(&ioas, rb, iova, true) {
            Ok(_) => t.check(false, "duplicate IOAS_MAP was accepted"),
            Err(e) => t.check(
                e.errno().is_some(),
                &format!("duplicate IOAS_MAP refused: {}", verify::error_chain(&e)),
            ),
        };
        if let Some(m) = m {
            t.check(
                m.unmap().ok() == Some(size),
                "IOMMU_IOAS_UNMAP returns the length",
            );
        }
    }
    if let Some(di) = t.must(dev.info(), "VFIO_DEVICE_GET_INFO (cdev)") {
        t.check(
            di.flags.contains(DeviceFlags::RESET) == has_reset,
            "RESET flag same as in group mode",
        );
    }
    let mut b = [0u8; 2];
    t.check(
        dev.read_config(0, &mut b).ok() == Some(2) && b != [0xff, 0xff],
        "config read through the cdev",
    );
    match dev.hot_reset_info() {
        Ok(h) => {
            t.check(
                h.flags & passthru_vfio_core::info::HOT_RESET_FLAG_DEV_ID != 0,
                &format!(
                    "hot-reset info in cdev mode has DEV_ID (flags {:#x})",
                    h.flags
                ),
            );
            t.check(
                h.devices
                    .iter()
                    .any(|d| d.bdf == bdf && d.group_or_devid == devid),
                &format!("hot-reset info lists itself with devid {devid}"),
            );
            t.must(
                dev.hot_reset_cdev(),
                "PCI_HOT_RESET in cdev mode (no group fds)",
            );
        }
        Err(e) if bdf.bus == 0 => {
            t.check(
                e.errno() == Some(libc::ENODEV),
                &format!("root bus: hot-reset info ENODEV ({e})"),
            );
        }
        Err(e) => {
            t.check(
                false,
                &format!("hot-reset info (cdev): {}", verify::error_chain(&e)),
            );
        }
    }
    drop(dev);
    drop(ioas);
    drop(fd);
    let mut o = VerifyOptions::new(root, bdf);
    o.api = ApiChoice::Iommufd;
    o.reset = true;
    match verify::verify(&sys, &SysfsRoot::new(root), &o) {
        Ok(r) => {
            let fails: Vec<String> = r
                .findings
                .iter()
                .filter(|f| f.severity == verify::Severity::Fail)
                .map(|f| format!("{}: {}", f.code, f.message))
                .collect();
            t.check(
                r.api == verify::Api::Iommufd && r.dma_map == "ok" && fails.is_empty(),
                &format!(
                    "verify --api iommufd --reset: api {:?} dma {} fails {fails:?}",
                    r.api, r.dma_map
                ),
            );
        }
        Err(e) => {
            t.check(false, &format!("verify iommufd: {e}"));
        }
    }
}

/// Non-viable group: bind the blocking peers with the guard, check the group turns
/// viable, then check the peers are back on their drivers.
fn test_bind_peers(t: &mut Tally, bdf: Bdf, gid: u32, blockers: &[passthru_vfio_core::Blocker]) {
    let root = Path::new("/");
    let sysfs = SysfsRoot::new(root);
    let sys = RealSys::new();
    // verify without bind_peers fails naming the blocker; with it, passes.
    let mut o = VerifyOptions::new(root, bdf);
    o.api = ApiChoice::Container;
    match verify::verify(&sys, &sysfs, &o) {
        Ok(r) => t.check(
            !r.passed() && r.findings.iter().any(|f| f.code == "group-not-viable"),
            "verify on the non-viable group fails with group-not-viable",
        ),
        Err(e) => t.check(false, &format!("verify: {e}")),
    };
    {
        let mut guards = Vec::new();
        for b in blockers {
            if let Some(g) = t.must(
                BindGuard::bind(&sysfs, b.bdf),
                &format!("bind {} ({}) to vfio-pci", b.bdf, b.driver),
            ) {
                guards.push(g);
            }
        }
        match Group::open(&sys, root, gid).and_then(|g| g.status()) {
            Ok(s) => t.check(s.viable, "group viable once its peers are on vfio-pci"),
            Err(e) => t.check(false, &format!("group status after bind: {e}")),
        };
        for g in guards {
            t.must(g.restore(), "restore the original driver");
        }
    }
    for b in blockers {
        let now = host::driver(root, b.bdf).ok().flatten();
        t.check(
            now.as_deref() == Some(b.driver.as_str()),
            &format!("{} back on {} (now {now:?})", b.bdf, b.driver),
        );
    }
    o.bind_peers = true;
    o.bind = true;
    match verify::verify(&sys, &sysfs, &o) {
        Ok(r) => t.check(
            r.viable && r.dma_map == "ok",
            &format!("verify --bind-group: viable {} dma {}", r.viable, r.dma_map),
        ),
        Err(e) => t.check(false, &format!("verify --bind-group: {e}")),
    };
    for b in blockers {
        let now = host::driver(root, b.bdf).ok().flatten();
        t.check(
            now.as_deref() == Some(b.driver.as_str()),
            &format!("after verify --bind-group {} back on {}", b.bdf, b.driver),
        );
    }
}

fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        args = std::env::var("VFIO_BIND")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
    }
    let mut t = Tally {
        passed: 0,
        failed: 0,
    };
    if args.is_empty() {
        t.check(false, "no BDF given (argv or $VFIO_BIND)");
    }
    for a in &args {
        match a.parse::<Bdf>() {
            Ok(b) => test_device(&mut t, b),
            Err(e) => {
                t.check(false, &format!("{a}: not a PCI address: {e}"));
            }
        }
    }
    println!("{} passed, {} failed", t.passed, t.failed);
    if t.failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
