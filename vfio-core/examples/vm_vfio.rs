//! vfio-core against a real kernel: run as root inside a QEMU guest (tests/vm) with the
//! devices under test bound to vfio-pci.
//!
//! usage: vm_vfio [BDF...]   (default: `$VFIO_BIND`; `$HOST_BIND` = "BDF=driver ...")
//!
//! With `$VF_TOKEN` set (topology `sriov`), SR-IOV PFs and VFs are opened as
//! `BDF vf_token=UUID`, and each PF with VFs also gets the VF-token and two-group hot
//! reset checks. With `$IOMMU=none` (no-IOMMU mode) each device gets the
//! `/dev/vfio/noiommu-N` checks instead of the IOMMU ones.
//!
//! Prints one line per check (`ok   ...` / `FAIL ...`) and a last line exactly
//! `N passed, N failed`; exits 1 when a check failed. The expected errnos are the real
//! kernel's answers recorded in tests/vm/README.md and tests/data/captures, or
//! read in the 6.12 source (file and function cited at each check).

#[path = "common/tally.rs"]
mod tally;
use tally::Tally;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use passthru_pci_ids::Bdf;
use passthru_vfio_core::bind::{BindGuard, SysfsRoot};
use passthru_vfio_core::container::{Container, Extension};
use passthru_vfio_core::device::Device;
use passthru_vfio_core::device::CONFIG_REGION;
use passthru_vfio_core::dma::{check_iova, find_iova, DmaSpace, OwnedDma};
use passthru_vfio_core::group::Group;
use passthru_vfio_core::info::{DeviceFlags, RegionFlags};
use passthru_vfio_core::iommufd::Iommufd;
use passthru_vfio_core::verify::{self, ApiChoice, VerifyOptions};
use passthru_vfio_core::{host, Error, EventFd, IrqIndex, RealSys};
use std::os::fd::AsFd;
use vm_memory::MmapRegion;

fn buffer(size: usize) -> Arc<MmapRegion<()>> {
    Arc::new(MmapRegion::new(size).expect("anonymous mmap"))
}

/// `$VF_TOKEN` when `bdf` is an SR-IOV PF (sysfs `sriov_totalvfs`) or VF (`physfn`).
fn vf_token_for(root: &Path, bdf: Bdf) -> Option<String> {
    let token = std::env::var("VF_TOKEN").ok().filter(|t| !t.is_empty())?;
    let dir = host::device_dir(root, bdf);
    (dir.join("physfn").exists() || dir.join("sriov_totalvfs").exists()).then_some(token)
}

/// Open a device of an attached group, with the VF token when it needs one.
fn open_device(group: &Group, bdf: Bdf, token: Option<&str>) -> Result<Device, Error> {
    match token {
        Some(t) => group.device_with_token(&bdf.to_string(), t),
        None => group.device(&bdf.to_string()),
    }
}

/// A UUID's 16 bytes from its text form.
fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The first 4 bytes (vendor, device) a config read through VFIO should show: sysfs
/// config space, except for a VF, whose config space reads 0xffff (SR-IOV
/// specification) while vfio-pci shows the ids of the sysfs vendor/device files
/// (drivers/vfio/pci/vfio_pci_config.c vfio_config_init).
fn expected_ids(root: &Path, bdf: Bdf, cfg: &[u8]) -> Option<[u8; 4]> {
    if host::physfn(root, bdf).is_some() {
        let (v, d) = host::sysfs_ids(root, bdf)?;
        let mut out = [0u8; 4];
        out[..2].copy_from_slice(&v.to_le_bytes());
        out[2..].copy_from_slice(&d.to_le_bytes());
        return Some(out);
    }
    cfg.get(0..4)?.try_into().ok()
}

