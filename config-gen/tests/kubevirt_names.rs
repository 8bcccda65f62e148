//! The NVIDIA resource name against a step-by-step restatement of NVIDIA's
//! kubevirt-gpu-device-plugin (pkg/device_plugin/device_plugin.go, `getDeviceName`),
//! one pass per step as the plugin applies them: trim (`strings.TrimSpace`), upper-case, `/` -> `_`,
//! `.` -> `_`, each run of `\s` (Go: tab, newline, form feed, carriage return, space)
//! -> `_`, then drop every character outside `[a-zA-Z0-9_.]`.

use passthru_config_gen::kubevirt::nvidia_resource_name;
use passthru_pci_ids::DeviceId;
use proptest::prelude::*;

fn reference(name: &str) -> String {
    let go_space = |c: char| matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ');
    // strings.TrimSpace: Unicode white space, vertical tab included.
    let s = name
        .trim_matches(|c: char| c.is_whitespace())
        .to_ascii_uppercase();
    let s = s.replace('/', "_");
    let s = s.replace('.', "_");
    let mut t = String::new();
    let mut run = false;
    for c in s.chars() {
        if go_space(c) {
            if !run {
                t.push('_');
            }
            run = true;
        } else {
            run = false;
            t.push(c);
        }
    }
    let t: String = t
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    format!("nvidia.com/{t}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn matches_the_plugins_steps(name in "[ -~\t\x0b\n]{0,60}") {
        prop_assert_eq!(nvidia_resource_name(Some(&name), DeviceId(0x1eb8)), reference(&name));
    }
}
