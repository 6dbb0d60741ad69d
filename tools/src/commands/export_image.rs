//! `shareflow export-image`: MNIST test images as a `.npy` file in the layout the graphs take,
//! to give a party process directly (`run-graph --input image=x.npy`).
//!
//! Images `index..index + count` of the test set are written as float32 `[count, 28, 28, 1]`
//! (NHWC, pixel / 255: what the zoo's networks and NCHW ONNX imports take), or in the input
//! shape of `--onnx FILE` / `--graph FILE` (`[count, 784]` for a model that takes flat
//! vectors). With `--labels FILE` their digits are written too, as float32 `[count]`. An
//! existing file is replaced only with `--force`.

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use shareflow_runtime::data::npy::write_npy;
use shareflow_runtime::data::{data_dir, Mnist, Split};

use super::network::Network;
use crate::report::Report;
use crate::{Result, ToolError};

/// Options of `export-image`.
pub struct ExportImageArgs {
    /// The first test image.
    pub index: usize,
    /// How many images.
    pub count: usize,
    /// The network whose input layout to write (default: `[count, 28, 28, 1]`).
    pub network: Option<Network>,
    /// MNIST directory (default: `$SHAREFLOW_DATA` or `../shared/data/mnist`).
    pub data: Option<PathBuf>,
    /// Where the images go.
    pub out: PathBuf,
    /// Where the labels go, if anywhere.
    pub labels: Option<PathBuf>,
    /// Replace existing files.
    pub force: bool,
    pub json: bool,
}

/// The images (and labels) that `export-image` writes: `[count, ...]` in the network's input
/// shape, and the digits as floats.
pub fn images(args: &ExportImageArgs) -> Result<(ArrayD<f32>, ArrayD<f32>)> {
    if args.count == 0 {
        return Err(ToolError::Usage("--count must be at least 1".into()));
    }
    let end = args
        .index
        .checked_add(args.count)
        .ok_or_else(|| ToolError::Usage("--index + --count is too large".into()))?;
    let test = Mnist::load(&data_dir(args.data.clone()), Split::Test, Some(end))?;
    if end > test.len() {
        return Err(ToolError::Usage(format!(
            "images {}..{end} are beyond the test set of {} images",
            args.index,
            test.len()
        )));
    }
    let images = test.batch(args.index, end);
    let images = match &args.network {
        Some(network) => network.inputs(&images)?,
        None => images,
    };
    let labels: Vec<f32> = test.labels[args.index..end]
        .iter()
        .map(|&l| f32::from(l))
        .collect();
    let labels = ArrayD::from_shape_vec(IxDyn(&[args.count]), labels)
        .map_err(|e| ToolError::Usage(format!("labels: {e}")))?;
    Ok((images, labels))
}

/// Refuses to replace `path` (a file, or a link, even a dangling one) unless `force`.
fn check_free(path: &Path, force: bool) -> Result<()> {
    if !force && std::fs::symlink_metadata(path).is_ok() {
        return Err(ToolError::File {
            path: path.display().to_string(),
            message: "exists; pass --force to replace it".into(),
        });
    }
    Ok(())
}

/// Writes the images (and labels) and prints what was written.
pub fn run(args: ExportImageArgs) -> Result<()> {
    check_free(&args.out, args.force)?;
    if let Some(labels) = &args.labels {
        check_free(labels, args.force)?;
        if labels == &args.out {
            return Err(ToolError::Usage(
                "--labels and -o name the same file".into(),
            ));
        }
    }
    let (images, labels) = images(&args)?;
    write_npy(&args.out, &images)?;
    let mut r = Report::new();
    r.set("index", args.index)
        .set("images", args.count)
        .set("shape", images.shape().to_vec())
        .set("out", args.out.display().to_string());
    if let Some(path) = &args.labels {
        write_npy(path, &labels)?;
        r.set("labels", path.display().to_string());
    }
    if args.json {
        r.print(true);
    } else {
        println!(
            "wrote {} test images from #{} as {:?} float32 to {}",
            args.count,
            args.index,
            images.shape(),
            args.out.display()
        );
        if let Some(path) = &args.labels {
            println!(
                "wrote their labels as [{}] float32 to {}",
                args.count,
                path.display()
            );
        }
    }
    Ok(())
}
