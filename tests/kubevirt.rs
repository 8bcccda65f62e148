//! `passthru config --guest kubevirt`: golden files of the YAML on fixture roots
//! (tests/golden/kubevirt, regenerated with `PASSTHRU_BLESS=1 cargo test --test kubevirt`),
//! every document validated against KubeVirt's API schema (tests/data/kubevirt, see its
//! README), and negative controls: broken documents the same validator rejects.

#[path = "cli_list_check_support/mod.rs"]
mod cli_common;

use cli_common::*;
use serde_json::{json, Value};

/// The committed schema subset with `$ref` pointed at one of its roots.
fn validator(root: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo().join("tests/data/kubevirt/schema.json")).unwrap();
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    let target = schema["roots"][root]["$ref"].clone();
    assert!(target.is_string(), "no root {root}");
    schema.as_object_mut().unwrap().remove("roots");
    schema["$ref"] = target;
    jsonschema::draft7::new(&schema).expect("the schema compiles")
}

/// Every YAML document of a text, as JSON values.
fn documents(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// Validate one document by its kind; the errors, if any.
fn errors(doc: &Value) -> Vec<String> {
    let root = match doc["kind"].as_str() {
        Some("KubeVirt") => "kubevirt",
        Some("VirtualMachine") => "virtualmachine",
        k => return vec![format!("unexpected kind {k:?}")],
    };
    let v = validator(root);
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The kubevirt output of `config` for `args`, golden-checked under `name`.
fn kubevirt(fixture: &str, slots: &[&str], name: &str) -> String {
    let root = repo().join("tests/fixtures").join(fixture);
    let mut args = vec!["config"];
    args.extend(slots);
    args.extend(["--guest", "kubevirt", "--json"]);
    let o = passthru(&root, &args);
    assert!(o.code == 0 || o.code == 1, "{fixture}: {}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let guests = v["guest"].as_object().unwrap();
    assert_eq!(
        guests.keys().collect::<Vec<_>>(),
        ["kubevirt"],
        "only what was asked"
    );
    let text = guests["kubevirt"].as_str().unwrap().to_string();
    let path = repo()
        .join("tests/golden/kubevirt")
        .join(format!("{name}.yaml"));
    check_golden(&path, &text);
    text
}

/// The cases: the user's story (GTX 760 + Fury, two guests), a Tesla T4 (3D
/// controller, NVIDIA's plugin names it), and a node whose GTX 760 fails `check`.
const CASES: &[(&str, &[&str], &str)] = &[
    ("scenario-amd", &["05:00", "0b:00"], "scenario-amd"),
    ("finding-no-display-output", &["05:00"], "tesla-t4"),
    ("finding-unresponsive", &["05:00"], "unresponsive-gtx760"),
];

#[test]
fn golden_documents_are_valid_kubevirt() {
    for (fixture, slots, name) in CASES {
        let text = kubevirt(fixture, slots, name);
        let docs = documents(&text);
        assert_eq!(
            docs.len(),
            1 + slots.len(),
            "{name}: one KubeVirt, one VM per guest"
        );
        for d in &docs {
            let e = errors(d);
            assert!(e.is_empty(), "{name}: {} invalid: {e:?}", d["kind"]);
        }
    }
}

/// Every function of each requested slot has a device entry in its VM and a permit
/// in the KubeVirt CR (selector upper-case `VVVV:DDDD`); companions included.
#[test]
fn every_function_of_the_slot_is_there() {
    let root = repo().join("tests/fixtures/scenario-amd");
    let list: Value = serde_json::from_str(&passthru(&root, &["list", "--json"]).stdout).unwrap();
    let docs = documents(&kubevirt(
        "scenario-amd",
        &["05:00", "0b:00"],
        "scenario-amd",
    ));
    let permits = docs[0]["spec"]["configuration"]["permittedHostDevices"]["pciHostDevices"]
        .as_array()
        .unwrap();
    let selectors: Vec<&str> = permits
        .iter()
        .map(|p| p["pciVendorSelector"].as_str().unwrap())
        .collect();
    for (i, slot) in ["0000:05:00", "0000:0b:00"].iter().enumerate() {
        let fns: Vec<&Value> = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["devices"].as_array().unwrap())
            .filter(|d| d["bdf"].as_str().unwrap().starts_with(slot))
            .collect();
        assert!(fns.len() >= 2, "{slot}: GPU and audio");
        let devices = &docs[1 + i]["spec"]["template"]["spec"]["domain"]["devices"];
        let entries: Vec<&Value> = ["gpus", "hostDevices"]
            .iter()
            .flat_map(|k| devices[k].as_array().into_iter().flatten())
            .collect();
        assert_eq!(entries.len(), fns.len(), "{slot}");
        for f in fns {
            let sel = format!(
                "{}:{}",
                f["vendor_id"].as_str().unwrap(),
                f["device_id"].as_str().unwrap()
            )
            .to_uppercase();
            assert!(selectors.contains(&sel.as_str()), "{sel} not permitted");
            let bdf = f["bdf"].as_str().unwrap().replace([':', '.'], "-");
            assert!(
                entries.iter().any(|e| e["name"] == format!("pt-{bdf}")),
                "{bdf}"
            );
        }
    }
}

/// NVIDIA devices carry the resource NVIDIA's kubevirt-gpu-device-plugin advertises
/// (`nvidia.com/` + the pci.ids name in its spelling), provided externally; others
/// passthru's `pci.passthru/VVVV_DDDD`, from KubeVirt's own plugin.
#[test]
fn resource_names_follow_nvidia_kubevirt_gpu_device_plugin() {
    let docs = documents(&kubevirt(
        "finding-no-display-output",
        &["05:00"],
        "tesla-t4",
    ));
    let p = &docs[0]["spec"]["configuration"]["permittedHostDevices"]["pciHostDevices"];
    assert_eq!(
        p[0],
        json!({"pciVendorSelector": "10DE:1EB8", "resourceName": "nvidia.com/TU104GL_TESLA_T4", "externalResourceProvider": true})
    );
    let docs = documents(&kubevirt(
        "scenario-amd",
        &["05:00", "0b:00"],
        "scenario-amd",
    ));
    let p = docs[0]["spec"]["configuration"]["permittedHostDevices"]["pciHostDevices"]
        .as_array()
        .unwrap();
    assert!(p.contains(&json!({"pciVendorSelector": "10DE:1187", "resourceName": "nvidia.com/GK104_GEFORCE_GTX_760", "externalResourceProvider": true})));
    assert!(p.contains(
        &json!({"pciVendorSelector": "1002:AAE8", "resourceName": "pci.passthru/1002_AAE8"})
    ));
}

/// Negative controls: each broken copy of a valid document is rejected by the same
/// validator that accepts the original.
#[test]
fn broken_documents_are_rejected() {
    let docs = documents(&kubevirt(
        "scenario-amd",
        &["05:00", "0b:00"],
        "scenario-amd",
    ));
    let (cr, vm) = (&docs[0], &docs[1]);
    assert!(errors(cr).is_empty() && errors(vm).is_empty());
    let broken: Vec<(&str, Value)> = vec![
        ("permit without resourceName", {
            let mut d = cr.clone();
            d["spec"]["configuration"]["permittedHostDevices"]["pciHostDevices"][0]
                .as_object_mut()
                .unwrap()
                .remove("resourceName");
            d
        }),
        ("misspelt selector key", {
            let mut d = cr.clone();
            let p = d["spec"]["configuration"]["permittedHostDevices"]["pciHostDevices"][0]
                .as_object_mut()
                .unwrap();
            let v = p.remove("pciVendorSelector").unwrap();
            p.insert("pciVendorSelecter".into(), v);
            d
        }),
        ("externalResourceProvider as a string", {
            let mut d = cr.clone();
            d["spec"]["configuration"]["permittedHostDevices"]["pciHostDevices"][0]
                ["externalResourceProvider"] = json!("true");
            d
        }),
        ("permitted devices as a map", {
            let mut d = cr.clone();
            d["spec"]["configuration"]["permittedHostDevices"]["pciHostDevices"] = json!({"a": 1});
            d
        }),
        ("gpu without a name", {
            let mut d = vm.clone();
            d["spec"]["template"]["spec"]["domain"]["devices"]["gpus"][0]
                .as_object_mut()
                .unwrap()
                .remove("name");
            d
        }),
        ("hostDevices under domain instead of devices", {
            let mut d = vm.clone();
            let hd = d["spec"]["template"]["spec"]["domain"]["devices"]["hostDevices"].clone();
            d["spec"]["template"]["spec"]["domain"]["hostDevices"] = hd;
            d
        }),
        ("VM without a template", {
            let mut d = vm.clone();
            d["spec"].as_object_mut().unwrap().remove("template");
            d
        }),
        ("domain without devices", {
            let mut d = vm.clone();
            d["spec"]["template"]["spec"]["domain"]
                .as_object_mut()
                .unwrap()
                .remove("devices");
            d
        }),
    ];
    for (what, d) in &broken {
        assert!(!errors(d).is_empty(), "{what}: accepted");
    }
}
