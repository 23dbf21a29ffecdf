//! ZMTP commands: the bodies of command frames (RFC 23, RFC 37, RFC 24's PLAIN).
//!
//! ```text
//! command       = command-size command-name command-data
//! command-name  = OCTET 1*255command-name-char   ; its length, then the name
//! ready         = "\x05READY" metadata
//! error         = "\x05ERROR" error-reason       ; OCTET 0*255VCHAR
//! subscribe     = "\x09SUBSCRIBE" subscription   ; 3.1
//! cancel        = "\x06CANCEL" subscription      ; 3.1
//! ping          = "\x04PING" ping-ttl ping-context ; 3.1: 2OCTET, 0*16OCTET
//! pong          = "\x04PONG" ping-context          ; 3.1
//! hello         = "\x05HELLO" username password    ; PLAIN: OCTET 0*255, OCTET 0*255
//! welcome       = "\x07WELCOME"                    ; PLAIN
//! initiate      = "\x08INITIATE" metadata          ; PLAIN
//! metadata      = *property
//! property      = name value
//! name          = OCTET 1*255name-char             ; ALPHA DIGIT "-" "_" "." "+"
//! value         = 4OCTET *OCTET                    ; size in network order, < 2^31
//! ```
//!
//! Parsing hands out views of the frame's body; nothing is copied. CURVE's `HELLO`,
//! `WELCOME` and `INITIATE` have other bodies: a CURVE handshake will read them from
//! [`RawCommand`] rather than through [`Command::parse`].

use bytes::Bytes;

use super::frame::encode_command_frame;
use super::ZmtpError;
use crate::IoArena;

/// The most context bytes a `PING` (and so its `PONG`) may carry (RFC 37).
pub const MAX_PING_CONTEXT: usize = 16;

/// The largest property value RFC 23 allows (2^31 - 1 bytes).
pub const MAX_PROPERTY_VALUE: usize = i32::MAX as usize;

/// The metadata property that names the sender's socket type, spelled as RFC 23 and
/// libzmq spell it.
pub const SOCKET_TYPE: &str = "Socket-Type";
/// The metadata property that carries the sender's identity (routing id).
pub const IDENTITY: &str = "Identity";

/// A command split into its name and data, before the name is interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommand {
    /// The command name (1 to 255 bytes).
    pub name: Bytes,
    /// Everything after the name.
    pub data: Bytes,
}

impl RawCommand {
    /// Splits a command frame's body into name and data.
    pub fn split(mut body: Bytes) -> Result<RawCommand, ZmtpError> {
        let len = usize::from(*body.first().ok_or(ZmtpError::MalformedCommandName)?);
        if len == 0 || body.len() < 1 + len {
            return Err(ZmtpError::MalformedCommandName);
        }
        let data = body.split_off(1 + len);
        body.advance_by(1);
        Ok(RawCommand { name: body, data })
    }
}

/// A small extension so `Bytes` can drop a prefix without importing `Buf` everywhere.
trait AdvanceBy {
    fn advance_by(&mut self, n: usize);
}

impl AdvanceBy for Bytes {
    fn advance_by(&mut self, n: usize) {
        let _ = self.split_to(n);
    }
}

