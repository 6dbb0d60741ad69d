//! The README's first commands, as a newcomer types them at the repository root: every
//! `cargo run --bin X` names a binary that cargo finds there, and CI runs exactly those lines.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The non-blank lines of the README's first fenced code block.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    readme
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The binary a `cargo run ... --bin NAME ...` command runs.
fn run_bin(command: &str) -> Option<&str> {
    let words: Vec<&str> = command.split_whitespace().collect();
    if words.get(..2) != Some(&["cargo", "run"][..]) {
        return None;
    }
    let at = words.iter().position(|w| *w == "--bin")?;
    words.get(at + 1).copied()
}

/// The names of the binaries of the packages `cargo run` looks in at the workspace root.
fn default_member_binaries() -> Vec<String> {
    let out = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");
    let defaults = meta["workspace_default_members"]
        .as_array()
        .expect("workspace_default_members");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| defaults.contains(&p["id"]))
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.contains(&"bin".into()))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn readme_cargo_run_commands_find_their_binary_at_the_root() {
    let commands = readme_commands();
    let bins: Vec<&str> = commands.iter().filter_map(|c| run_bin(c)).collect();
    assert!(
        bins.contains(&"shareflow"),
        "the README's first block runs no `shareflow`: {commands:?}"
    );
    let found = default_member_binaries();
    for bin in bins {
        assert!(
            found.iter().any(|b| b == bin),
            "`cargo run --bin {bin}` fails at the root: the default members have {found:?}"
        );
    }
}

#[test]
fn readme_tests_the_whole_workspace() {
    let commands = readme_commands();
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("cargo test --workspace --release")),
        "{commands:?}"
    );
}

#[test]
fn ci_runs_the_readme_commands_in_order() {
    let out = Command::new("bash")
        .arg(root().join(".ci/run"))
        .arg("--list")
        .output()
        .expect("run bash .ci/run --list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(listed, readme_commands());
}
