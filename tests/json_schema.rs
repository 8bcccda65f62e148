//! The JSON Schemas of every command's `--json` output (docs/schema/<command>.json).
//!
//! - They are generated from the report types (`passthru::report::schemas`): the
//!   checked-in files must equal what the types generate (`PASSTHRU_BLESS=1` rewrites
//!   them; review the diff: a key removed or renamed breaks readers).
//! - Every golden JSON of the repository validates against its command's schema:
//!   tests/fixtures/golden (`list`, `check`), tests/golden/host-findings (`check`),
//!   tests/golden/config/*/plan.json (`config`), tests/golden/fleet (`check-fleet`,
//!   `config --guest proxmox-mapping`), tests/golden/trial (`trial`, written by
//!   tests/trial_cli.rs from stand-in VMM runs), and the `verify`, `decode` and error
//!   goldens of tests/golden/json (made here from the fixture roots and capture files,
//!   `PASSTHRU_BLESS=1` rewrites them).
//! - Every golden reads back into its typed report (serde) and writes out the same JSON.
//! - A mutated golden is rejected (the validation is not vacuous).

#[path = "cli_list_check_support/mod.rs"]
mod cli_common;

use cli_common::*;
use passthru::report::{
    CheckReport, ConfigReport, DecodeReport, ErrorReport, FleetCheckReport, FleetNode,
    LabelsReport, ListReport, SnapshotReport, TrialReport,
};
use passthru::vfio_core::VerifyReport;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn schema_dir() -> PathBuf {
    repo().join("docs/schema")
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn validator(command: &str) -> jsonschema::Validator {
    let schema = read_json(&schema_dir().join(format!("{command}.json")));
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{command}.json: {e}"))
}

/// Why `v` does not fit `command`'s schema (empty: it fits).
fn errors(val: &jsonschema::Validator, v: &Value) -> Vec<String> {
    val.iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// The list goldens leave out `pci_ids` (its path is this checkout's; the list test
/// removes it before comparing): put back what that test asserts it was.
fn list_as_printed(mut v: Value) -> Value {
    v["pci_ids"] = serde_json::json!({"from": "env", "path": pci_ids().display().to_string()});
    v
}

/// Every golden with its command: (command, file, JSON as the command prints it).
fn goldens() -> Vec<(&'static str, PathBuf, Value)> {
    let mut out = Vec::new();
    let fixtures = repo().join("tests/fixtures/golden");
    for p in files(&fixtures, ".list.json") {
        let v = list_as_printed(read_json(&p));
        out.push(("list", p, v));
    }
    for p in files(&fixtures, ".check.json") {
        let v = read_json(&p);
        out.push(("check", p, v));
    }
    for p in files(&repo().join("tests/golden/host-findings"), ".check.json") {
        let v = read_json(&p);
        out.push(("check", p, v));
    }
    let config = repo().join("tests/golden/config");
    let mut plans: Vec<PathBuf> = std::fs::read_dir(&config)
        .unwrap()
        .map(|e| e.unwrap().path().join("plan.json"))
        .filter(|p| p.is_file())
        .collect();
    plans.sort();
    for p in plans {
        let v = read_json(&p);
        out.push(("config", p, v));
    }
    let fleet = repo().join("tests/golden/fleet");
    for p in files(&fleet, ".json") {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let command = if name.starts_with("check-") {
            "check-fleet"
        } else if name.starts_with("mapping-") {
            "config"
        } else {
            panic!("{}: which command printed this?", p.display())
        };
        let v = read_json(&p);
        out.push((command, p, v));
    }
    for p in files(&repo().join("tests/golden/trial"), ".json") {
        let v = read_json(&p);
        out.push(("trial", p, v));
    }
    for (command, p) in json_goldens() {
        let v = read_json(&p);
        out.push((command, p, v));
    }
    out
}

/// tests/golden/json: the commands with no golden elsewhere, each the output of one
/// run (`json_goldens_are_what_the_commands_print` makes and checks them).
fn json_golden_runs() -> Vec<(&'static str, &'static str, Vec<String>)> {
    let fx = |n: &str| repo().join("tests/fixtures").join(n).display().to_string();
    let cap = |run: &str, bdf: &str| {
        repo()
            .join("tests/data/captures")
            .join(run)
            .join("config")
            .join(format!("{bdf}.bin"))
            .display()
            .to_string()
    };
    vec![
        // tcg-amd: 0b:00.0 on virtio-pci in group 20 with 0b:00.1 (not-vfio-pci).
        (
            "verify",
            "verify-tcg-amd-0b00.0",
            vec![
                "--root".into(),
                fx("tcg-amd"),
                "verify".into(),
                "0b:00.0".into(),
            ],
        ),
        // tcg-amd: 06:00.0 on vfio-pci; the fixture's /dev/vfio/vfio is a plain file.
        (
            "verify",
            "verify-tcg-amd-06000-container",
            vec![
                "--root".into(),
                fx("tcg-amd"),
                "verify".into(),
                "06:00.0".into(),
                "--api".into(),
                "container".into(),
            ],
        ),
        // A real NVMe function's 4096-byte config (tcg-amd capture 0c:00.0).
        (
            "decode",
            "decode-tcg-amd-0c00.0",
            vec!["decode".into(), cap("tcg-amd", "0000:0c:00.0")],
        ),
        // A device the host lacks: the JSON error object, exit 2.
        (
            "error",
            "error-unknown-device",
            vec![
                "--root".into(),
                fx("tcg-amd"),
                "check".into(),
                "77:00.0".into(),
            ],
        ),
    ]
}

fn json_goldens() -> Vec<(&'static str, PathBuf)> {
    json_golden_runs()
        .into_iter()
        .map(|(c, n, _)| {
            (
                c,
                repo().join("tests/golden/json").join(format!("{n}.json")),
            )
        })
        .collect()
}

/// The checkout's own paths in a command's output, made relative to the repository.
fn portable(text: &str) -> String {
    text.replace(&format!("{}/", repo().display()), "")
}

#[test]
fn json_goldens_are_what_the_commands_print() {
    for (command, name, args) in json_golden_runs() {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_passthru"));
        c.arg("--json").args(&args);
        c.env("PASSTHRU_PCI_IDS", pci_ids()).env_remove("NO_COLOR");
        let o = run_cmd(c);
        assert!(
            matches!(o.code, 0..=2),
            "{name}: exit {}: {}",
            o.code,
            o.stderr
        );
        let got = portable(&o.stdout);
        let path = repo()
            .join("tests/golden/json")
            .join(format!("{name}.json"));
        if bless() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
        } else {
            let want = std::fs::read_to_string(&path)
                .unwrap_or_else(|_| panic!("{} missing: bless", path.display()));
            assert_eq!(
                got, want,
                "{command} {name}: differs from its golden (bless after review)"
            );
        }
    }
}

#[test]
fn checked_in_schemas_are_what_the_types_generate() {
    let dir = schema_dir();
    for (command, schema) in passthru::report::schemas() {
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = dir.join(format!("{command}.json"));
        if bless() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else {
            let want = std::fs::read_to_string(&path)
                .unwrap_or_else(|_| panic!("{} missing: PASSTHRU_BLESS=1", path.display()));
            if text != want {
                // The first line that differs, not two whole schemas.
                let (n, (got, had)) = text
                    .lines()
                    .zip(want.lines().chain(std::iter::repeat("<end>")))
                    .enumerate()
                    .find(|(_, (a, b))| a != b)
                    .unwrap_or((text.lines().count(), ("<end>", "<more lines>")));
                panic!(
                    "{}:{}: the report types changed: generated `{got}`, checked in `{had}`; review and bless (PASSTHRU_BLESS=1 cargo test --test json_schema)",
                    path.display(),
                    n + 1
                );
            }
        }
    }
    // No stale schema of a command that no longer exists.
    let names: Vec<String> = passthru::report::schemas()
        .iter()
        .map(|(c, _)| format!("{c}.json"))
        .collect();
    for p in files(&dir, ".json") {
        let f = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            names.contains(&f),
            "{}: no command has this schema",
            p.display()
        );
    }
}

