//! Stopping cleanly on SIGINT, SIGTERM and SIGHUP. A command that starts party processes and
//! keeps private keys, images and outputs in a temporary folder calls [`catch`] first: a
//! signal is then only recorded, the command sees it at its next [`check`], returns
//! [`ToolError::Interrupted`], and on the way out its guards kill the party processes and
//! remove the folder. A second signal ends the process at once, as without [`catch`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::flag;

use crate::{Result, ToolError};

/// The signals that stop a command: Ctrl-C, `kill`, and the terminal going away.
const SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// Which signal arrived (0: none yet).
static CAUGHT: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// From now on, Ctrl-C, SIGTERM and SIGHUP no longer end this process at once: the first is recorded for
/// [`check`]; a second one ends the process with status 128 + its number. Idempotent.
pub fn catch() -> Result<()> {
    if CAUGHT.get().is_some() {
        return Ok(());
    }
    let which = Arc::new(AtomicUsize::new(0));
    let any = Arc::new(AtomicBool::new(false));
    for signal in SIGNALS {
        let registered = flag::register_conditional_shutdown(signal, 128 + signal, any.clone())
            .and_then(|_| flag::register(signal, any.clone()))
            .and_then(|_| flag::register_usize(signal, which.clone(), signal as usize));
        registered.map_err(|e| ToolError::Usage(format!("catching {}: {e}", name(signal))))?;
    }
    // A concurrent first call registered its own flags too; either set sees the signal.
    let _ = CAUGHT.set(which);
    Ok(())
}

/// The signal that arrived since [`catch`], if any.
pub fn caught() -> Option<i32> {
    let which = CAUGHT.get()?.load(Ordering::SeqCst);
    i32::try_from(which).ok().filter(|&s| s != 0)
}

/// [`ToolError::Interrupted`] once a signal arrived since [`catch`].
pub fn check() -> Result<()> {
    match caught() {
        Some(signal) => Err(ToolError::Interrupted {
            signal: name(signal),
            status: u8::try_from(128 + signal).unwrap_or(u8::MAX),
        }),
        None => Ok(()),
    }
}

/// The usual name of one of [`SIGNALS`].
fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
