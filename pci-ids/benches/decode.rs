//! Full config-space decode (header, every capability, every extended capability)
//! of real 256-byte and 4 KiB dumps: passthru vs pcics on the same bytes (issue 8 item 1).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use passthru_pci_ids::ConfigSpace;
use std::hint::black_box;
use std::time::Duration;

static VIRTIO_FS_256: &[u8] =
    include_bytes!("../../tests/data/captures/tcg-amd/config/0000:00:1e.0.bin");
static ROOT_PORT_4K: &[u8] =
    include_bytes!("../../tests/data/captures/tcg-amd/config/0000:00:02.0.bin");
static NVME_SRIOV_4K: &[u8] =
    include_bytes!("../../tests/data/captures/tcg-amd/config/0000:0c:00.0.bin");
static E1000E_4K: &[u8] =
    include_bytes!("../../tests/data/captures/tcg-amd/config/0000:01:00.0.bin");

/// Everything passthru decodes: header fields, BARs, each capability's decoder.
fn ours(bytes: &[u8]) -> usize {
    let c = ConfigSpace::new_checked(bytes).unwrap();
    black_box((c.vendor_id(), c.device_id(), c.class_code(), c.command()));
    black_box((
        c.status(),
        c.header_type(),
        c.subsystem_id(),
        c.expansion_rom(),
    ));
    black_box((c.bridge_buses(), c.bridge_control(), c.interrupt_pin()));
    let mut n = 0;
    for (_, bar) in c.bars() {
        black_box(bar);
    }
    for cap in c.capabilities() {
        let cap = cap.unwrap();
        black_box(cap.decode(bytes));
        n += 1;
    }
    for cap in c.extended_capabilities() {
        let cap = cap.unwrap();
        black_box(cap.decode(bytes));
        n += 1;
    }
    n
}

/// The same through pcics: header, capabilities, extended capabilities.
fn theirs(bytes: &[u8]) -> usize {
    let header = pcics::Header::try_from(&bytes[..pcics::DDR_OFFSET]).unwrap();
    let mut n = 0;
    for cap in pcics::Capabilities::new(&bytes[pcics::DDR_OFFSET..pcics::ECS_OFFSET], &header) {
        black_box(&cap);
        n += 1;
    }
    if bytes.len() > pcics::ECS_OFFSET {
        for cap in pcics::ExtendedCapabilities::new(&bytes[pcics::ECS_OFFSET..]) {
            black_box(&cap);
            n += 1;
        }
    }
    black_box(header);
    n
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("config_decode");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    for (name, bytes) in [
        ("virtio-fs-256B", VIRTIO_FS_256),
        ("root-port-4KiB", ROOT_PORT_4K),
        ("e1000e-4KiB", E1000E_4K),
        ("nvme-sriov-4KiB", NVME_SRIOV_4K),
    ] {
        // same work: both see the same number of capabilities
        assert_eq!(
            ours(bytes),
            theirs(bytes),
            "{name}: capability counts differ"
        );
        g.bench_with_input(BenchmarkId::new("passthru", name), bytes, |b, x| {
            b.iter(|| ours(black_box(x)))
        });
        g.bench_with_input(BenchmarkId::new("pcics", name), bytes, |b, x| {
            b.iter(|| theirs(black_box(x)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
