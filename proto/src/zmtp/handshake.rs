//! The handshake after the greeting: NULL (RFC 23) and PLAIN (RFC 24) as one sans-IO
//! state machine, ending when both sides' metadata has been exchanged and checked.
//!
//! ```text
//! NULL:   C: greeting READY            S: greeting READY
//! PLAIN:  C: greeting HELLO            S: greeting
//!                                      S: WELCOME (or ERROR)
//!         C: INITIATE                  S: READY (or ERROR)
//! ```
//!
//! Our first command goes out with our greeting, in the same write: each direction is
//! ordered, and a peer that wants another mechanism refuses ours on the greeting alone,
//! so there is nothing to wait for and one round trip to save. The peer's `Socket-Type`
//! is checked against ours (RFC 23's table) before the connection is ready.
//!
//! The PLAIN server asks the caller, not a callback, whether the credentials are good
//! ([`Progress::Authenticate`], answered by [`Handshake::authenticate`]), so the answer
//! may come from anywhere (a ZAP handler over the network, a table) and at any time;
//! until it comes the handshake reads nothing more. A NULL side may be asked to
//! authenticate too ([`HandshakeConfig::authenticate_null`], libzmq's behaviour when a
//! ZAP domain is set): it holds its `READY` until the verdict.
//!
//! CURVE (RFC 26, see [`curve`](super::curve)) is the third arm: its commands are read
//! as raw bodies and opened by the client's or server's half in `curve/`; the server
//! asks the caller about the client's long-term key the same way, and the session key
//! is handed to the connection ([`Handshake::take_cipher`]) to seal every frame after.
//!
//! ```text
//! CURVE:  C: greeting HELLO            S: greeting
//!                                      S: WELCOME (or close: wrong server key)
//!         C: INITIATE                  S: READY (or ERROR)
//! ```

use bytes::Bytes;

use super::command::{Command, Metadata, RawCommand, IDENTITY, SOCKET_TYPE};
use super::curve::{CurveClient, CurveRandom, CurveServer, KeyPair, MessageCipher, PublicKey};
use super::frame::{encode_header, Frame, FrameDecoder, FLAG_COMMAND};
use super::greeting::{Greeting, MechanismName, Version};
use super::{SocketType, ZmtpError};
use crate::{IoArena, SegmentedBuffer};

/// The security mechanism of a connection, and this side's role in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// No security: both sides send `READY`.
    Null,
    /// PLAIN client: sends these credentials in `HELLO`.
    PlainClient {
        /// The user name (at most 255 bytes).
        username: Bytes,
        /// The password (at most 255 bytes).
        password: Bytes,
    },
    /// PLAIN server: asks the caller to check the credentials of each `HELLO`.
    PlainServer,
    /// CURVE client: our long-term pair and the server's public key (which a client
    /// must know in advance: it is how the server is authenticated).
    CurveClient {
        /// Our long-term key pair (C, c).
        keys: KeyPair,
        /// The server's long-term public key (S).
        server_key: PublicKey,
    },
    /// CURVE server: our long-term pair; asks the caller about each client's key.
    CurveServer {
        /// Our long-term key pair (S, s).
        keys: KeyPair,
    },
}

impl Mechanism {
    /// The name the greeting carries.
    pub fn name(&self) -> MechanismName {
        match self {
            Mechanism::Null => MechanismName::Null,
            Mechanism::PlainClient { .. } | Mechanism::PlainServer => MechanismName::Plain,
            Mechanism::CurveClient { .. } | Mechanism::CurveServer { .. } => MechanismName::Curve,
        }
    }

    /// The greeting's as-server flag.
    pub fn as_server(&self) -> bool {
        matches!(self, Mechanism::PlainServer | Mechanism::CurveServer { .. })
    }
}

/// What this side announces and how it authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// Our socket type, sent as `Socket-Type` and checked against the peer's.
    pub socket_type: SocketType,
    /// Our identity (routing id), sent as `Identity` by REQ, DEALER and ROUTER sockets
    /// (as libzmq does); at most 255 bytes, not starting with a zero byte.
    pub identity: Bytes,
    /// The mechanism and our role in it.
    pub mechanism: Mechanism,
    /// The largest handshake command accepted, in bytes (the frame limit of the
    /// handshake; a `READY` carries little).
    pub max_command_size: u64,
    /// NULL only: ask the caller about the peer ([`Progress::Authenticate`] with
    /// mechanism NULL and no credentials) once its greeting is in, and hold our `READY`
    /// until allowed, as libzmq does when `ZMQ_ZAP_DOMAIN` is set. Off by default.
    pub authenticate_null: bool,
}

impl HandshakeConfig {
    /// A NULL handshake for a socket of `socket_type` with no identity.
    pub fn null(socket_type: SocketType) -> Self {
        HandshakeConfig {
            socket_type,
            identity: Bytes::new(),
            mechanism: Mechanism::Null,
            max_command_size: 64 << 10,
            authenticate_null: false,
        }
    }
}

/// A PLAIN client's credentials or a CURVE client's long-term key (or, for a NULL
/// handshake with [`HandshakeConfig::authenticate_null`], nothing), for the caller to
/// judge (ZAP's request, RFC 27; see [`zap`](super::zap) for its wire form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// The mechanism (PLAIN, CURVE, or NULL when asked for).
    pub mechanism: MechanismName,
    /// The user name (PLAIN; empty for CURVE).
    pub username: Bytes,
    /// The password (PLAIN; empty for CURVE).
    pub password: Bytes,
    /// The client's long-term public key, proven by its vouch (CURVE only).
    pub curve_key: Option<PublicKey>,
}

/// The caller's answer to an [`AuthRequest`] (ZAP's reply, RFC 27).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// Status 200: the handshake goes on; `user_id` is reported with the connection.
    Allow {
        /// Who the peer is, as the authenticator names it.
        user_id: Bytes,
    },
    /// Refused: the peer gets an `ERROR` with the status code as its reason, as libzmq
    /// sends it (`300` temporary, `400` denied, `500` internal).
    Deny {
        /// The ZAP status code.
        status: u16,
        /// Why, for our side's error.
        reason: String,
    },
}

