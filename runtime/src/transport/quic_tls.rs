//! TLS and QUIC settings of a party: mutual TLS 1.3 with the `ring` provider, trusting only the
//! cluster CA, plus quinn transport tuning (flow-control windows, timeouts, loopback MTU).

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;

use crate::cluster::ClusterConfig;
use crate::{keys, Result, RuntimeError};

/// The ALPN protocol id both sides require.
pub(crate) const ALPN: &[u8] = b"shareflow/1";

/// Per-stream receive window: one 64 MiB batch fits with room to spare.
const STREAM_WINDOW: u32 = 128 << 20;
/// Connection receive window and send buffer.
const CONN_WINDOW: u32 = 256 << 20;
/// Nearly the largest UDP payload on loopback (MTU 65,536: at most 65,507 bytes over IPv4 and
/// 65,488 over IPv6), one packet per datagram.
const LOOPBACK_LARGE_PACKET: u16 = 65_000;
/// The most packets quinn puts in one segmented send (its `MAX_TRANSMIT_SEGMENTS`).
const SEGMENTS_PER_SEND: u32 = 10;
/// The largest packets of which [`SEGMENTS_PER_SEND`] fit a segmented send (one 64 KiB
/// datagram). Ten of 8 KiB do not: quinn's first such send fails.
const LOOPBACK_SEGMENTED_PACKET: u16 = 6_500;

/// The UDP payload size on loopback for a flow-control window of `window` bytes per peer.
/// Larger packets than the default 1,452 bytes cut the per-packet work (encryption,
/// acknowledgements, system calls): [`LOOPBACK_LARGE_PACKET`], one per datagram without
/// segmentation offload, where eight of them fit the window (a receiver extends the window
/// as it reads, and a window of a packet or two would make the sender wait for every
/// extension); otherwise [`LOOPBACK_SEGMENTED_PACKET`], ten to a segmented send. Against
/// the latter (AMD EPYC, 2 cores, 1 MiB windows; runs in turn), 65,000 bytes took a
/// batch-128 prediction of network B over QUIC from 547-598 to 490-542 ms (three runs each)
/// and a batch-128 training step of D from 110-125 to 109-117 ms (four runs each).
pub(crate) fn loopback_packet(window: u32) -> u16 {
    if window >= 8 * u32::from(LOOPBACK_LARGE_PACKET) {
        LOOPBACK_LARGE_PACKET
    } else {
        LOOPBACK_SEGMENTED_PACKET
    }
}

/// Whether the loopback packets for `window` are too large for quinn's segmented sends
/// ([`SEGMENTS_PER_SEND`] packets within one 64 KiB datagram), so that each must be a
/// datagram of its own (`quic_socket.rs`). quinn would find out on its own, but only by
/// losing the first sends: a send that fails turns segmentation off for good, and the lost
/// packets wait for a loss timeout (steps stalled for hundreds of milliseconds).
pub(crate) fn one_per_datagram(window: u32) -> bool {
    SEGMENTS_PER_SEND * u32::from(loopback_packet(window)) > u32::from(u16::MAX)
}

fn tls(message: impl Into<String>) -> RuntimeError {
    RuntimeError::Tls(message.into())
}

/// The quinn configurations of one party.
pub(crate) struct Configs {
    pub server: quinn::ServerConfig,
    pub client: quinn::ClientConfig,
    pub endpoint: quinn::EndpointConfig,
}

/// Quinn transport settings: an idle timeout of half of `timeout` with keep-alives, so that a
/// crashed peer is noticed by every party well within `timeout` (before a party waiting for
/// another peer times out on its own). Off loopback, large windows for throughput; on loopback
/// (`Some(window)`), receive windows the UDP receive buffer holds (`loopback_window` in
/// `quic.rs`), a small initial RTT for latency, packets of [`loopback_packet`] bytes without
/// MTU discovery, and an initial congestion window of ten such packets.
fn transport_config(timeout: Duration, loopback: Option<u32>) -> Result<TransportConfig> {
    let mut t = TransportConfig::default();
    // On loopback, windows that the socket buffer holds (`loopback_window` in quic.rs).
    let (stream, conn) = match loopback {
        Some(w) => (w, w),
        None => (STREAM_WINDOW, CONN_WINDOW),
    };
    t.max_concurrent_bidi_streams(VarInt::from_u32(0))
        .max_concurrent_uni_streams(VarInt::from_u32(1))
        .stream_receive_window(VarInt::from_u32(stream))
        .receive_window(VarInt::from_u32(conn))
        .send_window(u64::from(CONN_WINDOW));
    let idle_after = timeout / 2;
    let idle = IdleTimeout::try_from(idle_after).map_err(|e| RuntimeError::Config {
        field: "timeout".into(),
        message: format!("half of {timeout:?} cannot be a QUIC idle timeout: {e}"),
    })?;
    t.max_idle_timeout(Some(idle));
    let keep_alive = (idle_after / 4).clamp(Duration::from_millis(25), Duration::from_secs(5));
    t.keep_alive_interval(Some(keep_alive));
    if let Some(window) = loopback {
        let packet = loopback_packet(window);
        t.initial_rtt(Duration::from_millis(5));
        // Larger packets than the default 1,452 bytes cut the per-packet work (encryption,
        // acknowledgements, system calls) that bounds QUIC's throughput; see loopback_packet.
        t.initial_mtu(packet);
        t.mtu_discovery_config(None);
        // Ten packets, as for the usual MTU: the default initial window (14,720 bytes) is
        // smaller than one large packet, and nothing would ever leave.
        let mut cubic = quinn::congestion::CubicConfig::default();
        cubic.initial_window(10 * u64::from(packet));
        t.congestion_controller_factory(Arc::new(cubic));
    }
    Ok(t)
}

