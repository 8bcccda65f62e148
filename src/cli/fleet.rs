//! Several hosts in one run: `--root` repeated (one per node) or `--roots-dir DIR`
//! (each subdirectory a snapshot), for `check` (the fleet report) and
//! `config --guest proxmox-mapping` (one cluster mapping). Every other command reads
//! one host and refuses several roots.
//!
//! A node's name is the host model's (`Host::node_name`: the kernel's host name,
//! else `/etc/hostname`); a tree without one (most fixtures) is named after its
//! root directory, and the output says so. Two nodes with the same name are a usage
//! error.

use super::check::report_style::{pad, Style};
use super::check::{exit_status, name_devices, specs, CheckArgs};
use super::list::list_names::{self, Names, NamesSource};
use super::{Command, Global};
use anyhow::Context;
use passthru::report::{
    ErrorReport, FleetCheckReport, FleetNode, FleetSummary, NameFrom, NodeSource,
};
use passthru_config_gen::GuestKind;
use passthru_iommu_groups::snapshot::MARKER;
use passthru_iommu_groups::{check as check_host, Host, Severity, Verdict};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A command-line usage error: exit 2, `"kind": "usage"` under `--json`.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(msg: String) -> anyhow::Error {
    UsageError(msg).into()
}

/// Whether the command line names several hosts (`--root` more than once, or `--roots-dir`).
pub fn is_fleet(g: &Global) -> bool {
    g.roots.len() > 1 || g.roots_dir.is_some()
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Decode(_) => "decode",
        Command::List(_) => "list",
        Command::Check(_) => "check",
        Command::Snapshot(_) => "snapshot",
        Command::Verify(_) => "verify",
        Command::Config(_) => "config",
        Command::Labels(_) => "labels",
        Command::Trial(_) => "trial",
        Command::Completions(_) => "completions",
        Command::Man => "man",
    }
}

/// Refuse several roots where the command reads one host; set [`Global::root`] to the
/// one root (`/` when none is given).
pub(super) fn settle_roots(g: &mut Global, cmd: &Command) -> anyhow::Result<()> {
    if is_fleet(g) {
        let many_ok = match cmd {
            // The NFD labels are one node's file: each node runs its own.
            Command::Check(a) => a.format.is_none(),
            Command::Config(a) => a.guest.contains(&GuestKind::ProxmoxMapping),
            _ => false,
        };
        if !many_ok {
            let flag = if g.roots_dir.is_some() {
                "--roots-dir".to_string()
            } else {
                format!("--root (given {} times)", g.roots.len())
            };
            let cmd = match cmd {
                Command::Config(_) => "config (without --guest proxmox-mapping)",
                c => command_name(c),
            };
            return Err(usage(format!(
                "{flag}: `{cmd}` reads one host; several roots are for `check` and \
                 `config --guest proxmox-mapping`"
            )));
        }
    }
    g.root = g
        .roots
        .first()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/"));
    Ok(())
}

/// The roots of the command line: every `--root`, then the snapshots of `--roots-dir`
/// (its subdirectories, sorted by name; hidden entries and plain files skipped, a
/// subdirectory without the snapshot marker refused, naming it). None: `/`.
pub fn roots(g: &Global) -> anyhow::Result<Vec<PathBuf>> {
    let mut v = g.roots.clone();
    if let Some(dir) = &g.roots_dir {
        let rd = std::fs::read_dir(dir)
            .map_err(|e| usage(format!("--roots-dir {}: {e}", dir.display())))?;
        let mut subs = Vec::new();
        for e in rd {
            let e = e.map_err(|e| usage(format!("--roots-dir {}: {e}", dir.display())))?;
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let p = e.path();
            if !std::fs::metadata(&p).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if !std::fs::symlink_metadata(p.join(MARKER)).is_ok_and(|m| m.is_file()) {
                return Err(usage(format!(
                    "--roots-dir {}: {} is not a passthru snapshot (no {MARKER} file in it; \
                     take one with `passthru snapshot` on that node)",
                    dir.display(),
                    p.display()
                )));
            }
            subs.push(p);
        }
        if subs.is_empty() {
            return Err(usage(format!(
                "--roots-dir {}: no snapshot in it (one subdirectory per node, each written by `passthru snapshot`)",
                dir.display()
            )));
        }
        subs.sort();
        v.extend(subs);
    }
    if v.is_empty() {
        v.push(PathBuf::from("/"));
    }
    Ok(v)
}

