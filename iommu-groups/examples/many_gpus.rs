//! Write a synthetic host with N GPUs (`Fixture::many_gpus`) to a directory and
//! time loading and checking it: `cargo run -p passthru-iommu-groups --example
//! many_gpus -- N DIR`.

use passthru_iommu_groups::{check, fixture::Fixture, Host};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().unwrap_or_else(|| "64".into()).parse()?;
    let dir = args.next().ok_or("usage: many_gpus N DIR")?;
    let t = Instant::now();
    Fixture::many_gpus(n).write(dir.as_ref())?;
    println!("write: {:?}", t.elapsed());
    let t = Instant::now();
    let host = Host::load(&dir)?;
    println!(
        "load: {:?} ({} devices, {} groups)",
        t.elapsed(),
        host.devices.len(),
        host.groups.len()
    );
    let t = Instant::now();
    let r = check(&host, &[])?;
    println!(
        "check: {:?} ({} devices checked)",
        t.elapsed(),
        r.devices.len()
    );
    Ok(())
}
