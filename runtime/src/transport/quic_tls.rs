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
/// UDP payload size on loopback (MTU 65,536): larger packets than the default 1,452 bytes cut
/// the per-packet work (encryption, acknowledgements, system calls). quinn sends up to ten
/// packets per system call with UDP segmentation offload (GSO), whose total must stay within
/// one 64 KiB UDP datagram: ten of 6,500 bytes do. Ten of 8 KiB do not: the first such send
/// fails, quinn turns GSO off for good (three times the system calls) and the lost packets
/// wait for a loss timeout, which made steps stall for hundreds of milliseconds. Against
/// 4 KiB packets, 6,500 bytes take 27% fewer UDP datagrams (as the kernel counts them) per training step of network A.
const LOOPBACK_MTU: u16 = 6500;

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
/// `quic.rs`), a small initial RTT for latency, and packets of [`LOOPBACK_MTU`] without MTU
/// discovery.
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
    if loopback.is_some() {
        t.initial_rtt(Duration::from_millis(5));
        // Larger packets than the default 1,452 bytes cut the per-packet work (encryption,
        // acknowledgements, system calls) that bounds QUIC's throughput; see LOOPBACK_MTU.
        t.initial_mtu(LOOPBACK_MTU);
        t.mtu_discovery_config(None);
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
    if loopback.is_some() {
        endpoint
            .max_udp_payload_size(LOOPBACK_MTU)
            .map_err(|e| tls(format!("UDP payload size {LOOPBACK_MTU}: {e}")))?;
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