/// Who a node is: its name, where the name came from, its root.
pub struct NodeId {
    /// The node's name.
    pub name: String,
    /// The name is the host's own (`node_name`), not the root directory's.
    pub from_host: bool,
    /// Its root.
    pub root: PathBuf,
}

impl NodeId {
    /// `hostname` or `directory`: where the name came from.
    pub fn name_from(&self) -> &'static str {
        if self.from_host {
            "hostname"
        } else {
            "directory"
        }
    }

    /// Its root and name source, as the JSON reports give them.
    pub fn source(&self) -> NodeSource {
        let from = if self.from_host {
            NameFrom::Hostname
        } else {
            NameFrom::Directory
        };
        NodeSource::new(self.root.display().to_string(), from)
    }
}

/// One loaded node: who it is and its host model (or why it could not be read).
pub struct Node {
    /// Name and root.
    pub id: NodeId,
    /// The host model, or the error reading it.
    pub host: anyhow::Result<Host>,
}

/// The name a root without a host name gets: its directory's file name.
fn dir_name(root: &Path) -> String {
    let named = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    named(root)
        .or_else(|| std::fs::canonicalize(root).ok().as_deref().and_then(named))
        .unwrap_or_else(|| root.display().to_string())
}

fn load_node(root: &Path) -> Node {
    let host =
        Host::load(root).with_context(|| format!("reading the host under {}", root.display()));
    let own = host.as_ref().ok().and_then(|h| h.node_name.clone());
    if let Ok(h) = &host {
        if !h.notes.is_empty() {
            eprintln!(
                "passthru: note: {}: {} fact(s) unreadable (`passthru --root {} check` lists them)",
                root.display(),
                h.notes.len(),
                root.display()
            );
        }
    }
    Node {
        id: NodeId {
            from_host: own.is_some(),
            name: own.unwrap_or_else(|| dir_name(root)),
            root: root.to_path_buf(),
        },
        host,
    }
}