/// MSI-X through eventfds: enable every vector, have the kernel signal vector 0 itself
/// (`DATA_NONE | ACTION_TRIGGER`, drivers/vfio/pci/vfio_pci_intrs.c
/// vfio_pci_set_msi_trigger), read the eventfd, try a mask (no MSI-X mask handler there:
/// ENOTTY), disable.
fn test_msix(t: &mut Tally, dev: &Device) {
    let Some(info) = t.must(
        dev.irq_info(IrqIndex::Msix.raw()),
        "VFIO_DEVICE_GET_IRQ_INFO MSI-X",
    ) else {
        return;
    };
    if info.count == 0 {
        t.check(true, "no MSI-X vectors: interrupt checks skipped");
        return;
    }
    t.check(
        info.eventfd() && !info.maskable(),
        &format!(
            "MSI-X flags {:?}: EVENTFD, not maskable (NORESIZE only without dynamic MSI-X)",
            info.flags
        ),
    );
    let fds: Vec<EventFd> = (0..info.count)
        .filter_map(|_| EventFd::new().ok())
        .collect();
    let borrowed: Vec<_> = fds.iter().map(|f| Some(f.as_fd())).collect();
    let enabled = t.must(
        dev.enable_msix(&borrowed),
        &format!(
            "VFIO_DEVICE_SET_IRQS: MSI-X enabled with {} eventfds",
            fds.len()
        ),
    );
    if enabled.is_none() {
        return;
    }
    t.must(
        dev.trigger_irq(IrqIndex::Msix, 0, 1),
        "VFIO_DEVICE_SET_IRQS: loopback trigger of vector 0",
    );
    t.check(
        fds.first().and_then(|f| f.read().ok()) == Some(1),
        "vector 0's eventfd counted the loopback once",
    );
    t.errno(
        dev.mask_irq(IrqIndex::Msix, 0, 1),
        libc::ENOTTY,
        "MSI-X mask through VFIO_DEVICE_SET_IRQS",
    );
    t.must(
        dev.disable_irq(IrqIndex::Msix),
        "VFIO_DEVICE_SET_IRQS: MSI-X disabled",
    );
}

