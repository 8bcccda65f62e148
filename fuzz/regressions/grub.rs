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
