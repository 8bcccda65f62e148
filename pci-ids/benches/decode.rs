//! Full config-space decode (header, every capability, every extended capability)
//! of real 256-byte and 4 KiB dumps: passthru vs pcics on the same bytes.

mod common;

use common::{ours, theirs};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::time::Duration;

static VIRTIO_FS_256: &[u8] = include_bytes!("../tests/data/tcg-amd/0000-00-1e.0.bin");
static ROOT_PORT_4K: &[u8] = include_bytes!("../tests/data/tcg-amd/0000-00-02.0.bin");
static NVME_SRIOV_4K: &[u8] = include_bytes!("../tests/data/tcg-amd/0000-0c-00.0.bin");
static E1000E_4K: &[u8] = include_bytes!("../tests/data/tcg-amd/0000-01-00.0.bin");

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
