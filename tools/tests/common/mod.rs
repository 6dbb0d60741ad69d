//! Helpers of the process-level tests: a compiled network, certificates and a loopback cluster
//! in a temporary directory, `run-graph` processes started, watched and reaped with a limit,
//! and Graphviz for the tests that render DOT (skipped where it is not installed).

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ndarray::ArrayD;
use shareflow_compiler::{compile, CompileOptions, CompiledGraph, ProtocolKind};
use shareflow_graphs::zoo::{ModelKind, ZooModel, CLIENT, IMAGE, MODEL_OWNER};
use shareflow_runtime::cluster::{ClusterConfig, CLUSTER_FILE};
use shareflow_runtime::data::npy::write_npy;
use shareflow_runtime::data::{data_dir, models_dir, Mnist, Split, Weights};

/// The `run-graph` binary of this build.
pub const RUN_GRAPH: &str = env!("CARGO_BIN_EXE_run-graph");
/// The `shareflow` binary of this build.
pub const SHAREFLOW: &str = env!("CARGO_BIN_EXE_shareflow");

/// A network compiled into a temporary directory with a loopback cluster for its parties.
pub struct Session {
    pub dir: tempfile::TempDir,
    pub compiled: CompiledGraph,
    pub graph_path: PathBuf,
    pub cluster_path: PathBuf,
    pub cluster: ClusterConfig,
    /// The client's images (`batch` test images from #0).
    pub image: ArrayD<f32>,
    pub image_path: PathBuf,
    pub weights_path: PathBuf,
}

/// Compiles network `model` with `batch` images for `protocol`.
pub fn compiled(model: ModelKind, batch: usize, protocol: ProtocolKind) -> CompiledGraph {
    let zoo = ZooModel::build(model, batch).unwrap();
    compile(&zoo.graph, protocol, CompileOptions::default()).unwrap()
}

impl Session {
    /// Network `model` for SecureNN with `batch` images: compiled graph, CA, certificates,
    /// `cluster.toml` with free ports on 127.0.0.1, and the client's images.
    pub fn new(model: ModelKind, batch: usize) -> Session {
        let dir = tempfile::tempdir().unwrap();
        let compiled = compiled(model, batch, ProtocolKind::SecureNN);
        let graph_path = dir.path().join("compiled.json");
        std::fs::write(&graph_path, compiled.to_json().unwrap()).unwrap();
        let cluster = ClusterConfig::local(&compiled.parties, dir.path(), 0).unwrap();
        for a in cluster.parties.values() {
            assert!(a.address.starts_with("127.0.0.1:"), "{}", a.address);
        }
        let test = Mnist::load(&data_dir(None), Split::Test, Some(batch)).unwrap();
        let image = test.batch(0, batch);
        let image_path = dir.path().join("image.npy");
        write_npy(&image_path, &image).unwrap();
        let weights_path = models_dir().join(format!("{}.npz", model.to_string().to_lowercase()));
        assert!(weights_path.is_file(), "{}", weights_path.display());
        Session {
            cluster_path: dir.path().join(CLUSTER_FILE),
            dir,
            compiled,
            graph_path,
            cluster,
            image,
            image_path,
            weights_path,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where `party` writes its outputs.
    pub fn out_dir(&self, party: &str) -> PathBuf {
        self.path().join(format!("out-{party}"))
    }

    /// The inputs of every party, as `run-graph` reads them from the files.
    pub fn inputs(&self) -> HashMap<String, HashMap<String, ArrayD<f32>>> {
        let weights = Weights::load(&self.weights_path).unwrap();
        let mut out = HashMap::new();
        out.insert(
            MODEL_OWNER.to_string(),
            weights.arrays.into_iter().collect(),
        );
        out.insert(
            CLIENT.to_string(),
            HashMap::from([(IMAGE.to_string(), self.image.clone())]),
        );
        out
    }

    /// `run-graph` for `party` with this session's files, its inputs, and `timeout_s`.
    pub fn command(&self, party: &str, timeout_s: f64) -> Command {
        self.command_with(party, timeout_s, Files::default())
    }

    /// [`Session::command`] with some files replaced.
    pub fn command_with(&self, party: &str, timeout_s: f64, files: Files<'_>) -> Command {
        let mut c = Command::new(RUN_GRAPH);
        c.arg("--party")
            .arg(party)
            .arg("--cluster")
            .arg(files.cluster.unwrap_or(&self.cluster_path))
            .arg("--graph")
            .arg(files.graph.unwrap_or(&self.graph_path))
            .arg("--output-dir")
            .arg(self.out_dir(party))
            .arg("--timeout")
            .arg(timeout_s.to_string());
        if party == MODEL_OWNER {
            c.arg("--weights").arg(&self.weights_path);
        }
        if party == CLIENT {
            let image = files.image.unwrap_or(&self.image_path);
            c.arg("--input").arg(format!("{IMAGE}={}", image.display()));
        }
        c
    }

    /// Starts every party with [`Session::command`].
    pub fn spawn_all(&self, timeout_s: f64) -> Vec<Party> {
        self.spawn_all_with(|p| self.command(p, timeout_s))
    }

    /// Starts every party with the command `make` gives for it.
    pub fn spawn_all_with(&self, mut make: impl FnMut(&str) -> Command) -> Vec<Party> {
        self.compiled
            .parties
            .iter()
            .map(|p| Party::spawn(p, make(p)))
            .collect()
    }
}

/// Files that replace a session's own in [`Session::command_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Files<'a> {
    pub graph: Option<&'a Path>,
    pub cluster: Option<&'a Path>,
    /// The client's images.
    pub image: Option<&'a Path>,
}

/// A started party process whose stdout and stderr are collected by threads.
pub struct Party {
    pub name: String,
    pub child: Child,
    stdout: thread::JoinHandle<String>,
    stderr: thread::JoinHandle<String>,
    /// Every stderr line, as it comes.
    pub lines: mpsc::Receiver<String>,
}

/// How a party ended.
#[derive(Debug)]
pub struct Exit {
    pub name: String,
    /// `None` when it was killed (by the test or its limit).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// When it ended.
    pub at: Instant,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Its one JSON report (stdout).
    pub fn report(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: stdout is not one JSON object ({e}): {}",
                self.name, self.stdout
            )
        })
    }
}

