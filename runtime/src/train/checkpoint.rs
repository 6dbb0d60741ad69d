//! Checkpoints of a private training session, so that a crash does not lose the work.
//!
//! Every K steps each party that holds variable shares (the servers) writes its own shares of
//! every variable to `DIR/<party>/step-<n>.npz`, `n` the number of steps done: one array per
//! variable, named by the variable (`u64` for ring shares), and an entry `checkpoint`, the JSON
//! of the step, the SHA-256 digest of the compiled step program and the schedule (number of
//! images, epochs, batch, learning rate, momentum, seed). Nothing else: no images, labels or
//! weights in the clear.
//!
//! A file is written as a temporary `.step-<n>.npz.tmp` in the same directory, flushed to
//! disk, renamed to `step-<n>.npz`, and the directory is flushed: a `step-<n>.npz` is always
//! complete, and a crash leaves at most a temporary file, which is never read as a checkpoint.
//! Each party keeps its two newest checkpoints, so that when a crash comes between two
//! servers' writes, the older step that every server has is still there.
//!
//! A session resumes from the newest step that every server has ([`Checkpointer::latest`]),
//! and only with the same step program and schedule: another program (another network, batch
//! size, protocol or compile options) or schedule is refused, naming the file.
//!
//! **One server's files alone reveal nothing about the weights**: its arrays are that server's
//! additive shares, uniformly random in Z_2^64 whatever the weights; only the shares of both
//! servers together (added mod 2^64) give the fixed-point weights. Keep the servers'
//! checkpoint directories apart as the servers are kept apart.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use ndarray::{Array1, ArrayD};
use ndarray_npy::{NpzReader, NpzWriter};
use serde::{Deserialize, Serialize};
use shareflow_compiler::ir::{Kernel, StoreKey};
use shareflow_compiler::CompiledGraph;
use shareflow_ops::Value;
use shareflow_ops::ValueKind;

use crate::data::weights::MAX_NPZ_BYTES;
use crate::exec::Store;
use crate::plain::train::TrainConfig;
use crate::{Result, RuntimeError};

/// Steps between two checkpoints when a directory is given and no period.
pub const DEFAULT_EVERY: usize = 50;

/// The entry of a checkpoint file that holds its [`Meta`] (JSON bytes).
const META: &str = "checkpoint";
const FORMAT: u32 = 1;
/// Checkpoints each party keeps.
const KEEP: usize = 2;

/// Where and how often a training session writes checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointOptions {
    /// The directory of the checkpoints (each server writes its own shares there).
    pub dir: PathBuf,
    /// Steps between two checkpoints (0: never).
    pub every: usize,
    /// Start a new session in a directory that holds checkpoints (they are deleted).
    pub force: bool,
}

impl CheckpointOptions {
    /// Checkpoints in `dir` every [`DEFAULT_EVERY`] steps.
    pub fn new(dir: impl Into<PathBuf>) -> CheckpointOptions {
        CheckpointOptions {
            dir: dir.into(),
            every: DEFAULT_EVERY,
            force: false,
        }
    }
}

/// The schedule a session follows: a resumed session must follow the same one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleId {
    /// The number of training images.
    pub images: usize,
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step.
    pub batch: usize,
    /// Initial learning rate.
    pub lr: f32,
    /// Momentum of SGD.
    pub momentum: f32,
    /// Seed of the initial weights and the shuffling.
    pub seed: u64,
}

impl ScheduleId {
    /// The schedule of training on `images` images with `cfg`.
    pub fn new(images: usize, cfg: &TrainConfig) -> ScheduleId {
        ScheduleId {
            images,
            epochs: cfg.epochs,
            batch: cfg.batch,
            lr: cfg.lr,
            momentum: cfg.momentum,
            seed: cfg.seed,
        }
    }
}

impl std::fmt::Display for ScheduleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} images, {} epochs, batch {}, lr {}, momentum {}, seed {}",
            self.images, self.epochs, self.batch, self.lr, self.momentum, self.seed
        )
    }
}

