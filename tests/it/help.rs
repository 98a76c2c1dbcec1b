//! The command line's own documentation: `--help` snapshots, completions and the man page, all
//! generated from the one clap definition.

use crate::fixtures::synscope;

#[test]
fn test_help_snapshots() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(crate::util::root().join("tests/it/golden"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for args in [&["--help"][..], &["trace", "--help"], &["replay", "--help"], &["lab", "--help"]] {
            let out = synscope(args);
            assert!(out.status.success(), "{args:?}");
            let name =
                format!("help-{}", args.iter().filter(|a| !a.starts_with('-')).copied().collect::<Vec<_>>().join("-"));
            insta::assert_snapshot!(name.trim_end_matches('-').to_string(), String::from_utf8_lossy(&out.stdout));
        }
    });
}

#[test]
fn test_completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = synscope(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["trace", "replay", "lab", "no-capture"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let man = synscope(&["man"]);
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH synscope"), "{}", &page[..page.len().min(200)]);
    assert!(page.contains("trace") && page.contains("replay"));
}
