//! Why a party closes its connections, as it travels: the QUIC application close code carries
//! the class (done, refused, failed) and a [`FailureKind`]; the reason bytes carry at most the
//! name of one of the session's parties (the one the failure is about). Nothing else a party's
//! error holds (values, indices, tensor names, digests, addresses) goes to a peer: the
//! receiver renders the words from the code. The failing party keeps the detail in its own
//! error.

use quinn::{ApplicationClose, Connection, ConnectionError, VarInt};

use crate::error::{Failure, FailureKind};
use crate::{keys, RuntimeError};

/// Close codes of a refusal (setup) are `REFUSED + kind`.
const REFUSED: u32 = 0x100;
/// Close codes of a failed run are `FAILED + kind`.
const FAILED: u32 = 0x200;

/// How a party closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// It refuses the peer during setup.
    Refused,
    /// Its run failed.
    Failed,
}

/// Closes `conns` as `how`, telling the peers the kind of `why` and the party it is about
/// (when that is one of `names`), nothing more.
pub(crate) fn close_with<'a>(
    conns: impl Iterator<Item = &'a Connection>,
    how: Close,
    me: &str,
    names: &[String],
    why: &RuntimeError,
) {
    let (code, reason) = encode(how, me, names, why);
    for c in conns {
        c.close(code, reason.as_bytes());
    }
}

/// The close code and reason for `why`: the reason is a name of `names` or empty.
fn encode(how: Close, me: &str, names: &[String], why: &RuntimeError) -> (VarInt, String) {
    let (kind, party) = why.failure(me);
    let base = match how {
        Close::Refused => REFUSED,
        Close::Failed => FAILED,
    };
    let party = if names.contains(&party) {
        party
    } else {
        String::new()
    };
    (VarInt::from_u32(base + u32::from(kind.code())), party)
}

/// The failure a peer's close announces, if it is a refusal or a failure.
pub(crate) fn decode(close: &ApplicationClose) -> Option<Failure> {
    let code = close.error_code.into_inner();
    let refused = match code & !0xff {
        c if c == u64::from(REFUSED) => true,
        c if c == u64::from(FAILED) => false,
        _ => return None,
    };
    let kind = FailureKind::from_code((code & 0xff) as u8);
    // only a well-formed party name is shown; anything else the peer put there is dropped
    let party = std::str::from_utf8(&close.reason)
        .ok()
        .filter(|n| n.len() <= 253 && keys::check_party_name(n).is_ok())
        .map(str::to_string);
    Some(Failure {
        refused,
        kind,
        party,
    })
}

/// The failure with which `conn` was closed by its peer, if it was.
pub(crate) fn peer_failure(conn: &Connection) -> Option<Failure> {
    match conn.close_reason() {
        Some(ConnectionError::ApplicationClosed(c)) => decode(&c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::quic_frame::CODE_DONE;

    fn names() -> Vec<String> {
        ["server0", "client"].map(String::from).to_vec()
    }

    fn round_trip(how: Close, me: &str, why: &RuntimeError) -> (Failure, String) {
        let (code, reason) = encode(how, me, &names(), why);
        let close = ApplicationClose {
            error_code: code,
            reason: reason.clone().into_bytes().into(),
        };
        (decode(&close).unwrap(), reason)
    }

    #[test]
    fn only_the_kind_and_a_party_name_travel() {
        let why = RuntimeError::Kernel {
            node: "v12 (encode of secret weights w7)".into(),
            source: shareflow_ops::OpsError::OutOfRange {
                value: 40000.5,
                index: 100,
                limit: 32768.0,
                frac_bits: 16,
            },
        };
        let (failure, reason) = round_trip(Close::Failed, "client", &why);
        assert_eq!(reason, "client");
        assert_eq!(failure.kind, FailureKind::InputEncoding);
        let text = failure.to_string();
        assert!(
            text.contains("client failed: encoding of an input"),
            "{text}"
        );
        for secret in ["40000.5", "100", "w7", "v12"] {
            assert!(!text.contains(secret), "{text}");
        }

        // a failed link names the peer at fault; a name outside the party list is dropped
        let why = RuntimeError::Transport {
            peer: "server0".into(),
            message: "secret 1.5".into(),
        };
        let (failure, _) = round_trip(Close::Refused, "client", &why);
        assert!(failure.refused);
        assert_eq!(
            failure.to_string(),
            "refused us: the link to server0 failed"
        );
        let why = RuntimeError::Transport {
            peer: "server0, helper".into(),
            message: String::new(),
        };
        let (failure, reason) = round_trip(Close::Failed, "client", &why);
        assert_eq!((reason.as_str(), failure.party), ("", None));

        // a failure a peer reported is passed on as its root cause
        let why = RuntimeError::PeerFailed {
            peer: "client".into(),
            failure: Failure {
                refused: false,
                kind: FailureKind::InputEncoding,
                party: Some("client".into()),
            },
        };
        let (failure, _) = round_trip(Close::Failed, "server0", &why);
        assert_eq!(
            failure.to_string(),
            "closed the connection: client failed: encoding of an input (a value beyond the \
             fixed-point range)"
        );
    }

    #[test]
    fn codes_round_trip_and_strangers_are_not_shown() {
        for code in 0..=255u8 {
            let kind = FailureKind::from_code(code);
            assert!(kind == FailureKind::Unknown || kind.code() == code);
        }
        let close = ApplicationClose {
            error_code: VarInt::from_u32(FAILED + 200),
            reason: b"value 40000.5 at index 100".to_vec().into(),
        };
        let failure = decode(&close).unwrap();
        assert_eq!(failure.kind, FailureKind::Unknown);
        assert_eq!(failure.party, None);
        let done = ApplicationClose {
            error_code: VarInt::from_u32(CODE_DONE),
            reason: b"done".to_vec().into(),
        };
        assert_eq!(decode(&done), None);
    }
}
