//! Binary-size probe: the baseline plus the `pci-ids` crate's embedded table.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "/usr/share/misc/pci.ids".into());
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let v = u16::from_str_radix(args.get(2).map_or("1002", |s| s), 16).unwrap_or(0);
    let d = u16::from_str_radix(args.get(3).map_or("7300", |s| s), 16).unwrap_or(0);
    println!(
        "{} bytes, {v:04x}:{d:04x} {:?}",
        text.len(),
        pci_ids::Device::from_vid_pid(v, d).map(|d| d.name())
    );
}
