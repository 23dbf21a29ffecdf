//! Message headers: a lazily parsed view for decoding, a builder for encoding.
//!
//! On the wire a header block is
//!
//! ```text
//! NATS/1.0[ status[ description]]\r\n
//! Name: value\r\n
//! ...
//! \r\n
//! ```
//!
//! [`Headers`] keeps the block as the [`Bytes`] it arrived in and parses it only when
//! asked: every name, value and description it hands out is a view of that block.
//! [`HeaderMap`] builds a block to send.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// The version line every header block starts with.
const VERSION: &[u8] = b"NATS/1.0";

/// Why a header block or a header is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The block does not start with `NATS/1.0`.
    #[error("header block does not start with NATS/1.0")]
    MissingVersion,
    /// The status after `NATS/1.0` is not three digits (or, when building, not in 100..=999).
    #[error("invalid status code")]
    InvalidStatus,
    /// A header line has no `:`, or its name is empty or holds a space, tab or control byte.
    #[error("invalid header name")]
    InvalidName,
    /// A value (or status description) contains CR or LF, or starts or ends with a space
    /// or tab (which a reader trims).
    #[error("invalid header value")]
    InvalidValue,
    /// The block does not end with an empty line, or bytes follow it.
    #[error("header block not terminated by an empty line")]
    Unterminated,
}

/// A status carried on the version line (`NATS/1.0 503`), recognised where NATS gives it a
/// meaning.
#[derive(Debug, Clone, Copy, Eq)]
pub enum StatusCode {
    /// 100: an idle heartbeat or flow-control message (JetStream).
    Control,
    /// 404: nothing found (JetStream: no messages).
    NotFound,
    /// 408: a request timed out (JetStream pull).
    RequestTimeout,
    /// 409: a conflict (JetStream: consumer deleted, leadership change, ...).
    Conflict,
    /// 503: no responders: a request was published to a subject nobody subscribes to.
    NoResponders,
    /// Any other three-digit status. Never holds one of the codes above.
    Other(u16),
}

impl StatusCode {
    /// The status for a three-digit code.
    pub fn from_u16(code: u16) -> Self {
        match code {
            100 => StatusCode::Control,
            404 => StatusCode::NotFound,
            408 => StatusCode::RequestTimeout,
            409 => StatusCode::Conflict,
            503 => StatusCode::NoResponders,
            other => StatusCode::Other(other),
        }
    }

    /// The numeric code.
    pub fn as_u16(self) -> u16 {
        match self {
            StatusCode::Control => 100,
            StatusCode::NotFound => 404,
            StatusCode::RequestTimeout => 408,
            StatusCode::Conflict => 409,
            StatusCode::NoResponders => 503,
            StatusCode::Other(code) => code,
        }
    }
}

impl PartialEq for StatusCode {
    fn eq(&self, other: &Self) -> bool {
        self.as_u16() == other.as_u16()
    }
}

impl std::hash::Hash for StatusCode {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_u16().hash(state);
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

/// A received header block, parsed lazily.
///
/// Decoding an `HPUB` or `HMSG` only cuts the block out of the stream; the accessors
/// below read it on demand and return views ([`Bytes`] sharing the block's memory), so
/// a message whose headers are never looked at costs nothing for them. Lines may end in
/// `\r\n` or `\n`. Readers are lenient the way nats.go is (a line without `:` is skipped,
/// values are trimmed); [`validate`](Self::validate) is the strict check.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Headers {
    raw: Bytes,
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Headers").field(&self.raw).finish()
    }
}

impl Headers {
    /// Wraps a header block exactly as it appears on the wire, without checking it.
    pub fn from_raw(raw: Bytes) -> Self {
        Self { raw }
    }

    /// The block as it appears on the wire.
    pub fn as_bytes(&self) -> &Bytes {
        &self.raw
    }

    /// The block's length on the wire: the header size of `HPUB`/`HMSG`.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the block is empty (an `HPUB` with a header size of 0, which nats-server
    /// treats as having no headers).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The status on the version line, if there is a valid one.
    pub fn status(&self) -> Option<StatusCode> {
        self.status_line().map(|(code, _)| code)
    }