/// What the handshake learnt about the peer once it is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Established {
    /// The version both sides speak (3.0 or 3.1).
    pub version: Version,
    /// The peer's socket type.
    pub peer_socket_type: SocketType,
    /// The peer's `Identity` (empty if it sent none).
    pub peer_identity: Bytes,
    /// All of the peer's metadata.
    pub peer_metadata: Metadata,
    /// The user id the authenticator gave (PLAIN and CURVE servers only).
    pub user_id: Option<Bytes>,
}

/// Where a call to [`Handshake::handle`] left the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for more bytes from the peer.
    Pending,
    /// A PLAIN or CURVE server (or an authenticating NULL side) must judge these
    /// credentials: call [`Handshake::authenticate`] (or
    /// [`Handshake::authentication_failed`]), now or later. Until then no more input is
    /// read.
    Authenticate(AuthRequest),
    /// Done: message frames may flow. Whatever followed the last handshake command is
    /// still in the input buffer.
    Established(Established),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Our greeting is not written yet.
    Start,
    /// Waiting for the peer's greeting.
    Greeting,
    /// NULL: waiting for the peer's `READY`.
    NullReady,
    /// NULL with `authenticate_null`: waiting for the caller's decision, our `READY`
    /// held back.
    NullAuthenticating,
    /// PLAIN client: `HELLO` sent, waiting for `WELCOME`.
    PlainWelcome,
    /// PLAIN client: `INITIATE` sent, waiting for `READY`.
    PlainReady,
    /// PLAIN server: waiting for `HELLO`.
    PlainHello,
    /// PLAIN server: waiting for the caller's decision.
    PlainAuthenticating,
    /// PLAIN server: `WELCOME` sent, waiting for `INITIATE`.
    PlainInitiate,
    /// CURVE client: `HELLO` sent, waiting for `WELCOME`.
    CurveWelcome,
    /// CURVE client: `INITIATE` sent, waiting for `READY`.
    CurveReady,
    /// CURVE server: waiting for `HELLO`.
    CurveHello,
    /// CURVE server: `WELCOME` sent, waiting for `INITIATE`.
    CurveInitiate,
    /// CURVE server: `INITIATE` verified (its metadata kept), waiting for the caller's
    /// decision on the client's key.
    CurveAuthenticating(Metadata),
    /// Finished.
    Done,
    /// Failed with this error; every later call returns it.
    Failed(ZmtpError),
}

/// The handshake of one connection: greeting, mechanism, metadata. Sans-IO: reads the
/// input buffer it is given and writes what to send into the arena it is given.
#[derive(Debug)]
pub struct Handshake {
    config: HandshakeConfig,
    state: State,
    decoder: FrameDecoder,
    version: Option<Version>,
    user_id: Option<Bytes>,
    curve: Option<CurveSide>,
    cipher: Option<MessageCipher>,
}

/// This side's half of a CURVE handshake.
#[derive(Debug)]
enum CurveSide {
    Client(CurveClient),
    Server(CurveServer),
}

impl Handshake {
    /// A handshake with `config`. Fails if the configuration could not be sent: an
    /// identity over 255 bytes or starting with a zero byte, PLAIN credentials over
    /// 255 bytes; or if it is CURVE, which needs [`with_random`](Self::with_random).
    pub fn new(config: HandshakeConfig) -> Result<Handshake, ZmtpError> {
        Handshake::build(config, None)
    }

    /// A handshake with `config` whose CURVE side (if any) takes its transient key and
    /// long nonces from `random`, which must be fresh for this connection. Other
    /// mechanisms ignore `random`. Fails as [`new`](Self::new) does otherwise.
    pub fn with_random(config: HandshakeConfig, random: CurveRandom) -> Result<Handshake, ZmtpError> {
        Handshake::build(config, Some(random))
    }

    /// A handshake that failed before it started: writes nothing, reports `error`.
    pub(crate) fn failed(config: HandshakeConfig, error: ZmtpError) -> Handshake {
        Handshake {
            decoder: FrameDecoder::new(config.max_command_size),
            config,
            state: State::Failed(error),
            version: None,
            user_id: None,
            curve: None,
            cipher: None,
        }
    }

    fn build(config: HandshakeConfig, random: Option<CurveRandom>) -> Result<Handshake, ZmtpError> {
        if config.identity.len() > 255 || config.identity.first() == Some(&0) {
            return Err(ZmtpError::Encode {
                what: "an identity over 255 bytes or starting with a zero byte",
            });
        }
        if let Mechanism::PlainClient { username, password } = &config.mechanism {
            if username.len() > 255 || password.len() > 255 {
                return Err(ZmtpError::Encode {
                    what: "PLAIN credentials over 255 bytes",
                });
            }
        }
        let curve = match (&config.mechanism, random) {
            (Mechanism::CurveClient { .. } | Mechanism::CurveServer { .. }, None) => {
                return Err(ZmtpError::CurveRandomMissing);
            }
            (Mechanism::CurveClient { keys, server_key }, Some(random)) => {
                Some(CurveSide::Client(CurveClient::new(keys.clone(), *server_key, random)))
            }
            (Mechanism::CurveServer { keys }, Some(random)) => {
                Some(CurveSide::Server(CurveServer::new(keys.clone(), random)))
            }
            _ => None,
        };
        Ok(Handshake {
            decoder: FrameDecoder::new(config.max_command_size),
            config,
            state: State::Start,
            version: None,
            user_id: None,
            curve,
            cipher: None,
        })
    }

    /// Our configuration.
    pub fn config(&self) -> &HandshakeConfig {
        &self.config
    }

    /// The negotiated version, once the peer's greeting is in.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// Whether the handshake is complete.
    pub fn is_established(&self) -> bool {
        self.state == State::Done
    }

