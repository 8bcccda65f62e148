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

/// Encode `value` as several adjacent shell parts (`quiet" amd_iommu=on"'x'...`): cut at
/// `cuts` (byte offsets, any order), each part in its own style where it can be (else
/// double quotes). Quotes then open and close right next to tokens and blanks.
fn encode_mixed(value: &str, cuts: &[prop::sample::Index], styles: &[Style]) -> String {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(value.len() + 1)).collect();
    at.push(0);
    at.push(value.len());
    at.sort_unstable();
    at.dedup();
    let mut out = String::new();
    for (k, w) in at.windows(2).enumerate() {
        let part = &value[w[0]..w[1]];
        let style = styles[k % styles.len()];
        out.push_str(
            &encode(part, style)
                .or_else(|| encode(part, Style::Double))
                .unwrap(),
        );
    }
    if out.is_empty() {
        out.push_str("\"\"");
    }
    out
}

/// Lines passthru wrote in an earlier run (stale reasons), in the shape it writes them.
fn passthru_comment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("# passthru: stale".to_string()),
        "[a-z=:_ ]{0,12}".prop_map(|c| format!("{}{c}", grub::COMMENT_PREFIX)),
    ]
}

fn other_lines() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            1 => Just("GRUB_DEFAULT=0".to_string()),
            1 => Just("# a comment with GRUB_CMDLINE_LINUX_DEFAULT=\"no\"".to_string()),
            1 => Just(String::new()),
            1 => Just("GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`".to_string()),
            1 => Just("GRUB_CMDLINE_LINUX=\"root=/dev/sda1\"".to_string()),
            1 => "#[ -~]{0,20}",
            // A user's value whose last line looks like a passthru comment line: not one.
            1 => Just("GRUB_X=\"multi\n# passthru: inside a string\"".to_string()),
            2 => passthru_comment(),
        ],
        0..5,
    )
}

