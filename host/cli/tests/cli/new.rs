//! `toolshed new` writes exactly `guest/hello`, the plugin the workspace
//! builds and tests: so what it writes builds, and its test passes.

use std::path::Path;

use crate::support::TOOLSHED;

#[test]
fn toolshed_new_writes_the_plugins_the_workspace_builds_and_tests_in_each_language() {
    use toolshed::new::Language;
    for (language, flag, committed, files) in
        [(Language::Rust, "rust", "guest/hello", 14), (Language::Python, "python", "guest/hello-python", 12), (Language::Javascript, "javascript", "guest/hello-javascript", 13)]
    {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(TOOLSHED).args(["new", "hello", "--lang", flag, "--toolshed", "../..", "--dir"]).arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let made = dir.path().join("hello");
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(committed);
        let mut compared = 0;
        for (path, entry) in toolshed::new::files_in(language, "hello", "../..") {
            let (ours, theirs) = (made.join(&path), committed.join(&path));
            match entry {
                toolshed::new::Entry::File(_) => {
                    let (a, b) = (std::fs::read_to_string(&ours).unwrap(), std::fs::read_to_string(&theirs).unwrap_or_default());
                    assert!(a == b, "{} differs from the committed {}; regenerate it with `toolshed new hello --lang {flag} --toolshed ../..`", path.display(), committed.display());
                }
                toolshed::new::Entry::Link(_) => assert_eq!(std::fs::read_link(&ours).unwrap(), std::fs::read_link(&theirs).unwrap(), "{}", path.display()),
            }
            compared += 1;
        }
        assert_eq!(compared, files, "{flag}");
    }
}

#[test]
fn a_bad_name_or_an_existing_directory_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = std::process::Command::new(TOOLSHED).args(["new", "Bad_Name", "--toolshed", "/x", "--dir"]).arg(dir.path()).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a plugin name"), "{}", String::from_utf8_lossy(&bad.stderr));
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    let taken = std::process::Command::new(TOOLSHED).args(["new", "taken", "--toolshed", "/x", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already exists"));
}
