//! [`ZapHandler`]: a ZAP handler (RFC 27) of our own, serving requests on a bound
//! endpoint, so one handler can judge the peers of several server sockets (each with
//! [`Options::zap_endpoint`](super::Options::zap_endpoint) pointing at it), in this
//! process or another.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::zmtp::zap::{ZapReply, ZapRequest, ZapStatus};
use monocoque_proto::zmtp::{AuthDecision, Message, SocketType};

use super::{Authenticator, Endpoint, Options, Socket, ZmqError};

/// The judge of a [`ZapHandler`]: a whole ZAP request (domain and address included)
/// in, a verdict out.
type Judge = Arc<dyn Fn(&ZapRequest) -> AuthDecision + Send + Sync>;

/// A ZAP handler: a ROUTER socket that answers each ZAP request it receives with the
/// verdict of its judge. It keeps the envelope a request came with (REQ's, or a
/// DEALER's that imitates it, as ours does), so any ZAP client can use it; a request
/// it cannot read is answered `400` when it carries a request id (as pyzmq's handler
/// does), else dropped.
///
/// Single-threaded like every [`Socket`]: create it on the thread that serves it and
/// call [`serve`](Self::serve) in a loop there.
///
/// ```no_run
/// use std::time::Duration;
/// use bytes::Bytes;
/// use monocoque::zmq::{Authenticator, Options, Socket, SocketType, ZapHandler};
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// std::thread::spawn(move || {
///     let users = Authenticator::plain_users([(Bytes::from("admin"), Bytes::from("secret"))]);
///     let mut handler = ZapHandler::new(Options::default(), users).unwrap();
///     tx.send(handler.bind("tcp://127.0.0.1:0").unwrap()).unwrap();
///     loop {
///         handler.serve(Duration::from_secs(1)).unwrap();
///     }
/// });
/// let server = Options { plain_server: true, zap_endpoint: Some(rx.recv()?), ..Options::default() };
/// let mut router = Socket::with_options(SocketType::Router, server)?;
/// router.bind("tcp://127.0.0.1:5555")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ZapHandler {
    socket: Socket,
    judge: Judge,
    served: u64,
}

impl ZapHandler {
    /// A handler whose socket has `options` (its driver, HWMs...; its security
    /// options should be left NULL) and that judges with `authenticator`.
    pub fn new(options: Options, authenticator: Authenticator) -> Result<ZapHandler, ZmqError> {
        ZapHandler::with_judge(options, move |request| authenticator.judge(&request.to_auth()))
    }

    /// A handler that judges whole requests with `judge`, which sees the domain and
    /// the peer's address an [`Authenticator`] does not.
    pub fn with_judge(
        options: Options,
        judge: impl Fn(&ZapRequest) -> AuthDecision + Send + Sync + 'static,
    ) -> Result<ZapHandler, ZmqError> {
        Ok(ZapHandler {
            socket: Socket::with_options(SocketType::Router, options)?,
            judge: Arc::new(judge),
            served: 0,
        })
    }

    /// Listens for ZAP clients on `endpoint` (`tcp://127.0.0.1:0` picks a port); the
    /// endpoint bound, for the servers' [`Options::zap_endpoint`].
    pub fn bind(&mut self, endpoint: &str) -> Result<Endpoint, ZmqError> {
        self.socket.bind(endpoint)
    }

    /// Answers the requests that arrive within `timeout` (at least one is waited for,
    /// the others taken as they are already there); how many were answered.
    pub fn serve(&mut self, timeout: Duration) -> Result<usize, ZmqError> {
        let deadline = Instant::now() + timeout;
        let mut answered = 0;
        let mut wait = timeout;
        while let Some(message) = self.socket.recv(wait)? {
            if let Some(reply) = self.answer(message) {
                self.socket.send(reply)?;
                answered += 1;
                self.served += 1;
            }
            wait = Duration::ZERO;
        }
        // What was sent leaves before the caller sleeps again.
        self.socket.flush(deadline.saturating_duration_since(Instant::now()))?;
        Ok(answered)
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// The reply to one ROUTER message `[peer, envelope..., "", request...]`.
    fn answer(&self, message: Message) -> Option<Message> {
        let frames: Vec<Bytes> = message.into();
        // The envelope ends at the first empty frame after the peer's routing id.
        let delimiter = frames.iter().skip(1).position(Bytes::is_empty)? + 1;
        let (envelope, request) = frames.split_at(delimiter + 1);
        let reply = match ZapRequest::decode(request) {
            Ok(request) => ZapReply::from_decision(request.request_id.clone(), &(self.judge)(&request)),
            Err(error) => ZapReply {
                request_id: request.get(1)?.clone(),
                status: ZapStatus::Denied,
                status_text: Bytes::from(error.to_string()),
                user_id: Bytes::new(),
                metadata: Default::default(),
            },
        };
        Some(envelope.iter().cloned().chain(reply.to_frames()).collect())
    }
}

impl fmt::Debug for ZapHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZapHandler").field("served", &self.served).finish()
    }
}
