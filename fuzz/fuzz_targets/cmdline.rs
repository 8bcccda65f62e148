//! Kernel command-line merge (`config-gen::cmdline`): split, plan and `edit_plain` over
//! an arbitrary command line and an arbitrary edit of writable tokens.
//!
//! Checks: spans are ordered, non-empty, in bounds and never contain whitespace outside
//! double quotes; the merged line splits into exactly the user's tokens minus the removed
//! ones, in their order, followed by the added ones (a user's token is never dropped,
//! reordered or duplicated); the merge is idempotent (planning again is a no-op and
//! editing with it changes nothing); conflicts are never added.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_config_gen::cmdline::{
    check_token, edit_plain, param_name, plan, same_token, split, split_spans, ParamEdit,
};

/// The input, as NUL-separated parts so that a plain command line is a valid seed:
/// `text \0 add \0 add_renamed \0 remove_idx \0 remove`. `add` and `remove` are
/// whitespace-separated tokens (added ones are kept only when `check_token` accepts
/// them); `add_renamed` pairs a byte (an existing token, by index) with a new value to
/// make conflicts; `remove_idx` bytes pick existing tokens to remove.
struct Input {
    text: String,
    add: Vec<String>,
    add_renamed: Vec<(u8, String)>,
    remove_idx: Vec<u8>,
    remove: Vec<String>,
}

fn input(data: &[u8]) -> Input {
    let mut parts = data.split(|&b| b == 0);
    let mut text_part = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let text = text_part();
    let add = text_part().split_whitespace().map(String::from).collect();
    let add_renamed = text_part()
        .split_whitespace()
        .map(|w| (w.len() as u8, w.to_string()))
        .collect();
    let remove_idx = text_part().into_bytes();
    let remove = text_part().split_whitespace().map(String::from).collect();
    Input {
        text,
        add,
        add_renamed,
        remove_idx,
        remove,
    }
}

fuzz_target!(|data: &[u8]| {
    let inp = input(data);
    let text = inp.text.as_str();
    let (spans, open) = split_spans(text);
    let mut prev_end = 0;
    for &(a, b) in &spans {
        assert!(
            a >= prev_end && a < b && b <= text.len(),
            "span {a}..{b} in {text:?}"
        );
        assert!(text.is_char_boundary(a) && text.is_char_boundary(b));
        prev_end = b;
    }
    let tokens = split(text);
    assert_eq!(tokens.len(), spans.len());
    for (i, t) in tokens.iter().enumerate() {
        let _ = param_name(t);
        assert!(same_token(t, t));
        // Whitespace inside a token only ever sits inside double quotes.
        let mut q = false;
        for c in t.chars() {
            if c == '"' {
                q = !q;
            }
            assert!(q || !c.is_whitespace(), "token {t:?} splits");
        }
        if i + 1 < tokens.len() {
            assert!(!q, "quote open inside token {t:?} that is not the last");
        }
    }
    let _ = open;

    let pick = |i: u8| tokens.get(usize::from(i) % tokens.len().max(1)).copied();
    let mut edit = ParamEdit::default();
    for a in &inp.add {
        if check_token(a).is_ok() {
            edit.add.push(a.clone());
        }
    }
    for (i, v) in &inp.add_renamed {
        if let Some(t) = pick(*i) {
            let tok = format!("{}={v}", t.split_once('=').map_or(t, |(k, _)| k));
            if check_token(&tok).is_ok() {
                edit.add.push(tok);
            }
        }
    }
    for &i in &inp.remove_idx {
        if let Some(t) = pick(i) {
            edit.remove.push(t.to_string());
        }
    }
    edit.remove.extend(inp.remove.iter().cloned());

    let planned = plan(&tokens, &edit);
    for a in &planned.add {
        assert!(edit.add.contains(a), "{a:?} added but never asked for");
        assert!(
            !tokens.iter().any(|t| same_token(a, t)),
            "{a:?} already present"
        );
        assert!(
            !planned.conflicts.iter().any(|c| &c.ours == a),
            "{a:?} both added and a conflict"
        );
    }
    for r in &planned.remove {
        assert!(
            tokens.iter().any(|t| same_token(r, t)),
            "{r:?} removed but absent"
        );
    }
    let removed = |t: &str| planned.remove.iter().any(|r| same_token(r, t));

    let merged = match edit_plain(text, &planned) {
        Ok(m) => m,
        Err(e) => {
            assert!(
                open && !planned.add.is_empty(),
                "refused without an open quote: {e}"
            );
            return;
        }
    };
    let got = split(&merged);
    let want: Vec<&str> = tokens
        .iter()
        .copied()
        .filter(|t| !removed(t))
        .chain(planned.add.iter().map(String::as_str))
        .collect();
    assert_eq!(
        got, want,
        "merge of {text:?} with {planned:?} gave {merged:?}"
    );

    // Idempotent: the same edit against the merged line plans nothing new.
    let again = plan(&got, &edit);
    assert!(
        again.add.is_empty(),
        "second merge adds {:?} to {merged:?}",
        again.add
    );
    assert!(
        again.remove.is_empty(),
        "second merge removes {:?} from {merged:?}",
        again.remove
    );
    assert_eq!(edit_plain(&merged, &again).as_deref(), Ok(merged.as_str()));
});