fn test_device(t: &mut Tally, bdf: Bdf) {
    let sys = Arc::new(RealSys::new());
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
    let Some(group) = t.must(
        Group::open(&sys, root, gid),
        &format!("open /dev/vfio/{gid}"),
    ) else {
        return;
    };
    // Seen on 6.12 (tests/vm/README.md): second open of a group -> EBUSY.
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
    // Seen on 6.12 (tests/vm/README.md): GET_DEVICE_FD before SET_CONTAINER -> EINVAL. An SR-IOV PF or VF
    // names its token: vfio_group_get_device_fd checks the name (vfio_pci_core_match:
    // the token, EACCES) before the container.
    let token = vf_token_for(root, bdf);
    t.errno(
        open_device(&group, bdf, token.as_deref()),
        libc::EINVAL,
        "GET_DEVICE_FD before SET_CONTAINER",
    );

    if !st.viable {
        // Seen on 6.12 (tests/vm/README.md): SET_CONTAINER on a non-viable group -> EPERM.
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
    // Seen on 6.12 (tests/vm/README.md): MAP_DMA in the MSI window at 0xfee00000 -> EINVAL; the reported
    // ranges leave it out, so the guard refuses it before the ioctl.
    t.check(
        matches!(
            check_iova(&space.iova_ranges(), 4096, 0xfee00000, 0x200000),
            Err(Error::IovaOutOfRange { .. })
        ),
        "IOVA 0xfee00000 (MSI window) refused before the ioctl",
    );

    let size = 0x10000u64;
    let iova = find_iova(&space.iova_ranges(), 4096, size, 0x100000).unwrap_or(0x100000);
    let mem_a = buffer(size as usize);
    let mem_b = buffer(size as usize);
    // A second space on the same container owns nothing, so its duplicate request
    // reaches the kernel instead of being refused by the first space's books.
    let other = container.dma_space();
    if t.must(
        space.map(mem_a.clone(), iova, true),
        &format!("MAP_DMA {size:#x} @ {iova:#x}"),
    )
    .is_some()
    {
        t.check(
            matches!(
                space.map(mem_b.clone(), iova, true),
                Err(Error::IovaInUse { .. })
            ),
            "duplicate map refused by the space's own books before the ioctl",
        );
        // Seen on 6.12 (tests/vm/README.md): duplicate MAP_DMA -> EEXIST.
        if let Some(other) = &other.as_ref().ok() {
            t.errno(
                other.map(mem_b.clone(), iova, true),
                libc::EEXIST,
                "duplicate MAP_DMA",
            );
        }
        t.check(
            space
                .unmap(iova)
                .is_ok_and(|back| back.dma_len() as u64 == size),
            "UNMAP_DMA gives back the memory mapped",
        );
        t.check(
            space.unmap_raw(iova, size).ok() == Some(0),
            "nothing left mapped at the IOVA after the owned unmap",
        );
        t.check(
            Arc::strong_count(&mem_a) == 1,
            "the memory is released once unmapped",
        );
    }
    {
        let ro = container.dma_space();
        if let Some(ro) = t.must(ro, "a second DMA space") {
            t.must(
                ro.map(mem_a.clone(), iova, false),
                "read-only MAP_DMA at the same IOVA after unmap",
            );
            t.check(
                Arc::strong_count(&mem_a) == 2,
                "the space holds the memory while mapped",
            );
        }
    }
    // The space above dropped: it unmapped what it owned and released the memory.
    t.check(
        Arc::strong_count(&mem_a) == 1,
        "drop of a DMA space released its memory",
    );
    match space.map(mem_b.clone(), iova, true) {
        Ok(()) => {
            t.check(
                true,
                "drop of a DMA space unmapped its mappings (remap succeeds)",
            );
            let _ = space.unmap(iova);
        }
        Err(e) => {
            t.check(false, &format!("remap after space drop: {e}"));
        }
    }
    {
        let part = passthru_vfio_core::DmaRange::new(buffer(0x3000), 0x1000, 0x1000);
        let r = part
            .ok_or(Error::NotMapped { iova })
            .and_then(|p| space.map(p, iova, true))
            .and_then(|()| space.unmap(iova).map(drop));
        t.must(r, "map and unmap one page of a larger buffer");
    }
    drop(other);

    // Seen on 6.12 (tests/vm/README.md): unknown device name -> ENODEV.
    t.errno(
        group.device("0000:ff:1f.7"),
        libc::ENODEV,
        "GET_DEVICE_FD with a bogus name",
    );
    let Some(dev) = t.must(
        open_device(&group, bdf, token.as_deref()),
        &format!(
            "VFIO_GROUP_GET_DEVICE_FD{}",
            if token.is_some() {
                " (with the VF token)"
            } else {
                ""
            }
        ),
    ) else {
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
                if pread(0).is_none() && host::physfn(root, bdf).is_some() {
                    // The emulated VF stays in D3cold for the kernel ("Unable to change
                    // power state from D3cold to D0, device inaccessible"), so vfio-pci
                    // treats its memory as disabled: pread is EIO and a touch of the
                    // mapping is SIGBUS (vfio_pci_mmap_fault). Do not touch it.
                    t.check(
                        !map.is_empty(),
                        &format!("mmap BAR{i} of the VF ({:#x} bytes; not read: its BAR access is disabled)", map.len()),
                    );
                } else {
                    match stable {
                        Some(o) => {
                            let before = pread(o);
                            let mm = map.read_u32(o);
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
            }
            Err(e) => {
                t.check(false, &format!("mmap BAR{i}: {}", verify::error_chain(&e)));
            }
        }
    }
    // A VF of the emulated PF stays in D3cold (see the BAR check above): no interrupts.
    if host::physfn(root, bdf).is_none() {
        test_msix(t, &dev);
    }
    let cfg = host::read_config(root, bdf).unwrap_or_default();
    let mut via = vec![0u8; 64];
    match dev.read_config(0, &mut via) {
        Ok(n) => {
            t.check(n == 64, &format!("pread config region: {n} bytes"));
            let ids = expected_ids(root, bdf, &cfg);
            t.check(
                cfg.len() >= 16 && ids.is_some_and(|i| via[0..4] == i) && via[8..12] == cfg[8..12],
                &format!(
                    "ids and class through VFIO equal sysfs ({:02x?}, want ids {ids:02x?})",
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
        // Seen on 6.12 (tests/vm/README.md): DEVICE_RESET without the RESET flag -> EINVAL.
        t.errno(
            dev.reset(),
            libc::EINVAL,
            "VFIO_DEVICE_RESET without the RESET flag",
        );
    }
    // No reset at all: no RESET flag and the kernel refuses hot-reset info (a root-bus
    // device without FLR or PM reset, e.g. QEMU's edu at 00:05.0).
    let hot_info = dev.hot_reset_info();
    let no_reset = !has_reset && hot_info.is_err();
    match hot_info {
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
            if groups.len() > 1 {
                // drivers/vfio/pci/vfio_pci_core.c vfio_pci_dev_set_hot_reset: a device of
                // the reset's dev_set outside the groups passed is "not owned" -> EINVAL.
                t.errno(
                    dev.hot_reset(&[&group]),
                    libc::EINVAL,
                    &format!("PCI_HOT_RESET with only group {gid} of {groups:?}"),
                );
            }
            let mut others = Vec::new();
            let mut ok = true;
            for &g in groups.iter().filter(|&&g| g != gid) {
                match Group::open(&sys, root, g)
                    .and_then(|og| og.set_container(&container).map(|_| og))
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
            let vfs_on_bus = h
                .devices
                .iter()
                .any(|d| host::physfn(root, d.bdf).is_some());
            if ok && vfs_on_bus {
                // vfio_pci_core_register_device gives each VF a dev_set of its own and
                // vfio_pci_dev_set_resettable needs every device of the bus in the
                // resetting device's set: with VFs on the bus -> EINVAL, all groups or not.
                let mut all = vec![&group];
                all.extend(others.iter());
                t.errno(
                    dev.hot_reset(&all),
                    libc::EINVAL,
                    &format!(
                        "PCI_HOT_RESET with all groups {groups:?} while SR-IOV VFs are on the bus"
                    ),
                );
            } else if ok {
                let mut all = vec![&group];
                all.extend(others.iter());
                let start = Instant::now();
                let r = dev.hot_reset(&all);
                let took = start.elapsed();
                t.must(
                    r,
                    &format!("PCI_HOT_RESET with groups {groups:?} ({took:.1?})"),
                );
                t.check(
                    dev.vendor_id().is_ok_and(|v| v != 0xffff),
                    "vendor id readable after hot reset",
                );
            }
        }
        Err(e) if bdf.bus == 0 => {
            // Seen on 6.12 (tests/vm/README.md): hot-reset info on a root-bus device -> ENODEV.
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
    // A VF here has no reset at all: its reset methods are disabled (the emulated VF's
    // FLR stalls 65 s) and VFIO refuses a bus reset with VFs on the bus.
    o.reset = host::physfn(root, bdf).is_none();
    o.api = ApiChoice::Auto;
    o.vf_token = token.clone();
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
            // With no reset at all, verify --reset must fail on exactly that.
            t.check(
                if no_reset {
                    only_reset_failed(&fails)
                } else {
                    fails.is_empty()
                },
                &format!(
                    "verify --reset: {fails:?} performed {:?} (device has no reset: {no_reset})",
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
        test_iommufd(t, bdf, has_reset, no_reset);
    }
}

/// iommufd + device cdev (kernels with CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV).
fn test_iommufd(t: &mut Tally, bdf: Bdf, has_reset: bool, no_reset: bool) {
    let root = Path::new("/");
    let sys = Arc::new(RealSys::new());
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
    let Some(ioas) = t.must(fd.alloc_ioas(), "IOMMU_IOAS_ALLOC") else {
        return;
    };
    let path = Path::new("/dev/vfio/devices").join(&cdev);
    let Some(dev) = t.must(
        Device::open_cdev(&sys, &path, &bdf.to_string()),
        &format!("open {}", path.display()),
    ) else {
        return;
    };
    // 6.12 checks VF tokens only on the group path (vfio_pci_core_match); the cdev bind
    // takes no token (drivers/vfio/device_cdev.c: `bind.flags` must be 0, else EINVAL),
    // so a VF binds without one even while its PF is on vfio-pci.
    let is_vf = host::physfn(root, bdf).is_some();
    if is_vf {
        t.errno(
            dev.bind_iommufd(&fd, Some([0x5a; 16])),
            libc::EINVAL,
            "VFIO_DEVICE_BIND_IOMMUFD with a VF token (flag unknown to 6.12)",
        );
    }
    let Some(devid) = t.must(
        dev.bind_iommufd(&fd, None),
        &format!(
            "VFIO_DEVICE_BIND_IOMMUFD{}",
            if is_vf {
                " (a VF, without its token)"
            } else {
                ""
            }
        ),
    ) else {
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
    if t.must(
        ioas.map(mem_a.clone(), iova, true),
        &format!("IOMMU_IOAS_MAP {size:#x} @ {iova:#x}"),
    )
    .is_some()
    {
        // The IOAS's books refuse a duplicate before the kernel sees it (the kernel's
        // own EEXIST is checked on the container path, through a second space).
        t.check(
            matches!(
                ioas.map(mem_b.clone(), iova, true),
                Err(Error::IovaInUse { .. })
            ),
            "duplicate IOAS_MAP refused by the IOAS's books before the ioctl",
        );
        t.check(
            ioas.unmap(iova)
                .is_ok_and(|back| back.dma_len() as u64 == size),
            "IOMMU_IOAS_UNMAP gives back the memory mapped",
        );
        t.check(
            Arc::strong_count(&mem_a) == 1,
            "the memory is released once unmapped",
        );
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
            if h.devices
                .iter()
                .any(|d| host::physfn(root, d.bdf).is_some())
            {
                // Each VF is a dev_set of its own (vfio_pci_core_register_device), so a bus
                // holding VFs is never reset (vfio_pci_dev_set_resettable) -> EINVAL.
                t.errno(
                    dev.hot_reset_cdev(),
                    libc::EINVAL,
                    "PCI_HOT_RESET in cdev mode while SR-IOV VFs are on the bus",
                );
            } else {
                t.must(
                    dev.hot_reset_cdev(),
                    "PCI_HOT_RESET in cdev mode (no group fds)",
                );
            }
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
    // A VF here has no reset (see test_device).
    o.reset = !is_vf;
    match verify::verify(&sys, &SysfsRoot::new(root), &o) {
        Ok(r) => {
            let fails: Vec<String> = r
                .findings
                .iter()
                .filter(|f| f.severity == verify::Severity::Fail)
                .map(|f| format!("{}: {}", f.code, f.message))
                .collect();
            t.check(
                r.api == verify::Api::Iommufd
                    && r.dma_map == "ok"
                    && if no_reset {
                        only_reset_failed(&fails)
                    } else {
                        fails.is_empty()
                    },
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

/// The failures of `verify --reset` on a device with no reset at all: exactly one,
/// `reset-failed`.
fn only_reset_failed(fails: &[String]) -> bool {
    fails.len() == 1 && fails[0].starts_with("reset-failed: ")
}

/// Non-viable group: bind the blocking peers with the guard, check the group turns
/// viable, then check the peers are back on their drivers.
fn test_bind_peers(t: &mut Tally, bdf: Bdf, gid: u32, blockers: &[passthru_vfio_core::Blocker]) {
    let root = Path::new("/");
    let sysfs = SysfsRoot::new(root);
    let sys = Arc::new(RealSys::new());
    // verify without bind_peers fails naming the blocker; with it, passes.
    let mut o = VerifyOptions::new(root, bdf);
    o.api = ApiChoice::Container;
    match verify::verify(&sys, &sysfs, &o) {
        Ok(r) => t.check(
            !r.passed()
                && r.findings
                    .iter()
                    .any(|f| f.code == verify::VerifyCode::GroupNotViable),
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

/// Write a sysfs attribute.
fn sysfs_write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

/// The VFs of `pf` (its `virtfnN` links), in order.
fn vfs_of(root: &Path, pf: Bdf) -> Vec<Bdf> {
    let dir = host::device_dir(root, pf);
    (0..256)
        .map_while(|i| std::fs::read_link(dir.join(format!("virtfn{i}"))).ok())
        .filter_map(|l| l.file_name()?.to_str()?.parse().ok())
        .collect()
}

/// SR-IOV on a PF bound to vfio-pci (module parameter enable_sriov=1): the VF token
/// (VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, `GET_DEVICE_FD "BDF vf_token=UUID"`) and a hot
/// reset whose bus holds the PF and its VFs, each in its own group.
fn test_sriov(t: &mut Tally, pf: Bdf, token: &str) {
    let sys = Arc::new(RealSys::new());
    let root = Path::new("/");
    println!("== SR-IOV {pf}");
    let numvfs = host::device_dir(root, pf).join("sriov_numvfs");
    let n: usize = std::fs::read_to_string(&numvfs)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if !t.check(n > 0, &format!("{pf} has VFs enabled ({n})")) {
        return;
    }
    let Some(uuid) = uuid_bytes(token) else {
        t.check(false, &format!("VF_TOKEN {token:?} is a UUID"));
        return;
    };
    let wrong = "00000000-0000-4000-8000-000000000001";
    let (Some(gid), Some(container)) = (
        t.must(host::iommu_group(root, pf), "PF group from sysfs"),
        t.must(
            Container::open(&sys, Path::new("/dev/vfio/vfio")),
            "open /dev/vfio/vfio",
        ),
    ) else {
        return;
    };
    let Some(pf_group) = t.must(
        Group::open(&sys, root, gid),
        &format!("open PF group {gid}"),
    ) else {
        return;
    };
    if t.must(pf_group.set_container(&container), "PF group SET_CONTAINER")
        .is_none()
        || t.must(container.set_iommu(Extension::Type1v2), "SET_IOMMU TYPE1v2")
            .is_none()
    {
        return;
    }
    // No VF is open: the PF opens without a token (vfio_pci_validate_vf_token).
    let Some(pf_dev) = t.must(
        pf_group.device(&pf.to_string()),
        "open the PF without a token",
    ) else {
        return;
    };
    t.must(
        pf_dev.set_vf_token(uuid),
        "VFIO_DEVICE_FEATURE SET PCI_VF_TOKEN on the PF",
    );
    // Then enable the VFs afresh through sriov_numvfs (init enabled them for the other
    // tests; vfio_pci_core_sriov_configure allows a second enable only after a disable).
    t.check(
        sysfs_write(&numvfs, "0").is_ok() && vfs_of(root, pf).is_empty(),
        "sriov_numvfs = 0 removes the VFs",
    );
    let start = Instant::now();
    let enabled = sysfs_write(&numvfs, &n.to_string());
    let vfs = vfs_of(root, pf);
    t.check(
        enabled.is_ok() && vfs.len() == n,
        &format!(
            "sriov_numvfs = {n} with the PF open: VFs {vfs:?} ({:.1?}) {enabled:?}",
            start.elapsed()
        ),
    );
    for vf in &vfs {
        // drivers/pci/pci.c reset_method_store: "" disables every reset method, so
        // opening the VF does not FLR it (the emulated VF's FLR stalls 65 s).
        t.check(
            sysfs_write(&host::device_dir(root, *vf).join("reset_method"), "\n").is_ok(),
            &format!("{vf}: reset methods disabled"),
        );
        t.check(
            host::driver(root, *vf).ok().flatten().as_deref() == Some("vfio-pci"),
            &format!("{vf}: captured by vfio-pci (driver_override)"),
        );
    }
    let Some(&vf) = vfs.first() else {
        return;
    };
    let Some(vf_gid) = t.must(host::iommu_group(root, vf), "VF group from sysfs") else {
        return;
    };
    let mut groups: BTreeSet<u32> = BTreeSet::new();
    groups.insert(gid);
    for v in &vfs {
        if let Ok(g) = host::iommu_group(root, *v) {
            groups.insert(g);
        }
    }
    t.check(
        groups.len() == vfs.len() + 1,
        &format!("PF and each VF in a group of its own: {groups:?}"),
    );
    let Some(vf_group) = t.must(
        Group::open(&sys, root, vf_gid),
        &format!("open VF group {vf_gid}"),
    ) else {
        return;
    };
    if t.must(
        vf_group.set_container(&container),
        "VF group SET_CONTAINER (same container)",
    )
    .is_none()
    {
        return;
    }
    let name = vf.to_string();
    // drivers/vfio/pci/vfio_pci_core.c vfio_pci_validate_vf_token: a VF whose PF is on
    // vfio-pci needs the token ("VF token required to access device") -> EACCES; a
    // wrong one ("Incorrect VF token provided for device") -> EACCES.
    t.errno(
        vf_group.device(&name),
        libc::EACCES,
        "open the VF without a token",
    );
    t.errno(
        vf_group.device_with_token(&name, wrong),
        libc::EACCES,
        "open the VF with a wrong token",
    );
    let start = Instant::now();
    let vf_dev = vf_group.device_with_token(&name, token);
    let took = start.elapsed();
    let Some(vf_dev) = t.must(
        vf_dev,
        &format!("open the VF with the right token ({took:.1?})"),
    ) else {
        return;
    };
    t.check(
        took.as_secs() < 20,
        &format!("the VF opened in {took:.1?} (no FLR stall)"),
    );
    // With a VF in use, the PF itself needs the token too (same function: "VF token
    // required" / "Incorrect VF token" -> EACCES), and opens with the right one.
    let pf_name = pf.to_string();
    t.errno(
        pf_group.device(&pf_name),
        libc::EACCES,
        "second open of the PF without a token while a VF is open",
    );
    t.errno(
        pf_group.device_with_token(&pf_name, wrong),
        libc::EACCES,
        "second open of the PF with a wrong token while a VF is open",
    );
    t.must(
        pf_group.device_with_token(&pf_name, token).map(drop),
        "second open of the PF with the right token",
    );
    if let Some(i) = t.must(vf_dev.info(), "VF: VFIO_DEVICE_GET_INFO") {
        t.check(
            i.flags.contains(DeviceFlags::PCI) && !i.flags.contains(DeviceFlags::RESET),
            &format!(
                "VF flags {:#x}: PCI, no RESET (its reset methods are disabled)",
                i.flags.bits()
            ),
        );
    }
    let sysfs_cfg = host::read_config(root, vf).unwrap_or_default();
    let mut via = [0u8; 4];
    t.check(
        vf_dev.read_config(0, &mut via).ok() == Some(4)
            && expected_ids(root, vf, &sysfs_cfg).is_some_and(|i| i == via)
            && sysfs_cfg.get(0..4) == Some(&[0xff; 4][..]),
        &format!(
            "VF ids through VFIO {via:02x?} are sysfs vendor/device; its config space reads {:02x?}",
            sysfs_cfg.get(0..4)
        ),
    );

    // Hot reset of the PF's bus: the PF and every VF, each in its own group.
    println!("-- hot reset spanning {} groups", groups.len());
    let Some(h) = t.must(pf_dev.hot_reset_info(), "PF: GET_PCI_HOT_RESET_INFO") else {
        return;
    };
    let listed: BTreeSet<(u32, Bdf)> = h
        .devices
        .iter()
        .map(|d| (d.group_or_devid, d.bdf))
        .collect();
    let mut want: BTreeSet<(u32, Bdf)> = BTreeSet::new();
    want.insert((gid, pf));
    for v in &vfs {
        if let Ok(g) = host::iommu_group(root, *v) {
            want.insert((g, *v));
        }
    }
    t.check(
        listed == want,
        &format!("hot-reset info lists the PF and the VFs with their groups: {listed:?}"),
    );
    // vfio_pci_dev_set_hot_reset: the VFs are in the bus's dev_set but their groups
    // were not passed: "not owned" -> EINVAL.
    t.errno(
        pf_dev.hot_reset(&[&pf_group]),
        libc::EINVAL,
        "PCI_HOT_RESET with only the PF's group",
    );
    t.errno(
        pf_dev.hot_reset(&[&pf_group, &vf_group]),
        libc::EINVAL,
        "PCI_HOT_RESET without the second VF's group",
    );
    let mut rest = Vec::new();
    for v in vfs.iter().skip(1) {
        let g = host::iommu_group(root, *v).and_then(|g| {
            let og = Group::open(&sys, root, g)?;
            og.set_container(&container)?;
            Ok(og)
        });
        if let Some(g) = t.must(g, &format!("open the group of {v}")) {
            rest.push(g);
        }
    }
    let mut all = vec![&pf_group, &vf_group];
    all.extend(rest.iter());
    // Even with every group: vfio_pci_core_register_device puts each VF in a dev_set of
    // its own (`pdev->is_virtfn`), the PF's dev_set is its bus, and
    // vfio_pci_dev_set_resettable wants every device of the bus in the one set -> EINVAL
    // (a kretprobe showed vfio_find_device_in_devset answering NULL there).
    t.errno(
        pf_dev.hot_reset(&all),
        libc::EINVAL,
        &format!(
            "PCI_HOT_RESET with all {} groups while VFs exist",
            all.len()
        ),
    );
    t.errno(
        vf_dev.hot_reset(&all),
        libc::EINVAL,
        "PCI_HOT_RESET from the VF with all groups",
    );
    t.check(
        pf_dev.vendor_id().is_ok_and(|v| v != 0xffff)
            && vf_dev.vendor_id().is_ok_and(|v| v != 0xffff),
        "PF and VF still answer through VFIO",
    );
    t.check(vfs_of(root, pf) == vfs, "the VFs are still there");
}

/// No-IOMMU mode (`vfio.enable_unsafe_noiommu_mode=1`, no IOMMU in the machine): the
/// group node is `/dev/vfio/noiommu-N`, the container's backend VFIO_NOIOMMU_IOMMU.
fn test_noiommu(t: &mut Tally, bdf: Bdf) {
    let sys = Arc::new(RealSys::new());
    let root = Path::new("/");
    println!("== no-IOMMU {bdf}");
    let Some(gid) = t.must(
        host::iommu_group(root, bdf),
        &format!("{bdf}: group from sysfs"),
    ) else {
        return;
    };
    let name =
        std::fs::read_to_string(format!("/sys/kernel/iommu_groups/{gid}/name")).unwrap_or_default();
    t.check(
        name.trim() == "vfio-noiommu",
        &format!(
            "group {gid} is named {:?} (drivers/vfio/group.c)",
            name.trim()
        ),
    );
    t.check(
        host::is_noiommu_group(root, gid),
        "host::is_noiommu_group recognises it",
    );
    t.check(
        !Path::new(&format!("/dev/vfio/{gid}")).exists()
            && Path::new(&format!("/dev/vfio/noiommu-{gid}")).exists(),
        &format!("/dev/vfio/noiommu-{gid} exists, /dev/vfio/{gid} does not"),
    );
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
    // drivers/vfio/container.c vfio_container_ioctl_check_extension: with no group the
    // container polls every backend: vfio_iommu_type1 answers TYPE1v2, vfio-noiommu
    // answers NOIOMMU (vfio_noiommu_ioctl: 1 when enable_unsafe_noiommu_mode).
    match container.extensions() {
        Ok(x) => t.check(
            x.noiommu && x.type1v2,
            &format!("CHECK_EXTENSION without a group: NOIOMMU 1, TYPE1v2 1 ({x:?})"),
        ),
        Err(e) => t.check(false, &format!("extensions: {e}")),
    };
    match Group::open(&sys, root, gid) {
        Err(e) => t.check(
            e.errno() == Some(libc::ENOENT),
            &format!("open /dev/vfio/{gid}: ENOENT ({e})"),
        ),
        Ok(_) => t.check(false, &format!("/dev/vfio/{gid} opened in no-IOMMU mode")),
    };
    let Some(group) = t.must(
        Group::open_noiommu(&sys, root, gid),
        &format!("open /dev/vfio/noiommu-{gid}"),
    ) else {
        return;
    };
    t.check(
        matches!(
            Group::open_noiommu(&sys, root, gid),
            Err(Error::GroupBusy { .. })
        ),
        "second open of the noiommu group is GroupBusy (EBUSY)",
    );
    if let Some(st) = t.must(group.status(), "VFIO_GROUP_GET_STATUS") {
        t.check(st.viable && !st.container_set, "viable, no container yet");
    }
    t.errno(
        group.device(&bdf.to_string()),
        libc::EINVAL,
        "GET_DEVICE_FD before SET_CONTAINER",
    );
    if t.must(group.set_container(&container), "VFIO_GROUP_SET_CONTAINER")
        .is_none()
    {
        return;
    }
    // With a noiommu group attached only vfio-noiommu is allowed
    // (vfio_iommu_driver_allowed): TYPE1/TYPE1v2 0, NOIOMMU 1.
    match container.extensions() {
        Ok(x) => t.check(
            x.noiommu && !x.type1 && !x.type1v2,
            &format!("CHECK_EXTENSION with the group: NOIOMMU 1, TYPE1 0, TYPE1v2 0 ({x:?})"),
        ),
        Err(e) => t.check(false, &format!("extensions: {e}")),
    };
    // vfio_ioctl_set_iommu: no allowed backend answers TYPE1v2 -> the initial -ENODEV.
    t.errno(
        container.set_iommu(Extension::Type1v2),
        libc::ENODEV,
        "SET_IOMMU TYPE1v2 on a noiommu container",
    );
    if t.must(
        container.set_iommu(Extension::NoIommu),
        "VFIO_SET_IOMMU VFIO_NOIOMMU_IOMMU",
    )
    .is_none()
    {
        return;
    }
    // vfio_noiommu_ioctl answers every other ioctl with -ENOTTY.
    t.errno(
        container.iommu_info(),
        libc::ENOTTY,
        "VFIO_IOMMU_GET_INFO on vfio-noiommu",
    );
    let space = container.dma_space_without_info();
    t.errno(
        space.map(buffer(0x10000), 0x100000, true),
        libc::ENOTTY,
        "VFIO_IOMMU_MAP_DMA on vfio-noiommu",
    );
    let Some(dev) = t.must(group.device(&bdf.to_string()), "VFIO_GROUP_GET_DEVICE_FD") else {
        return;
    };
    if let Some(di) = t.must(dev.info(), "VFIO_DEVICE_GET_INFO") {
        t.check(
            di.flags.contains(DeviceFlags::PCI) && di.num_regions >= 9,
            &format!("flags {:#x}, {} regions", di.flags.bits(), di.num_regions),
        );
    }
    let cfg = host::read_config(root, bdf).unwrap_or_default();
    let mut via = vec![0u8; 64];
    t.check(
        dev.read_config(0, &mut via).ok() == Some(64)
            && cfg.len() >= 16
            && via[0..4] == cfg[0..4]
            && via[8..12] == cfg[8..12],
        &format!("config through VFIO equals sysfs ({:02x?})", &via[0..12]),
    );
    // The space holds the group (and so the container) until it goes.
    drop(space);
    drop(dev);
    drop(group);
    drop(container);

    let mut o = VerifyOptions::new(root, bdf);
    o.api = ApiChoice::Auto;
    match verify::verify(&sys, &SysfsRoot::new(root), &o) {
        Ok(r) => {
            let noiommu = r.findings.iter().find(|f| {
                f.code == verify::VerifyCode::NoIommu && f.severity == verify::Severity::Fail
            });
            t.check(
                r.dma_map != "ok" && r.dma_map.contains("no-IOMMU"),
                &format!("verify: dma_map {:?}", r.dma_map),
            );
            t.check(
                noiommu.is_some_and(|f| f.message.contains("no IOMMU isolates")) && !r.passed(),
                &format!(
                    "verify fails with no-iommu: {:?}",
                    noiommu.map(|f| &f.message)
                ),
            );
            t.check(
                r.viable && r.group == Some(gid) && r.api == verify::Api::Container,
                "verify: viable, the group, the container API",
            );
        }
        Err(e) => {
            t.check(false, &format!("verify: {e}"));
        }
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
    let mut t = Tally::new();
    if args.is_empty() {
        t.check(false, "no BDF given (argv or $VFIO_BIND)");
    }
    let noiommu = std::env::var("IOMMU").is_ok_and(|i| i == "none");
    let root = Path::new("/");
    let mut pfs = Vec::new();
    for a in &args {
        match a.parse::<Bdf>() {
            Ok(b) if noiommu => test_noiommu(&mut t, b),
            Ok(b) => {
                test_device(&mut t, b);
                if let Some(token) = vf_token_for(root, b) {
                    if host::physfn(root, b).is_none() {
                        pfs.push((b, token));
                    }
                }
            }
            Err(e) => {
                t.check(false, &format!("{a}: not a PCI address: {e}"));
            }
        }
    }
    for (pf, token) in pfs {
        test_sriov(&mut t, pf, &token);
    }
    println!("{} passed, {} failed", t.passed, t.failed);
    if t.failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
