//! Writing ops into an [`IoArena`]. Every function checks everything before it writes,
//! so on error nothing is written. The client writes its frames with the functions
//! here; [`ClientOp::encode`] and [`ServerOp::encode`] write a whole op, for a broker,
//! a proxy or a test peer.

use bytes::Bytes;
use serde::Serialize;

use super::decode::MAX_SIZE_FIELD;
use super::{ClientOp, EncodeError, Headers, Limits, ServerOp};
use crate::chassis::IoArena;

impl ClientOp {
    /// Writes the op as a client sends it, checked against `limits` (the limits the
    /// server decodes it under): an op that would not decode back the same (an empty
    /// or blank subject, a line or payload over a limit) is refused and nothing is
    /// written.
    pub fn encode(&self, limits: &Limits, dst: &mut IoArena) -> Result<(), EncodeError> {
        match self {
            ClientOp::Publish(p) => publish(
                dst,
                limits,
                &p.subject,
                p.reply.as_deref(),
                p.headers.as_ref(),
                &p.payload,
            ),
            ClientOp::Subscribe(s) => subscribe(dst, limits, &s.subject, s.queue.as_deref(), s.sid.as_bytes()),
            ClientOp::Unsubscribe(u) => unsubscribe(dst, limits, u.sid.as_bytes(), u.max_msgs),
            ClientOp::Connect(c) => json(dst, limits, b"CONNECT", c.as_ref()),
            ClientOp::Ping => {
                dst.put_slice(b"PING\r\n");
                Ok(())
            }
            ClientOp::Pong => {
                dst.put_slice(b"PONG\r\n");
                Ok(())
            }
        }
    }
}

impl ServerOp {
    /// Writes the op as a server sends it, checked against `limits` as
    /// [`ClientOp::encode`] checks: nothing is written when it is refused.
    pub fn encode(&self, limits: &Limits, dst: &mut IoArena) -> Result<(), EncodeError> {
        match self {
            ServerOp::Message(m) => message(
                dst,
                limits,
                &m.subject,
                m.sid.as_bytes(),
                m.reply.as_deref(),
                m.headers.as_ref(),
                &m.payload,
            ),
            ServerOp::Info(info) => json(dst, limits, b"INFO", info.as_ref()),
            ServerOp::Ok => {
                dst.put_slice(b"+OK\r\n");
                Ok(())
            }
            ServerOp::Err(e) => err(dst, limits, e.text()),
            ServerOp::Ping => {
                dst.put_slice(b"PING\r\n");
                Ok(())
            }
            ServerOp::Pong => {
                dst.put_slice(b"PONG\r\n");
                Ok(())
            }
        }
    }
}

