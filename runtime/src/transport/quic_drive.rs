//! Who drives a party's QUIC runtime: the party's own thread, and a pump when it does not.
//!
//! The runtime is single-threaded. The party's thread drives it while it waits for a batch,
//! when it sends one (the packets that the congestion window allows leave at once), and
//! between kernels ([`Driver::progress`], at most every [`DRIVE_EVERY`]), so that a batch
//! costs one thread wake-up, the receiver's. Worker threads would cost three (the sender's
//! worker, the receiver's worker, then the receiver's thread), and on two cores shared by
//! five parties each wake-up is tens of microseconds of every round.
//!
//! When the party's thread has not driven the runtime for [`PUMP_EVERY`] (a long kernel, or a
//! party busy with anything but the transport), the pump thread drives it instead: what peers
//! send is read and acknowledged, and keep-alives leave, so a busy party never looks dead to
//! its peers.
//!
//! What the congestion window holds back of a large batch leaves at the party's next drive
//! (at most [`DRIVE_EVERY`] later between kernels). A pump that drove every millisecond for a
//! while after each large send was slower: on two cores that the parties' kernels keep busy, its
//! wake-ups cost more than the overlap gained (a batch-128 training step of B over QUIC took
//! 2.84 and 2.94 s with it, 2.59 and 2.79 s without).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

/// How often at most the party's thread drives the runtime between kernels.
pub const DRIVE_EVERY: Duration = Duration::from_millis(1);
/// How long the party's thread may leave the runtime alone before the pump drives it.
pub const PUMP_EVERY: Duration = Duration::from_millis(10);

/// Scheduler passes per drive: a received datagram goes from the endpoint to the connection
/// to the stream's reader (tasks woken by tasks run in the same pass, so two would do).
const DRIVE_PASSES: usize = 4;
/// Scheduler passes after a write: the connection's task, woken by the write, sends the
/// packets in the first (what the congestion window holds back goes at the next drive).
const SEND_PASSES: usize = 1;

/// When the runtime was last driven, and whether the party's thread is driving it now.
#[derive(Debug)]
struct Clock {
    start: Instant,
    /// Nanoseconds from `start` to the end of the last drive.
    last: AtomicU64,
    /// The party's thread is inside the runtime.
    inside: AtomicBool,
}

impl Clock {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn since_driven(&self) -> Duration {
        Duration::from_nanos(self.now().saturating_sub(self.last.load(Ordering::Relaxed)))
    }

    fn mark(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
    }
}

/// Marks the party's thread as inside the runtime until dropped (even by a panic).
struct Inside<'a>(&'a Clock);

impl<'a> Inside<'a> {
    fn enter(clock: &'a Clock) -> Inside<'a> {
        clock.inside.store(true, Ordering::Relaxed);
        Inside(clock)
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.mark();
        self.0.inside.store(false, Ordering::Relaxed);
    }
}

/// The pump thread and its stop flag; dropping it stops the thread.
#[derive(Debug)]
struct Pump {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            if thread.join().is_err() {
                tracing::warn!("the QUIC pump thread panicked");
            }
        }
    }
}

/// A party's single-threaded runtime and its pump.
#[derive(Debug)]
pub(crate) struct Driver {
    /// First, so that it stops before the runtime is dropped.
    pump: Option<Pump>,
    rt: Arc<Runtime>,
    clock: Arc<Clock>,
}

impl Driver {
    /// Takes over `rt` and starts its pump (a thread named after party `me`). Without a
    /// thread for the pump, the party's thread alone drives the runtime.
    pub(crate) fn new(rt: Runtime, me: &str) -> Driver {
        let rt = Arc::new(rt);
        let clock = Arc::new(Clock {
            start: Instant::now(),
            last: AtomicU64::new(0),
            inside: AtomicBool::new(false),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (rt2, clock2, stop2) = (Arc::clone(&rt), Arc::clone(&clock), Arc::clone(&stop));
        let pump = thread::Builder::new()
            .name(format!("quic-pump-{me}"))
            .spawn(move || pump(&rt2, &clock2, &stop2));
        let pump = match pump {
            Ok(thread) => Some(Pump {
                stop,
                thread: Some(thread),
            }),
            Err(e) => {
                let why = "no pump thread: a long kernel may look like a dead party";
                tracing::warn!(error = %e, "{why}");
                None
            }
        };
        Driver { rt, clock, pump }
    }

    /// Runs `future` to completion on the party's thread, driving the runtime meanwhile.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _inside = Inside::enter(&self.clock);
        self.rt.block_on(future)
    }

    /// Runs the write `future`, then lets the tasks it woke run (the packets leave now, not
    /// at the next wait).
    pub(crate) fn block_on_write<F: Future>(&self, future: F) -> F::Output {
        self.block_on(async {
            let out = future.await;
            drive(SEND_PASSES).await;
            out
        })
    }

    /// Drives the runtime without blocking on the network (it may wait for the pump to hand
    /// over the runtime), if it has not been for [`DRIVE_EVERY`].
    pub(crate) fn progress(&self) {
        if self.clock.since_driven() >= DRIVE_EVERY {
            self.block_on(drive(DRIVE_PASSES));
        }
    }

    /// Stops the pump, then shuts the runtime down, waiting at most `wait` for its tasks.
    pub(crate) fn shutdown_timeout(self, wait: Duration) {
        drop(self.pump);
        match Arc::try_unwrap(self.rt) {
            Ok(rt) => rt.shutdown_timeout(wait),
            Err(_) => tracing::warn!("the QUIC runtime is still shared; it stops when dropped"),
        }
    }

    /// Stops the pump, then shuts the runtime down without waiting (inside an async context).
    pub(crate) fn shutdown_background(self) {
        drop(self.pump);
        match Arc::try_unwrap(self.rt) {
            Ok(rt) => rt.shutdown_background(),
            Err(_) => tracing::warn!("the QUIC runtime is still shared; it stops when dropped"),
        }
    }
}

/// The pump: drives the runtime whenever the party's thread has left it alone for
/// [`PUMP_EVERY`], until stopped.
fn pump(rt: &Runtime, clock: &Clock, stop: &AtomicBool) {
    loop {
        // while the party's thread is inside, a full period; else until it is due
        let wait = if clock.inside.load(Ordering::Relaxed) {
            PUMP_EVERY
        } else {
            PUMP_EVERY.saturating_sub(clock.since_driven())
        };
        thread::park_timeout(wait.max(DRIVE_EVERY));
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if !clock.inside.load(Ordering::Relaxed) && clock.since_driven() >= PUMP_EVERY {
            rt.block_on(drive(DRIVE_PASSES));
            clock.mark();
        }
    }
}

/// Lets the runtime's tasks run and polls its sockets, `passes` times, without waiting.
///
/// On a thread that does not hold the runtime (the party's thread while the pump drives it,
/// or the other way round), the yields complete at once and the holder runs the tasks in its
/// own passes; what it leaves goes at the next drive. Waiting for a spawned task instead
/// would force a pass, but measured slower (a wake-up of the runtime per drive).
async fn drive(passes: usize) {
    for _ in 0..passes {
        tokio::task::yield_now().await;
    }
}