impl Party {
    pub fn spawn(name: &str, mut command: Command) -> Party {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let mut out = child.stdout.take().unwrap();
        let stdout = thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                all.push_str(&line);
                all.push('\n');
                let _ = tx.send(line);
            }
            all
        });
        Party {
            name: name.to_string(),
            child,
            stdout,
            stderr,
            lines,
        }
    }

    /// Waits (up to `limit`) for a stderr line containing `needle`; returns it.
    pub fn wait_for_line(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Kills it (SIGKILL) now.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
    }
}

/// Waits for every party to end; one still running at `limit` is killed (and reported with
/// no exit code). Never hangs.
pub fn wait_all(parties: Vec<Party>, limit: Duration) -> Vec<Exit> {
    let deadline = Instant::now() + limit;
    // each party, and once it ended: its exit code (none if killed) and when
    type Ended = Option<(Option<i32>, Instant)>;
    let mut parties: Vec<(Party, Ended)> = parties.into_iter().map(|p| (p, None)).collect();
    loop {
        let now = Instant::now();
        for (p, ended) in parties.iter_mut().filter(|(_, e)| e.is_none()) {
            if let Some(status) = p.child.try_wait().unwrap() {
                *ended = Some((status.code(), now));
            } else if now >= deadline {
                let _ = p.child.kill();
                let _ = p.child.wait();
                *ended = Some((None, now));
            }
        }
        if parties.iter().all(|(_, e)| e.is_some()) {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    parties
        .into_iter()
        .map(|(p, ended)| {
            let (code, at) = ended.unwrap();
            Exit {
                name: p.name,
                code,
                stdout: p.stdout.join().unwrap(),
                stderr: p.stderr.join().unwrap(),
                at,
            }
        })
        .collect()
}

/// Every exit, for assertion messages.
pub fn show(exits: &[Exit]) -> String {
    exits
        .iter()
        .map(|e| format!("{} (exit {:?}): {}", e.name, e.code, e.stderr.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a render test prints when it skips.
pub const NO_GRAPHVIZ: &str = "skipped: Graphviz `dot` not found; apt-get install graphviz";

/// Graphviz's `dot` on `PATH`, if it is installed.
pub fn graphviz() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("dot"))
        .find(|dot| dot.is_file())
}

/// Renders `dot_text` as SVG with Graphviz `dot -Tsvg`; without Graphviz, prints
/// [`NO_GRAPHVIZ`] and returns `None` so that the test can return without failing.
pub fn render_svg(dot_text: &[u8]) -> Option<String> {
    let Some(dot) = graphviz() else {
        eprintln!("{NO_GRAPHVIZ}");
        return None;
    };
    let mut child = Command::new(&dot)
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", dot.display()));
    let mut stdin = child.stdin.take().unwrap();
    let input = dot_text.to_vec();
    // Written from a thread: a large drawing would fill the pipe while `dot` fills stdout.
    let writer = thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "dot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}
