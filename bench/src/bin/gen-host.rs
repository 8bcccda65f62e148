//! `gen-host N OUT`: write a synthetic host tree with exactly N PCI functions
//! under OUT (which must not exist or be empty) and print its counts as JSON.

#![forbid(unsafe_code)]

use passthru_bench::{synthetic_host, write_host};
use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: gen-host N OUT   (N >= 1 PCI functions; OUT absent or empty)");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [n, out] = args.as_slice() else {
        return usage();
    };
    let Ok(n) = n.replace(['_', ','], "").parse::<usize>() else {
        return usage();
    };
    if n == 0 {
        return usage();
    }
    let out = PathBuf::from(out);
    if std::fs::read_dir(&out).is_ok_and(|mut d| d.next().is_some()) {
        eprintln!("gen-host: {} exists and is not empty", out.display());
        return ExitCode::from(2);
    }
    let h = synthetic_host(n);
    if let Err(e) = write_host(&h, &out) {
        eprintln!("gen-host: writing {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let s = &h.stats;
    println!(
        "{{\"devices\":{},\"groups\":{},\"gpus\":{},\"domains\":{},\"switches\":{},\"vfs\":{}}}",
        s.devices, s.groups, s.gpus, s.domains, s.switches, s.vfs
    );
    ExitCode::SUCCESS
}
