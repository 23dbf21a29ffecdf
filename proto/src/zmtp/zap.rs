//! ZAP, the ZeroMQ Authentication Protocol (RFC 27): the request a server socket sends
//! its authentication handler about each peer, and the handler's reply, as multipart
//! messages of views ([`Bytes`]) with no I/O.
//!
//! ```text
//! request: "1.0" | request id | domain | address | identity | mechanism | credentials...
//! reply:   "1.0" | request id | status code | status text | user id | metadata
//! ```
//!
//! The credentials are none for NULL, the user name and password for PLAIN, and the
//! client's 32-byte long-term public key for CURVE. The status code is `200` (allowed),
//! `300` (temporary failure), `400` (denied) or `500` (internal error); the metadata is
//! in ZMTP's property form ([`Metadata`]). A handler's socket is a REP (or ROUTER): the
//! client puts the empty delimiter frame of REQ's envelope before the request
//! ([`ZapRequest::to_frames`] does not; the socket that sends it does), and the reply
//! comes back behind the same delimiter.
//!
//! ```
//! use bytes::Bytes;
//! use monocoque_proto::zmtp::zap::{ZapReply, ZapStatus};
//!
//! let frames = [
//!     Bytes::from_static(b"1.0"),
//!     Bytes::from_static(b"7"),
//!     Bytes::from_static(b"400"),
//!     Bytes::from_static(b"Invalid password"),
//!     Bytes::new(),
//!     Bytes::new(),
//! ];
//! let reply = ZapReply::decode(&frames).unwrap();
//! assert_eq!((reply.status, &reply.request_id[..]), (ZapStatus::Denied, &b"7"[..]));
//! ```

use bytes::Bytes;
use thiserror::Error;

use super::command::Metadata;
use super::curve::{PublicKey, KEY_LEN};
use super::greeting::MechanismName;
use super::handshake::{AuthDecision, AuthRequest};

/// The only ZAP version (RFC 27): the first frame of every request and reply.
pub const ZAP_VERSION: &[u8] = b"1.0";

/// The status of a ZAP reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZapStatus {
    /// `200`: the peer is allowed.
    Allowed,
    /// `300`: a temporary failure (the peer may retry later).
    TemporaryFailure,
    /// `400`: the peer is denied.
    Denied,
    /// `500`: the handler failed.
    InternalError,
}

impl ZapStatus {
    /// The numeric code (200, 300, 400, 500).
    pub const fn code(self) -> u16 {
        match self {
            ZapStatus::Allowed => 200,
            ZapStatus::TemporaryFailure => 300,
            ZapStatus::Denied => 400,
            ZapStatus::InternalError => 500,
        }
    }

    /// The code as its frame carries it (`b"200"`...).
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            ZapStatus::Allowed => b"200",
            ZapStatus::TemporaryFailure => b"300",
            ZapStatus::Denied => b"400",
            ZapStatus::InternalError => b"500",
        }
    }

    /// The status a code frame names; `None` for anything but the four codes.
    pub fn from_wire(code: &[u8]) -> Option<ZapStatus> {
        [
            ZapStatus::Allowed,
            ZapStatus::TemporaryFailure,
            ZapStatus::Denied,
            ZapStatus::InternalError,
        ]
        .into_iter()
        .find(|s| s.as_bytes() == code)
    }

    /// The status of a numeric code; an unknown code is an internal error (500), the
    /// one status that says nothing about the peer.
    pub fn from_code(code: u16) -> ZapStatus {
        match code {
            200 => ZapStatus::Allowed,
            300 => ZapStatus::TemporaryFailure,
            400 => ZapStatus::Denied,
            _ => ZapStatus::InternalError,
        }
    }
}

/// What the peer proved, per mechanism: the credentials frames of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZapCredentials {
    /// NULL: no frames.
    Null,
    /// PLAIN: the user name and the password.
    Plain {
        /// The user name.
        username: Bytes,
        /// The password.
        password: Bytes,
    },
    /// CURVE: the client's long-term public key (32 bytes).
    Curve(PublicKey),
}