/// `t` without the passthru comment block an edit owns (the `# passthru: ` lines right
/// above the last assignment, or at the end when there is none) and without that
/// assignment's line: what must come out of an edit byte for byte. Lines with a quote
/// are never passthru's (they end another value's string).
fn outside_edit(t: &str) -> Vec<String> {
    let mut lines: Vec<String> = t.lines().map(String::from).collect();
    let at = lines
        .iter()
        .rposition(|l| l.starts_with("GRUB_CMDLINE_LINUX_DEFAULT="))
        .inspect(|&i| {
            lines.remove(i);
        })
        .unwrap_or(lines.len());
    let mut from = at;
    while from > 0
        && lines[from - 1].starts_with(grub::COMMENT_PREFIX)
        && !lines[from - 1].contains('"')
    {
        from -= 1;
    }
    lines.drain(from..at);
    lines
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
        remove_idx in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        style in prop::sample::select(vec![Style::Double, Style::Single, Style::Unquoted]),
        mixed in prop::option::weighted(0.5, (
            prop::collection::vec(any::<prop::sample::Index>(), 1..5),
            prop::collection::vec(prop::sample::select(vec![Style::Double, Style::Single, Style::Unquoted]), 1..5),
        )),
        present in prop::bool::weighted(0.85),
        before in other_lines(),
        after in other_lines(),
        trailing_comment in any::<bool>(),
        final_newline in prop::bool::weighted(0.8),
    ) {
        let value = user.join(" ");
        let raw = match &mixed {
            Some((cuts, styles)) => encode_mixed(&value, cuts, styles),
            None => match encode(&value, style) {
                Some(raw) => raw,
                None => return Ok(()),
            },
        };
        let assign = format!("GRUB_CMDLINE_LINUX_DEFAULT={raw}{}", if trailing_comment { "  # mine" } else { "" });
        let mut lines = before.clone();
        if present {
            lines.push(assign);
        }
        lines.extend(after.iter().cloned());
        let mut text = lines.join("\n");
        if final_newline && !text.is_empty() {
            text.push('\n');
        }
        let user: Vec<String> = if present { user } else { vec![] };

        // Round trip: the decoded tokens are exactly the user's.
        let current = grub::current_tokens(&text).unwrap();
        prop_assert_eq!(&current, &user, "{}", text);

        let remove: Vec<String> = if user.is_empty() { vec![] } else { remove_idx.iter().map(|i| user[i.index(user.len())].clone()).collect() };
        let edit = ParamEdit { add: add.clone(), remove: remove.clone() };
        let planned = cmdline::plan(&current, &edit);
        let comments: Vec<String> = add.iter().map(|a| format!("{a}: why")).collect();
        let merged = match grub::edit(&text, &planned, &comments) {
            Ok(m) => m,
            // A token to remove split over several quoted parts (`a"b"`) is refused, as
            // documented: the user removes it by hand.
            Err((_, msg)) if !planned.remove.is_empty() && msg.contains("spans several quoted parts") => return Ok(()),
            Err(e) => {
                prop_assert!(false, "{:?} refused: {:?}", text, e);
                unreachable!()
            }
        };

        // The result parses, and its value is the user's tokens minus the removed, plus
        // the added, in order (no quote cut, no token merged or split).
        let now = grub::current_tokens(&merged);
        prop_assert!(now.is_ok(), "edit output does not parse: {:?}\n--- in\n{}\n--- out\n{}", now, text, merged);
        let now = now.unwrap();
        prop_assert_eq!(&now, &expected(&user, &planned), "\n--- in\n{}\n--- out\n{}", text, merged);
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
        // No stray blanks where tokens were cut or appended (one quoting style: with
        // several parts a blank in another part than the token's is left in place).
        if mixed.is_none() {
            if let Some(v) = grub::current_value(&merged).unwrap() {
                prop_assert!(!v.starts_with(' ') && !v.ends_with(' ') && !v.contains("  "), "{v:?}");
            }
        }
        // Every other line is untouched (passthru's comment block and the assignment
        // aside), stale passthru comment lines elsewhere and other variables included.
        prop_assert_eq!(outside_edit(&text), outside_edit(&merged), "\n--- in\n{}\n--- out\n{}", text, merged);
        for var in ["GRUB_CMDLINE_LINUX", "GRUB_X", "GRUB_DEFAULT"] {
            prop_assert_eq!(grub::tokens_of(&merged, var), grub::tokens_of(&text, var));
        }
        // Idempotent: merging the result again changes nothing.
        let again = cmdline::plan(&grub::current_tokens(&merged).unwrap(), &ParamEdit { add: add.clone(), remove: remove.clone() });
        prop_assert!(again.is_noop(), "{:?}", again);
        let twice = grub::edit(&merged, &again, &comments).unwrap();
        prop_assert_eq!(&twice, &merged, "edit twice != edit once\n--- in\n{}", text);
        // Comment lines are refreshed, never stacked: another run with other reasons
        // gives what a single run with those reasons gives.
        let other: Vec<String> = comments.iter().map(|c| format!("{c} (again)")).collect();
        if !planned.add.is_empty() || present {
            prop_assert_eq!(
                grub::edit(&merged, &again, &other).unwrap(),
                grub::edit(&text, &planned, &other).unwrap()
            );
        }
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
    /// file that parses again with the merged tokens (the kept ones in order, the added
    /// ones last; exactly the planned ones when every token is written literally in the
    /// last assignment) and is idempotent.
    #[test]
    fn arbitrary_grub_text_never_panics(
        text in prop::collection::vec(
            prop_oneof![
                Just("GRUB_CMDLINE_LINUX_DEFAULT=".to_string()),
                Just("GRUB_CMDLINE_LINUX=".to_string()),
                Just("GRUB_TIMEOUT=".to_string()),
                Just("export ".to_string()),
                Just(grub::COMMENT_PREFIX.to_string()),
                Just(format!("\n{}x\n", grub::COMMENT_PREFIX)),
                prop::sample::select(vec!["\"", "'", "\\", "$", "${", "}", "$(", ")", "`", "#", ";", " ", "\n", "\t", "é", "\r", "\x0c", "quiet", " quiet"]).prop_map(String::from),
                "[a-z=]{0,4}",
            ],
            0..40,
        ).prop_map(|v| v.concat()),
        add in wanted(),
        remove_idx in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    ) {
        if let Ok(cur) = grub::current_tokens(&text) {
            let editable = grub::editable_tokens(&text).unwrap();
            let mut remove = vec!["quiet".to_string()];
            if !editable.is_empty() {
                remove.extend(remove_idx.iter().map(|i| editable[i.index(editable.len())].clone()));
            }
            let ed = ParamEdit { add: add.clone(), remove };
            let planned = cmdline::plan(&cur, &ed);
            // A quote in a comment line must not close anything the file left open.
            let comments = ["x: y".to_string(), "q: \"".to_string()];
            if let Ok(merged) = grub::edit(&text, &planned, &comments) {
                let now = grub::current_tokens(&merged);
                prop_assert!(now.is_ok(), "edited file no longer parses: {:?} -> {:?}", text, merged);
                let now = now.unwrap();
                let kept: Vec<String> = cur.iter().filter(|t| !planned.remove.iter().any(|r| cmdline::same_token(r, t))).cloned().collect();
                let mut it = now.iter();
                prop_assert!(kept.iter().all(|k| it.any(|n| n == k)), "user tokens lost or reordered: {kept:?} -> {now:?}: {text:?} -> {merged:?}");
                prop_assert!(now.ends_with(&planned.add), "{:?} not last in {now:?}: {text:?} -> {merged:?}", planned.add);
                if editable == cur {
                    prop_assert_eq!(&now, &expected(&cur, &planned), "{:?} -> {:?}", text, merged);
                }
                for var in ["GRUB_CMDLINE_LINUX", "GRUB_TIMEOUT"] {
                    prop_assert_eq!(grub::tokens_of(&merged, var).ok(), grub::tokens_of(&text, var).ok(), "{} changed: {:?} -> {:?}", var, text, merged);
                }
                let again = cmdline::plan(&now, &ed);
                prop_assert!(again.add.is_empty(), "second plan adds {:?}: {:?}", again.add, merged);
                if again.remove.is_empty() {
                    prop_assert_eq!(grub::edit(&merged, &again, &comments).ok(), Some(merged.clone()), "edit twice != edit once: {:?}", text);
                }
            }
        }
        let _ = grub::tokens_of(&text, "GRUB_CMDLINE_LINUX");
    }
}
