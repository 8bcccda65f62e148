//! Cross-crate properties of the kernel command-line merge (`config-gen`): over realistic
//! tokens and the usual `/etc/default/grub` quoting styles, merging never drops,
//! reorders or duplicates a user's token, appends exactly the planned tokens, and
//! applying the same edit twice equals applying it once (for `/etc/kernel/cmdline` via
//! `edit_plain` and for GRUB via `grub::edit`). Mixed quoting inside one value
//! (`quiet" iommu=pt"`) is left to the `grub` fuzz target and fuzz/regressions/grub.rs.

use passthru_config_gen::cmdline::{edit_plain, plan, same_token, split, ParamEdit};
use passthru_config_gen::grub;
use proptest::prelude::*;

/// Tokens as they appear on real command lines, including `-`/`_` spellings of one name.
fn token() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "quiet",
        "splash",
        "ro",
        "root=/dev/sda1",
        "intel_iommu=on",
        "intel_iommu=off",
        "amd_iommu=on",
        "iommu=pt",
        "iommu=on",
        "vfio-pci.ids=10de:2684,10de:22ba",
        "vfio_pci.ids=10de:2684",
        "video=efifb:off",
        "video=vesafb:off",
        "modprobe.blacklist=nouveau",
        "pcie_acs_override=downstream,multifunction",
        "rd.driver.pre=vfio-pci",
        "kvm.ignore_msrs=1",
        "nomodeset",
    ])
    .prop_map(String::from)
}

fn edit() -> impl Strategy<Value = ParamEdit> {
    (
        prop::collection::vec(token(), 0..5),
        prop::collection::vec(token(), 0..3),
    )
        .prop_map(|(add, remove)| ParamEdit { add, remove })
}

/// A GRUB file assigning `tokens` in one of the usual styles, with other lines around.
fn grub_file(tokens: &[String], style: u8) -> String {
    let v = tokens.join(" ");
    let assign = match style % 5 {
        0 => format!("GRUB_CMDLINE_LINUX_DEFAULT=\"{v}\"\n"),
        1 => format!("GRUB_CMDLINE_LINUX_DEFAULT='{v}'\n"),
        2 if !tokens.is_empty() => format!("GRUB_CMDLINE_LINUX_DEFAULT={}\n", tokens[0]),
        3 => format!("GRUB_CMDLINE_LINUX_DEFAULT=\"\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT {v}\"\n"),
        _ => format!("# a comment\nGRUB_CMDLINE_LINUX_DEFAULT=\"{v}\"   # trailing\n"),
    };
    format!("GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n{assign}GRUB_CMDLINE_LINUX=\"rootflags=subvol=@\"\n")
}

fn kept<'a>(tokens: &'a [String], remove: &'a [String]) -> impl Iterator<Item = &'a String> {
    tokens
        .iter()
        .filter(move |t| !remove.iter().any(|r| same_token(r, t)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plain_merge_keeps_user_tokens_and_is_idempotent(
        user in prop::collection::vec(token(), 0..8),
        ed in edit(),
        trailing_newline in any::<bool>(),
    ) {
        let text = format!("{}{}", user.join(" "), if trailing_newline { "\n" } else { "" });
        let planned = plan(&split(&text), &ed);
        let once = edit_plain(&text, &planned).unwrap();
        let want: Vec<&str> = kept(&user, &planned.remove)
            .map(String::as_str)
            .chain(planned.add.iter().map(String::as_str))
            .collect();
        prop_assert_eq!(split(&once), want);
        // The file's trailing newline (or its absence) is kept; a new file gets one.
        let new_file = text.is_empty() && !planned.add.is_empty();
        prop_assert_eq!(once.ends_with('\n'), text.ends_with('\n') || new_file);
        let again = plan(&split(&once), &ed);
        prop_assert!(again.is_noop(), "{:?}", again);
        prop_assert_eq!(edit_plain(&once, &again).unwrap(), once);
    }

    #[test]
    fn grub_merge_keeps_user_tokens_and_is_idempotent(
        user in prop::collection::vec(token(), 0..8),
        ed in edit(),
        style in any::<u8>(),
    ) {
        let text = grub_file(&user, style);
        let cur = grub::current_tokens(&text).unwrap();
        let planned = plan(&cur, &ed);
        let once = grub::edit(&text, &planned, &["managed by passthru".to_string()]).unwrap();
        let got = grub::current_tokens(&once).unwrap();
        let want: Vec<String> = kept(&cur, &planned.remove).cloned().chain(planned.add.iter().cloned()).collect();
        prop_assert_eq!(&got, &want, "{}\n->\n{}", text, once);
        prop_assert_eq!(
            grub::tokens_of(&once, "GRUB_CMDLINE_LINUX").unwrap(),
            vec!["rootflags=subvol=@".to_string()]
        );
        let again = plan(&got, &ed);
        prop_assert!(again.is_noop(), "{:?}", again);
        let twice = grub::edit(&once, &again, &["managed by passthru".to_string()]).unwrap();
        prop_assert_eq!(twice, once);
    }
}
