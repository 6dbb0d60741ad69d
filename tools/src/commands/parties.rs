//! Every party of a compiled graph as a separate `run-graph` process on 127.0.0.1, as
//! `shareflow demo`, `shareflow bench` and `shareflow fedavg` start them.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use shareflow_graphs::zoo::{CLIENT, IMAGE, MODEL_OWNER};
use shareflow_runtime::cluster::{ClusterConfig, CLUSTER_FILE};
use shareflow_runtime::keys::Existing;

use super::interrupt;
use crate::{Result, ToolError};

/// A party whose stderr lines are shown to a callback as they come (progress).
#[derive(Clone)]
pub struct Watch {
    pub party: String,
    pub on_line: Arc<dyn Fn(&str) + Send + Sync>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("party", &self.party).finish()
    }
}

/// What each party's `run-graph` is given, by party name: an `.npz` whose arrays are all
/// inputs (`--weights`) and single inputs `NAME=FILE.npy` (`--input`).
#[derive(Debug, Clone, Default)]
pub struct PartyInputs {
    /// One party's stderr lines, shown as they come.
    pub watch: Option<Watch>,
    pub weights: HashMap<String, PathBuf>,
    pub inputs: HashMap<String, Vec<(String, PathBuf)>>,
    /// More arguments for every party's `run-graph` (`--training`).
    pub args: Vec<String>,
    /// More arguments for one party (the data owner's `--data DIR`).
    pub party_args: HashMap<String, Vec<String>>,
}

impl PartyInputs {
    /// A prediction: the model owner gives the weights at `weights_path` (see
    /// [`super::network::Network::weights_file`]), the client the image at `image_path`.
    pub fn prediction(weights_path: &Path, image_path: &Path) -> PartyInputs {
        let mut p = PartyInputs::default();
        p.weights
            .insert(MODEL_OWNER.to_string(), weights_path.to_path_buf());
        p.inputs.insert(
            CLIENT.to_string(),
            vec![(IMAGE.to_string(), image_path.to_path_buf())],
        );
        p
    }
}

