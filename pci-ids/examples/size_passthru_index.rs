//! Binary-size probe: the baseline plus passthru's pci.ids loader and index.
use passthru_pci_ids::db::Database;
use passthru_pci_ids::{DeviceId, VendorId};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "/usr/share/misc/pci.ids".into());
    let db = Database::load(&path).expect("pci.ids");
    let v = u16::from_str_radix(args.get(2).map_or("1002", |s| s), 16).unwrap_or(0);
    let d = u16::from_str_radix(args.get(3).map_or("7300", |s| s), 16).unwrap_or(0);
    let ix = db.index().expect("parse");
    println!(
        "{} bytes, {v:04x}:{d:04x} {:?}",
        db.text().len(),
        ix.device(VendorId(v), DeviceId(d))
    );
}
