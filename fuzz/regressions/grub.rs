//! Crashes found by the `grub` fuzz target.

use passthru_config_gen::cmdline::{plan, ParamEdit};
use passthru_config_gen::grub::{current_tokens, edit};

/// A file that does not assign `GRUB_CMDLINE_LINUX_DEFAULT` and ends with a
/// `# passthru: ` comment line. The first edit appends the assignment below that line
/// and keeps it; a second edit with nothing to do (same comments) treats it as one of
/// its own comment lines above the assignment and drops it, so editing twice differs
/// from editing once. Found by fuzzing (minimised by hand).
#[test]
fn editing_twice_equals_editing_once_when_the_variable_was_missing() {
    let text = "# passthru: stale\n";
    let ed = ParamEdit {
        add: vec!["iommu=pt".into()],
        remove: vec![],
    };
    let comments = vec!["iommu=pt: passthrough mode".to_string()];
    let once = edit(text, &plan(&current_tokens(text).unwrap(), &ed), &comments).unwrap();
    let again = plan(&current_tokens(&once).unwrap(), &ed);
    assert!(again.is_noop());
    let twice = edit(&once, &again, &comments).unwrap();
    assert_eq!(twice, once, "second run changed the file");
}

/// Removing a token whose preceding blank sits inside a quoted part that starts right
/// after the previous (kept) token: the cut begins at the end of the previous token,
/// before the opening quote, and takes the quote with it, leaving an unterminated
/// double quote (`GRUB_CMDLINE_LINUX_DEFAULT=quiet"` below). grub-mkconfig would fail
/// to source the file. Found by fuzzing (`="xx\n_"s"\ns"` removing `s`), shown here
/// with the documented "remove amd_iommu=on on request" case.
#[test]
fn removing_a_token_never_cuts_a_quote() {
    let text = "GRUB_CMDLINE_LINUX_DEFAULT=quiet\" amd_iommu=on\"\n";
    assert_eq!(current_tokens(text).unwrap(), ["quiet", "amd_iommu=on"]);
    let ed = ParamEdit {
        add: vec![],
        remove: vec!["amd_iommu=on".into()],
    };
    let planned = plan(&current_tokens(text).unwrap(), &ed);
    // Refusing is acceptable; producing a file that does not parse is not.
    if let Ok(out) = edit(text, &planned, &[]) {
        assert_eq!(
            current_tokens(&out).map_err(|e| format!("{e:?} in {out:?}")),
            Ok(vec!["quiet".to_string()])
        );
    }
}