    /// Whether this is a no-responders answer (status 503).
    pub fn is_no_responders(&self) -> bool {
        self.status() == Some(StatusCode::NoResponders)
    }

    /// The description after the status (`NATS/1.0 404 No Messages` gives `No Messages`),
    /// if there is one.
    pub fn description(&self) -> Option<Bytes> {
        self.status_line().and_then(|(_, d)| (!d.is_empty()).then_some(d))
    }

    /// The `Name: value` pairs in order, as views of the block. Values are trimmed of
    /// spaces and tabs; lines without `:` or with an empty name are skipped.
    pub fn iter(&self) -> HeaderIter<'_> {
        let mut lines = Lines::new(&self.raw);
        lines.next(); // the version line
        HeaderIter { raw: &self.raw, lines }
    }

    /// The first value of the header `name`, compared without regard to ASCII case.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<Bytes> {
        let name = name.as_ref();
        self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Every value of the header `name`, compared without regard to ASCII case.
    pub fn get_all<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = Bytes> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Checks the whole block strictly: the version line (and a three-digit status if
    /// one follows), `Name: value` lines with valid names, and an empty line that ends
    /// the block. An empty block is valid (it means "no headers").
    pub fn validate(&self) -> Result<(), HeaderError> {
        if self.raw.is_empty() {
            return Ok(());
        }
        let mut lines = Lines::new(&self.raw);
        let (start, end) = lines.next().ok_or(HeaderError::MissingVersion)?;
        parse_version_line(&self.raw[start..end])?;
        loop {
            let (start, end) = lines.next().ok_or(HeaderError::Unterminated)?;
            let line = &self.raw[start..end];
            if line.is_empty() {
                return if lines.rest_is_empty() {
                    Ok(())
                } else {
                    Err(HeaderError::Unterminated)
                };
            }
            let colon = memchr::memchr(b':', line).ok_or(HeaderError::InvalidName)?;
            if !valid_name(&line[..colon]) {
                return Err(HeaderError::InvalidName);
            }
        }
    }

    fn status_line(&self) -> Option<(StatusCode, Bytes)> {
        let (start, end) = Lines::new(&self.raw).next()?;
        let (code, (ds, de)) = parse_version_line(&self.raw[start..end]).ok()??;
        Some((code, self.raw.slice(start + ds..start + de)))
    }
}

/// Parses `NATS/1.0[ status[ description]]`; returns the status and the description's
/// range within the line.
/// A status and the range of its description within the version line.
type StatusAt = (StatusCode, (usize, usize));

fn parse_version_line(line: &[u8]) -> Result<Option<StatusAt>, HeaderError> {
    let rest = line.strip_prefix(VERSION).ok_or(HeaderError::MissingVersion)?;
    let (s, e) = trim(rest, 0, rest.len());
    if s == e {
        return Ok(None);
    }
    let status = &rest[s..e];
    if status.len() < 3 || !status[..3].iter().all(u8::is_ascii_digit) {
        return Err(HeaderError::InvalidStatus);
    }
    let code = status[..3].iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let (ds, de) = trim(rest, s + 3, e);
    let off = VERSION.len();
    Ok(Some((StatusCode::from_u16(code), (off + ds, off + de))))
}

/// The range of `b[start..end]` without leading and trailing spaces and tabs.
fn trim(b: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && matches!(b[start], b' ' | b'\t') {
        start += 1;
    }
    while end > start && matches!(b[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    (start, end)
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic() && b != b':')
}

fn valid_value(value: &[u8]) -> bool {
    !value.iter().any(|&b| b == b'\r' || b == b'\n')
        && !matches!(value.first(), Some(b' ' | b'\t'))
        && !matches!(value.last(), Some(b' ' | b'\t'))
}

/// Line ranges of a block, without their `\n` or `\r\n`.
struct Lines<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    fn new(raw: &'a [u8]) -> Self {
        Self { raw, pos: 0 }
    }

    fn rest_is_empty(&self) -> bool {
        self.pos >= self.raw.len()
    }
}

