//! `toolshed secret set`: the value is read without echo (from stdin when
//! it is not a terminal), never printed, and kept in a file only its
//! owner may read; a host refuses a secrets file others may read.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crate::support::toolshed_on;

#[test]
fn secret_set_reads_stdin_prints_nothing_of_the_value_and_writes_a_file_only_its_owner_may_read() {
    const VALUE: &str = "v4lue-from-stdin-9Kq";
    let data = tempfile::tempdir().unwrap();
    let mut child = toolshed_on(data.path())
        .args(["secret", "set", "PLATFORM_TOKEN"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{VALUE}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{printed}");
    assert!(!printed.contains(VALUE), "{printed}");
    let file = data.path().join("secrets.toml");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&file).unwrap().contains(VALUE));

    // A host will not start over a secrets file others may read.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = toolshed_on(data.path()).args(["tools"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("secrets.toml") && stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains(VALUE), "{stderr}");
}

#[test]
fn secret_set_refuses_a_name_a_policy_cannot_name() {
    let data = tempfile::tempdir().unwrap();
    let mut child = toolshed_on(data.path()).args(["secret", "set", "no spaces"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"x\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no spaces"));
}
