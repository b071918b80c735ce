//! `taskdeck validate` end to end: the real binary on good and malformed workflow files.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Runs `taskdeck validate` with an empty config file, so the user's config cannot interfere.
fn validate(files: &[&Path]) -> Out {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_taskdeck"))
        .arg("--config")
        .arg(&config)
        .arg("validate")
        .args(files)
        .env_remove("TASKDECK_CONFIG")
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn validate_fixture(name: &str) -> Out {
    validate(&[&fixture(name)])
}

/// Asserts a diagnostic `NAME:LINE:COL: error: ...MESSAGE...` followed (later) by a hint.
fn assert_diag(out: &Out, name: &str, line: usize, col: usize, message: &str) {
    let head = format!("{name}:{line}:{col}: error: ");
    let found = out
        .stderr
        .split("\n\n")
        .find(|block| block.contains(&head) && block.contains(message));
    let block = found.unwrap_or_else(|| {
        panic!("no `{head}...{message}` in:\n{}", out.stderr);
    });
    assert!(block.contains("  hint: "), "no hint in:\n{block}");
    assert!(block.contains(" | "), "no source line in:\n{block}");
    assert!(block.contains('^'), "no caret in:\n{block}");
}

#[test]
fn good_toml_is_ok() {
    let out = validate_fixture("good.toml");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("good.toml: ok — 8 tasks, 4 agents, 1 gate"),
        "{}",
        out.stdout
    );
}

#[test]
fn good_json_is_ok() {
    let out = validate_fixture("good.json");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("good.json: ok — 4 tasks, 2 agents, 1 gate"),
        "{}",
        out.stdout
    );
}

#[test]
fn toml_syntax_error_has_position() {
    let out = validate_fixture("syntax.toml");
    assert_eq!(out.code, 1);
    let name = fixture("syntax.toml").display().to_string();
    assert_diag(&out, &name, 3, 13, "TOML syntax error");
    assert!(
        out.stderr.contains(&format!("{name}: 1 problem")),
        "{}",
        out.stderr
    );
}

#[test]
fn json_syntax_error_has_position() {
    let out = validate_fixture("syntax.json");
    assert_eq!(out.code, 1);
    let name = fixture("syntax.json").display().to_string();
    assert_diag(&out, &name, 3, 31, "JSON syntax error: trailing comma");
}

#[test]
fn wrong_types_are_explained() {
    let out = validate_fixture("wrong_type.toml");
    assert_eq!(out.code, 1);
    let name = fixture("wrong_type.toml").display().to_string();
    assert_diag(
        &out,
        &name,
        6,
        9,
        "`needs` must be a list of task ids, found a string",
    );
    assert!(
        out.stderr.contains(r#"hint: write a list: ["fetch"]"#),
        "{}",
        out.stderr
    );
    assert_diag(
        &out,
        &name,
        7,
        12,
        "`approval` must be true or false, found a string",
    );
    assert!(
        out.stderr.contains(&format!("{name}: 2 problems")),
        "{}",
        out.stderr
    );
}

#[test]
fn empty_file() {
    let out = validate_fixture("empty.toml");
    assert_eq!(out.code, 1);
    let name = fixture("empty.toml").display().to_string();
    assert!(
        out.stderr
            .contains(&format!("{name}:1:1: error: the file is empty")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);
}

#[test]
fn binary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob.toml");
    std::fs::write(&path, [0x7f, b'E', b'L', b'F', 0xff, 0xfe, 0, 1, 2]).unwrap();
    let out = validate(&[&path]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains(":1:1: error: the file is not UTF-8 text"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);
}

#[test]
fn unreadable_file_exits_2() {
    let out = validate(&[Path::new("/nonexistent/flow.toml"), &fixture("good.toml")]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("cannot read /nonexistent/flow.toml"),
        "{}",
        out.stderr
    );
    // The other file is still checked.
    assert!(out.stdout.contains("good.toml: ok"), "{}", out.stdout);
}

#[test]
fn cycles_and_self_dependencies() {
    let out = validate_fixture("cycle.toml");
    assert_eq!(out.code, 1);
    let name = fixture("cycle.toml").display().to_string();
    assert_diag(&out, &name, 3, 10, "dependency cycle: a -> c -> b -> a");
    assert_diag(&out, &name, 15, 10, "task `d` needs itself");
}

#[test]
fn duplicate_tables_toml() {
    let out = validate_fixture("dup_table.toml");
    assert_eq!(out.code, 1);
    let name = fixture("dup_table.toml").display().to_string();
    assert_diag(
        &out,
        &name,
        7,
        8,
        "task `build` is defined twice (first defined on line 1)",
    );
    assert!(
        out.stderr.contains(&format!("{name}: 1 problem")),
        "{}",
        out.stderr
    );
}

#[test]
fn duplicate_keys_json() {
    let out = validate_fixture("dup.json");
    assert_eq!(out.code, 1);
    let name = fixture("dup.json").display().to_string();
    assert_diag(&out, &name, 4, 5, "duplicate key `build`");
}

/// One file, many kinds of problems: all reported, each at its place.
#[test]
fn every_problem_is_reported() {
    let out = validate_fixture("refs.toml");
    assert_eq!(out.code, 1);
    let name = fixture("refs.toml").display().to_string();
    assert_diag(
        &out,
        &name,
        11,
        9,
        "task `build` is pinned to unknown agent `builder`",
    );
    assert_diag(
        &out,
        &name,
        15,
        10,
        "task `bulid-docs` needs unknown task `biuld`",
    );
    assert!(
        out.stderr.contains("did you mean `build`?"),
        "{}",
        out.stderr
    );
    assert_diag(&out, &name, 19, 10, "undeclared secret `token`");
    assert_diag(
        &out,
        &name,
        20,
        10,
        "reads context key `projct`, which is not defined",
    );
    assert!(
        out.stderr.contains("did you mean `project`?"),
        "{}",
        out.stderr
    );
    assert_diag(&out, &name, 20, 20, "reads outputs of unknown task `docs`");
    assert_diag(
        &out,
        &name,
        20,
        44,
        "reads outputs of `bulid-docs`, which is not upstream of it",
    );
    assert_diag(&out, &name, 21, 34, "`when` is not a valid CEL expression");
    assert_diag(&out, &name, 23, 8, "no agent can run task `deploy`");
    assert_diag(&out, &name, 24, 7, "template in `run` does not compile");
    assert!(
        out.stderr.contains(&format!("{name}: 9 problems")),
        "{}",
        out.stderr
    );
}

#[test]
fn several_files_each_reported() {
    let out = validate(&[&fixture("good.toml"), &fixture("cycle.toml")]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("good.toml: ok"), "{}", out.stdout);
    assert!(
        out.stderr.contains("cycle.toml: 2 problems"),
        "{}",
        out.stderr
    );
}