impl Iterator for Lines<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.pos >= self.raw.len() {
            return None;
        }
        let start = self.pos;
        let (mut end, next) = match memchr::memchr(b'\n', &self.raw[start..]) {
            Some(i) => (start + i, start + i + 1),
            None => (self.raw.len(), self.raw.len()),
        };
        if end > start && self.raw[end - 1] == b'\r' {
            end -= 1;
        }
        self.pos = next;
        Some((start, end))
    }
}

/// The `(name, value)` pairs of a [`Headers`] block, as views of it.
pub struct HeaderIter<'a> {
    raw: &'a Bytes,
    lines: Lines<'a>,
}

impl Iterator for HeaderIter<'_> {
    type Item = (Bytes, Bytes);

    fn next(&mut self) -> Option<(Bytes, Bytes)> {
        loop {
            let (start, end) = self.lines.next()?;
            if start == end {
                // The empty line ends the block.
                self.lines.pos = self.raw.len();
                return None;
            }
            let line = &self.raw[start..end];
            let Some(colon) = memchr::memchr(b':', line) else {
                continue;
            };
            let (ns, ne) = trim(line, 0, colon);
            if ns == ne {
                continue;
            }
            let (vs, ve) = trim(line, colon + 1, line.len());
            return Some((
                self.raw.slice(start + ns..start + ne),
                self.raw.slice(start + vs..start + ve),
            ));
        }
    }
}

/// A header block being built for sending (`HPUB`, `HMSG`).
///
/// Names keep the case they were given; [`insert`](Self::insert) replaces every value of
/// a name (compared without regard to ASCII case) and [`append`](Self::append) adds one.
/// [`to_headers`](Self::to_headers) writes the block.
///
/// ```
/// use monocoque_proto::nats::{HeaderMap, StatusCode};
/// let mut map = HeaderMap::new();
/// map.insert("Nats-Msg-Id", "42")?.append("X-Trace", "a")?.append("X-Trace", "b")?;
/// let headers = map.to_headers();
/// assert_eq!(headers.as_bytes().as_ref(), b"NATS/1.0\r\nNats-Msg-Id: 42\r\nX-Trace: a\r\nX-Trace: b\r\n\r\n");
/// assert_eq!(headers.get("nats-msg-id").unwrap(), "42");
/// # Ok::<(), monocoque_proto::nats::HeaderError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    status: Option<(StatusCode, Bytes)>,
    entries: Vec<(Bytes, Bytes)>,
}

impl HeaderMap {
    /// An empty map: it encodes to `NATS/1.0\r\n\r\n`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the status and its description (which may be empty) on the version line.
    pub fn set_status(&mut self, code: u16, description: impl Into<Bytes>) -> Result<&mut Self, HeaderError> {
        let description = description.into();
        if !(100..=999).contains(&code) {
            return Err(HeaderError::InvalidStatus);
        }
        if !valid_value(&description) {
            return Err(HeaderError::InvalidValue);
        }
        self.status = Some((StatusCode::from_u16(code), description));
        Ok(self)
    }

