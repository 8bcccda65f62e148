//! `check` over every GPU of the N = 1,000 synthetic host, split
//! into reading sysfs (`Host::load`) and analysis (`check`, no device named =
//! every display device, with companions), plus both together.
//!
//! The tree is generated once into `target/bench-hosts/criterion-1000` (or the
//! directory in `$PASSTHRU_BENCH_ROOT`: an absolute path to a generated tree; cargo
//! runs benches from `bench/`). With `$PASSTHRU_BENCH_ROOT_LARGE` (absolute path to
//! another generated tree) the analysis alone is also timed on that tree.

#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, Criterion};
use passthru_bench::{synthetic_host, write_host};
use passthru_iommu_groups::{check, Host};
use std::hint::black_box;
use std::path::PathBuf;

fn root() -> PathBuf {
    if let Some(r) = std::env::var_os("PASSTHRU_BENCH_ROOT") {
        return PathBuf::from(r);
    }
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-hosts/criterion-1000");
    if !dir.join("sys/bus/pci/devices").is_dir() {
        let _ = std::fs::remove_dir_all(&dir);
        write_host(&synthetic_host(1000), &dir).expect("writing the synthetic host");
    }
    dir
}

fn bench(c: &mut Criterion) {
    let root = root();
    let host = Host::load(&root).expect("loading the synthetic host");
    let gpus = host.display_devices().len();
    assert!(gpus > 0, "no GPU in {}", root.display());
    eprintln!(
        "check_gpus: {} ({} functions, {gpus} GPUs)",
        root.display(),
        host.devices.len()
    );
    let mut g = c.benchmark_group("check_every_gpu_n1000");
    g.sample_size(30);
    g.bench_function("load_sysfs", |b| {
        b.iter(|| Host::load(black_box(&root)).expect("load"))
    });
    g.bench_function("analysis_check", |b| {
        b.iter(|| check(black_box(&host), &[]).expect("check"))
    });
    g.bench_function("load_and_check", |b| {
        b.iter(|| {
            let h = Host::load(black_box(&root)).expect("load");
            check(&h, &[]).expect("check").devices.len()
        })
    });
    g.finish();

    // The analysis alone on a larger tree, to show how it scales with N.
    if let Some(large) = std::env::var_os("PASSTHRU_BENCH_ROOT_LARGE") {
        let host = Host::load(PathBuf::from(large)).expect("loading the large host");
        eprintln!(
            "check_gpus: large tree: {} functions, {} GPUs",
            host.devices.len(),
            host.display_devices().len()
        );
        let mut g = c.benchmark_group("check_every_gpu_large");
        g.sample_size(10);
        g.bench_function("analysis_check", |b| {
            b.iter(|| check(black_box(&host), &[]).expect("check"))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