/// A command this engine understands, its fields views of the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `READY`: the end of a handshake, with the sender's metadata.
    Ready(Metadata),
    /// `ERROR`: the sender refuses the handshake; the reason is at most 255 bytes.
    Error {
        /// Why (for a PLAIN server, a ZAP status code such as `400`).
        reason: Bytes,
    },
    /// `SUBSCRIBE` (3.1): a subscription, a topic prefix.
    Subscribe(Bytes),
    /// `CANCEL` (3.1): the end of a subscription.
    Cancel(Bytes),
    /// `PING` (3.1): a heartbeat.
    Ping {
        /// How long the peer may wait for traffic before it considers the sender gone,
        /// in tenths of a second (0: no limit).
        ttl_deciseconds: u16,
        /// Up to 16 bytes the `PONG` echoes.
        context: Bytes,
    },
    /// `PONG` (3.1): the answer to a `PING`, with its context.
    Pong {
        /// The `PING`'s context.
        context: Bytes,
    },
    /// PLAIN's `HELLO`: the client's credentials.
    Hello {
        /// The user name (at most 255 bytes).
        username: Bytes,
        /// The password (at most 255 bytes).
        password: Bytes,
    },
    /// PLAIN's `WELCOME`: the server accepted the credentials.
    Welcome,
    /// PLAIN's `INITIATE`: the client's metadata.
    Initiate(Metadata),
    /// Any other command, kept whole: RFC 23 lets a peer ignore commands it does not
    /// know once the handshake is over.
    Unknown(RawCommand),
}

impl Command {
    /// Parses a command frame's body.
    ///
    /// One malformed form is read as what it means: libzmq 4.3.4 (Debian 12's) refuses
    /// a PLAIN client's credentials with the body `^RROR\x03400`, its `ERROR` with the
    /// name's size byte lost and the `E` garbled (captured off the wire in this
    /// crate's tests and `tests/zmtp_libzmq.rs`); it is taken as `ERROR 400`.
    pub fn parse(body: Bytes) -> Result<Command, ZmtpError> {
        let raw = match RawCommand::split(body.clone()) {
            Ok(raw) => raw,
            Err(e) => {
                return libzmq_garbled_error(&body)
                    .map(|reason| Command::Error { reason })
                    .ok_or(e)
            }
        };
        let data = raw.data.clone();
        let malformed = |command, what| ZmtpError::MalformedCommand { command, what };
        Ok(match &raw.name[..] {
            b"READY" => Command::Ready(Metadata::parse(data).map_err(|what| malformed("READY", what))?),
            b"INITIATE" => Command::Initiate(Metadata::parse(data).map_err(|what| malformed("INITIATE", what))?),
            b"ERROR" => {
                let (reason, rest) = short_string(data).ok_or(malformed("ERROR", "reason runs past the body"))?;
                if !rest.is_empty() {
                    return Err(malformed("ERROR", "bytes after the reason"));
                }
                Command::Error { reason }
            }
            b"SUBSCRIBE" => Command::Subscribe(data),
            b"CANCEL" => Command::Cancel(data),
            b"PING" => {
                if data.len() < 2 {
                    return Err(malformed("PING", "no TTL"));
                }
                if data.len() - 2 > MAX_PING_CONTEXT {
                    return Err(malformed("PING", "context longer than 16 bytes"));
                }
                Command::Ping {
                    ttl_deciseconds: u16::from_be_bytes([data[0], data[1]]),
                    context: data.slice(2..),
                }
            }
            b"PONG" => {
                if data.len() > MAX_PING_CONTEXT {
                    return Err(malformed("PONG", "context longer than 16 bytes"));
                }
                Command::Pong { context: data }
            }
            b"HELLO" => {
                let (username, rest) = short_string(data).ok_or(malformed("HELLO", "user name runs past the body"))?;
                let (password, rest) = short_string(rest).ok_or(malformed("HELLO", "password runs past the body"))?;
                if !rest.is_empty() {
                    return Err(malformed("HELLO", "bytes after the password"));
                }
                Command::Hello { username, password }
            }
            b"WELCOME" => {
                if !data.is_empty() {
                    return Err(malformed("WELCOME", "PLAIN's WELCOME has no body"));
                }
                Command::Welcome
            }
            _ => Command::Unknown(raw),
        })
    }

    /// The command's name, for errors and logs.
    pub fn name(&self) -> String {
        match self {
            Command::Ready(_) => "READY".into(),
            Command::Error { .. } => "ERROR".into(),
            Command::Subscribe(_) => "SUBSCRIBE".into(),
            Command::Cancel(_) => "CANCEL".into(),
            Command::Ping { .. } => "PING".into(),
            Command::Pong { .. } => "PONG".into(),
            Command::Hello { .. } => "HELLO".into(),
            Command::Welcome => "WELCOME".into(),
            Command::Initiate(_) => "INITIATE".into(),
            Command::Unknown(raw) => String::from_utf8_lossy(&raw.name).into_owned(),
        }
    }

