//! `/etc/default/grub` editing (`config-gen::grub`): parse -> plan -> edit -> parse over
//! an arbitrary file and an arbitrary edit of writable tokens.
//!
//! Checks: when the edit succeeds its output parses; the user's tokens survive in order
//! (only the ones asked for are removed) and the added ones come last; other variables
//! (`GRUB_CMDLINE_LINUX`, `GRUB_TIMEOUT`) are untouched; the edit is idempotent (a second
//! plan is a no-op and re-editing with the same comments gives the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_config_gen::cmdline::{check_token, plan, same_token, ParamEdit};
use passthru_config_gen::grub::{current_tokens, current_value, edit, editable_tokens, tokens_of};

/// The input, as NUL-separated parts so that a plain grub file is a valid seed:
/// `text \0 add \0 remove_idx \0 comments`: whitespace-separated tokens to add, bytes
/// picking editable tokens to remove, newline-separated comment lines.
struct Input {
    text: String,
    add: Vec<String>,
    remove_idx: Vec<u8>,
    comments: Vec<String>,
}

fn input(data: &[u8]) -> Input {
    let mut parts = data.split(|&b| b == 0);
    let mut part = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let text = part();
    let add = part().split_whitespace().map(String::from).collect();
    let remove_idx = part().into_bytes();
    let comments = part().lines().map(String::from).collect();
    Input {
        text,
        add,
        remove_idx,
        comments,
    }
}

/// `sub` is a subsequence of `all`.
fn subsequence(sub: &[String], all: &[String]) -> bool {
    let mut it = all.iter();
    sub.iter().all(|s| it.any(|a| a == s))
}

fuzz_target!(|data: &[u8]| {
    let inp = input(data);
    let text = inp.text.as_str();
    let toks = match current_tokens(text) {
        Ok(t) => t,
        Err((off, msg)) => {
            assert!(
                off <= text.len(),
                "error offset {off} past {} bytes: {msg}",
                text.len()
            );
            return;
        }
    };
    let _ = current_value(text);
    let editable =
        editable_tokens(text).expect("editable_tokens fails where current_tokens did not");
    let mut ed = ParamEdit {
        add: inp
            .add
            .iter()
            .filter(|a| check_token(a).is_ok())
            .cloned()
            .collect(),
        remove: Vec::new(),
    };
    if !editable.is_empty() {
        for &i in &inp.remove_idx {
            ed.remove
                .push(editable[usize::from(i) % editable.len()].clone());
        }
    }
    let comments: Vec<String> = inp
        .comments
        .iter()
        .filter(|c| !c.contains(['\n', '\r']))
        .cloned()
        .collect();
    let planned = plan(&toks, &ed);
    let new = match edit(text, &planned, &comments) {
        Ok(n) => n,
        Err((off, msg)) => {
            assert!(
                off <= text.len(),
                "error offset {off} past {} bytes: {msg}",
                text.len()
            );
            return;
        }
    };
    let toks2 = current_tokens(&new).unwrap_or_else(|e| {
        panic!("edit output does not parse: {e:?}\n--- in\n{text}\n--- out\n{new}")
    });
    let kept: Vec<String> = toks
        .iter()
        .filter(|t| !planned.remove.iter().any(|r| same_token(r, t)))
        .cloned()
        .collect();
    assert!(
        subsequence(&kept, &toks2),
        "user tokens lost or reordered: {kept:?} -> {toks2:?}\n--- in\n{text}\n--- out\n{new}"
    );
    assert!(
        toks2.ends_with(&planned.add),
        "added {:?} not at the end of {toks2:?}\n--- out\n{new}",
        planned.add
    );
    assert!(
        toks2.len() <= toks.len() + planned.add.len(),
        "{toks:?} -> {toks2:?}"
    );
    for var in ["GRUB_CMDLINE_LINUX", "GRUB_TIMEOUT"] {
        assert_eq!(
            tokens_of(&new, var).ok(),
            tokens_of(text, var).ok(),
            "{var} changed\n--- in\n{text}\n--- out\n{new}"
        );
    }

    // Idempotent and stable.
    let again = plan(&toks2, &ed);
    assert!(
        again.add.is_empty(),
        "second plan adds {:?}\n--- out\n{new}",
        again.add
    );
    if again.remove.is_empty() {
        let twice = edit(&new, &again, &comments)
            .unwrap_or_else(|e| panic!("re-edit fails: {e:?}\n--- out\n{new}"));
        assert_eq!(twice, new, "re-edit with nothing to do changed the file");
    }
});
