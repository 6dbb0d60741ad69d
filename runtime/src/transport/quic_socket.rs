//! The UDP socket of a party's QUIC endpoint on loopback when its packets are larger than
//! segmentation offload (GSO) allows: one QUIC packet per datagram.
//!
//! With GSO quinn hands the kernel up to ten packets per system call, whose total must fit one
//! 64 KiB UDP datagram, so packets can be at most about 6,500 bytes, and the receiver still
//! decrypts, parses and acknowledges each of them. Packets of nearly 64 KiB, one per datagram
//! (`quic_tls::loopback_packet`), take about as many system calls (on loopback a segmented
//! send reaches a receiver with GRO whole) and a tenth of the packets for the same bytes. This
//! socket tells quinn so from the start (`quic_tls::one_per_datagram`).

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// A runtime's UDP socket that sends one datagram per transmit.
pub(crate) struct OnePacket(pub(crate) Arc<dyn AsyncUdpSocket>);

impl fmt::Debug for OnePacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OnePacket").field(&self.0).finish()
    }
}

impl AsyncUdpSocket for OnePacket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.0.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.0.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    /// One packet per datagram: no segmentation offload.
    fn max_transmit_segments(&self) -> usize {
        1
    }

    fn max_receive_segments(&self) -> usize {
        self.0.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.0.may_fragment()
    }
}
