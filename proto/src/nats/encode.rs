//! Writing ops into an [`IoArena`]. Every function checks everything before it writes,
//! so on error nothing is written.

use bytes::Bytes;
use serde::Serialize;

use super::decode::MAX_SIZE_FIELD;
use super::{EncodeError, Headers, Limits};
use crate::chassis::IoArena;

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
}
