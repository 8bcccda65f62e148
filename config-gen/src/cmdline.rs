//! Kernel command-line merging: token-aware, never dropping or duplicating a
//! user's parameter, order-preserving and idempotent.
//!
//! The kernel splits its command line at whitespace outside double quotes
//! (`next_arg()` in `lib/cmdline.c`), and treats `-` and `_` in a parameter
//! name as the same character (`parameq()` in `kernel/params.c`). Both rules
//! are applied here: `vfio-pci.ids=...` and `vfio_pci.ids=...` are the same
//! parameter.
//!
//! A merge is planned ([`plan`]) against the tokens already present, then
//! written back into the text ([`edit_plain`] for `/etc/kernel/cmdline`,
//! [`crate::grub`] for GRUB's shell syntax) by cutting out removed tokens and
//! appending new ones at the end: every other byte stays where it was.

use serde::Serialize;

/// What the caller wants on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ParamEdit {
    /// Tokens that must be present (`key` or `key=value`), in the order to append them.
    pub add: Vec<String>,
    /// Tokens to take out (every occurrence), only ever on the user's explicit request.
    pub remove: Vec<String>,
}

/// A user parameter that disagrees with one passthru wanted to add; it is left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The token passthru wanted.
    pub ours: String,
    /// The token the user has.
    pub theirs: String,
}

/// The merge against a concrete command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// Tokens missing from the command line, to be appended (deduplicated, in order).
    pub add: Vec<String>,
    /// Tokens present and requested for removal.
    pub remove: Vec<String>,
    /// Wanted tokens not added because the user set the same parameter differently.
    pub conflicts: Vec<Conflict>,
}

