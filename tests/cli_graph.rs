//! `taskdeck graph` through the real binary: exit codes and where errors go.

use std::process::Command;

fn taskdeck() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_taskdeck"));
    // Keep the user's config file out of the test.
    c.env("TASKDECK_CONFIG", "/dev/null");
    c
}

#[test]
fn unreadable_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let out = taskdeck().arg("graph").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read") && err.contains("missing.toml"),
        "{err}"
    );
}

#[test]
fn invalid_file_prints_diagnostics_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"name = \"x\xff\"\n").unwrap();
    let out = taskdeck().arg("graph").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:1:1: error: the file is not UTF-8"),
        "{err}"
    );
    assert!(err.contains("1 problem"), "{err}");
}

#[test]

fn example_workflow_in_every_format() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/examples/demo.toml");
    for format in ["text", "dot", "mermaid", "json"] {
        let out = taskdeck()
            .args(["graph", file, "--format", format])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = String::from_utf8(out.stdout).unwrap();
        match format {
            "text" => assert!(s.starts_with("demo: "), "{s}"),
            "dot" => assert!(s.starts_with("digraph \"demo\" {"), "{s}"),
            "mermaid" => assert!(s.starts_with("flowchart TD\n"), "{s}"),
            _ => {
                let v: serde_json::Value = serde_json::from_str(&s).unwrap();
                assert_eq!(v["name"], "demo");
            }
        }
    }
}