/// Whether `token` can be a subject, reply, queue or sid: not empty, no space, tab, CR
/// or LF (which would change how the line splits).
pub(crate) fn valid_token(token: &[u8]) -> bool {
    !token.is_empty() && !token.iter().any(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn token(t: &[u8], err: EncodeError) -> Result<(), EncodeError> {
    if valid_token(t) {
        Ok(())
    } else {
        Err(err)
    }
}

/// Number of decimal digits of `n`.
fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn check_payload(limits: &Limits, size: usize) -> Result<(), EncodeError> {
    let max = limits.max_payload.min(MAX_SIZE_FIELD);
    if size > max {
        return Err(EncodeError::PayloadTooLarge { size, max });
    }
    Ok(())
}

fn check_line(limits: &Limits, len: usize) -> Result<(), EncodeError> {
    if len > limits.max_control_line {
        return Err(EncodeError::ControlLineTooLong {
            len,
            max: limits.max_control_line,
        });
    }
    Ok(())
}

fn put_field(dst: &mut IoArena, field: &[u8]) {
    dst.put_u8(b' ');
    dst.put_slice(field);
}

/// Writes `headers` then `payload` then `\r\n`.
fn put_body(dst: &mut IoArena, headers: Option<&Headers>, payload: &Bytes) {
    if let Some(h) = headers {
        dst.put_bytes(h.as_bytes());
    }
    dst.put_bytes(payload);
    dst.put_slice(b"\r\n");
}

/// `PUB subject [reply] size` or `HPUB subject [reply] header_size total_size`, and the
/// payload.
pub(crate) fn publish(
    dst: &mut IoArena,
    limits: &Limits,
    subject: &[u8],
    reply: Option<&[u8]>,
    headers: Option<&Headers>,
    payload: &Bytes,
) -> Result<(), EncodeError> {
    let name: &[u8] = if headers.is_some() { b"HPUB" } else { b"PUB" };
    message_like(dst, limits, name, subject, None, reply, headers, payload)
}

/// `MSG subject sid [reply] size` or `HMSG subject sid [reply] header_size total_size`,
/// and the payload.
pub(crate) fn message(
    dst: &mut IoArena,
    limits: &Limits,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: Option<&Headers>,
    payload: &Bytes,
) -> Result<(), EncodeError> {
    let name: &[u8] = if headers.is_some() { b"HMSG" } else { b"MSG" };
    message_like(dst, limits, name, subject, Some(sid), reply, headers, payload)
}

#[allow(clippy::too_many_arguments)]
fn message_like(
    dst: &mut IoArena,
    limits: &Limits,
    name: &[u8],
    subject: &[u8],
    sid: Option<&[u8]>,
    reply: Option<&[u8]>,
    headers: Option<&Headers>,
    payload: &Bytes,
) -> Result<(), EncodeError> {
    token(subject, EncodeError::InvalidSubject)?;
    if let Some(sid) = sid {
        token(sid, EncodeError::InvalidSid)?;
    }
    if let Some(reply) = reply {
        token(reply, EncodeError::InvalidReply)?;
    }
    let header_len = headers.map(Headers::len);
    let total = header_len.unwrap_or(0) + payload.len();
    check_payload(limits, total)?;
    let line = name.len()
        + 1
        + subject.len()
        + sid.map_or(0, |s| 1 + s.len())
        + reply.map_or(0, |r| 1 + r.len())
        + header_len.map_or(0, |h| 1 + digits(h))
        + 1
        + digits(total);
    check_line(limits, line)?;
    dst.put_slice(name);
    put_field(dst, subject);
    if let Some(sid) = sid {
        put_field(dst, sid);
    }
    if let Some(reply) = reply {
        put_field(dst, reply);
    }
    if let Some(h) = header_len {
        dst.put_u8(b' ');
        dst.put_int(h);
    }
    dst.put_u8(b' ');
    dst.put_int(total);
    dst.put_slice(b"\r\n");
    put_body(dst, headers, payload);
    Ok(())
}

/// `SUB subject [queue] sid`.
pub(crate) fn subscribe(
    dst: &mut IoArena,
    limits: &Limits,
    subject: &[u8],
    queue: Option<&[u8]>,
    sid: &[u8],
) -> Result<(), EncodeError> {
    token(subject, EncodeError::InvalidSubject)?;
    if let Some(q) = queue {
        token(q, EncodeError::InvalidQueue)?;
    }
    token(sid, EncodeError::InvalidSid)?;
    check_line(
        limits,
        3 + 1 + subject.len() + queue.map_or(0, |q| 1 + q.len()) + 1 + sid.len(),
    )?;
    dst.put_slice(b"SUB");
    put_field(dst, subject);
    if let Some(q) = queue {
        put_field(dst, q);
    }
    put_field(dst, sid);
    dst.put_slice(b"\r\n");
    Ok(())
}

/// `UNSUB sid [max_msgs]`.
pub(crate) fn unsubscribe(
    dst: &mut IoArena,
    limits: &Limits,
    sid: &[u8],
    max_msgs: Option<u64>,
) -> Result<(), EncodeError> {
    token(sid, EncodeError::InvalidSid)?;
    if let Some(max) = max_msgs {
        if max > MAX_SIZE_FIELD as u64 {
            return Err(EncodeError::MaxMsgsTooLarge(max));
        }
    }
    let max_len = max_msgs.map_or(0, |m| 1 + digits(m as usize));
    check_line(limits, 5 + 1 + sid.len() + max_len)?;
    dst.put_slice(b"UNSUB");
    put_field(dst, sid);
    if let Some(max) = max_msgs {
        dst.put_u8(b' ');
        dst.put_int(max);
    }
    dst.put_slice(b"\r\n");
    Ok(())
}

/// `-ERR text`.
pub(crate) fn err(dst: &mut IoArena, limits: &Limits, text: &[u8]) -> Result<(), EncodeError> {
    if memchr::memchr(b'\n', text).is_some() || matches!(text.first(), Some(b' ' | b'\t')) {
        return Err(EncodeError::InvalidErrorText);
    }
    check_line(limits, 5 + text.len())?;
    dst.put_slice(b"-ERR ");
    dst.put_slice(text);
    dst.put_slice(b"\r\n");
    Ok(())
}

/// `INFO {json}` or `CONNECT {json}`.
pub(crate) fn json<T: Serialize>(dst: &mut IoArena, limits: &Limits, name: &[u8], body: &T) -> Result<(), EncodeError> {
    let text = serde_json::to_vec(body).map_err(|e| EncodeError::Json(e.classify()))?;
    let len = name.len() + 1 + text.len();
    if len > limits.max_json_line {
        return Err(EncodeError::JsonLineTooLong {
            len,
            max: limits.max_json_line,
        });
    }
    dst.put_slice(name);
    dst.put_u8(b' ');
    dst.put_slice(&text);
    dst.put_slice(b"\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats::{ConnectOptions, HeaderMap, Message, Publish, ServerError, Sid, Subscribe, Unsubscribe};

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn publish_op(subject: &'static str, reply: Option<&'static str>, payload: &'static str) -> ClientOp {
        ClientOp::Publish(Publish {
            subject: b(subject),
            reply: reply.map(b),
            headers: None,
            payload: b(payload),
        })
    }

    fn msg(subject: &'static str, sid: &'static str, reply: Option<&'static str>, payload: &'static str) -> ServerOp {
        ServerOp::Message(Message {
            subject: b(subject),
            sid: Sid::from_bytes(b(sid)),
            reply: reply.map(b),
            headers: None,
            payload: b(payload),
        })
    }

    #[test]
    fn digit_counts() {
        for (n, d) in [
            (0, 1),
            (9, 1),
            (10, 2),
            (999_999_999, 9),
            (1_000_000_000, 10),
            (usize::MAX, 20),
        ] {
            assert_eq!(digits(n), d, "{n}");
        }
    }

    #[test]
    fn tokens() {
        assert!(valid_token(b"foo.bar.>"));
        assert!(valid_token(b"\x01\xff"));
        for bad in [&b""[..], b"a b", b"a\tb", b"a\r", b"\nb"] {
            assert!(!valid_token(bad), "{bad:?}");
        }
    }

    // -- encoding ----------------------------------------------------------------------

    fn client_wire(op: &ClientOp) -> Vec<u8> {
        let mut a = IoArena::new();
        op.encode(&Limits::default(), &mut a).unwrap();
        a.to_vec()
    }

    fn server_wire(op: &ServerOp) -> Vec<u8> {
        let mut a = IoArena::new();
        op.encode(&Limits::default(), &mut a).unwrap();
        a.to_vec()
    }

    #[test]
    fn encodes_every_client_op() {
        assert_eq!(client_wire(&publish_op("a", None, "hi")), b"PUB a 2\r\nhi\r\n");
        assert_eq!(client_wire(&publish_op("a", Some("r"), "")), b"PUB a r 0\r\n\r\n");
        let mut map = HeaderMap::new();
        map.insert("K", "v").unwrap();
        let hpub = ClientOp::Publish(Publish {
            subject: b("a"),
            reply: Some(b("r")),
            headers: Some(map.to_headers()),
            payload: b("hi"),
        });
        assert_eq!(client_wire(&hpub), b"HPUB a r 18 20\r\nNATS/1.0\r\nK: v\r\n\r\nhi\r\n");
        assert_eq!(
            client_wire(&ClientOp::Subscribe(Subscribe {
                subject: b("a.*"),
                queue: Some(b("q")),
                sid: Sid::from_u64(3)
            })),
            b"SUB a.* q 3\r\n"
        );
        assert_eq!(
            client_wire(&ClientOp::Unsubscribe(Unsubscribe {
                sid: Sid::from_u64(3),
                max_msgs: Some(5)
            })),
            b"UNSUB 3 5\r\n"
        );
        let connect = client_wire(&ClientOp::Connect(Box::new(ConnectOptions::client())));
        assert!(connect.starts_with(b"CONNECT {\"verbose\":false,"), "{connect:?}");
        assert!(connect.ends_with(b"}\r\n"));
        assert_eq!(client_wire(&ClientOp::Ping), b"PING\r\n");
        assert_eq!(client_wire(&ClientOp::Pong), b"PONG\r\n");
    }

    #[test]
    fn encodes_every_server_op() {
        assert_eq!(server_wire(&msg("a", "1", Some("r"), "hi")), b"MSG a 1 r 2\r\nhi\r\n");
        let hmsg = ServerOp::Message(Message {
            subject: b("a"),
            sid: Sid::from_u64(1),
            reply: None,
            headers: Some(Headers::from_raw(b("NATS/1.0 503\r\n\r\n"))),
            payload: Bytes::new(),
        });
        assert_eq!(server_wire(&hmsg), b"HMSG a 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
        let info = server_wire(&ServerOp::Info(Box::default()));
        assert!(info.starts_with(b"INFO {\"server_id\":\"\""), "{info:?}");
        assert_eq!(server_wire(&ServerOp::Ok), b"+OK\r\n");
        assert_eq!(server_wire(&ServerOp::Err(ServerError::new("'x'"))), b"-ERR 'x'\r\n");
        assert_eq!(server_wire(&ServerOp::Ping), b"PING\r\n");
        assert_eq!(server_wire(&ServerOp::Pong), b"PONG\r\n");
    }

    #[test]
    fn encoding_refuses_what_would_not_decode_the_same() {
        let limits = Limits {
            max_control_line: 12,
            max_payload: 4,
            max_json_line: 8,
        };
        let mut a = IoArena::new();
        let p = |s: &'static str, r: Option<&'static str>, payload: &'static str| publish_op(s, r, payload);
        assert_eq!(
            p("", None, "").encode(&limits, &mut a),
            Err(EncodeError::InvalidSubject)
        );
        assert_eq!(
            p("a b", None, "").encode(&limits, &mut a),
            Err(EncodeError::InvalidSubject)
        );
        assert_eq!(
            p("a", Some("\t"), "").encode(&limits, &mut a),
            Err(EncodeError::InvalidReply)
        );
        assert_eq!(
            p("a", None, "12345").encode(&limits, &mut a),
            Err(EncodeError::PayloadTooLarge { size: 5, max: 4 })
        );
        assert_eq!(
            p("abcdefgh", None, "").encode(&limits, &mut a),
            Err(EncodeError::ControlLineTooLong { len: 14, max: 12 })
        );
        let sub = |q: Option<&'static str>, sid: &'static str| {
            ClientOp::Subscribe(Subscribe {
                subject: b("s"),
                queue: q.map(b),
                sid: Sid::from_bytes(b(sid)),
            })
        };
        assert_eq!(
            sub(Some("a\r"), "1").encode(&limits, &mut a),
            Err(EncodeError::InvalidQueue)
        );
        assert_eq!(sub(None, "").encode(&limits, &mut a), Err(EncodeError::InvalidSid));
        assert_eq!(
            ClientOp::Unsubscribe(Unsubscribe {
                sid: Sid::from_u64(1),
                max_msgs: Some(1_000_000_000)
            })
            .encode(&limits, &mut a),
            Err(EncodeError::MaxMsgsTooLarge(1_000_000_000))
        );
        assert!(matches!(
            ClientOp::Connect(Box::default()).encode(&limits, &mut a),
            Err(EncodeError::JsonLineTooLong { .. })
        ));
        let server = Limits::default();
        for bad in ["a\nb", " lead", "\tlead"] {
            assert_eq!(
                ServerOp::Err(ServerError::new(bad)).encode(&server, &mut a),
                Err(EncodeError::InvalidErrorText)
            );
        }
        assert_eq!(
            msg("a", "x y", None, "").encode(&server, &mut a),
            Err(EncodeError::InvalidSid)
        );
        // Nothing was written by any of the refusals.
        assert!(a.is_empty());
    }

    #[test]
    fn large_payloads_are_shared_not_copied() {
        let payload = Bytes::from(vec![7u8; 64 << 10]);
        let mut a = IoArena::new();
        publish(&mut a, &Limits::default(), b"big", None, None, &payload).unwrap();
        assert!(a.chunks().any(|c| c.as_ptr() == payload.as_ptr()));
        assert_eq!(a.len(), b"PUB big 65536\r\n".len() + payload.len() + 2);
    }
}