/// Builds the TLS + QUIC configurations of party `me` from the cluster file: its certificate
/// and key, and the cluster CA as the only trust anchor (for both directions). `loopback` is
/// the flow-control window when every party is on this machine.
pub(crate) fn configs(
    cluster: &ClusterConfig,
    me: &str,
    timeout: Duration,
    loopback: Option<u32>,
) -> Result<Configs> {
    let party = cluster.party(me)?;
    let field_err = |field: &str, e: RuntimeError| RuntimeError::Config {
        field: format!("parties.{me}.{field}"),
        message: e.to_string(),
    };
    let certs = keys::load_certs(&party.cert).map_err(|e| field_err("cert", e))?;
    let key = keys::load_key(&party.key).map_err(|e| field_err("key", e))?;
    let roots = Arc::new(
        keys::load_roots(&cluster.ca).map_err(|e| RuntimeError::Config {
            field: "ca".into(),
            message: e.to_string(),
        })?,
    );
    if !keys::names_party(&certs[0], me) {
        return Err(RuntimeError::Config {
            field: format!("parties.{me}.cert"),
            message: format!(
                "{} is not a certificate for party '{me}' (no such DNS name in it)",
                party.cert.display()
            ),
        });
    }
    let provider = Arc::new(provider());
    let versions = &[&rustls::version::TLS13];

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| tls(format!("client verifier: {e}")))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| tls(format!("server config: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(|e| tls(format!("certificate/key of {me}: {e}")))?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| tls(format!("client config: {e}")))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| tls(format!("certificate/key of {me}: {e}")))?;
    client.alpn_protocols = vec![ALPN.to_vec()];

    let transport = Arc::new(transport_config(timeout, loopback)?);
    let server_crypto =
        QuicServerConfig::try_from(server).map_err(|e| tls(format!("QUIC server: {e}")))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server.transport_config(transport.clone());
    server.migration(false);
    let client_crypto =
        QuicClientConfig::try_from(client).map_err(|e| tls(format!("QUIC client: {e}")))?;
    let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
    client.transport_config(transport);

    let mut endpoint = quinn::EndpointConfig::default();
    if let Some(window) = loopback {
        let packet = loopback_packet(window);
        endpoint
            .max_udp_payload_size(packet)
            .map_err(|e| tls(format!("UDP payload size {packet}: {e}")))?;
    }
    Ok(Configs {
        server,
        client,
        endpoint,
    })
}

/// The `ring` provider with TLS 1.3's AES-128-GCM first: every byte of every message is
/// encrypted with the suite negotiated, and AES-128 takes 10 rounds per block where the
/// default first choice, AES-256, takes 14. Both are 128-bit secure against the attacks
/// that matter here; the other suites stay, after it.
fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    let first = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    provider
        .cipher_suites
        .retain(|s| s.suite() != first.suite());
    provider.cipher_suites.insert(0, first);
    provider
}

/// The leaf certificate a connected peer presented.
pub(crate) fn peer_leaf(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let any = conn.peer_identity()?;
    let certs = any.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_packets_fit_the_window_and_the_send_path() {
        // A window of 1 MiB per peer (an 8 MiB receive buffer, four peers): large packets,
        // each a datagram of its own.
        assert_eq!(loopback_packet(1 << 20), 65_000);
        assert!(one_per_datagram(1 << 20));
        assert_eq!(loopback_packet(8 * 65_000), 65_000);
        // The smallest window (the kernel's default receive buffer): ten packets to a
        // segmented send, whose total fits one 64 KiB datagram.
        for window in [64 << 10, 8 * 65_000 - 1] {
            assert_eq!(loopback_packet(window), 6_500);
            assert!(!one_per_datagram(window));
            assert!(SEGMENTS_PER_SEND * u32::from(loopback_packet(window)) <= u32::from(u16::MAX));
        }
    }
}
