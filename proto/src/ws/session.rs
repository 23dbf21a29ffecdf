//! [`WsSession`]: a byte-stream session carried over WebSocket.

use std::time::Instant;

use bytes::Bytes;

use super::error::{CloseCode, FrameError, HandshakeError};
use super::frame::{encode_close, encode_frame, encode_header, Frame, FrameDecoder, Opcode, Role};
use super::handshake::{parse_request, refusal, HandshakeConfig};
use crate::chassis::{IoArena, SegmentedBuffer, Session};

/// The limits of a WebSocket server session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsConfig {
    /// The opening handshake's limits and subprotocols.
    pub handshake: HandshakeConfig,
    /// The longest frame accepted, checked from its header (a longer one closes the
    /// connection with 1009 before anything is reserved for it).
    pub max_frame: u64,
}

impl WsConfig {
    /// MQTT over WebSocket: the `mqtt` subprotocol, and frames up to `max_packet_size`
    /// (a client usually sends one packet per frame; packets may still span frames).
    pub fn mqtt(max_packet_size: u32) -> WsConfig {
        WsConfig {
            handshake: HandshakeConfig::MQTT,
            max_frame: u64::from(max_packet_size),
        }
    }
}

/// Why a WebSocket session ended abnormally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    /// The opening handshake was refused.
    #[error("websocket handshake refused: {0}")]
    Handshake(#[from] HandshakeError),
    /// The client's frames broke RFC 6455.
    #[error("websocket frame error: {0}")]
    Frame(#[from] FrameError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the client's Upgrade request.
    Handshake,
    /// Frames both ways.
    Open,
    /// A close frame sent or the stream failed: the socket goes once the arena is out.
    Closed,
}

/// A server-side WebSocket connection around an inner session that speaks a byte stream
/// (an MQTT broker [`Connection`](crate::mqtt::broker::Connection)).
///
/// It answers the opening handshake, then feeds the payload of every binary frame to
/// the inner session as received bytes (a frame may hold several of its packets, a
/// packet may span frames) and wraps whatever the inner session has to send in one
/// binary frame per flush. Pings are answered, a close frame is echoed (section 5.5.1)
/// and ends the inner session as an end of stream; a frame that breaks the protocol is
/// answered with a close frame carrying the status of [`FrameError::close_code`], and
/// ends the inner session the same way. When the inner session closes, a close frame
/// with 1000 follows its last bytes.
///
/// Text frames are refused (1003): the carried stream is binary ([MQTT-6.0.0-1]).
///
/// Time and timers belong to the inner session (an MQTT connection's connect deadline
/// also bounds a slow handshake).
#[derive(Debug)]
pub struct WsSession<S> {
    inner: S,
    config: WsConfig,
    phase: Phase,
    /// The request head while it arrives; empty (no allocation) afterwards.
    head: Vec<u8>,
    input: SegmentedBuffer,
    decoder: FrameDecoder,
    output: IoArena,
    error: Option<WsError>,
}

impl<S: Session> WsSession<S> {
    /// A connection accepted a moment ago, waiting for its opening request.
    pub fn new(inner: S, config: WsConfig) -> WsSession<S> {
        WsSession {
            inner,
            config,
            phase: Phase::Handshake,
            head: Vec::new(),
            input: SegmentedBuffer::new(),
            decoder: FrameDecoder::new(Role::Server, config.max_frame),
            output: IoArena::new(),
            error: None,
        }
    }

    /// The inner session, for the application to give it work (its output is framed at
    /// the next [`poll_transmit`](Session::poll_transmit)).
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner session.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Whether the opening handshake has completed.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Why the session failed, if it did.
    pub fn error(&self) -> Option<&WsError> {
        self.error.as_ref()
    }

    fn handshake(&mut self, data: Bytes, now: Instant) {
        // The common case, a whole request in one read, is parsed where it landed.
        let parsed = if self.head.is_empty() {
            parse_request(&data, &self.config.handshake)
        } else {
            self.head.extend_from_slice(&data);
            parse_request(&self.head, &self.config.handshake)
        };
        match parsed {
            Ok(None) => {
                if self.head.is_empty() {
                    self.head.extend_from_slice(&data);
                }
            }
            Ok(Some((accepted, used))) => {
                self.output.put_slice(&accepted.response());
                let rest = if self.head.is_empty() {
                    data.slice(used..)
                } else {
                    Bytes::copy_from_slice(&self.head[used..])
                };
                self.head = Vec::new();
                self.phase = Phase::Open;
                if !rest.is_empty() {
                    self.frames(rest, now);
                }
            }
            Err(e) => {
                self.head = Vec::new();
                self.output.put_slice(refusal(&e));
                self.error = Some(e.into());
                self.phase = Phase::Closed;
                self.inner.handle_eof(now);
            }
        }
    }

    fn frames(&mut self, data: Bytes, now: Instant) {
        self.input.push(data);
        while self.phase == Phase::Open && !self.inner.is_closed() {
            match self.decoder.decode(&mut self.input) {
                Ok(None) => break,
                Ok(Some(Frame::Data { text: true, .. })) => self.fail(FrameError::TextMessage, now),
                Ok(Some(Frame::Data { payload, .. })) => {
                    if !payload.is_empty() {
                        self.inner.handle_input(payload, now);
                    }
                }
                Ok(Some(Frame::Ping(data))) => {
                    self.flush_inner();
                    self.control(|v| encode_frame(true, Opcode::Pong, &data, None, v));
                }
                Ok(Some(Frame::Pong(_))) => {}
                Ok(Some(Frame::Close(close))) => {
                    // Echo the status (section 5.5.1), then the stream is over.
                    self.flush_inner();
                    let code = close.map_or(CloseCode::NORMAL, |c| c.code);
                    self.control(|v| encode_close(code, "", None, v));
                    self.finish(now);
                }
                Err(e) => self.fail(e, now),
            }
        }
        self.sync();
    }

    /// Answers a protocol error with its close status and ends the inner session.
    fn fail(&mut self, error: FrameError, now: Instant) {
        self.flush_inner();
        let code = error.close_code();
        self.control(|v| encode_close(code, "", None, v));
        self.error = Some(error.into());
        self.finish(now);
    }

    fn finish(&mut self, now: Instant) {
        self.phase = Phase::Closed;
        self.input.clear();
        if !self.inner.is_closed() {
            self.inner.handle_eof(now);
        }
    }

    /// Writes a control frame (at most 131 bytes) after what the inner session sent.
    fn control(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        let mut frame = Vec::with_capacity(131);
        encode(&mut frame);
        self.output.put_slice(&frame);
    }

    /// Wraps what the inner session has to send in a binary frame.
    fn flush_inner(&mut self) {
        if let Some(arena) = self.inner.poll_transmit() {
            if !arena.is_empty() {
                let head = encode_header(true, Opcode::Binary, arena.len() as u64, None);
                self.output.put_slice(&head);
                self.output.append(arena);
            }
        }
    }

    /// Frames the inner session's output, and closes once the inner session has.
    fn sync(&mut self) {
        match self.phase {
            Phase::Handshake => {
                if self.inner.is_closed() {
                    // Closed before the upgrade (its connect deadline): no frames yet.
                    self.phase = Phase::Closed;
                }
            }
            Phase::Open => {
                self.flush_inner();
                if self.inner.is_closed() {
                    self.control(|v| encode_close(CloseCode::NORMAL, "", None, v));
                    self.phase = Phase::Closed;
                }
            }
            Phase::Closed => {}
        }
    }
}

impl<S: Session> Session for WsSession<S> {
    type Event = S::Event;

    fn handle_input(&mut self, data: Bytes, now: Instant) {
        match self.phase {
            Phase::Handshake => self.handshake(data, now),
            Phase::Open => self.frames(data, now),
            Phase::Closed => {}
        }
        self.sync();
    }

    fn handle_eof(&mut self, now: Instant) {
        if self.phase != Phase::Closed {
            self.finish(now);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.sync();
    }

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        self.sync();
        (!self.output.is_empty()).then_some(&mut self.output)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Closed => None,
            _ => self.inner.poll_timeout(),
        }
    }

    fn poll_event(&mut self) -> Option<S::Event> {
        self.inner.poll_event()
    }

    fn wants_read(&self) -> bool {
        self.phase != Phase::Closed && self.inner.wants_read()
    }

    fn is_closed(&self) -> bool {
        self.phase == Phase::Closed || self.inner.is_closed()
    }

    fn handle_sent(&mut self) -> bool {
        // The frames the kernel took carry the inner session's output: its request.
        self.inner.handle_sent()
    }
}

#[cfg(test)]
mod tests;