    /// Writes the command as a frame. Fails, writing nothing, if a field breaks a length
    /// rule (an `ERROR` reason or a PLAIN user name over 255 bytes, a `PING` context
    /// over 16).
    pub fn encode(&self, dst: &mut IoArena) -> Result<(), ZmtpError> {
        let too_long = |what| ZmtpError::Encode { what };
        match self {
            Command::Ready(meta) => encode_command_frame(dst, b"READY", &[meta.as_bytes()]),
            Command::Initiate(meta) => encode_command_frame(dst, b"INITIATE", &[meta.as_bytes()]),
            Command::Error { reason } => {
                let len = u8::try_from(reason.len()).map_err(|_| too_long("an ERROR reason over 255 bytes"))?;
                encode_command_frame(dst, b"ERROR", &[&[len], reason]);
            }
            Command::Subscribe(topic) => encode_command_frame(dst, b"SUBSCRIBE", &[topic]),
            Command::Cancel(topic) => encode_command_frame(dst, b"CANCEL", &[topic]),
            Command::Ping {
                ttl_deciseconds,
                context,
            } => {
                if context.len() > MAX_PING_CONTEXT {
                    return Err(too_long("a PING context over 16 bytes"));
                }
                encode_command_frame(dst, b"PING", &[&ttl_deciseconds.to_be_bytes(), context]);
            }
            Command::Pong { context } => {
                if context.len() > MAX_PING_CONTEXT {
                    return Err(too_long("a PONG context over 16 bytes"));
                }
                encode_command_frame(dst, b"PONG", &[context]);
            }
            Command::Hello { username, password } => {
                let u = u8::try_from(username.len()).map_err(|_| too_long("a PLAIN user name over 255 bytes"))?;
                let p = u8::try_from(password.len()).map_err(|_| too_long("a PLAIN password over 255 bytes"))?;
                encode_command_frame(dst, b"HELLO", &[&[u], username, &[p], password]);
            }
            Command::Welcome => encode_command_frame(dst, b"WELCOME", &[]),
            Command::Unknown(raw) => {
                if raw.name.is_empty() || raw.name.len() > 255 {
                    return Err(too_long("a command name that is not 1 to 255 bytes"));
                }
                encode_command_frame(dst, &raw.name, &[&raw.data]);
            }
        }
        Ok(())
    }
}

/// The reason of libzmq 4.3.4's garbled `ERROR` (`?RROR`, one byte of reason length,
/// the reason), if `body` is one. Only asked of a body whose name is malformed, so no
/// well-formed command is ever taken for it.
fn libzmq_garbled_error(body: &Bytes) -> Option<Bytes> {
    if body.len() < 6 || &body[1..5] != b"RROR" {
        return None;
    }
    (usize::from(body[5]) == body.len() - 6).then(|| body.slice(6..))
}

/// A one-byte length and that many bytes; `None` if they run past `data`.
fn short_string(mut data: Bytes) -> Option<(Bytes, Bytes)> {
    let len = usize::from(*data.first()?);
    if data.len() < 1 + len {
        return None;
    }
    let rest = data.split_off(1 + len);
    data.advance_by(1);
    Some((data, rest))
}

/// Whether `b` may appear in a property name (RFC 23: ALPHA, DIGIT, `-`, `_`, `.`, `+`).
fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.+".contains(&b)
}

/// The metadata of a `READY` or `INITIATE`: validated properties, kept as the bytes
/// they arrived in and read as views.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    raw: Bytes,
}

