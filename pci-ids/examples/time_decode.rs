//! Quick min-of-N timing of a full decode, passthru vs pcics, for iterating on
//! performance without criterion: `cargo run --release --example time_decode`.
#[path = "../benches/common/mod.rs"]
mod common;

use common::{ours, theirs};
use passthru_pci_ids::ConfigSpace;
use std::hint::black_box;
use std::time::Instant;

fn walk_only(bytes: &[u8]) -> usize {
    let c = ConfigSpace::new_checked(bytes).unwrap();
    c.capabilities().count() + c.extended_capabilities().count()
}

fn header_only(bytes: &[u8]) -> usize {
    let c = ConfigSpace::new_checked(bytes).unwrap();
    black_box((c.vendor_id(), c.device_id(), c.class_code(), c.command()));
    black_box((
        c.status(),
        c.header_type(),
        c.subsystem_id(),
        c.expansion_rom(),
    ));
    black_box((c.bridge_buses(), c.bridge_control(), c.interrupt_pin()));
    for (_, bar) in c.bars() {
        black_box(bar);
    }
    0
}

fn min_ns(f: impl Fn() -> usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..200 {
        let t = Instant::now();
        for _ in 0..100 {
            black_box(f());
        }
        best = best.min(t.elapsed().as_secs_f64() / 100.0);
    }
    best * 1e9
}

fn main() {
    if let Some(f) = std::env::var_os("ONLY_OURS") {
        let b = std::fs::read(f).unwrap();
        let mut n = 0;
        for _ in 0..10000 {
            n += ours(black_box(&b));
        }
        println!("{n}");
        return;
    }
    use passthru_pci_ids::caps::*;
    println!(
        "size_of Decoded = {}, PciExpress {}, ResizableBar {}, SrIov {}, Aer {}",
        std::mem::size_of::<Decoded>(),
        std::mem::size_of::<PciExpress>(),
        std::mem::size_of::<ResizableBar>(),
        std::mem::size_of::<SrIov>(),
        std::mem::size_of::<Aer>()
    );
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tcg-amd/");
    for f in [
        "0000-00-1e.0.bin",
        "0000-00-02.0.bin",
        "0000-01-00.0.bin",
        "0000-0c-00.0.bin",
    ] {
        let b = std::fs::read(format!("{dir}{f}")).unwrap();
        let (o, t) = (min_ns(|| ours(&b)), min_ns(|| theirs(&b)));
        println!(
            "{f} ({} B): passthru {o:.0} ns, pcics {t:.0} ns, ratio {:.2}",
            b.len(),
            t / o
        );
        if std::env::var_os("DETAIL").is_some() {
            println!(
                "   walk only {:.0} ns, header only {:.0} ns",
                min_ns(|| walk_only(&b)),
                min_ns(|| header_only(&b))
            );
        }
    }
}