#[test]
fn every_golden_validates_against_its_commands_schema() {
    let all = goldens();
    for command in [
        "list",
        "check",
        "check-fleet",
        "config",
        "verify",
        "decode",
        "error",
        "trial",
    ] {
        assert!(
            all.iter().any(|(c, _, _)| *c == command),
            "no golden for {command}"
        );
    }
    for (command, path, v) in &all {
        let val = validator(command);
        let e = errors(&val, v);
        assert!(e.is_empty(), "{}: {command} schema: {e:#?}", path.display());
    }
}

/// Deserialize into `T`, serialize again: the same JSON (nothing lost or invented).
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(path: &Path, v: &Value) {
    let typed: T = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{}: does not read back: {e}", path.display()));
    let again = serde_json::to_value(&typed).unwrap();
    assert_eq!(&again, v, "{}: changed by a round trip", path.display());
}

#[test]
fn every_golden_reads_back_into_its_typed_report() {
    for (command, path, v) in goldens() {
        match command {
            "list" => round_trip::<ListReport>(&path, &v),
            "check" => round_trip::<CheckReport>(&path, &v),
            "check-fleet" => round_trip::<FleetCheckReport>(&path, &v),
            "trial" => round_trip::<TrialReport>(&path, &v),
            "config" => round_trip::<ConfigReport>(&path, &v),
            "verify" => round_trip::<VerifyReport>(&path, &v),
            "decode" => round_trip::<DecodeReport>(&path, &v),
            "error" => round_trip::<ErrorReport>(&path, &v),
            other => panic!("{other}: no typed report"),
        }
    }
}

