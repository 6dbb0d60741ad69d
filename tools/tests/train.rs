//! `shareflow train` run from a folder of the user's: it writes there, never into the source
//! tree, and does not overwrite a file without `--force`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use shareflow_runtime::data::{data_dir, workspace_root, Weights};

/// `shareflow train` of network A on a small slice, in `cwd`.
fn train(cwd: &Path, extra: &[&str]) -> Output {
    let data = std::path::absolute(data_dir(None)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_shareflow"))
        .args(["train", "--model", "A", "--epochs", "1", "--limit", "256"])
        .arg("--data")
        .arg(data)
        .arg("--json")
        .args(extra)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// The committed weights of the source tree, file by file.
fn committed() -> BTreeMap<PathBuf, Vec<u8>> {
    let dir = workspace_root().join("models");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "npz"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Asserts that the committed weights are as they were `before`, naming any file that changed.
fn assert_untouched(before: &BTreeMap<PathBuf, Vec<u8>>) {
    let now = committed();
    let changed: Vec<_> = before
        .iter()
        .filter(|(path, bytes)| now.get(*path) != Some(*bytes))
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        changed.is_empty(),
        "the source tree's weights changed: {changed:?}"
    );
}

fn show(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn train_writes_under_the_current_directory_and_refuses_to_overwrite() {
    let before = committed();
    assert_eq!(before.len(), 4, "{:?}", before.keys());
    let cwd = tempfile::tempdir().unwrap();

    let out = train(cwd.path(), &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert_untouched(&before);
    let written = cwd.path().join("models").join("a.npz");
    let first = Weights::load(&written).unwrap();
    assert!(first.arrays.contains_key("dense1/kernel"));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["train_images"], 256);
    assert_eq!(
        report["weights"].as_str().map(PathBuf::from),
        Some(std::path::absolute(&written).unwrap())
    );

    // Again: refused, naming the file and the flag, and the file is left as it was.
    let mtime = std::fs::metadata(&written).unwrap().modified().unwrap();
    let out = train(cwd.path(), &["--seed", "2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("models/a.npz") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&written).unwrap().modified().unwrap(),
        mtime
    );

    // With --force it overwrites; -o writes where it is told, relative to the current folder.
    let out = train(cwd.path(), &["--seed", "2", "--force"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_ne!(Weights::load(&written).unwrap(), first);
    let out = train(cwd.path(), &["-o", "elsewhere/mine.npz"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        Weights::load(&cwd.path().join("elsewhere/mine.npz")).unwrap(),
        first
    );
    assert_untouched(&before);
}

/// A private training stopped after a checkpoint continues with `--resume`; a new session in
/// the same directory is refused without `--force`.
#[test]
fn private_training_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let private = [
        "--protocol",
        "securenn",
        "--batch",
        "64",
        "--test-limit",
        "20",
        "--checkpoint",
        "ckpt",
        "--checkpoint-every",
        "2",
    ];
    let first = train(dir.path(), &[&private[..], &["--stop-after", "2"]].concat());
    assert!(first.status.success(), "{}", show(&first));
    assert!(show(&first).contains("\"steps_run\":2"), "{}", show(&first));
    for server in ["server0", "server1"] {
        let file = dir.path().join("ckpt").join(server).join("step-2.npz");
        assert!(file.is_file(), "{} missing", file.display());
    }
    let again = train(dir.path(), &private);
    assert!(!again.status.success());
    assert!(show(&again).contains("--resume"), "{}", show(&again));
    let resumed = train(dir.path(), &[&private[..], &["--resume"]].concat());
    assert!(resumed.status.success(), "{}", show(&resumed));
    let report = show(&resumed);
    assert!(report.contains("\"resumed_from_step\":2"), "{report}");
    assert!(report.contains("\"steps_run\":2"), "{report}");
    assert!(dir.path().join("ckpt/server1/step-4.npz").is_file());
}