impl ZapCredentials {
    /// The mechanism these credentials belong to.
    pub fn mechanism(&self) -> MechanismName {
        match self {
            ZapCredentials::Null => MechanismName::Null,
            ZapCredentials::Plain { .. } => MechanismName::Plain,
            ZapCredentials::Curve(_) => MechanismName::Curve,
        }
    }
}

/// A ZAP request (RFC 27): who asks about which peer, and the peer's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZapRequest {
    /// Chosen by the asker; the reply echoes it (how replies are matched to requests).
    pub request_id: Bytes,
    /// The server socket's `ZMQ_ZAP_DOMAIN` (may be empty).
    pub domain: Bytes,
    /// The peer's address (its IP address for TCP, as libzmq sends it).
    pub address: Bytes,
    /// The server socket's routing id, as libzmq sends it (may be empty).
    pub identity: Bytes,
    /// The mechanism and the credentials it carried.
    pub credentials: ZapCredentials,
}

impl ZapRequest {
    /// The request about `auth`, the handshake's question.
    pub fn from_auth(request_id: Bytes, domain: Bytes, address: Bytes, identity: Bytes, auth: &AuthRequest) -> Self {
        let credentials = match (auth.mechanism, auth.curve_key) {
            (MechanismName::Curve, Some(key)) => ZapCredentials::Curve(key),
            (MechanismName::Plain, _) => ZapCredentials::Plain {
                username: auth.username.clone(),
                password: auth.password.clone(),
            },
            _ => ZapCredentials::Null,
        };
        ZapRequest {
            request_id,
            domain,
            address,
            identity,
            credentials,
        }
    }

    /// The handshake's question this request carries (domain, address and identity
    /// are left out: an [`AuthRequest`] does not have them).
    pub fn to_auth(&self) -> AuthRequest {
        let mut auth = AuthRequest {
            mechanism: self.credentials.mechanism(),
            username: Bytes::new(),
            password: Bytes::new(),
            curve_key: None,
        };
        match &self.credentials {
            ZapCredentials::Null => {}
            ZapCredentials::Plain { username, password } => {
                auth.username = username.clone();
                auth.password = password.clone();
            }
            ZapCredentials::Curve(key) => auth.curve_key = Some(*key),
        }
        auth
    }

    /// The request's frames, version first (no envelope).
    pub fn to_frames(&self) -> Vec<Bytes> {
        let mut frames = vec![
            Bytes::from_static(ZAP_VERSION),
            self.request_id.clone(),
            self.domain.clone(),
            self.address.clone(),
            self.identity.clone(),
            Bytes::from_static(self.credentials.mechanism().as_str().as_bytes()),
        ];
        match &self.credentials {
            ZapCredentials::Null => {}
            ZapCredentials::Plain { username, password } => frames.extend([username.clone(), password.clone()]),
            ZapCredentials::Curve(key) => frames.push(Bytes::copy_from_slice(&key.0)),
        }
        frames
    }

    /// Reads a request's frames (no envelope).
    pub fn decode(frames: &[Bytes]) -> Result<ZapRequest, ZapError> {
        let [version, request_id, domain, address, identity, mechanism, credentials @ ..] = frames else {
            return Err(ZapError::FrameCount {
                what: "request",
                expected: 6,
                got: frames.len(),
            });
        };
        check_version(version)?;
        let mechanism = MechanismName::from_wire(mechanism).ok_or(ZapError::UnknownMechanism)?;
        let credentials = match (mechanism, credentials) {
            (MechanismName::Null, []) => ZapCredentials::Null,
            (MechanismName::Plain, [username, password]) => ZapCredentials::Plain {
                username: username.clone(),
                password: password.clone(),
            },
            (MechanismName::Curve, [key]) => {
                let key: [u8; KEY_LEN] = key[..].try_into().map_err(|_| ZapError::CurveKeyLength(key.len()))?;
                ZapCredentials::Curve(PublicKey(key))
            }
            (mechanism, credentials) => {
                return Err(ZapError::Credentials {
                    mechanism: mechanism.as_str(),
                    got: credentials.len(),
                })
            }
        };
        Ok(ZapRequest {
            request_id: request_id.clone(),
            domain: domain.clone(),
            address: address.clone(),
            identity: identity.clone(),
            credentials,
        })
    }
}

