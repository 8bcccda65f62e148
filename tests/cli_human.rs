//! Human output that fits and the CLI's own conveniences: `--color`, table widths,
//! lspci's `-s`/`-d` filters in `list`, class names, shell completions and the manual
//! page, and errors as JSON under `--json`.

#[path = "cli_list_check_support/mod.rs"]
mod cli_common;

use cli_common::*;
use std::process::Command;

fn scenario() -> std::path::PathBuf {
    repo().join("tests/fixtures/scenario-amd")
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = Command::new(env!("CARGO_BIN_EXE_passthru"));
    c.arg("--root").arg(scenario()).args(args);
    c.env("PASSTHRU_PCI_IDS", pci_ids()).env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    run_cmd(c)
}

#[test]
fn color_always_and_never_override_the_terminal_test() {
    let o = run_env(&["--color", "always", "check", "0b:00"], &[]);
    assert!(o.stdout.contains("\x1b["), "no colour with --color always");
    let o = run_env(&["--color", "never", "check", "0b:00"], &[]);
    assert!(!o.stdout.contains("\x1b["), "colour with --color never");
    // auto on a pipe: none.
    let o = run_env(&["check", "0b:00"], &[]);
    assert!(!o.stdout.contains("\x1b["));
    let o = run_env(&["--color", "sometimes", "list"], &[]);
    assert_eq!(o.code, 2);
}

/// Every line of the tables fits the width (80 off a terminal, COLUMNS when set),
/// long names end in an ellipsis.
#[test]
fn tables_fit_the_width() {
    for (cols, env) in [(80usize, vec![]), (100, vec![("COLUMNS", "100")])] {
        for args in [&["list"][..], &["check", "05:00", "0b:00"][..]] {
            let o = run_env(args, &env);
            assert!(o.code == 0 || o.code == 1, "{}", o.stderr);
            // Table rows: the device lines of list, the device rows of check.
            let rows: Vec<&str> = o
                .stdout
                .lines()
                .filter(|l| l.starts_with("  0000:") || l.starts_with("0000:"))
                .collect();
            assert!(!rows.is_empty(), "{args:?}: {}", o.stdout);
            for line in rows {
                assert!(
                    line.chars().count() <= cols,
                    "{args:?} at {cols}: {} columns: {line}",
                    line.chars().count()
                );
            }
        }
    }
    let o = run_env(&["list"], &[("COLUMNS", "60")]);
    assert!(o.stdout.contains('…'), "{}", o.stdout);
}

/// The scenario's kernel command line is long; the human report fits it, the JSON
/// keeps it whole.
#[test]
fn a_long_command_line_is_cut_in_the_report_only() {
    let o = run_env(&["check", "0b:00"], &[("COLUMNS", "40")]);
    let line = o
        .stdout
        .lines()
        .find(|l| l.starts_with("  cmdline: "))
        .expect("cmdline line");
    assert!(line.ends_with('…') && line.chars().count() <= 40, "{line}");
    let o = run_env(&["check", "--json", "0b:00"], &[("COLUMNS", "40")]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert!(v["host"]["cmdline"].as_str().unwrap().len() > 40);
}

#[test]
fn list_filters_as_lspci() {
    let bdfs = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["list", "--json"];
        a.extend_from_slice(args);
        let o = run_env(&a, &[]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        let mut out: Vec<String> = v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["devices"].as_array().unwrap().clone())
            .chain(v["ungrouped"].as_array().unwrap().iter().cloned())
            .map(|d| d["bdf"].as_str().unwrap().to_string())
            .collect();
        out.sort();
        out
    };
    assert_eq!(bdfs(&["-s", "0b:"]), ["0000:0b:00.0", "0000:0b:00.1"]);
    assert_eq!(bdfs(&["-s", "0b:00.1"]), ["0000:0b:00.1"]);
    assert_eq!(bdfs(&["-d", "1002:7300"]), ["0000:0b:00.0"]);
    assert_eq!(bdfs(&["-d", "::0403"]), ["0000:05:00.1", "0000:0b:00.1"]);
    assert_eq!(bdfs(&["-d", "10de:", "-s", ".1"]), ["0000:05:00.1"]);
    let all = bdfs(&[]);
    assert!(all.len() > 10);
    // A filter that matches nothing lists nothing (no empty groups).
    let o = run_env(&["list", "--json", "-d", "ffff:"], &[]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert!(v["groups"].as_array().unwrap().is_empty());
    // Bad filters are usage errors.
    assert_eq!(run_env(&["list", "-s", "0b:00.9"], &[]).code, 2);
    assert_eq!(run_env(&["list", "-d", "1002"], &[]).code, 2);
}

/// Class names come from pci.ids' class lines (this machine's database: the
/// fixtures' subset has none).
#[test]
fn list_names_classes() {
    let mut c = Command::new(env!("CARGO_BIN_EXE_passthru"));
    c.arg("--root")
        .arg(scenario())
        .args(["list", "--json", "-s", "0b:00"])
        .env_remove("PASSTHRU_PCI_IDS");
    let o = run_cmd(c);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let names: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["devices"].as_array().unwrap())
        .map(|d| d["class_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["VGA compatible controller", "Audio device"]);
}

#[test]
fn completions_and_man_page_come_from_the_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run_env(&["completions", shell], &[]);
        assert_eq!(o.code, 0, "{shell}: {}", o.stderr);
        for word in ["check", "config", "snapshot", "root", "color"] {
            assert!(o.stdout.contains(word), "{shell} lacks {word}");
        }
    }
    assert_eq!(run_env(&["completions", "tcsh"], &[]).code, 2);
    let o = run_env(&["man"], &[]);
    assert_eq!(o.code, 0);
    assert!(
        o.stdout.starts_with(".ie") || o.stdout.contains(".TH passthru"),
        "{}",
        &o.stdout[..80]
    );
    assert!(o.stdout.contains("passthru\\-check") || o.stdout.contains("check"));
}

/// With --json, errors are JSON objects on standard output with the usual exit code.
#[test]
fn errors_are_json_under_json() {
    let o = run_env(&["list", "--json", "-s", "zz"], &[]);
    assert_eq!(o.code, 2);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "usage");
    let mut c = Command::new(env!("CARGO_BIN_EXE_passthru"));
    c.args(["--root", "/nonexistent/root", "check", "--json"]);
    let o = run_cmd(c);
    assert_eq!(o.code, 2);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "host");
    assert_eq!(v["error"]["path"], "/nonexistent/root");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/root"));
    assert!(o.stderr.is_empty(), "{}", o.stderr);
    // --help still prints help.
    let o = run_env(&["--json", "--help"], &[]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("Usage"));
}
