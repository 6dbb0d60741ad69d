//! Checkpoints of private training over QUIC: a server process killed after a checkpoint makes
//! every other party stop with an error naming it; the session restarted with `--resume`
//! continues from the newest checkpoint that both servers have and ends with the model of an
//! uninterrupted run (up to fixed-point noise: the binaries draw fresh randomness) and its
//! test accuracy; no temporary file is ever taken for a checkpoint. The runs train the
//! committed network A further (`--init models/a.npz`, the model owner's first weights).

#![cfg(target_os = "linux")]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ndarray::ArrayD;
use ndarray_npy::NpzReader;
use serde_json::Value;
use shareflow_runtime::data::{data_dir, models_dir, Weights};

const SHAREFLOW: &str = env!("CARGO_BIN_EXE_shareflow");
/// Seconds a party waits for a peer: a killed server is noticed within it.
const TIMEOUT_S: &str = "10";
/// 640 training images in batches of 32: 20 steps, a checkpoint every 4.
const EVERY: usize = 4;

/// `shareflow train` of network A under SecureNN over QUIC with `more` arguments.
fn train(more: &[&str]) -> Command {
    let mut c = Command::new(SHAREFLOW);
    c.args(["train", "--model", "A", "--protocol", "securenn"])
        .args(["--epochs", "1", "--batch", "32", "--limit", "640"])
        .args(["--test-limit", "1000", "--transport", "quic"])
        .args(["--timeout", TIMEOUT_S, "--json", "--data"])
        .arg(std::path::absolute(data_dir(None)).unwrap())
        // further training of the committed model: its predictions are far from ties, so
        // that two runs' fixed-point noise does not move the accuracy
        .arg("--init")
        .arg(models_dir().join("a.npz"))
        .args(more)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn report(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The process whose parent is `parent` and whose command line has `--party party`.
fn child_party(parent: u32, party: &str) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        let ppid: Option<u32> = after.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid != Some(parent) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args
            .windows(2)
            .any(|w| w[0] == b"--party" && w[1] == party.as_bytes())
        {
            return Some(pid);
        }
    }
    None
}

/// Waits for `child` to end, killing it (and failing) after `limit`: the test never hangs.
fn wait(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

/// `step-<n>.npz` → n.
fn step_of(name: &str) -> Option<usize> {
    name.strip_prefix("step-")?
        .strip_suffix(".npz")?
        .parse()
        .ok()
}

/// The complete checkpoints of a server's directory, each read whole (every array).
fn complete_checkpoints(dir: &Path) -> Vec<usize> {
    let mut steps = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(step) = step_of(&name) else {
            assert!(
                name.starts_with(".step-") && name.ends_with(".npz.tmp"),
                "{name}: neither a checkpoint nor a temporary file"
            );
            continue;
        };
        let mut npz = NpzReader::new(File::open(entry.path()).unwrap())
            .unwrap_or_else(|e| panic!("{name} is not a complete archive: {e}"));
        let names = npz.names().unwrap();
        assert!(
            names.iter().any(|n| n.starts_with("checkpoint")),
            "{names:?}"
        );
        for n in names {
            let n = n.trim_end_matches(".npy").to_string();
            let read: Result<ArrayD<u64>, _> = npz.by_name(&n);
            let read = read.is_ok() || {
                let bytes: Result<ArrayD<u8>, _> = npz.by_name(&n);
                bytes.is_ok()
            };
            assert!(read, "{name}: array {n} cannot be read");
        }
        steps.push(step);
    }
    steps.sort_unstable();
    steps
}

/// The largest weight difference between two saved models (infinite if their arrays differ).
fn largest_difference(a: &Path, b: &Path) -> f32 {
    let (wa, wb) = (Weights::load(a).unwrap(), Weights::load(b).unwrap());
    shareflow_runtime::federated::rounds::max_abs_diff(&wa, &wb)
}

#[test]
fn a_killed_server_stops_the_session_and_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("checkpoints");
    let (whole, resumed): (PathBuf, PathBuf) =
        (dir.path().join("whole.npz"), dir.path().join("resumed.npz"));

    // the uninterrupted run
    let out = train(&["--reveal", "-o", path_arg(&whole)])
        .output()
        .unwrap();
    let uninterrupted = report(&out);

    // the run whose server1 is killed once it has written its first checkpoint
    let every = EVERY.to_string();
    let child = train(&[
        "--checkpoint",
        path_arg(&ckpt),
        "--checkpoint-every",
        &every,
    ])
    .spawn()
    .unwrap();
    let first = ckpt.join("server1").join(format!("step-{EVERY}.npz"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !first.exists() {
        assert!(Instant::now() < deadline, "no checkpoint after 120 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    let server1 = child_party(child.id(), "server1").expect("server1's process");
    // SAFETY: kill(2) on a process this test's child started.
    assert_eq!(unsafe { libc::kill(server1, libc::SIGKILL) }, 0);
    let out = wait(child, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    println!("{stderr}");
    assert!(!out.status.success(), "the run finished before the kill");
    for party in ["server0", "helper", "client", "model-owner"] {
        let line = stderr
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&format!("{party}: ")))
            .unwrap_or_else(|| panic!("no error of {party}: {stderr}"));
        assert!(line.contains("server1"), "{line}");
    }
    assert!(stderr.contains("server1: killed by signal 9"), "{stderr}");

    // every step-<n>.npz is whole; a temporary file is never a checkpoint
    let (s0, s1) = (ckpt.join("server0"), ckpt.join("server1"));
    let (c0, c1) = (complete_checkpoints(&s0), complete_checkpoints(&s1));
    let common = c0.iter().filter(|s| c1.contains(s)).max().copied();
    let common = common.expect("a checkpoint both servers have");
    assert!((EVERY..20).contains(&common), "{c0:?} {c1:?}");
    for d in [&s0, &s1] {
        std::fs::write(d.join(".step-20.npz.tmp"), b"half a checkpoint").unwrap();
    }

    // resumed, it ends as the uninterrupted run
    let out = train(&[
        "--checkpoint",
        path_arg(&ckpt),
        "--checkpoint-every",
        &every,
        "--resume",
        "--reveal",
        "-o",
        path_arg(&resumed),
    ])
    .output()
    .unwrap();
    let r = report(&out);
    println!("uninterrupted {uninterrupted}\nresumed {r}");
    assert_eq!(r["resumed_from_step"].as_u64(), Some(common as u64), "{r}");
    assert_eq!(r["steps_run"].as_u64(), Some(20 - common as u64), "{r}");
    let (a, b) = (
        uninterrupted["accuracy"].as_f64().unwrap(),
        r["accuracy"].as_f64().unwrap(),
    );
    assert!((a - b).abs() <= 0.002 + 1e-9, "accuracy {a} against {b}");
    // fixed-point noise of two runs with their own randomness (a resume that lost the
    // velocities or a step would be off by far more)
    let worst = largest_difference(&whole, &resumed);
    println!("largest weight difference {worst}");
    assert!(worst < 5e-3, "largest weight difference {worst}");
    assert_eq!(complete_checkpoints(&s0).last(), Some(&20));
}
