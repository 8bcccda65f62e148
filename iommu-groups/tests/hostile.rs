//! Bad input: dangling, escaping and looping symlinks,
//! truncated `config`, non-UTF-8, garbage and huge attributes, unreadable
//! entries, FIFOs and an empty root give clear errors or absent facts (with a
//! note naming the path), never a panic or a hang.

use passthru_iommu_groups::fixture::{Fixture, FixtureDevice, IommuKind};
use passthru_iommu_groups::{check_bdfs, reset, Code, CpuVendor, Error, Host, Severity};
use passthru_pci_ids::Bdf;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

fn b(s: &str) -> Bdf {
    s.parse().unwrap()
}

/// A small valid host: root port 00:01.0 with a GPU + audio behind it, and an
/// endpoint 00:02.0 on the root bus.
fn base() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    Fixture::new(CpuVendor::Intel, IommuKind::Intel)
        .device(FixtureDevice::root_port(b("00:01.0"), 1).group(1))
        .device(
            FixtureDevice::gpu(b("01:00.0"), 0x10de, 0x1187)
                .parent(b("00:01.0"))
                .group(2),
        )
        .device(
            FixtureDevice::hdmi_audio(b("01:00.1"), 0x10de, 0x0e0a)
                .parent(b("00:01.0"))
                .group(2),
        )
        .device(FixtureDevice::gpu(b("00:02.0"), 0x8086, 0x3e92).group(3))
        .write(&root)
        .unwrap();
    (t, root)
}

fn dev_dir(root: &Path, bdf: &str) -> PathBuf {
    fs::canonicalize(root.join("sys/bus/pci/devices").join(bdf)).unwrap()
}

fn note_for<'a>(h: &'a Host, needle: &str) -> &'a str {
    h.notes
        .iter()
        .find(|n| n.path.to_string_lossy().contains(needle) || n.message.contains(needle))
        .map(|n| n.message.as_str())
        .unwrap_or_else(|| panic!("no note about {needle}: {:?}", h.notes))
}

#[test]
fn empty_root_is_an_error_naming_the_missing_directory() {
    let t = tempfile::tempdir().unwrap();
    let e = Host::load(t.path()).unwrap_err();
    assert!(matches!(e, Error::NoPciBus { .. }));
    assert!(e.to_string().contains("sys/bus/pci/devices"), "{e}");
}

#[test]
fn missing_root_is_an_error_naming_it() {
    let e = Host::load("/nonexistent/passthru-root").unwrap_err();
    assert!(matches!(e, Error::Root { .. }));
    assert!(e.to_string().contains("/nonexistent/passthru-root"), "{e}");
}

#[test]
fn root_that_is_a_file_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("file");
    fs::write(&f, "x").unwrap();
    assert!(matches!(Host::load(&f), Err(Error::Root { .. })));
}

#[test]
fn dangling_device_link_is_an_absent_device_with_a_note() {
    let (_t, root) = base();
    symlink(
        "../../../devices/pci0000:00/0000:00:09.0",
        root.join("sys/bus/pci/devices/0000:00:09.0"),
    )
    .unwrap();
    let h = Host::load(&root).unwrap();
    assert!(h.device(b("00:09.0")).is_none());
    assert!(note_for(&h, "0000:00:09.0").contains("dangling"));
    assert_eq!(h.devices.len(), 4);
}

#[test]
fn escaping_device_link_is_never_followed() {
    let (t, root) = base();
    // A convincing device directory outside the root.
    let outside = t.path().join("outside/0000:00:0a.0");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("vendor"), "0x1002\n").unwrap();
    fs::write(outside.join("device"), "0x7300\n").unwrap();
    symlink(
        "../../../../../outside/0000:00:0a.0",
        root.join("sys/bus/pci/devices/0000:00:0a.0"),
    )
    .unwrap();
    // An absolute link counts from the root: it does not reach /etc.
    symlink("/etc", root.join("sys/bus/pci/devices/0000:00:0b.0")).unwrap();
    let h = Host::load(&root).unwrap();
    assert!(h.device(b("00:0a.0")).is_none());
    assert!(note_for(&h, "0000:00:0a.0").contains("outside the root"));
    assert!(h.device(b("00:0b.0")).is_none());
}

