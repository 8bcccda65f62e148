//! Quick timing of the pci.ids index build and lookups (min of N runs), for
//! iterating on performance without criterion: `cargo run --release --example time_index`.
use passthru_pci_ids::db::{Database, PciIdsIndex};
use std::time::Instant;

fn main() {
    let db = Database::find(None).expect("pci.ids");
    let text = db.text();
    if std::env::var_os("BUILD_ONLY").is_some() {
        for _ in 0..5 {
            std::hint::black_box(PciIdsIndex::build(std::hint::black_box(text)).unwrap());
        }
        return;
    }
    let mut best = f64::MAX;
    for _ in 0..50 {
        let t = Instant::now();
        let ix = PciIdsIndex::build(text).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(ix);
    }
    println!("index build: min {:.3} ms", best * 1e3);
    let mut best = f64::MAX;
    for _ in 0..50 {
        let t = Instant::now();
        let n = passthru_pci_ids::db::PciIds::parse(text)
            .unwrap()
            .entries()
            .count();
        std::hint::black_box(n);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("parse + iterate (two passes): min {:.3} ms", best * 1e3);
    let mut best = f64::MAX;
    for _ in 0..50 {
        let t = Instant::now();
        let n = text.lines().count();
        std::hint::black_box(n);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("lines().count(): min {:.3} ms", best * 1e3);
    let ix = PciIdsIndex::build(text).unwrap();
    let pairs: Vec<_> = ix.device_ids().collect();
    let mut best = f64::MAX;
    for _ in 0..50 {
        let t = Instant::now();
        let mut n = 0usize;
        for &(v, d) in &pairs {
            n += ix.device(v, d).map_or(0, str::len);
        }
        std::hint::black_box(n);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "lookup of {} pairs: min {:.3} ms ({:.1} ns each)",
        pairs.len(),
        best * 1e3,
        best * 1e9 / pairs.len() as f64
    );
}
