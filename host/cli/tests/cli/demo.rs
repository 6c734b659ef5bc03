//! `toolshed demo` runs, and reads as a conversation.

use crate::support::TOOLSHED;

#[test]
fn the_demo_plays_the_whole_recovery_flow() {
    let output = std::process::Command::new(TOOLSHED).arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    let order = [
        "agent -> list_templates",
        "agent -> create_workspace",
        "\"created\": true",
        "agent -> stop_workspace",
        "\"stopped\": true",
        "requires a new parameter",
        "agent -> start_workspace {}",
        "\"code\": \"TEMPLATE_PARAMETERS_REQUIRED\"",
        "agent -> read_template",
        "\"required\": true",
        "agent -> start_workspace {\"parameters\":{\"region\":\"eu\"}}",
        "\"updated_to_active_version\": true",
    ];
    let mut from = 0;
    for expected in order {
        let at = text[from..].find(expected).unwrap_or_else(|| panic!("{expected:?} missing after byte {from}:\n{text}"));
        from += at + expected.len();
    }
    // Readable: every call and result is on its own lines, results indented.
    assert!(text.lines().filter(|l| l.starts_with("agent -> ")).count() == 6);
    assert!(text.lines().any(|l| l.starts_with("    {")));
}