/// What a checkpoint file says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    format: u32,
    party: String,
    /// Steps done.
    step: usize,
    /// Hex SHA-256 of the compiled step program's JSON.
    program: String,
    schedule: ScheduleId,
    /// The kind of each variable share.
    variables: BTreeMap<String, ValueKind>,
}

/// A party that holds variable shares: its index in the session and the variables it loads
/// (with the kind and shape the step program expects).
#[derive(Debug, Clone)]
struct Holder {
    index: usize,
    party: String,
    variables: BTreeMap<String, (ValueKind, Vec<usize>)>,
}

/// Writes and reads the checkpoints of one training session.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    dir: PathBuf,
    every: usize,
    program: String,
    schedule: ScheduleId,
    holders: Vec<Holder>,
}

fn file_err(path: &Path, message: impl Into<String>) -> RuntimeError {
    RuntimeError::File {
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn short(h: &str) -> &str {
    h.get(..16).unwrap_or(h)
}

/// `step-<n>.npz` → `n`; anything else (a temporary file included) → `None`.
fn parse_name(name: &str) -> Option<usize> {
    let n = name.strip_prefix("step-")?.strip_suffix(".npz")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// Flushes a directory's entries (the rename of a file in it) to disk.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| file_err(dir, format!("flushing the directory: {e}")))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The parties of the step program that hold variable shares, with what they load.
fn holders_of(step: &CompiledGraph) -> Vec<Holder> {
    let mut holders = Vec::new();
    for (index, p) in step.programs.iter().enumerate() {
        let mut variables = BTreeMap::new();
        for instr in &p.instrs {
            if let Kernel::Load {
                key: StoreKey::Variable(name),
            } = &instr.kernel
            {
                variables.insert(name.clone(), (instr.kind, instr.shape.clone()));
            }
        }
        if !variables.is_empty() {
            holders.push(Holder {
                index,
                party: p.party.clone(),
                variables,
            });
        }
    }
    holders
}

/// The indices (in the session's party order) of the parties that write checkpoints of the
/// training step program `step`: those that hold variable shares (the servers).
pub fn holder_indices(step: &CompiledGraph) -> Vec<usize> {
    holders_of(step).iter().map(|h| h.index).collect()
}

impl Checkpointer {
    /// The checkpoints of the session whose step program is `step` and schedule `schedule`,
    /// written every `every` steps under `dir`.
    pub fn new(
        dir: &Path,
        every: usize,
        step: &CompiledGraph,
        schedule: ScheduleId,
    ) -> Result<Checkpointer> {
        let program = hex(&crate::party::json_digest("training step", step)?);
        let holders = holders_of(step);
        if holders.is_empty() {
            return Err(RuntimeError::Node {
                node: "checkpoint".into(),
                message: "no party of the step program holds variables".into(),
            });
        }
        Ok(Checkpointer {
            dir: dir.to_path_buf(),
            every,
            program,
            schedule,
            holders,
        })
    }

    /// The hex digest of the step program.
    pub fn program_digest(&self) -> &str {
        &self.program
    }

    /// The parties that write checkpoints.
    pub fn parties(&self) -> Vec<&str> {
        self.holders.iter().map(|h| h.party.as_str()).collect()
    }

    /// Whether a checkpoint is due after `step` steps.
    pub fn due(&self, step: usize) -> bool {
        self.every > 0 && step > 0 && step.is_multiple_of(self.every)
    }

    fn party_dir(&self, party: &str) -> PathBuf {
        self.dir.join(party)
    }

    /// The path of `party`'s checkpoint after `step` steps.
    pub fn path(&self, party: &str, step: usize) -> PathBuf {
        self.party_dir(party).join(format!("step-{step}.npz"))
    }

    /// The steps of `party`'s complete checkpoints, oldest first (none if it has no directory).
    pub fn steps(&self, party: &str) -> Result<Vec<usize>> {
        let dir = self.party_dir(party);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(file_err(&dir, e.to_string())),
        };
        let mut steps = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| file_err(&dir, e.to_string()))?;
            if let Some(n) = entry.file_name().to_str().and_then(parse_name) {
                steps.push(n);
            }
        }
        steps.sort_unstable();
        Ok(steps)
    }

    /// Before a new session writes into the directory: refuses a directory that holds
    /// checkpoints (of another session: the digest or schedule differs; or of this one, which
    /// `--resume` would continue) unless `force`, which deletes them.
    pub fn prepare_new(&self, force: bool) -> Result<()> {
        for h in &self.holders {
            let steps = self.steps(&h.party)?;
            let Some(&last) = steps.last() else {
                continue;
            };
            let path = self.path(&h.party, last);
            if !force {
                let meta = read_meta(&path)?;
                self.check_meta(&path, &meta, &h.party, last)?;
                return Err(file_err(
                    &path,
                    format!(
                        "holds a checkpoint of this training session after step {last}: pass \
                         --resume to continue from it, or --force to start over (deleting it)"
                    ),
                ));
            }
            for s in steps {
                let p = self.path(&h.party, s);
                std::fs::remove_file(&p).map_err(|e| file_err(&p, e.to_string()))?;
            }
        }
        Ok(())
    }

    /// The same checkpoints seen by one party only (a server of a session over QUIC, which
    /// writes and reads only its own files); `None` if `party` holds no variables.
    pub fn only(&self, party: &str) -> Option<Checkpointer> {
        let holder = self.holders.iter().find(|h| h.party == party)?.clone();
        Some(Checkpointer {
            holders: vec![holder],
            ..self.clone()
        })
    }

    /// Writes every holder's shares after `step` steps (each file atomically), then deletes
    /// each holder's checkpoints older than its two newest.
    pub fn save(&self, step: usize, stores: &[Store]) -> Result<()> {
        self.save_with(step, |index| stores.get(index))
    }

    /// For the checkpointer of one party ([`Checkpointer::only`]): writes its `store` after
    /// `step` steps, as [`Checkpointer::save`] does.
    pub fn save_own(&self, step: usize, store: &Store) -> Result<()> {
        if self.holders.len() != 1 {
            return Err(RuntimeError::Node {
                node: "checkpoint".into(),
                message: format!(
                    "one store given for {} parties ({})",
                    self.holders.len(),
                    self.parties().join(", ")
                ),
            });
        }
        self.save_with(step, |_| Some(store))
    }

    fn save_with<'s>(
        &self,
        step: usize,
        store_of: impl Fn(usize) -> Option<&'s Store>,
    ) -> Result<()> {
        for h in &self.holders {
            let store = store_of(h.index).ok_or_else(|| RuntimeError::Node {
                node: "checkpoint".into(),
                message: format!("the session has no store for {}", h.party),
            })?;
            self.save_party(h, step, store)?;
            let steps = self.steps(&h.party)?;
            let old = steps.len().saturating_sub(KEEP);
            for &s in &steps[..old] {
                let p = self.path(&h.party, s);
                std::fs::remove_file(&p).map_err(|e| file_err(&p, e.to_string()))?;
            }
        }
        Ok(())
    }

    fn save_party(&self, h: &Holder, step: usize, store: &Store) -> Result<()> {
        let dir = self.party_dir(&h.party);
        std::fs::create_dir_all(&dir).map_err(|e| file_err(&dir, e.to_string()))?;
        let path = self.path(&h.party, step);
        let temp = dir.join(format!(".step-{step}.npz.tmp"));
        let shares: BTreeMap<&str, &Value> = store.variables().collect();
        for name in h.variables.keys() {
            if !shares.contains_key(name.as_str()) {
                return Err(file_err(
                    &path,
                    format!("{} holds no share of variable {name:?} to save", h.party),
                ));
            }
        }
        let meta = Meta {
            format: FORMAT,
            party: h.party.clone(),
            step,
            program: self.program.clone(),
            schedule: self.schedule.clone(),
            variables: shares
                .iter()
                .map(|(k, v)| (k.to_string(), v.kind()))
                .collect(),
        };
        let json = serde_json::to_vec(&meta).map_err(|e| file_err(&path, e.to_string()))?;
        let written = (|| {
            let err = |m: String| file_err(&temp, m);
            let file = File::create(&temp).map_err(|e| err(e.to_string()))?;
            let mut npz = NpzWriter::new(BufWriter::new(file));
            npz.add_array(META, &Array1::from(json))
                .map_err(|e| err(e.to_string()))?;
            for (name, value) in &shares {
                let added = match value {
                    Value::Ring(a) | Value::OddRing(a) => npz.add_array(*name, a),
                    Value::Small(a) => npz.add_array(*name, a),
                    Value::Float(a) => npz.add_array(*name, a),
                    Value::Seed(s) => npz.add_array(*name, &Array1::from(s.to_vec())),
                };
                added.map_err(|e| err(format!("variable {name:?}: {e}")))?;
            }
            let out = npz.finish().map_err(|e| err(e.to_string()))?;
            let file = out.into_inner().map_err(|e| err(e.to_string()))?;
            file.sync_all().map_err(|e| err(e.to_string()))?;
            drop(file);
            std::fs::rename(&temp, &path).map_err(|e| file_err(&path, e.to_string()))?;
            sync_dir(&dir)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }

    /// The newest step of which every holder has a complete checkpoint. A holder may have a
    /// newer one (a crash between two servers' writes): the older common step is used.
    pub fn latest(&self) -> Result<usize> {
        let mut lists = Vec::new();
        for h in &self.holders {
            lists.push((h.party.clone(), self.steps(&h.party)?));
        }
        common_step(&lists).map_err(|m| file_err(&self.dir, m))
    }

    /// Every holder's store restored from its checkpoint after `step` steps, by party index,
    /// after checking that the files are of this session's step program and schedule.
    pub fn load(&self, step: usize) -> Result<Vec<(usize, Store)>> {
        let mut out = Vec::new();
        for h in &self.holders {
            let path = self.path(&h.party, step);
            out.push((h.index, self.load_party(h, step, &path)?));
        }
        Ok(out)
    }

    fn check_meta(&self, path: &Path, meta: &Meta, party: &str, step: usize) -> Result<()> {
        if meta.format != FORMAT {
            return Err(file_err(
                path,
                format!(
                    "checkpoint format {} (this build reads {FORMAT})",
                    meta.format
                ),
            ));
        }
        if meta.program != self.program {
            return Err(file_err(
                path,
                format!(
                    "step program digest mismatch: this checkpoint is of another training \
                     session (step program {}…, this session's is {}…: another network, batch \
                     size, protocol or compile options): resume with the same settings, or \
                     start a new session in another --checkpoint directory (or with --force, \
                     which deletes these checkpoints)",
                    short(&meta.program),
                    short(&self.program)
                ),
            ));
        }
        if meta.schedule != self.schedule {
            return Err(file_err(
                path,
                format!(
                    "schedule mismatch: this checkpoint is of a session of {}, this one is \
                     of {} (the batches and learning rates would differ)",
                    meta.schedule, self.schedule
                ),
            ));
        }
        if meta.party != party || meta.step != step {
            return Err(file_err(
                path,
                format!(
                    "says it is {}'s checkpoint after step {}, expected {party}'s after step \
                     {step}",
                    meta.party, meta.step
                ),
            ));
        }
        Ok(())
    }

    fn load_party(&self, h: &Holder, step: usize, path: &Path) -> Result<Store> {
        let meta = read_meta(path)?;
        self.check_meta(path, &meta, &h.party, step)?;
        let mut npz = open(path)?;
        let mut store = Store::new();
        for (name, (kind, shape)) in &h.variables {
            let err = |m: String| file_err(path, format!("variable {name:?}: {m}"));
            let value = match kind {
                ValueKind::Ring => Value::Ring(read_array(&mut npz, name).map_err(err)?),
                ValueKind::OddRing => Value::OddRing(read_array(&mut npz, name).map_err(err)?),
                ValueKind::Small => Value::Small(read_array(&mut npz, name).map_err(err)?),
                ValueKind::Float => Value::Float(read_array(&mut npz, name).map_err(err)?),
                ValueKind::Seed => {
                    let a: ArrayD<u8> = read_array(&mut npz, name).map_err(err)?;
                    let seed: [u8; 32] = a
                        .iter()
                        .copied()
                        .collect::<Vec<_>>()
                        .try_into()
                        .map_err(|_| err("a seed is not 32 bytes".into()))?;
                    Value::Seed(seed)
                }
            };
            if value.shape() != shape.as_slice() {
                return Err(err(format!(
                    "shape {:?}, the step program expects {shape:?}",
                    value.shape()
                )));
            }
            store.insert(StoreKey::Variable(name.clone()), value);
        }
        Ok(store)
    }
}

/// The newest step that appears in every party's list of checkpoint steps (`(party,
/// steps)`): the step a session resumes from. The error (no common step) lists every party's
/// steps.
pub fn common_step(lists: &[(String, Vec<usize>)]) -> std::result::Result<usize, String> {
    let mut common: Option<BTreeSet<usize>> = None;
    for (_, steps) in lists {
        let steps: BTreeSet<usize> = steps.iter().copied().collect();
        common = Some(match common {
            None => steps,
            Some(c) => c.intersection(&steps).copied().collect(),
        });
    }
    common.and_then(|c| c.last().copied()).ok_or_else(|| {
        let seen: Vec<String> = lists.iter().map(|(p, s)| format!("{p}: {s:?}")).collect();
        format!(
            "no checkpoint that every server has ({}) to resume from",
            seen.join("; ")
        )
    })
}

fn open(path: &Path) -> Result<NpzReader<File>> {
    let file = File::open(path).map_err(|e| file_err(path, e.to_string()))?;
    let len = file
        .metadata()
        .map_err(|e| file_err(path, e.to_string()))?
        .len();
    if len > MAX_NPZ_BYTES {
        return Err(file_err(
            path,
            format!("{len} bytes, more than a checkpoint may have ({MAX_NPZ_BYTES})"),
        ));
    }
    NpzReader::new(file).map_err(|e| file_err(path, format!("not a checkpoint archive: {e}")))
}

fn read_array<T: ndarray_npy::ReadableElement>(
    npz: &mut NpzReader<File>,
    name: &str,
) -> std::result::Result<ArrayD<T>, String> {
    npz.by_name(name).map_err(|e| e.to_string())
}

fn read_meta(path: &Path) -> Result<Meta> {
    let mut npz = open(path)?;
    let bytes: ArrayD<u8> = read_array(&mut npz, META)
        .map_err(|e| file_err(path, format!("no checkpoint entry ({e})")))?;
    let bytes: Vec<u8> = bytes.iter().copied().collect();
    serde_json::from_slice(&bytes)
        .map_err(|e| file_err(path, format!("the checkpoint entry is not valid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::{common_step, parse_name};

    #[test]
    fn the_common_step_is_the_newest_every_server_has() {
        let l = |a: &[usize], b: &[usize]| {
            vec![
                ("server0".to_string(), a.to_vec()),
                ("server1".to_string(), b.to_vec()),
            ]
        };
        assert_eq!(common_step(&l(&[4, 8], &[4, 8])), Ok(8));
        // server1 crashed before writing step 8
        assert_eq!(common_step(&l(&[4, 8], &[0, 4])), Ok(4));
        let e = common_step(&l(&[8], &[])).unwrap_err();
        assert!(
            e.contains("server0: [8]") && e.contains("server1: []"),
            "{e}"
        );
    }

    #[test]
    fn only_complete_files_are_checkpoints() {
        assert_eq!(parse_name("step-12.npz"), Some(12));
        assert_eq!(parse_name(".step-12.npz.tmp"), None);
        assert_eq!(parse_name("step-.npz"), None);
        assert_eq!(parse_name("step-+1.npz"), None);
        assert_eq!(parse_name("step-3.npz.tmp"), None);
    }
}