// The negative control: each mutation breaks one documented rule, and the schema
// says so (a schema that accepts anything would pass the test above).
#[test]
fn a_mutated_golden_is_rejected() {
    let check = read_json(&repo().join("tests/fixtures/golden/scenario-amd.check.json"));
    let val = validator("check");
    assert!(errors(&val, &check).is_empty());
    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "a severity outside info/warn/fail",
            Box::new(|v| v["devices"][0]["findings"][0]["severity"] = "fatal".into()),
        ),
        (
            "a finding code no crate has",
            Box::new(|v| v["devices"][0]["findings"][0]["code"] = "no-such-code".into()),
        ),
        (
            "an upper-case vendor id",
            Box::new(|v| v["devices"][0]["vendor_id"] = "10DE".into()),
        ),
        (
            "a BDF without its domain",
            Box::new(|v| v["devices"][0]["bdf"] = "0b:00.0".into()),
        ),
        (
            "an IOMMU group as a string",
            Box::new(|v| v["devices"][0]["iommu_group"] = "20".into()),
        ),
        (
            "a required key removed",
            Box::new(|v| {
                v["devices"][0].as_object_mut().unwrap().remove("verdict");
            }),
        ),
    ];
    assert!(!check["devices"][0]["findings"]
        .as_array()
        .unwrap()
        .is_empty());
    for (what, m) in mutations {
        let mut v = check.clone();
        m(&mut v);
        assert!(!errors(&val, &v).is_empty(), "accepted with {what}");
    }
    let plan = read_json(&repo().join("tests/golden/config/proxmox-amd/plan.json"));
    let val = validator("config");
    assert!(errors(&val, &plan).is_empty());
    let mut v = plan.clone();
    v["warnings"][0]["code"] = "not-a-config-code".into();
    assert!(
        !errors(&val, &v).is_empty(),
        "config: an unknown warning code accepted"
    );
}

// `snapshot --json` names its temporary output directory, so it has no golden file:
// a live run on the tcg-amd fixture is validated and read back instead.
#[test]
fn snapshot_output_validates_and_reads_back() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("snap");
    let o = passthru(
        &repo().join("tests/fixtures/tcg-amd"),
        &["--json", "snapshot", dir.to_str().unwrap()],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let e = errors(&validator("snapshot"), &v);
    assert!(e.is_empty(), "{e:#?}");
    round_trip::<SnapshotReport>(Path::new("snapshot --json"), &v);
    assert!(v["devices"].as_u64().unwrap() > 0, "{v}");
    let mut bad = v.clone();
    bad["files"] = (-1).into();
    assert!(
        !errors(&validator("snapshot"), &bad).is_empty(),
        "a negative count accepted"
    );
}

type Mutation = Box<dyn Fn(&mut Value)>;

/// `base` fits `command`'s schema, and each mutation of it (named by what it
/// breaks) does not.
fn each_mutation_rejected(command: &str, base: &Value, mutations: Vec<(&str, Mutation)>) {
    let val = validator(command);
    let e = errors(&val, base);
    assert!(e.is_empty(), "{command}: the unmutated golden: {e:#?}");
    for (what, m) in mutations {
        let mut v = base.clone();
        m(&mut v);
        assert!(
            !errors(&val, &v).is_empty(),
            "{command}: accepted with {what}"
        );
    }
}

