//! Who is near a device: its bus peers, whether it has children, what is below a
//! bridge. Two ways to answer, with the same answers: [`Host`] scans every device
//! for one question (right for one device), [`Topology`] indexes the host once
//! (O(devices x chain depth)) so that checking many devices stays linear.

use crate::model::{Device, Host};
use passthru_pci_ids::Bdf;
use std::collections::{HashMap, HashSet};

/// The topology questions reset analysis and verdicts ask, answered in address order.
pub(crate) trait Around<'h> {
    /// The other devices on `d`'s bus: same root bus, same parent bridge, same bus
    /// number (as [`Host::bus_peers`]).
    fn bus_peers(&self, d: &Device) -> Vec<&'h Device>;
    /// Whether some device has `bdf` as its parent bridge.
    fn has_children(&self, bdf: Bdf) -> bool;
    /// Every device with `bdf` in its bridge chain (as [`Host::below`]).
    fn below(&self, bdf: Bdf) -> Vec<&'h Device>;
}

/// One scan of the devices per question.
impl<'h> Around<'h> for &'h Host {
    fn bus_peers(&self, d: &Device) -> Vec<&'h Device> {
        Host::bus_peers(self, d.bdf)
    }

    fn has_children(&self, bdf: Bdf) -> bool {
        self.scan().any(|o| o.parent() == Some(bdf))
    }

    fn below(&self, bdf: Bdf) -> Vec<&'h Device> {
        Host::below(self, bdf)
    }
}

/// Where a device sits: root bus, parent bridge, bus number.
type BusKey<'h> = (&'h str, Option<Bdf>, u8);

/// The host's devices indexed by bus, parent and every bridge above them.
pub(crate) struct Topology<'h> {
    /// Devices by (root bus, parent bridge, bus number), in address order.
    buses: HashMap<BusKey<'h>, Vec<&'h Device>>,
    /// Parent bridges (addresses that are some device's parent).
    parents: HashSet<Bdf>,
    /// For every address in some device's bridge chain: the devices below it, in address order.
    below: HashMap<Bdf, Vec<&'h Device>>,
}

impl<'h> Topology<'h> {
    /// Index `host` (one pass over its devices and their bridge chains).
    pub fn new(host: &'h Host) -> Topology<'h> {
        let mut t = Topology {
            buses: HashMap::new(),
            parents: HashSet::new(),
            below: HashMap::new(),
        };
        for d in host.scan() {
            t.buses
                .entry((d.root_bus.as_str(), d.parent(), d.bdf.bus))
                .or_default()
                .push(d);
            if let Some(p) = d.parent() {
                t.parents.insert(p);
            }
            for b in &d.upstream {
                let v = t.below.entry(*b).or_default();
                // A chain naming a bridge twice still lists the device once.
                if v.last().is_none_or(|x| x.bdf != d.bdf) {
                    v.push(d);
                }
            }
        }
        t
    }
}

impl<'h> Around<'h> for Topology<'h> {
    fn bus_peers(&self, d: &Device) -> Vec<&'h Device> {
        self.buses
            .get(&(d.root_bus.as_str(), d.parent(), d.bdf.bus))
            .map(|v| v.iter().copied().filter(|o| o.bdf != d.bdf).collect())
            .unwrap_or_default()
    }

    fn has_children(&self, bdf: Bdf) -> bool {
        self.parents.contains(&bdf)
    }

    fn below(&self, bdf: Bdf) -> Vec<&'h Device> {
        self.below.get(&bdf).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    fn bdfs(v: &[&Device]) -> Vec<Bdf> {
        v.iter().map(|d| d.bdf).collect()
    }

    /// The index answers every question exactly as the scans do.
    fn same_answers(host: &Host) {
        let t = Topology::new(host);
        let h = &host;
        let mut asked: Vec<Bdf> = host.devices.keys().copied().collect();
        for d in host.devices.values() {
            assert_eq!(bdfs(&t.bus_peers(d)), bdfs(&h.bus_peers(d)), "{}", d.bdf);
            asked.extend(d.upstream.iter().copied());
        }
        for b in asked {
            assert_eq!(t.has_children(b), h.has_children(b), "{b}");
            assert_eq!(bdfs(&t.below(b)), bdfs(&h.below(b)), "{b}");
        }
    }

    /// Every committed fixture root (captured guests with root ports, switches,
    /// PCIe-to-PCI bridges, multifunction devices) and the built-in scenarios.
    #[test]
    fn index_and_scans_agree_on_every_fixture() {
        // The committed roots are the repository's; the published package checks the
        // generated scenarios below only.
        if let Some(roots) = fixture::workspace_fixtures() {
            let mut n = 0;
            for e in std::fs::read_dir(&roots).unwrap() {
                let p = e.unwrap().path();
                if let Ok(host) = Host::load(&p) {
                    same_answers(&host);
                    n += 1;
                }
            }
            assert!(n >= 10, "only {n} fixture roots under {}", roots.display());
        }
        for f in [fixture::scenario_amd(), fixture::Fixture::many_gpus(5)] {
            let dir = tempfile::tempdir().unwrap();
            f.write(dir.path()).unwrap();
            same_answers(&Host::load(dir.path()).unwrap());
        }
    }

    /// A bridge named twice in a chain (a garbled tree) lists its devices once,
    /// as the scan does.
    #[test]
    fn repeated_bridge_in_a_chain_counts_once() {
        let dir = tempfile::tempdir().unwrap();
        fixture::Fixture::many_gpus(2).write(dir.path()).unwrap();
        let mut host = Host::load(dir.path()).unwrap();
        for d in host.devices.values_mut() {
            if let Some(p) = d.parent() {
                d.upstream.insert(0, p);
            }
        }
        same_answers(&host);
    }
}