#[test]
fn symlink_loop_ends_with_a_note() {
    let (_t, root) = base();
    let d = root.join("sys/bus/pci/devices");
    symlink("0000:00:0d.0", d.join("0000:00:0c.0")).unwrap();
    symlink("0000:00:0c.0", d.join("0000:00:0d.0")).unwrap();
    // A loop on an attribute of a real device, too.
    let g = dev_dir(&root, "0000:00:02.0");
    fs::remove_file(g.join("reset_method")).ok();
    symlink("reset_method", g.join("reset_method")).unwrap();
    let h = Host::load(&root).unwrap();
    assert!(note_for(&h, "0000:00:0c.0").contains("symbolic links"));
    assert!(h.device(b("00:02.0")).unwrap().reset_method.is_none());
    assert!(note_for(&h, "reset_method").contains("symbolic links"));
}

#[test]
fn truncated_config_gives_no_facts_and_a_note() {
    let (_t, root) = base();
    fs::write(
        dev_dir(&root, "0000:01:00.0").join("config"),
        [0xde, 0x10, 0x87],
    )
    .unwrap();
    let h = Host::load(&root).unwrap();
    let d = h.device(b("01:00.0")).unwrap();
    assert!(d.facts.is_none());
    // Ids still come from the text attributes.
    assert_eq!(d.vendor.0, 0x10de);
    assert!(note_for(&h, "01:00.0/config").contains("truncated: 3 bytes"));
}

/// "A non-root reader's 64-byte config is handled (fewer facts, said so)".
#[test]
fn non_root_64_byte_config_says_reset_is_unknown() {
    let (_t, root) = base();
    let cfg = dev_dir(&root, "0000:01:00.0").join("config");
    let full = fs::read(&cfg).unwrap();
    fs::write(&cfg, &full[..64]).unwrap();
    let h = Host::load(&root).unwrap();
    assert!(note_for(&h, "01:00.0/config").contains("only 64 bytes"));
    let d = h.device(b("01:00.0")).unwrap();
    assert!(reset::analyse(&h, d).config_unknown);
    let r = check_bdfs(&h, &[b("01:00.0")]).unwrap();
    let f = r.devices[0]
        .findings
        .iter()
        .find(|f| f.code == Code::NoReset)
        .unwrap();
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.message.contains("cannot tell"));
}

#[test]
fn non_utf8_and_garbage_attributes_fall_back_with_notes() {
    let (_t, root) = base();
    let d = dev_dir(&root, "0000:00:02.0");
    // A garbled modalias: noted, and the id attributes are read instead.
    fs::write(d.join("modalias"), "pci:v0000XXXX\n").unwrap();
    fs::write(d.join("vendor"), [0xff, 0xfe, 0x00, 0x80]).unwrap();
    fs::write(d.join("class"), "hello world\n").unwrap();
    fs::write(d.join("numa_node"), "many\n").unwrap();
    fs::write(d.join("resource"), "0x1 0x2\nnot numbers at all\n").unwrap();
    let h = Host::load(&root).unwrap();
    let dev = h.device(b("00:02.0")).unwrap();
    // Vendor and class from config space instead.
    assert_eq!(dev.vendor.0, 0x8086);
    assert_eq!(dev.class.to_u32(), 0x030000);
    assert!(dev.numa_node.is_none());
    assert!(dev.resources.is_empty());
    assert!(note_for(&h, "00:02.0/modalias").contains("pci:v0000XXXX"));
    assert!(note_for(&h, "00:02.0/vendor").contains("not UTF-8"));
    assert!(note_for(&h, "00:02.0/class").contains("hello world"));
    assert!(note_for(&h, "00:02.0/resource").contains("line 1"));
}

#[test]
fn huge_attributes_are_bounded() {
    let (_t, root) = base();
    let d = dev_dir(&root, "0000:00:02.0");
    fs::write(d.join("reset_method"), vec![b'a'; 8 << 20]).unwrap();
    fs::write(d.join("config"), vec![0u8; 4 << 20]).unwrap();
    let start = std::time::Instant::now();
    let h = Host::load(&root).unwrap();
    assert!(start.elapsed().as_secs() < 20);
    let dev = h.device(b("00:02.0")).unwrap();
    assert!(dev.reset_method.is_none());
    assert!(note_for(&h, "00:02.0/reset_method").contains("larger than"));
    // config is cut at 4096 bytes: all-zero config decodes, with nothing in it.
    assert_eq!(dev.config.as_ref().unwrap().len(), 4096);
}

