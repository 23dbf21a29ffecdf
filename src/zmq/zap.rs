//! The ZAP client of a server [`Socket`](super::Socket) (RFC 27): the requests it has
//! sent its handler, matched to the connections that wait for them, and their
//! deadlines. No I/O: the socket sends what [`ZapClient::request`] returns over its
//! handler connection and feeds back what comes.

use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::zmtp::zap::{ZapError, ZapReply, ZapRequest};
use monocoque_proto::zmtp::{AuthDecision, AuthRequest, Message};
use monocoque_proto::ConnId;

use super::endpoint::Endpoint;

/// A request sent and not yet answered.
#[derive(Debug)]
struct Waiting {
    id: Bytes,
    conn: ConnId,
    deadline: Instant,
}

/// The requests of one socket to its ZAP handler, in the order sent (a REP handler
/// answers in that order).
#[derive(Debug)]
pub(crate) struct ZapClient {
    /// Where the handler listens.
    pub(crate) endpoint: Endpoint,
    /// The connection to the handler, while there is one.
    pub(crate) conn: Option<ConnId>,
    domain: Bytes,
    identity: Bytes,
    timeout: Duration,
    next_id: u64,
    waiting: Vec<Waiting>,
}

impl ZapClient {
    /// A client of the handler at `endpoint`, asking for `domain` as a socket whose
    /// routing id is `identity`; each request waits at most `timeout`.
    pub(crate) fn new(endpoint: Endpoint, domain: Bytes, identity: Bytes, timeout: Duration) -> Self {
        ZapClient {
            endpoint,
            conn: None,
            domain,
            identity,
            timeout,
            next_id: 1,
            waiting: Vec::new(),
        }
    }

    /// The message (REQ's empty delimiter, then the request) that asks about `auth` for
    /// the connection `conn` from `address`; its answer is awaited until `now` plus
    /// the timeout.
    pub(crate) fn request(&mut self, conn: ConnId, address: Bytes, auth: &AuthRequest, now: Instant) -> Message {
        let id = Bytes::from(self.next_id.to_string());
        self.next_id += 1;
        let request = ZapRequest::from_auth(id.clone(), self.domain.clone(), address, self.identity.clone(), auth);
        self.waiting.push(Waiting {
            id,
            conn,
            deadline: now + self.timeout,
        });
        let mut frames = vec![Bytes::new()];
        frames.extend(request.to_frames());
        Message::from(frames)
    }

    /// What a message from the handler decides, and for which connection: the verdict
    /// of a well-formed reply to a waiting request; for a malformed one, the error, to
    /// the request it names or else the oldest (a REP handler answers in order).
    /// `None`: a reply to no waiting request (one that timed out), or nothing waits.
    pub(crate) fn reply(&mut self, frames: &[Bytes]) -> Option<(ConnId, Result<AuthDecision, ZapError>)> {
        let decoded = match frames.split_first() {
            Some((delimiter, reply)) if delimiter.is_empty() => ZapReply::decode(reply),
            _ => Err(ZapError::Envelope),
        };
        match decoded {
            Ok(reply) => {
                let at = self.waiting.iter().position(|w| w.id == reply.request_id)?;
                let waiting = self.waiting.remove(at);
                Some((waiting.conn, Ok(reply.to_decision())))
            }
            Err(error) => {
                // The id frame, where a reply has one.
                let named = frames
                    .get(2)
                    .and_then(|id| self.waiting.iter().position(|w| w.id == *id));
                let at = named.or((!self.waiting.is_empty()).then_some(0))?;
                let waiting = self.waiting.remove(at);
                Some((waiting.conn, Err(error)))
            }
        }
    }

    /// The connections whose request has waited past its deadline at `now`, removed,
    /// with the error to fail each with.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<(ConnId, ZapError)> {
        let millis = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut out = Vec::new();
        self.waiting.retain(|w| {
            let due = now >= w.deadline;
            if due {
                out.push((w.conn, ZapError::NoReply { millis }));
            }
            !due
        });
        out
    }

    /// The earliest deadline of a waiting request.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.waiting.iter().map(|w| w.deadline).min()
    }

    /// Forgets the request of a connection that went away before its answer.
    pub(crate) fn forget(&mut self, conn: ConnId) {
        self.waiting.retain(|w| w.conn != conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monocoque_proto::zmtp::zap::ZapStatus;
    use monocoque_proto::zmtp::MechanismName;

    fn plain(user: &str) -> AuthRequest {
        AuthRequest {
            mechanism: MechanismName::Plain,
            username: Bytes::copy_from_slice(user.as_bytes()),
            password: Bytes::from_static(b"pw"),
            curve_key: None,
        }
    }

    fn client() -> ZapClient {
        let endpoint = Endpoint::Tcp("127.0.0.1:1".parse().unwrap());
        ZapClient::new(endpoint, "dom".into(), Bytes::new(), Duration::from_millis(100))
    }

    #[test]
    fn replies_go_to_the_connection_that_asked() {
        let mut zap = client();
        let now = Instant::now();
        let (a, b) = (
            ConnId::new(monocoque_proto::CoreId(0), 1, 0),
            ConnId::new(monocoque_proto::CoreId(0), 2, 0),
        );
        let first = zap.request(a, "127.0.0.1".into(), &plain("x"), now);
        let second = zap.request(b, "127.0.0.2".into(), &plain("y"), now);
        assert!(first[0].is_empty(), "REQ's delimiter first");
        let request = ZapRequest::decode(&second[1..]).unwrap();
        assert_eq!(
            (&request.domain[..], &request.address[..]),
            (&b"dom"[..], &b"127.0.0.2"[..])
        );
        // Answered out of order, by id.
        let reply = ZapReply {
            request_id: request.request_id,
            status: ZapStatus::Denied,
            status_text: "no".into(),
            user_id: Bytes::new(),
            metadata: Default::default(),
        };
        let mut frames = vec![Bytes::new()];
        frames.extend(reply.to_frames());
        let (conn, verdict) = zap.reply(&frames).unwrap();
        assert_eq!(conn, b);
        assert!(matches!(verdict, Ok(AuthDecision::Deny { status: 400, .. })));
        // Garbage goes to the oldest; then nothing waits.
        assert_eq!(
            zap.reply(&[Bytes::new(), Bytes::from_static(b"junk")]),
            Some((
                a,
                Err(ZapError::FrameCount {
                    what: "reply",
                    expected: 6,
                    got: 1
                })
            ))
        );
        assert_eq!(zap.reply(&frames), None);
        assert_eq!(zap.next_deadline(), None);
    }

    #[test]
    fn unanswered_requests_expire() {
        let mut zap = client();
        let now = Instant::now();
        let conn = ConnId::new(monocoque_proto::CoreId(0), 7, 0);
        zap.request(conn, Bytes::new(), &plain("x"), now);
        assert!(zap.expired(now).is_empty());
        assert_eq!(zap.next_deadline(), Some(now + Duration::from_millis(100)));
        assert_eq!(
            zap.expired(now + Duration::from_millis(100)),
            [(conn, ZapError::NoReply { millis: 100 })]
        );
        zap.request(conn, Bytes::new(), &plain("x"), now);
        zap.forget(conn);
        assert_eq!(zap.next_deadline(), None);
    }
}