    /// Replaces every value of `name` with `value`.
    pub fn insert(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<&mut Self, HeaderError> {
        let (name, value) = checked(name.into(), value.into())?;
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.entries.push((name, value));
        Ok(self)
    }

    /// Adds a value of `name`, keeping those already there.
    pub fn append(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<&mut Self, HeaderError> {
        let pair = checked(name.into(), value.into())?;
        self.entries.push(pair);
        Ok(self)
    }

    /// Removes every value of `name`; returns whether there was one.
    pub fn remove(&mut self, name: impl AsRef<[u8]>) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_ref()));
        self.entries.len() != before
    }

    /// The first value of `name`, compared without regard to ASCII case.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<&Bytes> {
        let name = name.as_ref();
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Number of `(name, value)` pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is neither a pair nor a status.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.status.is_none()
    }

    /// The pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> + '_ {
        self.entries.iter().map(|(n, v)| (n, v))
    }

    /// The block's length on the wire.
    pub fn encoded_len(&self) -> usize {
        let status = self
            .status
            .as_ref()
            .map_or(0, |(_, d)| 4 + if d.is_empty() { 0 } else { 1 + d.len() });
        let entries: usize = self.entries.iter().map(|(n, v)| n.len() + 2 + v.len() + 2).sum();
        VERSION.len() + status + 2 + entries + 2
    }

    /// Writes the block.
    pub fn to_headers(&self) -> Headers {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.put_slice(VERSION);
        if let Some((code, description)) = &self.status {
            let mut buf = itoa::Buffer::new();
            out.put_u8(b' ');
            out.put_slice(buf.format(code.as_u16()).as_bytes());
            if !description.is_empty() {
                out.put_u8(b' ');
                out.put_slice(description);
            }
        }
        out.put_slice(b"\r\n");
        for (name, value) in &self.entries {
            out.put_slice(name);
            out.put_slice(b": ");
            out.put_slice(value);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        Headers::from_raw(out.freeze())
    }
}

fn checked(name: Bytes, value: Bytes) -> Result<(Bytes, Bytes), HeaderError> {
    if !valid_name(&name) {
        return Err(HeaderError::InvalidName);
    }
    if !valid_value(&value) {
        return Err(HeaderError::InvalidValue);
    }
    Ok((name, value))
}

