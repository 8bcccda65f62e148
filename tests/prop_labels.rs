//! The limits of NFD labels hold for any input: names and values made from arbitrary
//! text follow the Kubernetes label syntax (k8s.io/apimachinery
//! pkg/util/validation/validation.go), deterministically and without collisions from
//! shortening; a feature file of any number of labels stays within NFD's 65536 bytes
//! (source/local/local.go `MaxFeatureFileSize`) and keeps the host labels.

use passthru::labels::{name, render, value, Label, MAX_FILE_BYTES, PREFIX};
use proptest::prelude::*;

/// An independent reading of the rule: `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`,
/// at most 63 characters.
fn k8s_valid(s: &str) -> bool {
    let c: Vec<char> = s.chars().collect();
    let alnum = |x: char| x.is_ascii_alphanumeric();
    !c.is_empty()
        && c.len() <= 63
        && alnum(c[0])
        && alnum(c[c.len() - 1])
        && c.iter().all(|&x| alnum(x) || "-_.".contains(x))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_becomes_a_valid_name(s in "\\PC{0,200}") {
        let n = name(&s);
        prop_assert!(k8s_valid(&n), "{s:?} -> {n:?}");
        prop_assert_eq!(&n, &name(&s));
        let v = value(&s);
        prop_assert!(v.is_empty() || k8s_valid(&v), "{s:?} -> {v:?}");
        if k8s_valid(&s) {
            prop_assert_eq!(&n, &s);
        }
    }

    #[test]
    fn long_names_sharing_a_prefix_stay_apart(stem in "[a-z]{63,80}", a in "[a-z0-9]{1,10}", b in "[a-z0-9]{1,10}") {
        prop_assume!(a != b);
        let x = format!("{stem}{a}");
        let y = format!("{stem}{b}");
        prop_assert_ne!(name(&x), name(&y));
        prop_assert_eq!(name(&x).len(), 63);
    }

}

proptest! {
    // Each case renders up to 12,000 labels: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_label_set_fits_the_file(n in 0usize..3000, width in 1usize..=40, expiry in proptest::option::of("[0-9]{4}-[0-9]{2}-[0-9]{2}T00:00:00Z")) {
        let mut ls = vec![Label::new("version", "1"), Label::new("iommu", "true")];
        for i in 0..n {
            let id = format!("pci-{i:04x}_{}", "d".repeat(width));
            for k in ["count", "pass", "worst", "reset"] {
                ls.push(Label::new(&format!("{id}.{k}"), "1"));
            }
        }
        let f = render(&ls, expiry.as_deref());
        prop_assert!(f.len() <= MAX_FILE_BYTES, "{} bytes", f.len());
        let version = format!("{PREFIX}/version=1\n");
        let iommu = format!("{PREFIX}/iommu=true\n");
        prop_assert!(f.contains(&version));
        prop_assert!(f.contains(&iommu));
        if let Some(e) = &expiry {
            let directive = format!("# +expiry-time={e}\n");
            prop_assert!(f.contains(&directive));
        }
        let truncated = f.contains(&format!("{PREFIX}/truncated=true\n"));
        let kept = f.lines().filter(|l| !l.starts_with('#')).count();
        let full: usize = ls.iter().map(|l| l.line().len() + 1).sum();
        // Truncated exactly when labels were left out; never when they all fit with room.
        prop_assert_eq!(truncated, kept != ls.len());
        if full + 1024 < MAX_FILE_BYTES {
            prop_assert!(!truncated);
        }
        for line in f.lines().filter(|l| !l.starts_with('#')) {
            let (k, v) = line.split_once('=').unwrap();
            let nm = k.strip_prefix(&format!("{PREFIX}/")).unwrap();
            prop_assert!(k8s_valid(nm), "{line}");
            prop_assert!(v.is_empty() || k8s_valid(v), "{line}");
        }
        // A dropped vendor:device group goes whole: each kept stem keeps its four labels.
        let mut per: std::collections::BTreeMap<&str, usize> = Default::default();
        for line in f.lines().filter(|l| l.contains("/pci-")) {
            let stem = line.rsplit_once('.').unwrap().0;
            *per.entry(stem).or_default() += 1;
        }
        prop_assert!(per.values().all(|&c| c == 4));
    }
}