    /// The CURVE session's `MESSAGE` cipher, once the handshake is complete (taken
    /// once, by the connection that seals and opens every later frame with it).
    pub fn take_cipher(&mut self) -> Option<MessageCipher> {
        self.cipher.take()
    }

    /// Writes our greeting, whole, and our first command where the mechanism has one
    /// that does not depend on the peer (NULL's `READY`, PLAIN's `HELLO`). Call once,
    /// before any input; later calls write nothing.
    pub fn start(&mut self, out: &mut IoArena) {
        if self.state != State::Start {
            return;
        }
        out.put_slice(&Greeting::new(self.config.mechanism.name(), self.config.mechanism.as_server()).encode());
        self.state = match &self.config.mechanism {
            Mechanism::Null if self.config.authenticate_null => State::Greeting,
            Mechanism::Null => {
                self.write_metadata_command(out, false);
                State::Greeting
            }
            Mechanism::PlainClient { username, password } => {
                // Lengths checked in `new`.
                let hello = Command::Hello {
                    username: username.clone(),
                    password: password.clone(),
                };
                let _ = hello.encode(out);
                State::Greeting
            }
            Mechanism::PlainServer | Mechanism::CurveServer { .. } => State::Greeting,
            Mechanism::CurveClient { .. } => {
                if let Some(CurveSide::Client(client)) = &mut self.curve {
                    write_raw_command(out, &client.hello());
                }
                State::Greeting
            }
        };
    }

    /// Reads what it can of the peer's greeting and commands from `src`, writes the
    /// answers into `out`, and says where the handshake is. An error is fatal (the
    /// connection closes; for a refused socket type an `ERROR` was written to `out`
    /// first).
    pub fn handle(&mut self, src: &mut SegmentedBuffer, out: &mut IoArena) -> Result<Progress, ZmtpError> {
        match self.step(src, out) {
            Ok(progress) => Ok(progress),
            Err(error) => {
                self.state = State::Failed(error.clone());
                Err(error)
            }
        }
    }

    fn step(&mut self, src: &mut SegmentedBuffer, out: &mut IoArena) -> Result<Progress, ZmtpError> {
        self.start(out);
        loop {
            match &self.state {
                State::Failed(error) => return Err(error.clone()),
                State::Done => return Ok(Progress::Pending),
                State::PlainAuthenticating | State::CurveAuthenticating(_) | State::NullAuthenticating => {
                    return Ok(Progress::Pending)
                }
                State::Start => unreachable!("start() ran above"),
                State::Greeting => {
                    let Some(greeting) = Greeting::decode(src)? else {
                        return Ok(Progress::Pending);
                    };
                    let ours = self.config.mechanism.name();
                    if greeting.mechanism_name() != ours.as_str().as_bytes() {
                        return Err(ZmtpError::MechanismMismatch {
                            ours: ours.as_str(),
                            theirs: String::from_utf8_lossy(greeting.mechanism_name()).into_owned(),
                        });
                    }
                    self.version = Some(Version::negotiate(Version::V3_1, greeting.version));
                    if self.config.mechanism == Mechanism::Null && self.config.authenticate_null {
                        self.state = State::NullAuthenticating;
                        return Ok(Progress::Authenticate(AuthRequest {
                            mechanism: MechanismName::Null,
                            username: Bytes::new(),
                            password: Bytes::new(),
                            curve_key: None,
                        }));
                    }
                    self.state = match self.config.mechanism {
                        Mechanism::Null => State::NullReady,
                        Mechanism::PlainClient { .. } => State::PlainWelcome,
                        Mechanism::PlainServer => State::PlainHello,
                        Mechanism::CurveClient { .. } => State::CurveWelcome,
                        Mechanism::CurveServer { .. } => State::CurveHello,
                    };
                }
                _ if self.curve.is_some() => {
                    let body = match self.decoder.decode(src)? {
                        None => return Ok(Progress::Pending),
                        Some(Frame::Message { .. }) => return Err(ZmtpError::MessageBeforeReady),
                        Some(Frame::Command(body)) => body,
                    };
                    if let Some(progress) = self.on_curve_command(body, out)? {
                        return Ok(progress);
                    }
                }
                _ => {
                    let Some(command) = self.next_command(src)? else {
                        return Ok(Progress::Pending);
                    };
                    if let Some(progress) = self.on_command(command, out)? {
                        return Ok(progress);
                    }
                }
            }
        }
    }

    /// The next handshake command; a message frame here is a protocol error.
    fn next_command(&self, src: &mut SegmentedBuffer) -> Result<Option<Command>, ZmtpError> {
        match self.decoder.decode(src)? {
            None => Ok(None),
            Some(Frame::Message { .. }) => Err(ZmtpError::MessageBeforeReady),
            Some(Frame::Command(body)) => Command::parse(body).map(Some),
        }
    }

    fn on_command(&mut self, command: Command, out: &mut IoArena) -> Result<Option<Progress>, ZmtpError> {
        let mechanism = self.config.mechanism.name().as_str();
        let unexpected = |command: &Command| ZmtpError::UnexpectedCommand {
            command: command.name(),
            mechanism,
        };
        match (&self.state, command) {
            (_, Command::Error { reason }) => Err(ZmtpError::Refused {
                reason: String::from_utf8_lossy(&reason).into_owned(),
            }),
            (State::NullReady | State::PlainReady, Command::Ready(meta)) => self.finish(meta, out).map(Some),
            (State::PlainWelcome, Command::Welcome) => {
                self.write_metadata_command(out, true);
                self.state = State::PlainReady;
                Ok(None)
            }
            (State::PlainHello, Command::Hello { username, password }) => {
                self.state = State::PlainAuthenticating;
                Ok(Some(Progress::Authenticate(AuthRequest {
                    mechanism: MechanismName::Plain,
                    username,
                    password,
                    curve_key: None,
                })))
            }
            (State::PlainInitiate, Command::Initiate(meta)) => {
                let progress = self.finish(meta, out)?;
                self.write_metadata_command(out, false);
                Ok(Some(progress))
            }
            (_, command) => Err(unexpected(&command)),
        }
    }