/// A ZAP reply (RFC 27): the handler's verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZapReply {
    /// The request's id, echoed.
    pub request_id: Bytes,
    /// The verdict.
    pub status: ZapStatus,
    /// Why, for logs (not sent to the peer).
    pub status_text: Bytes,
    /// Who the peer is, as the handler names it (empty unless allowed).
    pub user_id: Bytes,
    /// Properties the handler attaches to the connection.
    pub metadata: Metadata,
}

impl ZapReply {
    /// The reply that carries `decision` about request `request_id`.
    pub fn from_decision(request_id: Bytes, decision: &AuthDecision) -> ZapReply {
        match decision {
            AuthDecision::Allow { user_id } => ZapReply {
                request_id,
                status: ZapStatus::Allowed,
                status_text: Bytes::from_static(b"OK"),
                user_id: user_id.clone(),
                metadata: Metadata::default(),
            },
            AuthDecision::Deny { status, reason } => ZapReply {
                request_id,
                // A denial is never 200: an unknown code, or 200 itself, becomes 500.
                status: match ZapStatus::from_code(*status) {
                    ZapStatus::Allowed => ZapStatus::InternalError,
                    other => other,
                },
                status_text: Bytes::from(reason.clone().into_bytes()),
                user_id: Bytes::new(),
                metadata: Metadata::default(),
            },
        }
    }

    /// The handshake's verdict: allowed with the user id, or denied with the status
    /// code and text.
    pub fn to_decision(&self) -> AuthDecision {
        match self.status {
            ZapStatus::Allowed => AuthDecision::Allow {
                user_id: self.user_id.clone(),
            },
            status => AuthDecision::Deny {
                status: status.code(),
                reason: String::from_utf8_lossy(&self.status_text).into_owned(),
            },
        }
    }

    /// The reply's frames, version first (no envelope).
    pub fn to_frames(&self) -> Vec<Bytes> {
        vec![
            Bytes::from_static(ZAP_VERSION),
            self.request_id.clone(),
            Bytes::from_static(self.status.as_bytes()),
            self.status_text.clone(),
            self.user_id.clone(),
            Bytes::copy_from_slice(self.metadata.as_bytes()),
        ]
    }

    /// Reads a reply's frames (no envelope): exactly six, version `1.0`, one of the
    /// four status codes, metadata in property form.
    pub fn decode(frames: &[Bytes]) -> Result<ZapReply, ZapError> {
        let [version, request_id, status, status_text, user_id, metadata] = frames else {
            return Err(ZapError::FrameCount {
                what: "reply",
                expected: 6,
                got: frames.len(),
            });
        };
        check_version(version)?;
        let status = ZapStatus::from_wire(status).ok_or(ZapError::StatusCode)?;
        let metadata = Metadata::parse(metadata.clone()).map_err(ZapError::Metadata)?;
        Ok(ZapReply {
            request_id: request_id.clone(),
            status,
            status_text: status_text.clone(),
            user_id: user_id.clone(),
            metadata,
        })
    }
}

fn check_version(version: &[u8]) -> Result<(), ZapError> {
    if version == ZAP_VERSION {
        Ok(())
    } else {
        Err(ZapError::Version)
    }
}