#[test]
fn fifo_and_directory_attributes_are_not_read_and_do_not_hang() {
    let (_t, root) = base();
    let d = dev_dir(&root, "0000:00:02.0");
    fs::remove_file(d.join("config")).unwrap();
    let ok = std::process::Command::new("mkfifo")
        .arg(d.join("config"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo");
    // A directory where a file should be (unreadable as a file even for root).
    fs::remove_file(d.join("revision")).unwrap();
    fs::create_dir(d.join("revision")).unwrap();
    let h = Host::load(&root).unwrap();
    let dev = h.device(b("00:02.0")).unwrap();
    assert!(dev.config.is_none());
    assert!(note_for(&h, "00:02.0/config").contains("not a regular file"));
    assert!(note_for(&h, "00:02.0/revision").contains("not a regular file"));
}

#[test]
fn bad_group_links_and_names_are_notes() {
    let (_t, root) = base();
    let d = dev_dir(&root, "0000:00:02.0");
    fs::remove_file(d.join("iommu_group")).unwrap();
    symlink("../../../kernel/iommu_groups/banana", d.join("iommu_group")).unwrap();
    fs::create_dir_all(root.join("sys/kernel/iommu_groups/banana/devices")).unwrap();
    fs::write(root.join("sys/bus/pci/devices/not-a-bdf"), "").unwrap();
    let h = Host::load(&root).unwrap();
    assert!(note_for(&h, "iommu_group").contains("banana"));
    assert!(note_for(&h, "iommu_groups/banana").contains("not a group number"));
    assert!(note_for(&h, "not-a-bdf").contains("not a PCI address"));
    // Group 3 still lists the device, so it keeps its group.
    assert_eq!(h.device(b("00:02.0")).unwrap().iommu_group, Some(3.into()));
}

#[test]
fn garbage_proc_files_give_absent_facts() {
    let (_t, root) = base();
    fs::write(root.join("proc/cpuinfo"), [0u8, 0xff, 0x13, 0x37]).unwrap();
    fs::write(root.join("proc/cmdline"), [0xc3, 0x28]).unwrap();
    fs::write(root.join("proc/modules"), vec![b'x'; 5 << 20]).unwrap();
    let h = Host::load(&root).unwrap();
    assert_eq!(h.cpu_vendor, CpuVendor::Other);
    assert!(h.cmdline.is_none());
    assert!(h.modules.is_none());
    assert!(note_for(&h, "proc/cmdline").contains("not UTF-8"));
    assert!(note_for(&h, "proc/modules").contains("larger than"));
}

/// Every file of a valid tree replaced by random bytes, links kept: never a panic.
#[test]
fn random_attribute_contents_never_panic() {
    let (_t, root) = base();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..4 {
        let mut stack = vec![root.clone()];
        while let Some(p) = stack.pop() {
            for e in fs::read_dir(&p).unwrap() {
                let e = e.unwrap();
                let ft = e.file_type().unwrap();
                if ft.is_dir() {
                    stack.push(e.path());
                } else if ft.is_file() {
                    let n = (next() % 300) as usize;
                    let bytes: Vec<u8> = (0..n).map(|_| next() as u8).collect();
                    fs::write(e.path(), bytes).unwrap();
                }
            }
        }
        let h = Host::load(&root).unwrap();
        let all: Vec<Bdf> = h.devices.keys().copied().collect();
        let r = check_bdfs(&h, &all).unwrap();
        assert_eq!(r.devices.len(), h.devices.len(), "round {round}");
    }
}

/// A garbled `reserved_regions` line is a note naming the file and the line; the
/// good lines still count (a `direct` one gives `direct-mapping`), and a
/// `reserved_regions` that is a directory is an absent fact with a note.
#[test]
fn garbled_reserved_regions_are_notes_and_good_lines_still_count() {
    let (_t, root) = base();
    let g = root.join("sys/kernel/iommu_groups/2/reserved_regions");
    fs::write(
        &g,
        "0x00000000fee00000 0x00000000feefffff msi\nnot a region\n0x10 0x0f direct\n\
         0x000000007b800000 0x000000007fffffff direct\n",
    )
    .unwrap();
    let h = Host::load(&root).unwrap();
    let msg = note_for(&h, "iommu_groups/2/reserved_regions");
    assert!(msg.contains("line 2"), "{msg}");
    assert!(h.notes.iter().any(|n| n.message.contains("line 3")));
    let regions = h.groups[&2.into()].reserved_regions.as_ref().unwrap();
    assert_eq!(regions.len(), 2, "{regions:?}");
    let r = check_bdfs(&h, &[b("01:00.0")]).unwrap();
    assert!(r.devices[0]
        .findings
        .iter()
        .any(|f| f.code == Code::DirectMapping && f.severity == Severity::Fail));

    fs::remove_file(&g).unwrap();
    fs::create_dir(&g).unwrap();
    let h = Host::load(&root).unwrap();
    assert!(h.groups[&2.into()].reserved_regions.is_none());
    note_for(&h, "iommu_groups/2/reserved_regions");
}

/// Newer GPUs with reported reset trouble get `reset-bug`, citing the report; a GPU
/// without such reports (the GTX 760) gets none. Ids as users' `lspci -nn` shows
/// them in the cited reports.
#[test]
fn reset_trouble_of_newer_gpus_is_reported_with_its_source() {
    /// Vendor, device, and the severity and report source expected (`None`: no finding).
    type Case = (u16, u16, Option<(Severity, &'static str)>);
    let cases: [Case; 10] = [
        // The Radeon 680M (Rembrandt, pci.ids 1002:1681).
        (
            0x1002,
            0x1681,
            Some((Severity::Warn, "vendor-reset/issues/59")),
        ),
        (
            0x1002,
            0x744c,
            Some((Severity::Warn, "vendor-reset/issues/97")),
        ),
        (
            0x1002,
            0x7590,
            Some((Severity::Warn, "vendor-reset/issues/107")),
        ),
        (
            0x1002,
            0x15bf,
            Some((Severity::Warn, "vendor-reset/issues/82")),
        ),
        (
            0x1002,
            0x73bf,
            Some((Severity::Info, "vendor-reset/issues/35")),
        ),
        (
            0x10de,
            0x2b85,
            Some((Severity::Warn, "open-gpu-kernel-modules/issues/853")),
        ),
        // The RTX PRO 6000 Blackwell Workstation, Max-Q and Server Editions: ids as the
        // NVIDIA open kernel modules' README lists them and users' `lspci -nn` shows them.
        (0x10de, 0x2bb1, Some((Severity::Warn, "RTX 6000 PRO"))),
        (0x10de, 0x2bb4, Some((Severity::Warn, "RTX 6000 PRO"))),
        (0x10de, 0x2bb5, Some((Severity::Warn, "RTX 6000 PRO"))),
        (0x10de, 0x1187, None),
    ];
    for (v, d, want) in cases {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        Fixture::new(CpuVendor::Amd, IommuKind::Amd)
            .device(FixtureDevice::root_port(b("00:01.0"), 1).group(1))
            .device(
                FixtureDevice::gpu(b("01:00.0"), v, d)
                    .parent(b("00:01.0"))
                    .group(2),
            )
            .write(&root)
            .unwrap();
        let host = Host::load(&root).unwrap();
        let r = check_bdfs(&host, &[b("01:00.0")]).unwrap();
        let f = r.devices[0]
            .findings
            .iter()
            .find(|f| f.code == Code::ResetBug);
        match (want, f) {
            (None, None) => {}
            (Some((sev, src)), Some(f)) => {
                assert_eq!(f.severity, sev, "{v:04x}:{d:04x}");
                assert!(
                    f.evidence.iter().any(|e| e.contains(src)),
                    "{v:04x}:{d:04x}: {:?}",
                    f.evidence
                );
            }
            (w, f) => panic!("{v:04x}:{d:04x}: want {w:?}, got {f:?}"),
        }
    }
}
