//! pci.ids: index build over the real file (Debian's `pci.ids`), and name lookups
//! for every vendor:device pair in it, passthru vs the `pci-ids` crate.

use criterion::{criterion_group, criterion_main, Criterion};
use passthru_pci_ids::db::{Database, PciIdsIndex};
use std::hint::black_box;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let db = Database::find(None).expect("pci.ids (Debian package `pci.ids`)");
    let text = db.text();
    let ix = PciIdsIndex::build(text).unwrap();
    let pairs: Vec<(u16, u16)> = ix.device_ids().map(|(v, d)| (v.0, d.0)).collect();
    let found_ours = pairs
        .iter()
        .filter(|(v, d)| ix.device((*v).into(), (*d).into()).is_some())
        .count();
    let found_theirs = pairs
        .iter()
        .filter(|(v, d)| pci_ids::Device::from_vid_pid(*v, *d).is_some())
        .count();
    eprintln!(
        "{} pairs from {}: passthru finds {found_ours}, pci-ids (embedded table) finds {found_theirs}",
        pairs.len(),
        db.path().display()
    );

    let mut g = c.benchmark_group("pci_ids");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    g.bench_function("passthru/index_build", |b| {
        b.iter(|| PciIdsIndex::build(black_box(text)).unwrap())
    });
    g.bench_function("passthru/lookup_all_pairs", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for &(v, d) in &pairs {
                n += ix.device(v.into(), d.into()).map_or(0, str::len);
            }
            n
        })
    });
    g.bench_function("pci-ids/lookup_all_pairs", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for &(v, d) in &pairs {
                n += pci_ids::Device::from_vid_pid(black_box(v), d).map_or(0, |d| d.name().len());
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