impl From<&HeaderMap> for Headers {
    fn from(map: &HeaderMap) -> Self {
        map.to_headers()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(raw: &'static [u8]) -> Headers {
        Headers::from_raw(Bytes::from_static(raw))
    }

    #[test]
    fn no_responders_is_recognised() {
        let h = headers(b"NATS/1.0 503\r\n\r\n");
        assert_eq!(h.status(), Some(StatusCode::NoResponders));
        assert!(h.is_no_responders());
        assert_eq!(h.description(), None);
        assert_eq!(h.iter().count(), 0);
        assert_eq!(h.validate(), Ok(()));
    }

    #[test]
    fn every_named_status_is_recognised() {
        for (code, status) in [
            (100, StatusCode::Control),
            (404, StatusCode::NotFound),
            (408, StatusCode::RequestTimeout),
            (409, StatusCode::Conflict),
            (503, StatusCode::NoResponders),
        ] {
            assert_eq!(StatusCode::from_u16(code), status);
            assert!(!matches!(StatusCode::from_u16(code), StatusCode::Other(_)));
            assert_eq!(status.as_u16(), code);
        }
        assert_eq!(StatusCode::from_u16(200), StatusCode::Other(200));
        assert_eq!(StatusCode::Other(503), StatusCode::NoResponders);
    }

    #[test]
    fn status_with_description_and_headers() {
        let raw = Bytes::from_static(
            b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 7\r\nNats-Last-Stream:\t 9 \r\n\r\n",
        );
        let h = Headers::from_raw(raw.clone());
        assert_eq!(h.status(), Some(StatusCode::Control));
        let d = h.description().unwrap();
        assert_eq!(d, "Idle Heartbeat");
        // A view, not a copy.
        assert_eq!(d.as_ptr(), raw[13..].as_ptr());
        let pairs: Vec<(Bytes, Bytes)> = h.iter().collect();
        assert_eq!(
            pairs,
            vec![
                (Bytes::from("Nats-Last-Consumer"), Bytes::from("7")),
                (Bytes::from("Nats-Last-Stream"), Bytes::from("9")),
            ]
        );
        assert_eq!(h.get("NATS-LAST-STREAM").unwrap(), "9");
        assert_eq!(h.get("missing"), None);
        assert_eq!(h.validate(), Ok(()));
    }

    #[test]
    fn status_glued_to_description_like_nats_go() {
        let h = headers(b"NATS/1.0 404No Messages\r\n\r\n");
        assert_eq!(h.status(), Some(StatusCode::NotFound));
        assert_eq!(h.description().unwrap(), "No Messages");
    }

    #[test]
    fn repeated_names_and_bare_lf() {
        let h = headers(b"NATS/1.0\nA: 1\na: 2\nB: 3\n\n");
        assert_eq!(
            h.get_all(b"A").collect::<Vec<_>>(),
            vec![Bytes::from("1"), Bytes::from("2")]
        );
        assert_eq!(h.get("b").unwrap(), "3");
        assert_eq!(h.validate(), Ok(()));
    }

    #[test]
    fn lenient_readers_strict_validate() {
        let h = headers(b"NATS/1.0\r\nno colon here\r\nK: v\r\n\r\n");
        assert_eq!(h.iter().count(), 1);
        assert_eq!(h.validate(), Err(HeaderError::InvalidName));
        assert_eq!(
            headers(b"HTTP/1.1\r\n\r\n").validate(),
            Err(HeaderError::MissingVersion)
        );
        assert_eq!(headers(b"HTTP/1.1\r\n\r\n").status(), None);
        assert_eq!(
            headers(b"NATS/1.0 5x3\r\n\r\n").validate(),
            Err(HeaderError::InvalidStatus)
        );
        assert_eq!(headers(b"NATS/1.0 5x3\r\n\r\n").status(), None);
        assert_eq!(
            headers(b"NATS/1.0\r\nK: v\r\n").validate(),
            Err(HeaderError::Unterminated)
        );
        assert_eq!(
            headers(b"NATS/1.0\r\n\r\nextra").validate(),
            Err(HeaderError::Unterminated)
        );
        assert_eq!(
            headers(b"NATS/1.0\r\nBad Name: v\r\n\r\n").validate(),
            Err(HeaderError::InvalidName)
        );
        assert_eq!(headers(b"").validate(), Ok(()));
        // Nothing after the empty line is a header.
        assert_eq!(headers(b"NATS/1.0\r\n\r\nK: v\r\n").iter().count(), 0);
    }

    #[test]
    fn builder_round_trips_through_the_view() {
        let mut map = HeaderMap::new();
        map.set_status(503, "").unwrap();
        map.append("A", "1").unwrap().append("B", "x y").unwrap();
        map.insert("a", "2").unwrap();
        let h = map.to_headers();
        assert_eq!(h.as_bytes().as_ref(), b"NATS/1.0 503\r\nB: x y\r\na: 2\r\n\r\n");
        assert_eq!(h.len(), map.encoded_len());
        assert!(h.is_no_responders());
        assert_eq!(h.get("A").unwrap(), "2");
        assert_eq!(h.validate(), Ok(()));

        let mut map = HeaderMap::new();
        map.set_status(408, "Request Timeout").unwrap();
        let h = map.to_headers();
        assert_eq!(h.as_bytes().as_ref(), b"NATS/1.0 408 Request Timeout\r\n\r\n");
        assert_eq!(h.len(), map.encoded_len());
        assert_eq!(h.description().unwrap(), "Request Timeout");
        assert!(!map.remove("nothing") && !map.is_empty());
        assert_eq!(HeaderMap::new().to_headers().as_bytes().as_ref(), b"NATS/1.0\r\n\r\n");
    }

    #[test]
    fn builder_rejects_what_a_reader_would_change() {
        let mut map = HeaderMap::new();
        assert_eq!(map.insert("", "v").unwrap_err(), HeaderError::InvalidName);
        assert_eq!(map.insert("a b", "v").unwrap_err(), HeaderError::InvalidName);
        assert_eq!(map.insert("a:b", "v").unwrap_err(), HeaderError::InvalidName);
        assert_eq!(map.insert("k", "v\r\n").unwrap_err(), HeaderError::InvalidValue);
        assert_eq!(map.insert("k", " v").unwrap_err(), HeaderError::InvalidValue);
        assert_eq!(map.insert("k", "v\t").unwrap_err(), HeaderError::InvalidValue);
        assert_eq!(map.set_status(99, "").unwrap_err(), HeaderError::InvalidStatus);
        assert_eq!(map.set_status(1000, "").unwrap_err(), HeaderError::InvalidStatus);
        assert_eq!(map.set_status(503, "a\nb").unwrap_err(), HeaderError::InvalidValue);
        assert!(map.is_empty());
    }
}