    /// The caller's answer to [`Progress::Authenticate`]: `WELCOME` and on with the
    /// handshake, or an `ERROR` with the status code written to `out` and the
    /// handshake failed with [`ZmtpError::AuthenticationDenied`]. Then reads on from
    /// `src` as [`handle`](Self::handle) does.
    pub fn authenticate(
        &mut self,
        decision: AuthDecision,
        src: &mut SegmentedBuffer,
        out: &mut IoArena,
    ) -> Result<Progress, ZmtpError> {
        let curve_meta = match &self.state {
            State::PlainAuthenticating | State::NullAuthenticating => None,
            State::CurveAuthenticating(meta) => Some(meta.clone()),
            _ => return self.handle(src, out),
        };
        match decision {
            AuthDecision::Allow { user_id } => {
                self.user_id = Some(user_id);
                if self.state == State::NullAuthenticating {
                    self.write_metadata_command(out, false);
                    self.state = State::NullReady;
                    return self.handle(src, out);
                }
                let Some(meta) = curve_meta else {
                    let _ = Command::Welcome.encode(out);
                    self.state = State::PlainInitiate;
                    return self.handle(src, out);
                };
                let result = self.curve_server_ready(meta, out);
                if let Err(error) = &result {
                    self.state = State::Failed(error.clone());
                }
                result
            }
            AuthDecision::Deny { status, reason } => {
                let code = Bytes::from(status.to_string());
                let _ = Command::Error { reason: code }.encode(out);
                let error = ZmtpError::AuthenticationDenied { status, reason };
                self.state = State::Failed(error.clone());
                Err(error)
            }
        }
    }

    /// The caller could not get a verdict on [`Progress::Authenticate`] (a ZAP handler
    /// that answered something malformed, or nothing in time): the peer gets an `ERROR`
    /// with status `500` (an internal error, RFC 27) and the handshake fails with
    /// `error`. Does nothing unless a verdict is awaited.
    pub fn authentication_failed(&mut self, error: ZmtpError, out: &mut IoArena) {
        if matches!(
            self.state,
            State::PlainAuthenticating | State::CurveAuthenticating(_) | State::NullAuthenticating
        ) {
            let _ = Command::Error {
                reason: Bytes::from_static(b"500"),
            }
            .encode(out);
            self.state = State::Failed(error);
        }
    }

    /// Checks the peer's metadata and completes the handshake.
    fn finish(&mut self, meta: Metadata, out: &mut IoArena) -> Result<Progress, ZmtpError> {
        let peer = meta
            .get(SOCKET_TYPE)
            .and_then(|name| SocketType::from_wire(&name))
            .ok_or(ZmtpError::MissingSocketType)?;
        let ours = self.config.socket_type;
        if !ours.is_compatible_with(peer) {
            // Tell the peer why before closing (libzmq logs the reason it gets).
            let _ = Command::Error {
                reason: Bytes::from_static(b"Invalid socket type"),
            }
            .encode(out);
            return Err(ZmtpError::IncompatibleSocketType { ours, theirs: peer });
        }
        let identity = meta.get(IDENTITY).unwrap_or_default();
        // A ROUTER makes up identities that start with a zero byte; a peer may not
        // claim one (RFC 23).
        if identity.len() > 255 || (ours == SocketType::Router && identity.first() == Some(&0)) {
            return Err(ZmtpError::InvalidIdentity);
        }
        self.state = State::Done;
        Ok(Progress::Established(Established {
            version: self.version.unwrap_or(Version::V3_0),
            peer_socket_type: peer,
            peer_identity: identity,
            peer_metadata: meta,
            user_id: self.user_id.clone(),
        }))
    }

    /// A CURVE command during the handshake (an `ERROR` is read as in the other
    /// mechanisms; the others are opened by our half of CURVE).
    fn on_curve_command(&mut self, body: Bytes, out: &mut IoArena) -> Result<Option<Progress>, ZmtpError> {
        let raw = RawCommand::split(body.clone())?;
        if &raw.name[..] == b"ERROR" {
            return self.on_command(Command::parse(body)?, out);
        }
        let unexpected = || ZmtpError::UnexpectedCommand {
            command: String::from_utf8_lossy(&raw.name).into_owned(),
            mechanism: "CURVE",
        };
        let metadata = self.our_metadata();
        let (state, name) = (&self.state, &raw.name[..]);
        match (&mut self.curve, state, name) {
            (Some(CurveSide::Client(client)), State::CurveWelcome, b"WELCOME") => {
                let initiate = client.welcome(&body, metadata.as_bytes())?;
                write_raw_command(out, &initiate);
                self.state = State::CurveReady;
                Ok(None)
            }
            (Some(CurveSide::Client(client)), State::CurveReady, b"READY") => {
                let (meta, cipher) = client.ready(&body)?;
                let meta =
                    Metadata::parse(meta).map_err(|what| ZmtpError::MalformedCommand { command: "READY", what })?;
                self.cipher = Some(cipher);
                self.finish(meta, out).map(Some)
            }
            (Some(CurveSide::Server(server)), State::CurveHello, b"HELLO") => {
                let welcome = server.hello(&body)?;
                write_raw_command(out, &welcome);
                self.state = State::CurveInitiate;
                Ok(None)
            }
            (Some(CurveSide::Server(server)), State::CurveInitiate, b"INITIATE") => {
                let (client_key, meta) = server.initiate(&body)?;
                let meta = Metadata::parse(meta).map_err(|what| ZmtpError::MalformedCommand {
                    command: "INITIATE",
                    what,
                })?;
                self.state = State::CurveAuthenticating(meta);
                Ok(Some(Progress::Authenticate(AuthRequest {
                    mechanism: MechanismName::Curve,
                    username: Bytes::new(),
                    password: Bytes::new(),
                    curve_key: Some(client_key),
                })))
            }
            _ => Err(unexpected()),
        }
    }

