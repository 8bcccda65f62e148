//! Generated hosts (`passthru_iommu_groups::generate::GenHost`, feature `arbitrary`):
//! every host the generator makes from fuzzer bytes writes, loads with every function
//! where it was put (parent, group, driver), and checks without error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_iommu_groups::generate::GenHost;
use passthru_iommu_groups::{check_bdfs, Host};

#[path = "common/scratch.rs"]
mod scratch;
use scratch::{fresh, scratch};

fuzz_target!(|host: GenHost| {
    let root = scratch().join("root");
    fresh(&root);
    host.fixture.write(&root).expect("fixture write");
    let model = Host::load(&root).unwrap_or_else(|e| panic!("load failed: {e}"));
    assert_eq!(model.devices.len(), host.functions.len());
    for f in &host.functions {
        let d = model
            .device(f.bdf)
            .expect("a generated function is in the model");
        assert_eq!((d.parent(), &d.driver), (f.parent, &f.driver), "{}", f.bdf);
        assert_eq!(model.group_of(f.bdf).map(|g| g.id.0), f.group, "{}", f.bdf);
    }
    let bdfs: Vec<_> = host.functions.iter().map(|f| f.bdf).collect();
    let report = check_bdfs(&model, &bdfs).expect("every generated function checks");
    assert_eq!(report.devices.len(), bdfs.len());
});
