//! The floor of a benchmark row: the least time a private prediction could take on this
//! machine, from what it must do and what the machine's links measure.
//!
//! `floor = rounds x RTT + bytes / bandwidth + plaintext compute`, with the round trip and the
//! bandwidth measured in the same run as the rows they judge:
//!
//! - over `quic`: TCP on 127.0.0.1 (the kernel's loopback, without QUIC's encryption and
//!   framing, so the floor does not excuse the transport's own costs);
//! - in process: a channel between two threads carrying byte buffers (what the in-process
//!   transport does at best).
//!
//! The round trip is the median of [`PINGS`] one-byte exchanges; the bandwidth is the median of
//! three transfers of [`BULK_BYTES`] bytes, timed until the receiver has read them all. `bytes`
//! are all parties' bytes of the prediction, as if they crossed one link one after the other
//! (parties on two cores share the copy work of the loopback).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use crate::{Result, ToolError};

/// One-byte round trips timed for the RTT.
const PINGS: usize = 200;
/// Bytes of one bandwidth transfer.
const BULK_BYTES: usize = 64 << 20;
/// Size of the buffers a bandwidth transfer is written in.
const CHUNK: usize = 1 << 20;

/// A link's measured round trip and bandwidth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Median round trip of a one-byte message, in milliseconds.
    pub rtt_ms: f64,
    /// Median bandwidth, in bytes per millisecond.
    pub bytes_per_ms: f64,
}

impl Link {
    /// The floor of a run of `rounds` rounds that sends `bytes` and computes for
    /// `compute_ms`, in milliseconds.
    pub fn floor_ms(&self, rounds: u64, bytes: u64, compute_ms: f64) -> f64 {
        rounds as f64 * self.rtt_ms + bytes as f64 / self.bytes_per_ms + compute_ms
    }

    /// The link of a transport name of `bench` (`quic`: TCP loopback; `inproc`: a channel).
    pub fn measure(transport: &str) -> Result<Link> {
        match transport {
            "quic" => loopback(),
            _ => channel(),
        }
    }
}

fn median(xs: Vec<f64>) -> f64 {
    super::secure::summary(&xs).0
}

fn io_err(what: &str, e: std::io::Error) -> ToolError {
    ToolError::Usage(format!("measuring the loopback ({what}): {e}"))
}

/// TCP on 127.0.0.1: an echo thread for the round trips, then a sink for the bulk transfers.
fn loopback() -> Result<Link> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| io_err("bind", e))?;
    let addr = listener.local_addr().map_err(|e| io_err("address", e))?;
    let peer = thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut b = [0u8; 1];
        for _ in 0..PINGS {
            s.read_exact(&mut b)?;
            s.write_all(&b)?;
        }
        let mut buf = vec![0u8; CHUNK];
        for _ in 0..3 {
            let mut left = BULK_BYTES;
            while left > 0 {
                let n = s.read(&mut buf[..left.min(CHUNK)])?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                left -= n;
            }
            s.write_all(&[1])?;
        }
        Ok(())
    });
    let mut s = TcpStream::connect(addr).map_err(|e| io_err("connect", e))?;
    s.set_nodelay(true).map_err(|e| io_err("nodelay", e))?;
    let mut rtts = Vec::with_capacity(PINGS);
    let mut b = [7u8; 1];
    for _ in 0..PINGS {
        let t = Instant::now();
        s.write_all(&b).map_err(|e| io_err("ping", e))?;
        s.read_exact(&mut b).map_err(|e| io_err("pong", e))?;
        rtts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let chunk = vec![0x5au8; CHUNK];
    let mut rates = Vec::with_capacity(3);
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..BULK_BYTES / CHUNK {
            s.write_all(&chunk).map_err(|e| io_err("bulk", e))?;
        }
        s.read_exact(&mut b).map_err(|e| io_err("bulk ack", e))?;
        rates.push(BULK_BYTES as f64 / (t.elapsed().as_secs_f64() * 1e3));
    }
    peer.join()
        .map_err(|_| ToolError::Usage("measuring the loopback: the echo thread panicked".into()))?
        .map_err(|e| io_err("echo", e))?;
    Ok(Link {
        rtt_ms: median(rtts),
        bytes_per_ms: median(rates),
    })
}

/// Two threads and a pair of channels carrying byte buffers.
fn channel() -> Result<Link> {
    let (to_peer, from_me) = mpsc::channel::<Vec<u8>>();
    let (to_me, from_peer) = mpsc::channel::<Vec<u8>>();
    let peer = thread::spawn(move || {
        // Echo every buffer's length back as a one-byte buffer until the channel closes.
        while let Ok(v) = from_me.recv() {
            let mut copy = vec![0u8; v.len()];
            copy.copy_from_slice(&v);
            if to_me.send(vec![copy.len() as u8]).is_err() {
                break;
            }
        }
    });
    let mut rtts = Vec::with_capacity(PINGS);
    let mut ok = true;
    for _ in 0..PINGS {
        let t = Instant::now();
        ok &= to_peer.send(vec![7]).is_ok() && from_peer.recv().is_ok();
        rtts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut rates = Vec::with_capacity(3);
    for _ in 0..3 {
        let t = Instant::now();
        ok &= to_peer.send(vec![0x5a; BULK_BYTES]).is_ok() && from_peer.recv().is_ok();
        rates.push(BULK_BYTES as f64 / (t.elapsed().as_secs_f64() * 1e3));
    }
    drop(to_peer);
    if peer.join().is_err() || !ok {
        return Err(ToolError::Usage(
            "measuring the in-process link: the echo thread failed".into(),
        ));
    }
    Ok(Link {
        rtt_ms: median(rtts),
        bytes_per_ms: median(rates),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_adds_rounds_bytes_and_compute() {
        let link = Link {
            rtt_ms: 0.05,
            bytes_per_ms: 1e6,
        };
        assert!((link.floor_ms(10, 2_000_000, 1.5) - (0.5 + 2.0 + 1.5)).abs() < 1e-12);
    }

    #[test]
    fn both_links_measure_positive_figures() {
        for t in ["quic", "inproc"] {
            let link = Link::measure(t).expect("loopback");
            assert!(link.rtt_ms > 0.0 && link.rtt_ms < 1e3, "{t}: {link:?}");
            assert!(link.bytes_per_ms > 1e3, "{t}: {link:?}");
        }
    }
}