/// Makes a fresh loopback cluster (CA, certificates, free ports) in `dir`, starts one
/// `exe run-graph` per party (with its files of `given`; outputs in `dir/out-PARTY`), waits for all, and returns each party's name and
/// its report. With `serving: Some(n)`, `graph_path` is a serving graph and every party runs
/// its setup once and then `n` predictions over the same connections. If any party fails, the
/// error lists every failure. On an error, or a signal after [`interrupt::catch`], the parties
/// still running are killed before it returns.
pub fn run_local_parties(
    exe: &Path,
    parties: &[String],
    dir: &Path,
    graph_path: &Path,
    given: &PartyInputs,
    timeout_s: f64,
    serving: Option<usize>,
) -> Result<Vec<(String, Value)>> {
    // a retry in the same directory makes a fresh cluster
    ClusterConfig::local_with(parties, dir, 0, Existing::Replace)?;
    let mut running = Running::default();
    for party in parties {
        interrupt::check()?;
        let mut cmd = Command::new(exe);
        cmd.arg("run-graph")
            .arg("--party")
            .arg(party)
            .arg("--cluster")
            .arg(dir.join(CLUSTER_FILE))
            .arg("--graph")
            .arg(graph_path)
            .arg("--output-dir")
            .arg(dir.join(format!("out-{party}")))
            .arg("--timeout")
            .arg(timeout_s.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = serving {
            cmd.arg("--serving").arg("--predictions").arg(n.to_string());
        }
        if let Some(w) = given.weights.get(party) {
            cmd.arg("--weights").arg(w);
        }
        for (name, file) in given.inputs.get(party).into_iter().flatten() {
            cmd.arg("--input").arg(format!("{name}={}", file.display()));
        }
        if let Some(trace) = crate::logging::party_trace_path(dir, party) {
            cmd.arg("--trace").arg(trace);
        }
        cmd.args(&given.args);
        cmd.args(given.party_args.get(party).into_iter().flatten());
        let child = cmd
            .spawn()
            .map_err(|e| ToolError::Usage(format!("starting party {party}: {e}")))?;
        let watch = given
            .watch
            .as_ref()
            .filter(|w| &w.party == party)
            .map(|w| w.on_line.clone());
        running.push(party, child, watch);
    }
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for (party, status, stdout, stderr) in running.wait()? {
        if status.success() {
            if let Some(trace) = crate::logging::party_trace_path(dir, &party) {
                crate::logging::collect_party_trace(&party, &trace)?;
            }
            let v: Value = serde_json::from_slice(&stdout)
                .map_err(|e| ToolError::Usage(format!("party {party} printed no report: {e}")))?;
            reports.push((party, v));
        } else {
            failures.push(format!("{party}: {}", why_failed(status, &stderr)));
        }
    }
    if !failures.is_empty() {
        return Err(ToolError::Usage(format!(
            "parties failed:\n  {}",
            failures.join("\n  ")
        )));
    }
    Ok(reports)
}

/// One line on why a party failed: its error lines (its progress lines left out), or how it
/// ended when it printed none (killed by a signal, say).
fn why_failed(status: ExitStatus, stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with("run-graph: "))
        .collect();
    if !errors.is_empty() {
        return errors.join(" | ");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    match lines.last() {
        Some(last) => format!("{status}; last said: {last}"),
        None => status.to_string(),
    }
}

/// How often [`Running::wait`] looks at the parties and for a signal.
const POLL: Duration = Duration::from_millis(5);

/// A party process whose stdout and stderr are read by threads as it runs.
struct Party {
    name: String,
    child: Child,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
}

/// The party processes still running; dropping it kills and reaps them, so that no error,
/// signal or panic leaves one behind.
#[derive(Default)]
struct Running(Vec<Party>);

/// A party that ended: its name, exit status, stdout and stderr.
type Ended = (String, ExitStatus, Vec<u8>, Vec<u8>);

impl Running {
    fn push(&mut self, name: &str, mut child: Child, watch: Option<OnLine>) {
        let stdout = read_all(child.stdout.take(), None);
        let stderr = read_all(child.stderr.take(), watch);
        self.0.push(Party {
            name: name.to_string(),
            child,
            stdout,
            stderr,
        });
    }

    /// Waits for every party to end, in the order they were started; stops early (and kills
    /// those still running) when a signal arrives after [`interrupt::catch`].
    fn wait(mut self) -> Result<Vec<Ended>> {
        let mut ended: Vec<Option<ExitStatus>> = vec![None; self.0.len()];
        loop {
            interrupt::check()?;
            for (p, e) in self.0.iter_mut().zip(ended.iter_mut()) {
                if e.is_none() {
                    *e = p.child.try_wait().map_err(|err| {
                        ToolError::Usage(format!("waiting for party {}: {err}", p.name))
                    })?;
                }
            }
            if ended.iter().all(Option::is_some) {
                break;
            }
            std::thread::sleep(POLL);
        }
        let parties = std::mem::take(&mut self.0);
        Ok(parties
            .into_iter()
            .zip(ended.into_iter().flatten())
            .map(|(p, status)| {
                let stdout = p.stdout.join().unwrap_or_default();
                let stderr = p.stderr.join().unwrap_or_default();
                (p.name, status, stdout, stderr)
            })
            .collect())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for p in &mut self.0 {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// A callback shown each line of a watched party's stderr.
type OnLine = Arc<dyn Fn(&str) + Send + Sync>;

/// Reads a child's pipe to its end on a thread, showing `watch` each line as it comes.
fn read_all(
    pipe: Option<impl Read + Send + 'static>,
    watch: Option<OnLine>,
) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let Some(pipe) = pipe else {
            return bytes;
        };
        match watch {
            None => {
                let mut pipe = pipe;
                let _ = pipe.read_to_end(&mut bytes);
            }
            Some(on_line) => {
                let mut reader = std::io::BufReader::new(pipe);
                let mut line = Vec::new();
                while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    on_line(String::from_utf8_lossy(&line).trim_end());
                    bytes.extend_from_slice(&line);
                    line.clear();
                }
            }
        }
        bytes
    })
}