/// Worker threads loading nodes: `PASSTHRU_FLEET_JOBS` when set (a benchmark knob),
/// else 1. BENCHMARKS.md ("Fleet check") has the measurement behind the default.
fn jobs(nodes: usize) -> usize {
    std::env::var("PASSTHRU_FLEET_JOBS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, nodes.max(1))
}

/// Load each root once, in order, hand the node to `work`, and keep only the node's
/// name and what `work` made of it (a host model is dropped once used, so memory
/// does not grow with a model per node). Two nodes with the same name are a usage
/// error naming both roots.
pub fn over_nodes<T: Send>(
    roots: &[PathBuf],
    work: impl Fn(&Node) -> T + Sync,
) -> anyhow::Result<Vec<(NodeId, T)>> {
    let run = |chunk: &[PathBuf]| -> Vec<(NodeId, T)> {
        chunk
            .iter()
            .map(|r| {
                let n = load_node(r);
                let t = work(&n);
                (n.id, t)
            })
            .collect()
    };
    let jobs = jobs(roots.len());
    let out: Vec<(NodeId, T)> = if jobs == 1 {
        run(roots)
    } else {
        let per = roots.len().div_ceil(jobs);
        std::thread::scope(|s| {
            let handles: Vec<_> = roots.chunks(per).map(|c| s.spawn(move || run(c))).collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    let mut seen: BTreeMap<&str, &NodeId> = BTreeMap::new();
    for (n, _) in &out {
        if let Some(prev) = seen.insert(&n.name, n) {
            return Err(usage(format!(
                "two nodes are named {:?}: {} (name from its {}) and {} (name from its {}); \
                 each node needs its own name",
                n.name,
                prev.root.display(),
                prev.name_from(),
                n.root.display(),
                n.name_from()
            )));
        }
    }
    Ok(out)
}

/// The pci.ids databases of a set of nodes, each distinct database read once.
pub struct NodeNames {
    dbs: Vec<Names>,
    of_node: Vec<usize>,
}

impl NodeNames {
    /// Locate each root's database; read each distinct one once.
    pub fn load(roots: &[PathBuf]) -> NodeNames {
        let mut keys: Vec<Option<PathBuf>> = Vec::new();
        let mut found: Vec<Option<(PathBuf, NamesSource)>> = Vec::new();
        let mut of_node = Vec::with_capacity(roots.len());
        for r in roots {
            let loc = list_names::locate(r);
            let key = loc.as_ref().map(|(p, _)| p.clone());
            let i = match keys.iter().position(|k| *k == key) {
                Some(i) => i,
                None => {
                    keys.push(key);
                    found.push(loc);
                    keys.len() - 1
                }
            };
            of_node.push(i);
        }
        NodeNames {
            dbs: found.into_iter().map(list_names::load_located).collect(),
            of_node,
        }
    }
}

/// What one node's check gave, for the summary and the human report.
enum Outcome {
    Checked {
        worst: Verdict,
        devices: usize,
        warned: usize,
        /// Failing devices with their failing finding codes; `host` for the host's.
        fails: Vec<(String, Vec<&'static str>)>,
    },
    Error(String),
}

impl Outcome {
    fn status(&self) -> u8 {
        match self {
            Outcome::Checked { worst, .. } => u8::from(*worst == Verdict::Fail),
            Outcome::Error(_) => 2,
        }
    }
    fn word(&self) -> &'static str {
        match self {
            Outcome::Checked { worst, .. } => match worst {
                Verdict::Pass => "pass",
                Verdict::Warn => "warn",
                Verdict::Fail => "fail",
            },
            Outcome::Error(_) => "error",
        }
    }
    /// Can take the workload: checked, at least one device, none fails.
    fn can_take(&self) -> bool {
        matches!(self, Outcome::Checked { worst, devices, .. } if *worst != Verdict::Fail && *devices > 0)
    }
}

/// `passthru check` over several nodes: one report keyed by node name, a summary of
/// which nodes can take the workload, exit status the worst of the nodes' (check's
/// rule: 0, 1 when a device fails, 2 when a node could not be checked).
pub fn check(g: &Global, a: &CheckArgs) -> anyhow::Result<ExitCode> {
    let specs = specs(a)?;
    let roots = roots(g)?;
    let names = NodeNames::load(&roots);
    let idxs: Vec<_> = names
        .dbs
        .iter()
        .map(|n| list_names::index(n.db.as_ref()))
        .collect();
    let at: BTreeMap<&Path, usize> = roots
        .iter()
        .zip(&names.of_node)
        .map(|(r, i)| (r.as_path(), *i))
        .collect();
    let done = over_nodes(&roots, |n| -> anyhow::Result<(FleetNode, Outcome)> {
        let host = match &n.host {
            Err(e) => return Ok(error_node(e)),
            Ok(h) => h,
        };
        let mut report = match check_host(host, &specs) {
            Err(e) => return Ok(error_node(&anyhow::Error::from(e))),
            Ok(r) => r,
        };
        let idx = idxs[at[n.id.root.as_path()]].as_ref();
        name_devices(host, &mut report, idx);
        let failing = |f: &[passthru_iommu_groups::Finding]| -> Vec<&'static str> {
            f.iter()
                .filter(|f| f.severity == Severity::Fail)
                .map(|f| f.code.name())
                .collect()
        };
        let mut fails = Vec::new();
        let host_fails = failing(&report.host.findings);
        if !host_fails.is_empty() {
            fails.push(("host".to_string(), host_fails));
        }
        for d in report.devices.iter().filter(|d| d.verdict == Verdict::Fail) {
            fails.push((d.bdf.to_string(), failing(&d.findings)));
        }
        let outcome = Outcome::Checked {
            worst: report.worst(),
            devices: report.devices.len(),
            warned: report
                .devices
                .iter()
                .filter(|d| d.verdict == Verdict::Warn)
                .count(),
            fails,
        };
        debug_assert_eq!(outcome.status(), exit_status(&report));
        Ok((FleetNode::Checked(Box::new(report)), outcome))
    })?;
    let mut reports = Vec::with_capacity(done.len());
    let mut outcomes: Vec<(NodeId, Outcome)> = Vec::with_capacity(done.len());
    for (id, r) in done {
        let (node, outcome) = r?;
        reports.push((id.name.clone(), id.source(), node));
        outcomes.push((id, outcome));
    }
    let nodes = &outcomes;
    let worst = outcomes.iter().map(|(_, o)| o.status()).max().unwrap_or(0);
    let mut sorted: Vec<&(NodeId, Outcome)> = outcomes.iter().collect();
    sorted.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let list = |f: &dyn Fn(&Outcome) -> bool| -> Vec<&str> {
        sorted
            .iter()
            .filter(|(_, o)| f(o))
            .map(|(n, _)| n.name.as_str())
            .collect()
    };
    let can_take = list(&|o| o.can_take());
    if g.json {
        let by = |w: &str| -> Vec<String> {
            list(&|o| o.word() == w)
                .into_iter()
                .map(str::to_string)
                .collect()
        };
        let mut summary = FleetSummary::new(nodes.len(), a.devices.clone());
        summary.can_take = can_take.iter().map(|n| n.to_string()).collect();
        summary.pass = by("pass");
        summary.warn = by("warn");
        summary.fail = by("fail");
        summary.error = by("error");
        let report = FleetCheckReport::new(reports, summary);
        // Through a `Value`: its keys are sorted, as the single-host report's are.
        let v = serde_json::to_value(&report)?;
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::from(worst));
    }

    let st = Style::detect();
    let name_w = sorted
        .iter()
        .map(|(n, _)| n.name.chars().count() + usize::from(!n.from_host))
        .max()
        .unwrap_or(4)
        .clamp(4, 32);
    outln!(
        "{}",
        st.bold(&format!("{}  VERDICT  DEVICES", pad("NODE", name_w)))
    )?;
    for (n, o) in &sorted {
        let shown = if n.from_host {
            n.name.clone()
        } else {
            format!("{}*", n.name)
        };
        let verdict = match o.word() {
            "pass" => st.pass(&pad("PASS", 7)),
            "warn" => st.warn(&pad("WARN", 7)),
            "fail" => st.fail(&pad("FAIL", 7)),
            _ => st.fail(&pad("ERROR", 7)),
        };
        let detail = match o {
            Outcome::Error(m) => m.lines().next().unwrap_or("").to_string(),
            Outcome::Checked { devices: 0, .. } => {
                "no device to check (none named, no display device)".to_string()
            }
            Outcome::Checked {
                devices,
                warned,
                fails,
                ..
            } => {
                let mut s = format!("{devices} checked");
                if *warned > 0 {
                    s.push_str(&format!(", {warned} with warnings"));
                }
                for (who, codes) in fails {
                    s.push_str(&format!("; {who} fails: {}", codes.join(", ")));
                }
                s
            }
        };
        // The whole detail: it is what the line is for (no cut at the terminal's width).
        outln!("{}  {verdict}  {detail}", pad(&shown, name_w))?;
    }
    if sorted.iter().any(|(n, _)| !n.from_host) {
        outln!("* named after its root directory: the tree has no host name")?;
    }
    outln!()?;
    outln!(
        "Can take the workload (a device checked, none fails): {} of {} node{}{}{}",
        can_take.len(),
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        if can_take.is_empty() { "" } else { ": " },
        can_take.join(", ")
    )?;
    Ok(ExitCode::from(worst))
}

/// A node that could not be checked: its JSON error (the report a single-host
/// `check --json` prints) and its outcome.
fn error_node(e: &anyhow::Error) -> (FleetNode, Outcome) {
    let (kind, path) = super::error_kind_and_path(e);
    let msg = format!("{e:#}");
    let report = ErrorReport::new(kind, msg.trim_end(), path);
    (FleetNode::Error(report), Outcome::Error(msg))
}