    /// The CURVE server, its client allowed: checks the client's metadata, then writes
    /// `READY` and keeps the session cipher.
    fn curve_server_ready(&mut self, meta: Metadata, out: &mut IoArena) -> Result<Progress, ZmtpError> {
        let progress = self.finish(meta, out)?;
        let metadata = self.our_metadata();
        if let Some(CurveSide::Server(server)) = &mut self.curve {
            let (ready, cipher) = server.ready(metadata.as_bytes())?;
            write_raw_command(out, &ready);
            self.cipher = Some(cipher);
        }
        Ok(progress)
    }

    /// Our metadata: our socket type and, for the types that have one, our identity.
    fn our_metadata(&self) -> Metadata {
        let socket_type = self.config.socket_type;
        let identity = socket_type
            .announces_identity()
            .then_some((IDENTITY, &self.config.identity[..]));
        let properties = [(SOCKET_TYPE, socket_type.as_str().as_bytes())]
            .into_iter()
            .chain(identity);
        // Names are constants and the identity is at most 255 bytes (checked in `new`).
        Metadata::from_properties(properties).unwrap_or_default()
    }

    /// Writes `READY` (or PLAIN's `INITIATE`) with [`our_metadata`](Self::our_metadata).
    fn write_metadata_command(&self, out: &mut IoArena, initiate: bool) {
        let meta = self.our_metadata();
        let command = if initiate {
            Command::Initiate(meta)
        } else {
            Command::Ready(meta)
        };
        let _ = command.encode(out);
    }
}

