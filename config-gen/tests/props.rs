//! Property tests: the command-line merge round-trips through GRUB's shell quoting and
//! plain `/etc/kernel/cmdline` text, never drops or duplicates a user token, keeps
//! every other line, and is idempotent; managed blocks leave user lines alone.

use passthru_config_gen::cmdline::{self, ParamEdit};
use passthru_config_gen::{block, grub};
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9_.-]{0,8}(=[a-zA-Z0-9,:._/$\\\\-]{0,8})?",
        1 => "[a-z]{1,5}=\"[a-z]{1,3} [a-z]{1,3}\"",
        2 => prop::sample::select(vec!["iommu=pt", "iommu=nopt", "intel_iommu=on", "intel_iommu=off", "amd_iommu=on", "video=efifb:off", "video=vesafb:off", "vfio-pci.ids=10de:1187", "vfio_pci.ids=10de:1187", "quiet"]).prop_map(String::from),
    ]
}

fn wanted() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(vec![
            "iommu=pt",
            "intel_iommu=on",
            "video=efifb:off",
            "vfio-pci.ids=10de:1187,10de:0e0a",
            "quiet",
        ])
        .prop_map(String::from),
        0..4,
    )
}

#[derive(Debug, Clone, Copy)]
enum Style {
    Double,
    Single,
    Unquoted,
}

/// Encode a decoded value as the shell would need it.
fn encode(value: &str, style: Style) -> Option<String> {
    match style {
        Style::Double => {
            let mut s = String::from("\"");
            for c in value.chars() {
                if matches!(c, '"' | '\\' | '$' | '`') {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push('"');
            Some(s)
        }
        Style::Single => (!value.contains('\'')).then(|| format!("'{value}'")),
        Style::Unquoted => (!value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.,:=/".contains(&b)))
        .then(|| value.to_string()),
    }
}

fn other_lines() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            Just("GRUB_DEFAULT=0".to_string()),
            Just("# a comment with GRUB_CMDLINE_LINUX_DEFAULT=\"no\"".to_string()),
            Just(String::new()),
            Just("GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`".to_string()),
            Just("GRUB_CMDLINE_LINUX=\"root=/dev/sda1\"".to_string()),
            "#[ -~]{0,20}",
        ],
        0..5,
    )
}