/// Why a ZAP exchange failed: a message that is not a well-formed request or reply, or
/// a handler that did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ZapError {
    /// Too few frames (a request) or not exactly six (a reply).
    #[error("a ZAP {what} of {got} frames ({expected} expected)")]
    FrameCount {
        /// `request` or `reply`.
        what: &'static str,
        /// The frames expected (at least, for a request).
        expected: usize,
        /// The frames received.
        got: usize,
    },
    /// The version frame is not `1.0`.
    #[error("a ZAP message whose version is not 1.0")]
    Version,
    /// The status code is not `200`, `300`, `400` or `500`.
    #[error("a ZAP reply whose status code is not 200, 300, 400 or 500")]
    StatusCode,
    /// The metadata frame is not in ZMTP's property form.
    #[error("a ZAP reply whose metadata is malformed: {0}")]
    Metadata(&'static str),
    /// The mechanism frame is not `NULL`, `PLAIN` or `CURVE`.
    #[error("a ZAP request for an unknown mechanism")]
    UnknownMechanism,
    /// The credentials do not fit the mechanism (PLAIN: two frames, CURVE: one, NULL:
    /// none).
    #[error("a ZAP {mechanism} request with {got} credential frames")]
    Credentials {
        /// The mechanism.
        mechanism: &'static str,
        /// The credential frames received.
        got: usize,
    },
    /// A CURVE key frame that is not 32 bytes.
    #[error("a ZAP CURVE key of {0} bytes (32 expected)")]
    CurveKeyLength(usize),
    /// A reply whose delimiter (REQ's empty envelope frame) is missing.
    #[error("a ZAP reply without its empty delimiter frame")]
    Envelope,
    /// No reply came within the time allowed (the handler is down, unreachable or
    /// stuck).
    #[error("the ZAP handler did not answer within {millis} ms")]
    NoReply {
        /// The time waited, in milliseconds.
        millis: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zmtp::{encode_message, Frame, FrameDecoder};
    use crate::{IoArena, SegmentedBuffer};
    use proptest::prelude::*;

    fn frames(parts: &[&[u8]]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
    }

    #[test]
    fn malformed_replies_have_typed_errors() {
        let ok: &[&[u8]] = &[b"1.0", b"1", b"200", b"OK", b"admin", b""];
        assert_eq!(ZapReply::decode(&frames(ok)).map(|r| r.status), Ok(ZapStatus::Allowed));
        assert_eq!(
            ZapReply::decode(&frames(&ok[..5])),
            Err(ZapError::FrameCount {
                what: "reply",
                expected: 6,
                got: 5
            })
        );
        let mut long = frames(ok);
        long.push(Bytes::new());
        assert!(matches!(
            ZapReply::decode(&long),
            Err(ZapError::FrameCount { got: 7, .. })
        ));
        assert_eq!(
            ZapReply::decode(&frames(&[b"2.0", b"1", b"200", b"", b"", b""])),
            Err(ZapError::Version)
        );
        for code in [&b"201"[..], b"", b"20", b"2000", b"OK"] {
            assert_eq!(
                ZapReply::decode(&frames(&[b"1.0", b"1", code, b"", b"", b""])),
                Err(ZapError::StatusCode)
            );
        }
        assert!(matches!(
            ZapReply::decode(&frames(&[b"1.0", b"1", b"200", b"", b"", b"\x05Us"])),
            Err(ZapError::Metadata(_))
        ));
        let meta = ZapReply::decode(&frames(&[b"1.0", b"1", b"200", b"", b"u", b"\x05Hello\0\0\0\x02hi"])).unwrap();
        assert_eq!(meta.metadata.get("hello").as_deref(), Some(&b"hi"[..]));
    }

    #[test]
    fn requests_carry_each_mechanisms_credentials() {
        let key = PublicKey([7; 32]);
        for (credentials, count) in [
            (ZapCredentials::Null, 6),
            (
                ZapCredentials::Plain {
                    username: "admin".into(),
                    password: "secret".into(),
                },
                8,
            ),
            (ZapCredentials::Curve(key), 7),
        ] {
            let request = ZapRequest {
                request_id: "9".into(),
                domain: "global".into(),
                address: "127.0.0.1".into(),
                identity: Bytes::new(),
                credentials,
            };
            let wire = request.to_frames();
            assert_eq!(wire.len(), count);
            assert_eq!(wire[5], request.credentials.mechanism().as_str().as_bytes());
            assert_eq!(ZapRequest::decode(&wire), Ok(request.clone()));
            let auth = request.to_auth();
            let back = ZapRequest::from_auth("9".into(), "global".into(), "127.0.0.1".into(), Bytes::new(), &auth);
            assert_eq!(back, request);
        }
        assert_eq!(
            ZapRequest::decode(&frames(&[b"1.0", b"1", b"", b"", b"", b"CURVE", b"short"])),
            Err(ZapError::CurveKeyLength(5))
        );
        assert_eq!(
            ZapRequest::decode(&frames(&[b"1.0", b"1", b"", b"", b"", b"PLAIN", b"u"])),
            Err(ZapError::Credentials {
                mechanism: "PLAIN",
                got: 1
            })
        );
        assert_eq!(
            ZapRequest::decode(&frames(&[b"1.0", b"1", b"", b"", b"", b"GSSAPI"])),
            Err(ZapError::UnknownMechanism)
        );
    }

    #[test]
    fn decisions_and_replies_agree() {
        let allow = AuthDecision::Allow { user_id: "u".into() };
        let reply = ZapReply::from_decision("3".into(), &allow);
        assert_eq!((reply.status, reply.to_decision()), (ZapStatus::Allowed, allow));
        let deny = AuthDecision::Deny {
            status: 300,
            reason: "later".into(),
        };
        assert_eq!(ZapReply::from_decision("3".into(), &deny).to_decision(), deny);
        let odd = AuthDecision::Deny {
            status: 200,
            reason: "confused".into(),
        };
        assert_eq!(
            ZapReply::from_decision("3".into(), &odd).status,
            ZapStatus::InternalError,
            "a denial never reads as allowed"
        );
    }

    /// The message frames of `wire`, decoded from pieces cut at `cut`.
    fn through_decoder(wire: &[u8], cut: usize) -> Vec<Bytes> {
        let decoder = FrameDecoder::new(1 << 20);
        let mut src = SegmentedBuffer::new();
        src.push_slice(&wire[..cut]);
        src.push_slice(&wire[cut..]);
        let mut out = Vec::new();
        while let Some(frame) = decoder.decode(&mut src).expect("well-formed frames") {
            let Frame::Message { body, .. } = frame else {
                panic!("a command frame")
            };
            out.push(body);
        }
        assert!(src.is_empty());
        out
    }

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
    }

    fn arb_reply() -> impl Strategy<Value = ZapReply> {
        let status = prop_oneof![
            Just(ZapStatus::Allowed),
            Just(ZapStatus::TemporaryFailure),
            Just(ZapStatus::Denied),
            Just(ZapStatus::InternalError),
        ];
        let property = ("[A-Za-z0-9._+-]{1,12}", proptest::collection::vec(any::<u8>(), 0..20));
        (
            arb_bytes(),
            status,
            arb_bytes(),
            arb_bytes(),
            proptest::collection::vec(property, 0..3),
        )
            .prop_map(|(request_id, status, status_text, user_id, props)| ZapReply {
                request_id,
                status,
                status_text,
                user_id,
                metadata: Metadata::from_properties(props.iter().map(|(n, v)| (n.as_str(), &v[..])))
                    .expect("valid names"),
            })
    }

    fn arb_request() -> impl Strategy<Value = ZapRequest> {
        let credentials = prop_oneof![
            Just(ZapCredentials::Null),
            (arb_bytes(), arb_bytes()).prop_map(|(username, password)| ZapCredentials::Plain { username, password }),
            any::<[u8; 32]>().prop_map(|k| ZapCredentials::Curve(PublicKey(k))),
        ];
        (arb_bytes(), arb_bytes(), arb_bytes(), arb_bytes(), credentials).prop_map(
            |(request_id, domain, address, identity, credentials)| ZapRequest {
                request_id,
                domain,
                address,
                identity,
                credentials,
            },
        )
    }

    proptest! {
        #[test]
        fn replies_round_trip_through_the_frame_decoder_at_every_cut(reply in arb_reply()) {
            let mut arena = IoArena::new();
            encode_message(&mut arena, &reply.to_frames());
            let wire = arena.to_vec();
            for cut in 0..=wire.len() {
                let frames = through_decoder(&wire, cut);
                prop_assert_eq!(ZapReply::decode(&frames), Ok(reply.clone()));
            }
        }

        #[test]
        fn requests_round_trip_through_the_frame_decoder_at_every_cut(request in arb_request()) {
            let mut arena = IoArena::new();
            encode_message(&mut arena, &request.to_frames());
            let wire = arena.to_vec();
            for cut in 0..=wire.len() {
                let frames = through_decoder(&wire, cut);
                prop_assert_eq!(ZapRequest::decode(&frames), Ok(request.clone()));
            }
        }
    }
}