/// Writes a command frame whose body (name included) is already encoded.
fn write_raw_command(out: &mut IoArena, body: &[u8]) {
    encode_header(out, FLAG_COMMAND, body.len() as u64);
    out.put_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zmtp::curve::{CurveRandom, KeyPair, PublicKey, SecretKey};

    /// A key pair of fixed bytes (the tests' stand-in for a generated one).
    fn pair(byte: u8) -> KeyPair {
        KeyPair::from_secret(SecretKey::from_bytes([byte; 32]))
    }

    /// A handshake given fixed random bytes (distinct per side: `byte`).
    fn fixed(config: HandshakeConfig, byte: u8) -> Handshake {
        Handshake::with_random(config, CurveRandom::from_bytes([byte; CurveRandom::LEN])).unwrap()
    }

    /// Two handshakes wired back to back, bytes moved in pieces of `piece` bytes.
    struct Wire {
        a: Handshake,
        b: Handshake,
        a_in: SegmentedBuffer,
        b_in: SegmentedBuffer,
        a_out: IoArena,
        b_out: IoArena,
        /// Everything each side sent, in order.
        a_sent: Vec<u8>,
        b_sent: Vec<u8>,
    }

    impl Wire {
        fn new(a: HandshakeConfig, b: HandshakeConfig) -> Self {
            Wire {
                a: fixed(a, 0xa1),
                b: fixed(b, 0xb2),
                a_in: SegmentedBuffer::new(),
                b_in: SegmentedBuffer::new(),
                a_out: IoArena::new(),
                b_out: IoArena::new(),
                a_sent: Vec::new(),
                b_sent: Vec::new(),
            }
        }

        fn carry(from: &mut IoArena, to: &mut SegmentedBuffer, piece: usize, sent: &mut Vec<u8>) -> bool {
            let bytes: Vec<u8> = from.chunks().flatten().copied().collect();
            from.advance(bytes.len());
            for p in bytes.chunks(piece) {
                to.push_slice(p);
            }
            sent.extend_from_slice(&bytes);
            !bytes.is_empty()
        }

        /// Runs both sides until neither sends; returns their last progress.
        fn run(
            &mut self,
            piece: usize,
            mut judge: impl FnMut(&AuthRequest) -> AuthDecision,
        ) -> (Result<Progress, ZmtpError>, Result<Progress, ZmtpError>) {
            let mut last = (Ok(Progress::Pending), Ok(Progress::Pending));
            self.a.start(&mut self.a_out);
            self.b.start(&mut self.b_out);
            for _ in 0..100 {
                let moved_ab = Self::carry(&mut self.a_out, &mut self.b_in, piece, &mut self.a_sent);
                let moved_ba = Self::carry(&mut self.b_out, &mut self.a_in, piece, &mut self.b_sent);
                if !moved_ab && !moved_ba {
                    break;
                }
                for (hs, input, out, slot) in [
                    (&mut self.a, &mut self.a_in, &mut self.a_out, &mut last.0),
                    (&mut self.b, &mut self.b_in, &mut self.b_out, &mut last.1),
                ] {
                    if matches!(slot, Ok(Progress::Established(_)) | Err(_)) {
                        continue;
                    }
                    let mut progress = hs.handle(input, out);
                    if let Ok(Progress::Authenticate(request)) = &progress {
                        progress = hs.authenticate(judge(request), input, out);
                    }
                    *slot = progress;
                }
            }
            last
        }
    }

    fn plain_client(user: &str, password: &str) -> HandshakeConfig {
        HandshakeConfig {
            mechanism: Mechanism::PlainClient {
                username: Bytes::copy_from_slice(user.as_bytes()),
                password: Bytes::copy_from_slice(password.as_bytes()),
            },
            ..HandshakeConfig::null(SocketType::Dealer)
        }
    }

    fn plain_server() -> HandshakeConfig {
        HandshakeConfig {
            mechanism: Mechanism::PlainServer,
            ..HandshakeConfig::null(SocketType::Router)
        }
    }

    fn judge(request: &AuthRequest) -> AuthDecision {
        if request.username == "admin" && request.password == "secret" {
            AuthDecision::Allow {
                user_id: "admin".into(),
            }
        } else {
            AuthDecision::Deny {
                status: 400,
                reason: "no such user".into(),
            }
        }
    }

    #[test]
    fn null_dealer_router_at_every_piece_size() {
        for piece in [1, 2, 3, 7, 11, 64, 1000] {
            let mut dealer = HandshakeConfig::null(SocketType::Dealer);
            dealer.identity = Bytes::from_static(b"worker-1");
            let mut wire = Wire::new(dealer, HandshakeConfig::null(SocketType::Router));
            let (a, b) = wire.run(piece, |_| unreachable!("NULL asks no one"));
            let Ok(Progress::Established(a)) = a else {
                panic!("{a:?}")
            };
            let Ok(Progress::Established(b)) = b else {
                panic!("{b:?}")
            };
            assert_eq!((a.peer_socket_type, a.version), (SocketType::Router, Version::V3_1));
            assert_eq!(
                (b.peer_socket_type, &b.peer_identity[..]),
                (SocketType::Dealer, &b"worker-1"[..])
            );
            assert!(wire.a_in.is_empty() && wire.b_in.is_empty());
        }
    }

    #[test]
    fn greeting_and_first_command_leave_in_one_write() {
        let mut hs = Handshake::new(HandshakeConfig::null(SocketType::Push)).unwrap();
        let mut out = IoArena::new();
        hs.start(&mut out);
        let sent: Vec<u8> = out.chunks().flatten().copied().collect();
        assert_eq!(&sent[..12], &[0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1]);
        assert_eq!(&sent[64..], b"\x04\x1a\x05READY\x0bSocket-Type\x00\x00\x00\x04PUSH");
        hs.start(&mut out);
        assert_eq!(out.len(), sent.len(), "start writes once");
    }

    #[test]
    fn incompatible_socket_types_are_refused_with_an_error_command() {
        let mut wire = Wire::new(
            HandshakeConfig::null(SocketType::Push),
            HandshakeConfig::null(SocketType::Push),
        );
        let (a, b) = wire.run(5, |_| unreachable!());
        let refused = Err(ZmtpError::IncompatibleSocketType {
            ours: SocketType::Push,
            theirs: SocketType::Push,
        });
        assert_eq!(a, refused);
        assert_eq!(b, refused);
    }

    #[test]
    fn a_3_0_peer_is_spoken_to_in_3_0() {
        let mut hs = Handshake::new(HandshakeConfig::null(SocketType::Sub)).unwrap();
        let mut out = IoArena::new();
        let mut src = SegmentedBuffer::new();
        let mut peer = Greeting::new(MechanismName::Null, false);
        peer.version = Version::V3_0;
        src.push_slice(&peer.encode());
        src.push_slice(b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03PUB");
        let Ok(Progress::Established(e)) = hs.handle(&mut src, &mut out) else {
            panic!()
        };
        assert_eq!(e.version, Version::V3_0);
    }

    #[test]
    fn mechanism_mismatch_and_messages_before_ready_fail() {
        let mut wire = Wire::new(HandshakeConfig::null(SocketType::Dealer), plain_server());
        let (a, b) = wire.run(64, judge);
        assert!(
            matches!(a, Err(ZmtpError::MechanismMismatch { ours: "NULL", .. })),
            "{a:?}"
        );
        assert!(
            matches!(b, Err(ZmtpError::MechanismMismatch { ours: "PLAIN", .. })),
            "{b:?}"
        );

        let mut hs = Handshake::new(HandshakeConfig::null(SocketType::Dealer)).unwrap();
        let mut src = SegmentedBuffer::new();
        src.push_slice(&Greeting::new(MechanismName::Null, false).encode());
        src.push_slice(&[0x00, 1, b'x']);
        assert_eq!(
            hs.handle(&mut src, &mut IoArena::new()),
            Err(ZmtpError::MessageBeforeReady)
        );
        assert_eq!(
            hs.handle(&mut src, &mut IoArena::new()),
            Err(ZmtpError::MessageBeforeReady),
            "sticks"
        );
    }

    #[test]
    fn plain_with_right_and_wrong_credentials() {
        for piece in [1, 9, 100] {
            let mut wire = Wire::new(plain_client("admin", "secret"), plain_server());
            let (a, b) = wire.run(piece, judge);
            let Ok(Progress::Established(client)) = a else {
                panic!("{a:?}")
            };
            let Ok(Progress::Established(server)) = b else {
                panic!("{b:?}")
            };
            assert_eq!(client.peer_socket_type, SocketType::Router);
            assert_eq!(server.user_id.as_deref(), Some(&b"admin"[..]));

            let mut wire = Wire::new(plain_client("admin", "guess"), plain_server());
            let (a, b) = wire.run(piece, judge);
            assert_eq!(a, Err(ZmtpError::Refused { reason: "400".into() }));
            assert_eq!(
                b,
                Err(ZmtpError::AuthenticationDenied {
                    status: 400,
                    reason: "no such user".into()
                })
            );
        }
    }

    #[test]
    fn null_with_authentication_holds_ready_until_the_verdict() {
        let server = HandshakeConfig {
            authenticate_null: true,
            ..HandshakeConfig::null(SocketType::Router)
        };
        for piece in [1, 13, 1000] {
            let mut wire = Wire::new(HandshakeConfig::null(SocketType::Dealer), server.clone());
            let mut asked = Vec::new();
            let (a, b) = wire.run(piece, |request| {
                asked.push(request.clone());
                AuthDecision::Allow { user_id: "anon".into() }
            });
            assert!(matches!(a, Ok(Progress::Established(_))), "{a:?}");
            let Ok(Progress::Established(b)) = b else {
                panic!("{b:?}")
            };
            assert_eq!(b.user_id.as_deref(), Some(&b"anon"[..]));
            assert_eq!(asked.len(), 1);
            assert_eq!(asked[0].mechanism, MechanismName::Null);

            let mut wire = Wire::new(HandshakeConfig::null(SocketType::Dealer), server.clone());
            let (a, b) = wire.run(piece, |_| AuthDecision::Deny {
                status: 400,
                reason: "address denied".into(),
            });
            assert_eq!(a, Err(ZmtpError::Refused { reason: "400".into() }));
            assert!(matches!(b, Err(ZmtpError::AuthenticationDenied { status: 400, .. })));
            assert!(
                !wire.b_sent[64..].windows(5).any(|w| w == b"READY"),
                "no READY before the verdict, none after a denial"
            );
        }
    }

    #[test]
    fn the_verdict_may_come_later_or_not_at_all() {
        // The server's question is answered only after more input has arrived.
        let mut client = Handshake::new(plain_client("admin", "secret")).unwrap();
        let mut server = Handshake::new(plain_server()).unwrap();
        let (mut c_in, mut s_in, mut c_out, mut s_out) = (
            SegmentedBuffer::new(),
            SegmentedBuffer::new(),
            IoArena::new(),
            IoArena::new(),
        );
        client.start(&mut c_out);
        s_in.push_slice(&c_out.to_vec());
        c_out.clear();
        let Ok(Progress::Authenticate(request)) = server.handle(&mut s_in, &mut s_out) else {
            panic!("a question")
        };
        assert_eq!(request.username, "admin");
        // Asked again while waiting: pending, nothing more read or written.
        let written = s_out.len();
        assert_eq!(server.handle(&mut s_in, &mut s_out), Ok(Progress::Pending));
        assert_eq!(s_out.len(), written);
        c_in.push_slice(&s_out.to_vec());
        s_out.clear();
        assert_eq!(client.handle(&mut c_in, &mut c_out), Ok(Progress::Pending));
        assert!(c_out.is_empty(), "no WELCOME yet: the client waits");
        let verdict = server.authenticate(AuthDecision::Allow { user_id: "a".into() }, &mut s_in, &mut s_out);
        assert_eq!(verdict, Ok(Progress::Pending));
        c_in.push_slice(&s_out.to_vec());
        s_out.clear();
        client.handle(&mut c_in, &mut c_out).unwrap();
        s_in.push_slice(&c_out.to_vec());
        assert!(matches!(
            server.handle(&mut s_in, &mut s_out),
            Ok(Progress::Established(_))
        ));

        // No verdict could be had: ERROR 500 to the peer, the typed error kept.
        let mut client = Handshake::new(plain_client("admin", "secret")).unwrap();
        let mut server = Handshake::new(plain_server()).unwrap();
        let (mut c_in, mut s_in, mut c_out, mut s_out) = (
            SegmentedBuffer::new(),
            SegmentedBuffer::new(),
            IoArena::new(),
            IoArena::new(),
        );
        client.start(&mut c_out);
        s_in.push_slice(&c_out.to_vec());
        assert!(matches!(
            server.handle(&mut s_in, &mut s_out),
            Ok(Progress::Authenticate(_))
        ));
        let error = ZmtpError::Zap(crate::zmtp::zap::ZapError::NoReply { millis: 100 });
        server.authentication_failed(error.clone(), &mut s_out);
        assert_eq!(server.handle(&mut s_in, &mut s_out), Err(error));
        c_in.push_slice(&s_out.to_vec());
        assert_eq!(
            client.handle(&mut c_in, &mut c_out),
            Err(ZmtpError::Refused { reason: "500".into() })
        );
    }

    #[test]
    fn plain_out_of_order_commands_are_refused() {
        let mut hs = Handshake::new(plain_server()).unwrap();
        let mut src = SegmentedBuffer::new();
        src.push_slice(&Greeting::new(MechanismName::Plain, false).encode());
        src.push_slice(b"\x04\x09\x08INITIATE");
        assert!(matches!(
            hs.handle(&mut src, &mut IoArena::new()),
            Err(ZmtpError::UnexpectedCommand { mechanism: "PLAIN", .. })
        ));
        assert!(Handshake::new(plain_client(&"u".repeat(256), "")).is_err());
        let mut bad = HandshakeConfig::null(SocketType::Dealer);
        bad.identity = Bytes::from_static(b"\0id");
        assert!(Handshake::new(bad).is_err());
    }

    fn curve_pair(server: &KeyPair, expected_server: PublicKey) -> (HandshakeConfig, HandshakeConfig, KeyPair) {
        let client_keys = pair(3);
        let client = HandshakeConfig {
            mechanism: Mechanism::CurveClient {
                keys: client_keys.clone(),
                server_key: expected_server,
            },
            identity: Bytes::from_static(b"c1"),
            ..HandshakeConfig::null(SocketType::Dealer)
        };
        let server = HandshakeConfig {
            mechanism: Mechanism::CurveServer { keys: server.clone() },
            ..HandshakeConfig::null(SocketType::Router)
        };
        (client, server, client_keys)
    }

    #[test]
    fn curve_handshake_at_every_piece_size_and_the_key_is_judged() {
        let server_keys = pair(4);
        for piece in [1, 7, 64, 1000] {
            let (client, server, client_keys) = curve_pair(&server_keys, server_keys.public);
            let mut wire = Wire::new(client, server);
            let mut asked = None;
            let (a, b) = wire.run(piece, |request| {
                asked = request.curve_key;
                AuthDecision::Allow { user_id: "c".into() }
            });
            assert_eq!(
                asked,
                Some(client_keys.public),
                "the vouched long-term key is asked about"
            );
            let Ok(Progress::Established(a)) = a else {
                panic!("{a:?}")
            };
            let Ok(Progress::Established(b)) = b else {
                panic!("{b:?}")
            };
            assert_eq!(a.peer_socket_type, SocketType::Router);
            assert_eq!(
                (b.peer_socket_type, &b.peer_identity[..]),
                (SocketType::Dealer, &b"c1"[..])
            );
            // Both ciphers agree: the client's first MESSAGE (nonce 3) opens at the server.
            let (mut c, mut s) = (wire.a.take_cipher().unwrap(), wire.b.take_cipher().unwrap());
            assert_eq!(c.next_nonce(), 3);
            assert_eq!(s.next_nonce(), 2);
            let sealed = c.seal(0, b"hi").unwrap();
            assert_eq!(s.open(&sealed).unwrap().1, Bytes::from_static(b"hi"));
            let back = s.seal(0, b"yo").unwrap();
            assert_eq!(c.open(&back).unwrap().1, Bytes::from_static(b"yo"));
        }
    }

    /// Runs a CURVE handshake with the random bytes `client` and `server`; returns what
    /// each side sent.
    fn curve_transcript(
        client: [u8; CurveRandom::LEN],
        server: [u8; CurveRandom::LEN],
        piece: usize,
    ) -> (Vec<u8>, Vec<u8>) {
        let server_keys = pair(4);
        let (c, s, _) = curve_pair(&server_keys, server_keys.public);
        let mut wire = Wire {
            a: Handshake::with_random(c, CurveRandom::from_bytes(client)).unwrap(),
            b: Handshake::with_random(s, CurveRandom::from_bytes(server)).unwrap(),
            ..Wire::new(
                HandshakeConfig::null(SocketType::Pair),
                HandshakeConfig::null(SocketType::Pair),
            )
        };
        let (a, b) = wire.run(piece, |_| AuthDecision::Allow { user_id: "c".into() });
        assert!(matches!(
            (a, b),
            (Ok(Progress::Established(_)), Ok(Progress::Established(_)))
        ));
        (wire.a_sent, wire.b_sent)
    }

    #[test]
    fn curve_transcript_is_a_function_of_the_random_bytes_given() {
        let mut client = [0u8; CurveRandom::LEN];
        let mut server = [0u8; CurveRandom::LEN];
        for (i, (c, s)) in client.iter_mut().zip(server.iter_mut()).enumerate() {
            (*c, *s) = (i as u8, 200 - i as u8);
        }
        let (c1, s1) = curve_transcript(client, server, 1);
        let (c2, s2) = curve_transcript(client, server, 1000);
        assert_eq!((&c1, &s1), (&c2, &s2), "same bytes in, same handshake out");
        // Where each random byte went (after the 64-byte greeting and a 2-byte header):
        // HELLO carries C' (the public half of the client's bytes 0..32) and nonce 1.
        let transient = |bytes: &[u8]| SecretKey::from_bytes(bytes[..32].try_into().unwrap()).public_key().0;
        let hello = &c1[64 + 2..64 + 2 + 200];
        assert_eq!(&hello[80..112], &transient(&client));
        assert_eq!(&hello[112..120], &1u64.to_be_bytes());
        // WELCOME's nonce is the server's bytes 80..96.
        let welcome = &s1[64 + 2..64 + 2 + 168];
        assert_eq!(&welcome[..8], b"\x07WELCOME");
        assert_eq!(&welcome[8..24], &server[80..96]);
        // INITIATE's short nonce is the counter 2.
        let initiate = &c1[64 + 2 + 200..];
        let at = initiate.iter().position(|&b| b == 8).unwrap();
        assert_eq!(&initiate[at..at + 9], b"\x08INITIATE");
        assert_eq!(&initiate[at + 9 + 96..at + 9 + 96 + 8], &2u64.to_be_bytes());
        // Other bytes in, another handshake out: nothing is drawn anywhere else.
        let mut other = server;
        other[90] ^= 1;
        let (c3, s3) = curve_transcript(client, other, 1);
        assert_eq!(
            &c3[..64 + 2 + 200],
            &c1[..64 + 2 + 200],
            "HELLO depends on the client's bytes only"
        );
        assert_ne!(s3, s1);
        let mut other = client;
        other[40] ^= 1;
        let (c4, _) = curve_transcript(other, server, 1);
        assert_eq!(
            &c4[..64 + 2 + 200],
            &c1[..64 + 2 + 200],
            "the vouch nonce is not in HELLO"
        );
        assert_ne!(c4, c1, "the vouch nonce is in INITIATE");
    }

    #[test]
    fn curve_with_a_wrong_server_key_or_a_denied_client_fails() {
        let server_keys = pair(4);
        let (client, server, _) = curve_pair(&server_keys, pair(5).public);
        let mut wire = Wire::new(client, server);
        let (a, b) = wire.run(50, |_| unreachable!("HELLO never opens"));
        assert_eq!(b, Err(ZmtpError::CurveBox { command: "HELLO" }));
        assert_eq!(
            a,
            Ok(Progress::Pending),
            "the client hears nothing; its connection closes"
        );

        let (client, server, _) = curve_pair(&server_keys, server_keys.public);
        let mut wire = Wire::new(client, server);
        let (a, b) = wire.run(50, |_| AuthDecision::Deny {
            status: 400,
            reason: "unknown key".into(),
        });
        assert_eq!(a, Err(ZmtpError::Refused { reason: "400".into() }));
        assert!(matches!(b, Err(ZmtpError::AuthenticationDenied { status: 400, .. })));
    }

    #[test]
    fn curve_commands_out_of_order_or_tampered_are_refused() {
        let server_keys = pair(4);
        let (client, server, _) = curve_pair(&server_keys, server_keys.public);
        // INITIATE before HELLO.
        assert_eq!(
            Handshake::new(server.clone()).err(),
            Some(ZmtpError::CurveRandomMissing)
        );
        let mut hs = fixed(server, 1);
        let mut src = SegmentedBuffer::new();
        src.push_slice(&Greeting::new(MechanismName::Curve, false).encode());
        src.push_slice(b"\x04\x09\x08INITIATE");
        assert!(matches!(
            hs.handle(&mut src, &mut IoArena::new()),
            Err(ZmtpError::UnexpectedCommand { mechanism: "CURVE", .. })
        ));
        // A HELLO with one bit flipped in its signature box.
        let mut hs = fixed(client, 2);
        let mut out = IoArena::new();
        hs.start(&mut out);
        let mut hello = out.to_vec()[64..].to_vec();
        let last = hello.len() - 1;
        hello[last] ^= 0x80;
        let (_, server, _) = curve_pair(&server_keys, server_keys.public);
        let mut hs = fixed(server, 3);
        let mut src = SegmentedBuffer::new();
        src.push_slice(&Greeting::new(MechanismName::Curve, false).encode());
        src.push_slice(&hello);
        assert_eq!(
            hs.handle(&mut src, &mut IoArena::new()),
            Err(ZmtpError::CurveBox { command: "HELLO" })
        );
    }
}