// The fleet check's nodes are exactly the single-host reports: a node's value that
// is neither a check report nor an error report is rejected, and so are a name
// source and a summary outside their vocabulary.
#[test]
fn a_mutated_fleet_check_is_rejected() {
    let fleet = read_json(&repo().join("tests/golden/fleet/check-10de-1187.json"));
    let r: FleetCheckReport = serde_json::from_value(fleet.clone()).unwrap();
    // The golden has both kinds of node, and each reads back as its kind.
    assert!(matches!(
        r.nodes["scenario-amd"],
        FleetNode::Checked(ref c) if !c.devices.is_empty()
    ));
    assert!(matches!(r.nodes["vm-amd-vga-audio"], FleetNode::Error(_)));
    // Each checked node validates against the single-host schema on its own.
    let single = validator("check");
    for (name, node) in fleet["nodes"].as_object().unwrap() {
        if node.get("error").is_none() {
            let e = errors(&single, node);
            assert!(e.is_empty(), "{name}: {e:#?}");
        }
    }
    let remove = |v: &mut Value, key: &str| {
        v.as_object_mut().unwrap().remove(key);
    };
    each_mutation_rejected(
        "check-fleet",
        &fleet,
        vec![
            (
                "a checked node without its host facts",
                Box::new(move |v| remove(&mut v["nodes"]["scenario-amd"], "host")),
            ),
            (
                "an error node without its kind",
                Box::new(move |v| remove(&mut v["nodes"]["vm-amd-vga-audio"]["error"], "kind")),
            ),
            (
                "a device verdict outside pass/warn/fail",
                Box::new(|v| v["nodes"]["scenario-amd"]["devices"][0]["verdict"] = "ok".into()),
            ),
            (
                "a name source other than hostname/directory",
                Box::new(|v| v["sources"]["scenario-amd"]["name_from"] = "guess".into()),
            ),
            (
                "a negative node count",
                Box::new(|v| v["summary"]["nodes"] = (-1).into()),
            ),
            (
                "the summary without its can_take list",
                Box::new(move |v| remove(&mut v["summary"], "can_take")),
            ),
        ],
    );
}

// `config --guest proxmox-mapping --json` is one shape of `config --json`: it reads
// back as the mapping (not as a plan), and a node status or verdict outside the
// vocabulary is rejected.
#[test]
fn a_mutated_proxmox_mapping_is_rejected() {
    let m = read_json(&repo().join("tests/golden/fleet/mapping-10de-1187.json"));
    let r: ConfigReport = serde_json::from_value(m.clone()).unwrap();
    assert!(matches!(r, ConfigReport::Mapping(_)), "{r:?}");
    each_mutation_rejected(
        "config",
        &m,
        vec![
            (
                "a node status outside the list",
                Box::new(|v| {
                    v["mappings"][0]["nodes"]["scenario-amd"]["status"] = "half-mapped".into()
                }),
            ),
            (
                "a slot verdict outside pass/warn/fail",
                Box::new(|v| {
                    v["mappings"][0]["nodes"]["scenario-amd"]["slots"][0]["verdict"] = "ok".into()
                }),
            ),
            (
                "a function count as a string",
                Box::new(|v| {
                    v["mappings"][0]["nodes"]["scenario-amd"]["slots"][0]["functions"] = "2".into()
                }),
            ),
        ],
    );
}

// A trial report with a verdict, address or record outside the vocabulary is
// rejected.
#[test]
fn a_mutated_trial_report_is_rejected() {
    let t = read_json(&repo().join("tests/golden/trial/trial-ok.json"));
    assert!(!t["bound"].as_array().unwrap().is_empty());
    assert!(!t["boots"][0]["records"].as_array().unwrap().is_empty());
    each_mutation_rejected(
        "trial",
        &t,
        vec![
            (
                "a verdict no trial gives",
                Box::new(|v| v["verdict"] = "trial-maybe".into()),
            ),
            (
                "a boot verdict no trial gives",
                Box::new(|v| v["boots"][0]["verdict"] = "ok".into()),
            ),
            (
                "a bound address without its domain",
                Box::new(|v| v["bound"][0] = "01:00.0".into()),
            ),
            (
                "a guest record of an unknown type",
                Box::new(|v| v["boots"][0]["records"][0]["type"] = "greeting".into()),
            ),
            (
                "a boot without its host facts",
                Box::new(|v| {
                    v["boots"][0].as_object_mut().unwrap().remove("host_after");
                }),
            ),
        ],
    );
}

