//! `shareflow demo`, the main job: it predicts and removes its temporary folder (keys, image,
//! logits), also when a signal stops it, after killing its party processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use shareflow_runtime::data::data_dir;

/// `shareflow demo` of network A with `tmp` as its TMPDIR.
fn demo(tmp: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shareflow"));
    c.args(["demo", "--model", "A", "--json", "--timeout", "120"])
        .arg("--data")
        .arg(std::path::absolute(data_dir(None)).unwrap())
        .env("TMPDIR", tmp)
        .stdin(Stdio::null());
    c
}

/// What is in `dir`.
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// The processes whose command line mentions `needle` (the parties name files in the demo's
/// folder), from `/proc`.
fn processes_mentioning(needle: &Path) -> Vec<i32> {
    let needle = needle.to_string_lossy().into_owned();
    let Ok(all) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    all.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) only sends a signal; the pids are this test's processes.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Waits up to `limit` for `child` to end; kills it at the limit.
fn wait(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn demo_predicts_and_removes_its_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = demo(tmp.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["label"], 7);
    assert_eq!(v["predicted"], 7);
    assert_eq!(v["agreement"], 1.0);
    assert_eq!(entries(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn a_narrowed_demo_sends_less_and_refuses_an_image_outside_its_range() {
    let tmp = tempfile::tempdir().unwrap();
    let exact = demo(tmp.path()).output().unwrap();
    let narrowed = demo(tmp.path())
        .args(["--input-range", "0,1"])
        .output()
        .unwrap();
    assert!(
        narrowed.status.success(),
        "{}",
        String::from_utf8_lossy(&narrowed.stderr)
    );
    let exact: serde_json::Value = serde_json::from_slice(&exact.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&narrowed.stdout).unwrap();
    assert_eq!(v["predicted"], 7);
    assert_eq!(v["agreement"], 1.0);
    assert_eq!(v["input_range"], serde_json::json!([0.0, 1.0]));
    assert_eq!(v["bytes"], v["static_bytes"]);
    // the same rounds (exact or narrowed, a ReLU's sign reuses the truncation's opening)
    assert_eq!(v["rounds"], exact["rounds"]);
    let (n, e) = (
        v["bytes"].as_u64().unwrap(),
        exact["bytes"].as_u64().unwrap(),
    );
    assert!(n < e, "narrowed {n} bytes, exact {e}");

    // test image 0 has pixels up to 1: a range of [0, 0.5] was not proven for it
    let refused = demo(tmp.path())
        .args(["--input-range", "0,0.5"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("image") && err.contains("[0, 0.5]"), "{err}");
    assert_eq!(entries(tmp.path()), Vec::<PathBuf>::new());
}

/// Starts a demo, waits until its party processes run (and stops them so that the run cannot
/// end first), sends `sig` to the demo, and checks that it killed its parties, removed its
/// folder and exited with 128 + `sig`.
fn stop_demo_with(sig: i32, name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = demo(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    let (folder, parties) = loop {
        assert!(Instant::now() < deadline, "no party started");
        if let Some(folder) = entries(tmp.path()).pop() {
            let parties = processes_mentioning(&folder);
            if !parties.is_empty() {
                break (folder, parties);
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the demo ended early");
        sleep(Duration::from_millis(10));
    };
    for &pid in &parties {
        signal(pid, libc::SIGSTOP);
    }
    signal(child.id() as i32, sig);
    let status = wait(&mut child, Duration::from_secs(60));

    let left = processes_mentioning(&folder);
    for &pid in &left {
        signal(pid, libc::SIGKILL);
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr).unwrap();
    }
    assert!(left.is_empty(), "{name}: parties left running: {left:?}");
    assert!(
        !folder.exists(),
        "{name}: {} is still there",
        folder.display()
    );
    assert_eq!(entries(tmp.path()), Vec::<PathBuf>::new());
    let status = status.unwrap_or_else(|| panic!("the demo did not end after {name}"));
    assert_eq!(status.code(), Some(128 + sig), "{name}: {stderr}");
    assert!(stderr.contains(&format!("stopped by {name}")), "{stderr}");
}

#[test]
fn demo_stopped_by_a_signal_kills_its_parties_and_removes_its_folder() {
    stop_demo_with(libc::SIGTERM, "SIGTERM");
    stop_demo_with(libc::SIGINT, "SIGINT");
    stop_demo_with(libc::SIGHUP, "SIGHUP");
}
