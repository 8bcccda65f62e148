//! deploy/daemonset.yaml: the agent's command is one `passthru` accepts and writes the
//! labels where the manifest mounts NFD's features.d; the host mounts are read-only and
//! the container keeps least privilege. (Kubernetes' own schemas validate the manifest
//! in scripts/validate-manifests.sh, run by scripts/test-all.sh.)

#[path = "cli_list_check_support/mod.rs"]
mod cli_common;

use cli_common::*;
use serde::Deserialize;
use serde_json::Value;

fn daemonset() -> Value {
    let text = std::fs::read_to_string(repo().join("deploy/daemonset.yaml")).unwrap();
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    docs.into_iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet")
}

#[test]
fn least_privilege_and_read_only_host_mounts() {
    let ds = daemonset();
    let pod = &ds["spec"]["template"]["spec"];
    for k in [
        "hostPID",
        "hostNetwork",
        "hostIPC",
        "automountServiceAccountToken",
    ] {
        assert_eq!(pod[k], false, "{k}");
    }
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    // The one added capability, documented in deploy/README.md.
    assert_eq!(sc["capabilities"]["add"], serde_json::json!(["SYS_ADMIN"]));
    let readme = std::fs::read_to_string(repo().join("deploy/README.md")).unwrap();
    assert!(readme.contains("CAP_SYS_ADMIN"));
    let volumes = pod["volumes"].as_array().unwrap();
    let mut host_paths = Vec::new();
    for m in c["volumeMounts"].as_array().unwrap() {
        let v = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
        let path = v["hostPath"]["path"].as_str().unwrap();
        host_paths.push(path.to_string());
        let writable = path == "/etc/kubernetes/node-feature-discovery/features.d";
        assert_eq!(m["readOnly"] == true, !writable, "{path}");
    }
    for p in ["/sys", "/proc", "/etc", "/dev/vfio"] {
        assert!(host_paths.iter().any(|h| h == p), "{p} not mounted");
    }
}

/// The `passthru ...` line of the agent's loop, run with its paths mapped to a fixture
/// root and a temporary features.d: it writes what `labels --stdout` prints, plus the
/// expiry directive.
#[test]
fn the_agents_command_writes_the_labels() {
    let ds = daemonset();
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    let script = c["command"][2].as_str().unwrap();
    let line = script
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("passthru "))
        .expect("a passthru line");
    let argv: Vec<&str> = line
        .split_whitespace()
        .skip(1)
        .take_while(|w| *w != "||")
        .collect();
    // Where the manifest mounts the host and NFD's directory.
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mount_of = |name: &str| {
        mounts.iter().find(|m| m["name"] == name).unwrap()["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(mount_of("host-sys"), "/host/sys");
    assert_eq!(mount_of("host-proc"), "/host/proc");
    let features = mount_of("nfd-features");
    let t = tempfile::tempdir().unwrap();
    let fixture = repo().join("tests/fixtures/scenario-amd");
    let out = t.path().join("passthru");
    let mapped: Vec<String> = argv
        .iter()
        .map(|a| {
            if *a == "/host" {
                fixture.to_str().unwrap().to_string()
            } else if let Some(rest) = a.strip_prefix(&format!("{features}/")) {
                assert_eq!(rest, "passthru", "NFD reads features.d/passthru");
                out.to_str().unwrap().to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    assert!(
        argv.contains(&"--root") && argv.contains(&"labels"),
        "{line}"
    );
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_passthru"));
    cmd.args(&mapped);
    let o = run_cmd(cmd);
    assert_eq!(o.code, 0, "{line}: {}", o.stderr);
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.contains("\n# +expiry-time="), "{written}");
    let without: String = written
        .lines()
        .filter(|l| !l.starts_with("# +expiry-time="))
        .map(|l| format!("{l}\n"))
        .collect();
    let stdout = passthru(&fixture, &["labels", "--stdout"]).stdout;
    assert_eq!(without, stdout);
}