impl Planned {
    /// Whether the merge changes nothing.
    pub fn is_noop(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// Byte spans of the kernel's tokens in `s` (whitespace outside double quotes splits).
///
/// Returns the spans and whether a double quote was left open at the end.
pub fn split_spans(s: &str) -> (Vec<(usize, usize)>, bool) {
    let mut spans = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_whitespace() && !quoted {
            if let Some(st) = start.take() {
                spans.push((st, i));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        spans.push((st, s.len()));
    }
    (spans, quoted)
}

/// The kernel's tokens of `s`.
pub fn split(s: &str) -> Vec<&str> {
    split_spans(s)
        .0
        .into_iter()
        .map(|(a, b)| &s[a..b])
        .collect()
}

/// A token's parameter name, normalised as the kernel compares it (`-` == `_`).
pub fn param_name(tok: &str) -> String {
    let name = tok.split_once('=').map_or(tok, |(k, _)| k);
    name.replace('-', "_")
}

fn param_value(tok: &str) -> Option<&str> {
    tok.split_once('=').map(|(_, v)| v)
}

/// Whether two tokens are the same parameter with the same value, as the kernel sees them.
pub fn same_token(a: &str, b: &str) -> bool {
    param_name(a) == param_name(b) && param_value(a) == param_value(b)
}

/// Whether the user's token `theirs` contradicts `ours` (same parameter, a value that
/// overrides or undoes ours). Parameters that may legitimately repeat (`video=`, one per
/// output) never conflict.
fn conflicts(ours: &str, theirs: &str) -> bool {
    let name = param_name(ours);
    if name != param_name(theirs) || same_token(ours, theirs) {
        return false;
    }
    match name.as_str() {
        "video" => false,
        // intel_iommu= takes a comma list of options; only `off` undoes `on`.
        "intel_iommu" | "amd_iommu" => {
            param_value(theirs).is_some_and(|v| v.split(',').any(|o| o == "off"))
        }
        _ => true,
    }
}

/// Tokens passthru is willing to write: no whitespace, quotes, shell or glob characters.
///
/// # Errors
///
/// Error::Param naming the token when it is empty or holds a character passthru does not
/// write.
pub fn check_token(tok: &str) -> crate::Result<()> {
    let ok = !tok.is_empty()
        && tok
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.,:=+/".contains(&b));
    if ok && !tok.starts_with('=') {
        Ok(())
    } else {
        Err(crate::Error::Param {
            param: tok.to_string(),
            message: "only letters, digits and _-.,:=+/ are accepted".into(),
        })
    }
}

/// Most `id:` entries the ACS override patch keeps (its table has 16 slots and it
/// refuses the 16th id).
pub const ACS_OVERRIDE_MAX_IDS: usize = 15;

/// Check a `pcie_acs_override=` value against what the out-of-tree ACS override patch
/// parses (`pcie_acs_override_setup()` in its drivers/pci/quirks.c hunk, and its
/// kernel-parameters.txt entry): comma-separated entries, each `downstream`,
/// `multifunction` or `id:vvvv:dddd` (vendor and device id in hex, at most 4 digits
/// each, at most [`ACS_OVERRIDE_MAX_IDS`] of them). The patch compares prefixes and
/// skips what it does not understand with at most a log line; passthru asks for the
/// exact spellings instead, so a typo is an error here rather than silently nothing.
///
/// # Errors
///
/// Error::Param naming the value and the entry that is not one of the spellings above.
pub fn check_acs_override(value: &str) -> crate::Result<()> {
    let bad = |m: String| {
        Err(crate::Error::Param {
            param: format!("pcie_acs_override={value}"),
            message: m,
        })
    };
    let hex4 = |x: &str| (1..=4).contains(&x.len()) && x.bytes().all(|b| b.is_ascii_hexdigit());
    let mut ids = 0;
    for e in value.split(',') {
        match e {
            "downstream" | "multifunction" => {}
            _ => match e.strip_prefix("id:").and_then(|r| r.split_once(':')) {
                Some((v, d)) if hex4(v) && hex4(d) => ids += 1,
                _ => {
                    return bad(format!(
                        "{e:?} is not an entry the ACS override patch accepts: downstream, multifunction or id:vvvv:dddd (hex), comma-separated"
                    ))
                }
            },
        }
    }
    if ids > ACS_OVERRIDE_MAX_IDS {
        return bad(format!(
            "{ids} id: entries; the patch keeps at most {ACS_OVERRIDE_MAX_IDS}"
        ));
    }
    Ok(())
}

/// Plan `edit` against the tokens already present.
///
/// A wanted token already present (same name after `-`/`_` normalisation, same value)
/// is not added again; one whose parameter the user set differently is reported as a
/// [`Conflict`] and not added; a token requested for removal is removed only when it is
/// present (every occurrence).
pub fn plan<S: AsRef<str>>(existing: &[S], edit: &ParamEdit) -> Planned {
    let removing = |t: &str| edit.remove.iter().any(|r| same_token(r, t));
    let mut out = Planned::default();
    for r in &edit.remove {
        if existing.iter().any(|t| same_token(r, t.as_ref()))
            && !out.remove.iter().any(|x| same_token(x, r))
        {
            out.remove.push(r.clone());
        }
    }
    for a in &edit.add {
        if removing(a) || out.add.iter().any(|x| same_token(x, a)) {
            continue;
        }
        let kept = existing.iter().map(AsRef::as_ref).filter(|t| !removing(t));
        let mut present = false;
        let mut conflict = None;
        for t in kept {
            if same_token(a, t) {
                present = true;
            } else if conflicts(a, t) {
                conflict = Some(t.to_string());
            }
        }
        if present {
            continue;
        }
        if let Some(theirs) = conflict {
            out.conflicts.push(Conflict {
                ours: a.clone(),
                theirs,
            });
            continue;
        }
        out.add.push(a.clone());
    }
    out
}

/// Apply `planned` to a plain command line (the text of `/etc/kernel/cmdline`).
///
/// Removed tokens are cut out with the whitespace before them; added tokens are
/// appended after the last token, before any trailing whitespace or newline. A
/// double quote left open refuses the edit (the appended tokens would land inside it).
///
/// # Errors
///
/// A message when a double quote is left open and tokens would have to be added.
pub fn edit_plain(text: &str, planned: &Planned) -> Result<String, String> {
    let (spans, open) = split_spans(text);
    if open && !planned.add.is_empty() {
        return Err("a double quote is left open; appended parameters would be swallowed".into());
    }
    let removed: Vec<bool> = spans
        .iter()
        .map(|&(a, b)| planned.remove.iter().any(|r| same_token(r, &text[a..b])))
        .collect();
    // A removed token takes the whitespace before it when a kept token precedes it,
    // else the whitespace after it: no stray blank is left at either end.
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for (i, &(a, b)) in spans.iter().enumerate() {
        if !removed[i] {
            continue;
        }
        if removed[..i].iter().any(|r| !r) {
            cuts.push((spans[i - 1].1, b));
        } else if let Some(next) = spans.get(i + 1) {
            cuts.push((a, next.0));
        } else {
            cuts.push((a, b));
        }
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut pos = 0;
    for &(a, b) in &cuts {
        // Cuts of neighbouring removed tokens may overlap (both took the space between).
        if b <= pos {
            continue;
        }
        out.push_str(&text[pos..a.max(pos)]);
        pos = b;
    }
    out.push_str(&text[pos..]);
    if planned.add.is_empty() {
        return Ok(out);
    }
    let end = out.trim_end().len();
    let mut joined = String::new();
    for t in &planned.add {
        if end > 0 || !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(t);
    }
    let mut res = String::with_capacity(out.len() + joined.len() + 1);
    res.push_str(&out[..end]);
    res.push_str(&joined);
    let tail = &out[end..];
    res.push_str(if tail.is_empty() && text.is_empty() {
        "\n"
    } else {
        tail
    });
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(add: &[&str], remove: &[&str]) -> ParamEdit {
        ParamEdit {
            add: add.iter().map(|s| s.to_string()).collect(),
            remove: remove.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn split_keeps_kernel_double_quotes_together() {
        // lib/cmdline.c next_arg(): spaces inside double quotes do not split.
        assert_eq!(
            split(r#"quiet dyndbg="file vfio.c +p"  iommu=pt"#),
            vec!["quiet", r#"dyndbg="file vfio.c +p""#, "iommu=pt"]
        );
    }

    #[test]
    fn dash_and_underscore_are_the_same_parameter_name() {
        // kernel/params.c parameq(): '-' and '_' compare equal.
        assert!(same_token(
            "vfio-pci.ids=10de:1187",
            "vfio_pci.ids=10de:1187"
        ));
        assert!(!same_token(
            "vfio-pci.ids=10de:1187",
            "vfio_pci.ids=10de:1188"
        ));
        assert!(!same_token("iommu=pt", "iommu"));
    }

    #[test]
    fn present_tokens_are_not_added_again() {
        let p = plan(
            &["quiet", "iommu=pt"],
            &edit(&["iommu=pt", "video=efifb:off"], &[]),
        );
        assert_eq!(p.add, vec!["video=efifb:off"]);
        assert!(p.remove.is_empty());
    }

    #[test]
    fn differing_user_value_is_a_conflict_not_an_override() {
        let p = plan(&["iommu=nopt"], &edit(&["iommu=pt"], &[]));
        assert!(p.add.is_empty());
        assert_eq!(
            p.conflicts,
            vec![Conflict {
                ours: "iommu=pt".into(),
                theirs: "iommu=nopt".into()
            }]
        );
    }

    #[test]
    fn video_may_repeat_per_output() {
        let p = plan(&["video=vesafb:off"], &edit(&["video=efifb:off"], &[]));
        assert_eq!(p.add, vec!["video=efifb:off"]);
        assert!(p.conflicts.is_empty());
    }

    #[test]
    fn intel_iommu_off_conflicts_but_igfx_off_does_not() {
        let p = plan(&["intel_iommu=off"], &edit(&["intel_iommu=on"], &[]));
        assert_eq!(p.conflicts.len(), 1);
        let p = plan(&["intel_iommu=igfx_off"], &edit(&["intel_iommu=on"], &[]));
        assert_eq!(p.add, vec!["intel_iommu=on"]);
    }

    #[test]
    fn remove_only_when_present_and_every_occurrence() {
        let p = plan(
            &["a", "amd_iommu=on"],
            &edit(&[], &["amd_iommu=on", "absent"]),
        );
        assert_eq!(p.remove, vec!["amd_iommu=on"]);
        let out = edit_plain("a amd_iommu=on b amd_iommu=on\n", &p).unwrap();
        assert_eq!(out, "a b\n");
    }

    #[test]
    fn adjacent_duplicates_are_all_removed() {
        // Found by the property test: the two cuts overlap on the space between.
        let p = plan(&["x", "x", "y"], &edit(&[], &["x"]));
        assert_eq!(edit_plain("x x y\n", &p).unwrap(), "y\n");
        let p = plan(&["y", "x", "x"], &edit(&[], &["x"]));
        assert_eq!(edit_plain("y x  x\n", &p).unwrap(), "y\n");
    }

    #[test]
    fn plain_edit_appends_before_newline_and_keeps_spacing() {
        let p = plan(
            &["root=ZFS=rpool/ROOT/pve-1", "boot=zfs"],
            &edit(&["iommu=pt"], &[]),
        );
        let out = edit_plain("root=ZFS=rpool/ROOT/pve-1  boot=zfs\n", &p).unwrap();
        assert_eq!(out, "root=ZFS=rpool/ROOT/pve-1  boot=zfs iommu=pt\n");
        // Idempotent: the merged line plans nothing.
        assert!(plan(&split(&out), &edit(&["iommu=pt"], &[])).is_noop());
    }

    #[test]
    fn plain_edit_of_empty_file_writes_one_line() {
        let p = plan::<&str>(&[], &edit(&["iommu=pt"], &[]));
        assert_eq!(edit_plain("", &p).unwrap(), "iommu=pt\n");
    }

    #[test]
    fn removing_the_first_token_takes_the_following_space() {
        let p = plan(&["amd_iommu=on", "quiet"], &edit(&[], &["amd_iommu=on"]));
        assert_eq!(edit_plain("amd_iommu=on quiet\n", &p).unwrap(), "quiet\n");
    }

    #[test]
    fn open_quote_refuses_append() {
        let p = plan(&["x"], &edit(&["iommu=pt"], &[]));
        assert!(edit_plain("dyndbg=\"x\n", &p).is_err());
    }

    #[test]
    fn acs_override_values_are_the_patchs() {
        for ok in [
            "downstream",
            "multifunction",
            "downstream,multifunction",
            "id:8086:1539",
            "downstream,id:10de:1187,id:1002:aae8",
        ] {
            assert!(check_acs_override(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "bogus",
            "downstream,",
            "Downstream",
            "id:8086",
            "id:80861:1539",
            "id:zzzz:1539",
            "multifunction downstream",
        ] {
            assert!(check_acs_override(bad).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..16).map(|i| format!("id:8086:{i:04x}")).collect();
        assert!(check_acs_override(&many[..15].join(",")).is_ok());
        assert!(check_acs_override(&many.join(",")).is_err());
    }

    #[test]
    fn check_token_rejects_shell_metacharacters() {
        assert!(check_token("vfio-pci.ids=10de:1187,10de:0e0a").is_ok());
        for bad in ["", "a b", "a\"b", "$(x)", "a`b`", "a;b", "=x"] {
            assert!(check_token(bad).is_err(), "{bad:?}");
        }
    }
}