// `labels --json` names the file it wrote (a temporary path), so it has no golden
// file: a live run on the scenario-amd fixture is validated and read back instead.
#[test]
fn labels_output_validates_and_reads_back() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("passthru");
    let o = passthru(
        &repo().join("tests/fixtures/scenario-amd"),
        &["--json", "labels", "--output", file.to_str().unwrap()],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let val = validator("labels");
    let e = errors(&val, &v);
    assert!(e.is_empty(), "{e:#?}");
    round_trip::<LabelsReport>(Path::new("labels --json"), &v);
    let written = std::fs::metadata(&file).unwrap().len();
    assert_eq!(v["bytes"].as_u64(), Some(written), "{v}");
    assert_eq!(v["path"].as_str(), file.to_str());
    let mut bad = v.clone();
    bad["bytes"] = "12".into();
    assert!(
        !errors(&val, &bad).is_empty(),
        "a size as a string accepted"
    );
    let mut bad = v.clone();
    bad.as_object_mut().unwrap().remove("path");
    assert!(!errors(&val, &bad).is_empty(), "no path accepted");
}

/// Every JSON file under `dir`, at any depth.
fn json_files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            json_files_under(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

/// The evidence entries of a report, wherever they are (`findings[].evidence`, a fleet's
/// per-host findings, a device's own findings).
fn evidence_of<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "evidence" {
                    out.extend(x.as_array().into_iter().flatten().filter_map(Value::as_str));
                }
                evidence_of(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| evidence_of(x, out)),
        _ => {}
    }
}

/// A path in `s` written relative to the root (`sys/...`, `proc/...`): at its start, or
/// after a space, `(` or `,` (evidence such as `/proc/modules, /sys/module: no kvm`).
fn root_relative_path(s: &str) -> Option<&str> {
    const TOP: [&str; 8] = [
        "sys/", "proc/", "dev/", "etc/", "boot/", "lib/", "usr/", "run/",
    ];
    let starts = std::iter::once(0).chain(
        s.char_indices()
            .filter(|&(_, c)| matches!(c, ' ' | '(' | ','))
            .map(|(i, c)| i + c.len_utf8()),
    );
    starts
        .map(|i| &s[i..])
        .find(|rest| TOP.iter().any(|t| rest.starts_with(t)))
}

/// Evidence names a host file by its path on the host (`/sys/...`, `/dev/kvm`) in every
/// command, whatever `--root` is: never root-relative (`sys/...`), as `check` once wrote.
#[test]
fn golden_evidence_names_system_paths() {
    let mut paths = files(&repo().join("tests/fixtures/golden"), ".check.json");
    json_files_under(&repo().join("tests/golden"), &mut paths);
    assert!(paths.len() > 50, "{} goldens", paths.len());
    let mut entries = 0;
    let mut bad = Vec::new();
    for p in &paths {
        let v = read_json(p);
        let mut ev = Vec::new();
        evidence_of(&v, &mut ev);
        entries += ev.len();
        for e in ev {
            if let Some(rest) = root_relative_path(e) {
                bad.push(format!("{}: {e:?} (at {rest:?})", p.display()));
            }
        }
    }
    assert!(entries > 500, "only {entries} evidence entries found");
    assert!(
        bad.is_empty(),
        "{} root-relative evidence paths:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn root_relative_path_finds_only_root_relative_paths() {
    assert_eq!(root_relative_path("sys/kvm: x"), Some("sys/kvm: x"));
    assert_eq!(
        root_relative_path("/proc/modules, sys/module: no kvm"),
        Some("sys/module: no kvm")
    );
    assert_eq!(root_relative_path("(8 bytes, dev/kvm)"), Some("dev/kvm)"));
    assert_eq!(
        root_relative_path("/sys/a/config: PBA past the end (/sys/a/resource)"),
        None
    );
    assert_eq!(root_relative_path("bus: not alone on it"), None);
    assert_eq!(root_relative_path("root=/dev/mapper/x"), None);
}