impl Metadata {
    /// Checks every property of `raw` (name of 1 to 255 name characters, value size
    /// within the body and under 2^31).
    pub fn parse(raw: Bytes) -> Result<Metadata, &'static str> {
        let mut at = 0;
        while at < raw.len() {
            let name_len = usize::from(raw[at]);
            if name_len == 0 {
                return Err("a property with an empty name");
            }
            let name = raw
                .get(at + 1..at + 1 + name_len)
                .ok_or("a property name runs past the body")?;
            if !name.iter().all(|&b| is_name_char(b)) {
                return Err("a property name with a character outside ALPHA DIGIT - _ . +");
            }
            at += 1 + name_len;
            let size = raw.get(at..at + 4).ok_or("a property value size runs past the body")?;
            let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
            if size > MAX_PROPERTY_VALUE {
                return Err("a property value of 2^31 bytes or more");
            }
            at += 4;
            if raw.len() - at < size {
                return Err("a property value runs past the body");
            }
            at += size;
        }
        Ok(Metadata { raw })
    }

    /// Encodes `properties` (name, value) in order. Fails on a name that is empty, over
    /// 255 bytes or has a character outside ALPHA DIGIT `-` `_` `.` `+`, or a value of
    /// 2^31 bytes or more.
    pub fn from_properties<'a>(
        properties: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Metadata, ZmtpError> {
        let mut raw = Vec::new();
        for (name, value) in properties {
            let name_len = u8::try_from(name.len())
                .ok()
                .filter(|&l| l > 0 && name.bytes().all(is_name_char))
                .ok_or(ZmtpError::Encode {
                    what: "a property name that is not 1 to 255 of ALPHA DIGIT - _ . +",
                })?;
            if value.len() > MAX_PROPERTY_VALUE {
                return Err(ZmtpError::Encode {
                    what: "a property value of 2^31 bytes or more",
                });
            }
            raw.push(name_len);
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(&(value.len() as u32).to_be_bytes());
            raw.extend_from_slice(value);
        }
        Ok(Metadata { raw: raw.into() })
    }

    /// The properties as they are on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The properties, in order, as (name, value) views.
    pub fn iter(&self) -> impl Iterator<Item = (Bytes, Bytes)> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            // Validated in `parse`/`from_properties`, so the reads below stay inside.
            let name_len = usize::from(*self.raw.get(at)?);
            let name = self.raw.slice(at + 1..at + 1 + name_len);
            at += 1 + name_len;
            let size = self.raw.get(at..at + 4)?;
            let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
            at += 4;
            let value = self.raw.slice(at..at + size);
            at += size;
            Some((name, value))
        })
    }

    /// The value of the first property called `name` (RFC 23: names are
    /// case-insensitive).
    pub fn get(&self, name: &str) -> Option<Bytes> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(cmd: &Command) -> Vec<u8> {
        let mut arena = IoArena::new();
        cmd.encode(&mut arena).unwrap();
        arena.chunks().flatten().copied().collect()
    }

    fn body_of(wire: &[u8]) -> Bytes {
        // Strip the 2-byte short header this test's commands have.
        assert_eq!(wire[0], 0x04);
        Bytes::copy_from_slice(&wire[2..])
    }

    #[test]
    fn libzmqs_ready_parses() {
        // What libzmq 4.3 sends for a ROUTER with no identity.
        let mut body = b"\x05READY\x0bSocket-Type\x00\x00\x00\x06ROUTER\x08Identity\x00\x00\x00\x00".to_vec();
        let Command::Ready(meta) = Command::parse(Bytes::from(body.clone())).unwrap() else {
            panic!()
        };
        assert_eq!(meta.get("socket-type").unwrap(), "ROUTER");
        assert_eq!(meta.get(IDENTITY).unwrap(), "");
        assert_eq!(meta.iter().count(), 2);
        body.push(0);
        assert!(matches!(
            Command::parse(Bytes::from(body)),
            Err(ZmtpError::MalformedCommand { command: "READY", .. })
        ));
    }

    #[test]
    fn libzmq_4_3_4s_garbled_error_reads_as_error_400() {
        // The frame libzmq 4.3.4 sent a PLAIN client with a wrong password, off the wire.
        let body = Bytes::from_static(b"^RROR\x03400");
        assert_eq!(Command::parse(body), Ok(Command::Error { reason: "400".into() }));
        // Only that shape: a wrong length, or a real name, is not taken for it.
        assert_eq!(
            Command::parse(Bytes::from_static(b"^RROR\x04400")),
            Err(ZmtpError::MalformedCommandName)
        );
        assert!(matches!(
            Command::parse(Bytes::from_static(b"\x04RROR\x03400")),
            Ok(Command::Unknown(_))
        ));
    }

    #[test]
    fn every_command_round_trips() {
        let meta = Metadata::from_properties([(SOCKET_TYPE, &b"DEALER"[..]), (IDENTITY, &b"me"[..])]).unwrap();
        let commands = [
            Command::Ready(meta.clone()),
            Command::Initiate(meta),
            Command::Error { reason: "400".into() },
            Command::Subscribe("topic".into()),
            Command::Cancel("".into()),
            Command::Ping {
                ttl_deciseconds: 300,
                context: "ctx".into(),
            },
            Command::Pong { context: "ctx".into() },
            Command::Hello {
                username: "admin".into(),
                password: "secret".into(),
            },
            Command::Welcome,
            Command::Unknown(RawCommand {
                name: "X-NEW".into(),
                data: "data".into(),
            }),
        ];
        for cmd in commands {
            let wire = encoded(&cmd);
            assert_eq!(Command::parse(body_of(&wire)).unwrap(), cmd);
        }
        assert_eq!(
            encoded(&Command::Ready(
                Metadata::from_properties([(SOCKET_TYPE, &b"REQ"[..])]).unwrap()
            )),
            b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03REQ"
        );
    }

    #[test]
    fn length_rules_are_enforced_both_ways() {
        let bad = |body: &[u8]| Command::parse(Bytes::copy_from_slice(body));
        assert_eq!(bad(b""), Err(ZmtpError::MalformedCommandName));
        assert_eq!(bad(b"\x00"), Err(ZmtpError::MalformedCommandName));
        assert_eq!(bad(b"\x05REA"), Err(ZmtpError::MalformedCommandName));
        assert!(bad(b"\x04PING\x00").is_err());
        assert!(bad(b"\x04PING\x00\x0a01234567890123456").is_err()); // 17 bytes of context
        assert!(bad(b"\x04PING\x00\x0a0123456789012345").is_ok());
        assert!(bad(b"\x05ERROR\x05abc").is_err());
        assert!(bad(b"\x05HELLO\x01a\x02b").is_err());
        assert!(bad(b"\x05HELLO\x01a\x01bX").is_err());
        assert!(bad(b"\x07WELCOMEx").is_err());
        assert!(bad(b"\x05READY\x00").is_err()); // empty property name
        assert!(bad(b"\x05READY\x02a b\x00\x00\x00\x00").is_err()); // space in a name
        assert!(bad(b"\x05READY\x01a\x80\x00\x00\x00").is_err()); // value of 2^31
        assert!(bad(b"\x05READY\x01a\x00\x00\x00\x02x").is_err()); // value runs past
        let mut arena = IoArena::new();
        let long = Bytes::from(vec![b'a'; 256]);
        assert!(Command::Error { reason: long.clone() }.encode(&mut arena).is_err());
        assert!(Command::Hello {
            username: long,
            password: "".into()
        }
        .encode(&mut arena)
        .is_err());
        assert!(Command::Ping {
            ttl_deciseconds: 0,
            context: Bytes::from(vec![0; 17])
        }
        .encode(&mut arena)
        .is_err());
        assert!(arena.is_empty(), "a refused command writes nothing");
        assert!(Metadata::from_properties([("", &b""[..])]).is_err());
        assert!(Metadata::from_properties([("a:b", &b""[..])]).is_err());
    }
}