/// The token list after applying a plan to `existing`.
fn expected(existing: &[String], p: &cmdline::Planned) -> Vec<String> {
    let mut v: Vec<String> = existing
        .iter()
        .filter(|t| !p.remove.iter().any(|r| cmdline::same_token(r, t)))
        .cloned()
        .collect();
    v.extend(p.add.iter().cloned());
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn grub_merge_round_trips_and_is_idempotent(
        user in prop::collection::vec(token(), 0..6),
        add in wanted(),
        remove_idx in prop::collection::vec(any::<prop::sample::Index>(), 0..2),
        style in prop::sample::select(vec![Style::Double, Style::Single, Style::Unquoted]),
        before in other_lines(),
        after in other_lines(),
        trailing_comment in any::<bool>(),
    ) {
        let value = user.join(" ");
        let Some(raw) = encode(&value, style) else { return Ok(()) };
        let assign = format!("GRUB_CMDLINE_LINUX_DEFAULT={raw}{}", if trailing_comment { "  # mine" } else { "" });
        let mut lines = before.clone();
        lines.push(assign);
        lines.extend(after.iter().cloned());
        let text = lines.join("\n") + "\n";

        // Round trip: the decoded tokens are exactly the user's.
        let current = grub::current_tokens(&text).unwrap();
        prop_assert_eq!(&current, &user);

        let remove: Vec<String> = if user.is_empty() { vec![] } else { remove_idx.iter().map(|i| user[i.index(user.len())].clone()).collect() };
        let edit = ParamEdit { add: add.clone(), remove: remove.clone() };
        let planned = cmdline::plan(&current, &edit);
        let comments: Vec<String> = add.iter().map(|a| format!("{a}: why")).collect();
        let merged = grub::edit(&text, &planned, &comments).unwrap();

        // The merged value is the user's tokens minus the removed, plus the added, in order.
        let now = grub::current_tokens(&merged).unwrap();
        prop_assert_eq!(&now, &expected(&user, &planned));
        // No wanted token is missing unless the user set it differently (a reported conflict).
        for a in &add {
            let present = now.iter().any(|t| cmdline::same_token(t, a));
            let conflict = planned.conflicts.iter().any(|c| &c.ours == a);
            prop_assert!(present || conflict || remove.iter().any(|r| cmdline::same_token(r, a)), "{a} missing");
        }
        // No user token is dropped unless removal was asked for; nothing added twice.
        for t in &user {
            prop_assert!(now.contains(t) || remove.iter().any(|r| cmdline::same_token(r, t)));
        }
        for a in &planned.add {
            prop_assert_eq!(now.iter().filter(|t| cmdline::same_token(t, a)).count(), 1);
        }
        // No stray blanks where tokens were cut or appended.
        let v = grub::current_value(&merged).unwrap().unwrap();
        prop_assert!(!v.starts_with(' ') && !v.ends_with(' ') && !v.contains("  "), "{v:?}");
        // Every other line is untouched: drop passthru's comment lines and the assignment.
        let strip = |t: &str| -> Vec<String> {
            t.lines().filter(|l| !l.starts_with(grub::COMMENT_PREFIX) && !l.starts_with("GRUB_CMDLINE_LINUX_DEFAULT=")).map(String::from).collect()
        };
        prop_assert_eq!(strip(&text), strip(&merged));
        // Idempotent: merging the result again changes nothing.
        let again = cmdline::plan(&grub::current_tokens(&merged).unwrap(), &ParamEdit { add: add.clone(), remove: remove.clone() });
        prop_assert!(again.is_noop(), "{:?}", again);
        prop_assert_eq!(grub::edit(&merged, &again, &comments).unwrap(), merged);
    }

    #[test]
    fn plain_cmdline_merge_round_trips_and_is_idempotent(
        user in prop::collection::vec(token(), 0..6),
        seps in prop::collection::vec(prop::sample::select(vec![" ", "  ", "\t"]), 6),
        add in wanted(),
        remove_first in any::<bool>(),
        newline in any::<bool>(),
    ) {
        let mut text = String::new();
        for (i, t) in user.iter().enumerate() {
            if i > 0 { text.push_str(seps[i]); }
            text.push_str(t);
        }
        if newline { text.push('\n'); }
        let current: Vec<String> = cmdline::split(&text).into_iter().map(String::from).collect();
        prop_assert_eq!(&current, &user);
        let remove = if remove_first && !user.is_empty() { vec![user[0].clone()] } else { vec![] };
        let planned = cmdline::plan(&current, &ParamEdit { add: add.clone(), remove: remove.clone() });
        let merged = cmdline::edit_plain(&text, &planned).unwrap();
        let now: Vec<String> = cmdline::split(&merged).into_iter().map(String::from).collect();
        prop_assert_eq!(&now, &expected(&user, &planned));
        prop_assert_eq!(merged.matches('\n').count(), usize::from(newline || text.is_empty() && !planned.add.is_empty()));
        let again = cmdline::plan(&now, &ParamEdit { add, remove });
        prop_assert!(again.is_noop());
        prop_assert_eq!(cmdline::edit_plain(&merged, &again).unwrap(), merged);
    }

    #[test]
    fn managed_block_keeps_user_lines_and_is_idempotent(
        user in prop::collection::vec("[ -~]{0,30}", 0..8),
        body_a in prop::collection::vec("[a-z ]{0,20}", 0..4),
        body_b in prop::collection::vec("[a-z ]{0,20}", 0..4),
    ) {
        prop_assume!(user.iter().all(|l| !l.starts_with("# >>> passthru") && l != block::END));
        let text: String = user.iter().map(|l| format!("{l}\n")).collect();
        let a: String = body_a.iter().map(|l| format!("{l}\n")).collect();
        let b: String = body_b.iter().map(|l| format!("{l}\n")).collect();
        let once = block::put(Some(&text), &a).unwrap();
        let user_lines: Vec<&str> = user.iter().map(String::as_str).collect();
        let outside = |t: &str| -> Vec<String> { block::outside(t).into_iter().map(|(_, l)| l.to_string()).collect() };
        prop_assert_eq!(outside(&once), user_lines.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        prop_assert_eq!(block::put(Some(&once), &a).unwrap(), once.clone());
        let swapped = block::put(Some(&once), &b).unwrap();
        prop_assert_eq!(outside(&swapped), outside(&once));
        prop_assert!(swapped.starts_with(&text));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Hostile GRUB files: parsing and editing never panic; an edit that succeeds leaves a
    /// file that parses again with the merged tokens.
    #[test]
    fn arbitrary_grub_text_never_panics(
        text in prop::collection::vec(
            prop_oneof![
                Just("GRUB_CMDLINE_LINUX_DEFAULT=".to_string()),
                Just("export ".to_string()),
                prop::sample::select(vec!["\"", "'", "\\", "$", "${", "}", "$(", ")", "`", "#", ";", " ", "\n", "\t", "é", "\r"]).prop_map(String::from),
                "[a-z=]{0,4}",
            ],
            0..40,
        ).prop_map(|v| v.concat()),
        add in wanted(),
    ) {
        if let Ok(cur) = grub::current_tokens(&text) {
            let planned = cmdline::plan(&cur, &ParamEdit { add: add.clone(), remove: vec!["quiet".into()] });
            if let Ok(merged) = grub::edit(&text, &planned, &["x: y".to_string()]) {
                let now = grub::current_tokens(&merged);
                prop_assert!(now.is_ok(), "edited file no longer parses: {:?} -> {:?}", text, merged);
                let now = now.unwrap();
                for a in &planned.add {
                    prop_assert!(now.contains(a), "{a} not in {now:?}: {text:?} -> {merged:?}");
                }
            }
        }
        let _ = grub::tokens_of(&text, "GRUB_CMDLINE_LINUX");
    }
}
