//! The server side of the opening handshake (RFC 6455 section 4.2): parse the client's
//! HTTP/1.1 Upgrade request under strict limits, and answer it.
//!
//! Parsed by hand: a request head is a few lines of ASCII, and the rules that matter
//! here (CRLF line ends, no folded lines, token header names, a bounded head) are
//! shorter to state than to configure a general HTTP parser for.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::error::HandshakeError;

/// The GUID appended to the client's key before hashing (section 1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The limits and the subprotocols of a server's opening handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// The longest request head accepted, blank line included.
    pub max_head: usize,
    /// The most header lines accepted.
    pub max_headers: usize,
    /// The subprotocols this server speaks, in its order of preference. Empty: none is
    /// required and none is selected; otherwise the client must offer one of them.
    pub subprotocols: &'static [&'static str],
}

impl HandshakeConfig {
    /// MQTT over WebSocket: `mqtt` (3.1.1 and 5.0, [MQTT-6.0.0-4]) and `mqttv3.1`, the
    /// name MQTT 3.1 clients offer.
    pub const MQTT: HandshakeConfig = HandshakeConfig {
        max_head: 8192,
        max_headers: 64,
        subprotocols: &["mqtt", "mqttv3.1"],
    };
}

/// An opening request the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// `Sec-WebSocket-Accept`: base64 of the SHA-1 of the client's key and the GUID.
    accept: [u8; 28],
    /// The subprotocol selected, if the server speaks any.
    pub subprotocol: Option<&'static str>,
}

impl Accepted {
    /// The `Sec-WebSocket-Accept` value sent back.
    pub fn accept_key(&self) -> &str {
        // Base64 output is ASCII.
        std::str::from_utf8(&self.accept).unwrap_or_default()
    }

    /// The `101 Switching Protocols` response (section 4.2.2).
    pub fn response(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
        out.extend_from_slice(b"Sec-WebSocket-Accept: ");
        out.extend_from_slice(&self.accept);
        out.extend_from_slice(b"\r\n");
        if let Some(p) = self.subprotocol {
            out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
            out.extend_from_slice(p.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (section 4.2.2, item 5.4).
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let digest = sha.finalize();
    let mut out = [0u8; 28];
    // 20 bytes always encode to 28 base64 characters.
    let _ = STANDARD.encode_slice(digest, &mut out);
    out
}

/// The response refusing a handshake: `400 Bad Request`, or `426 Upgrade Required` with
/// the version this server speaks (section 4.4).
pub fn refusal(error: &HandshakeError) -> &'static [u8] {
    match error.status() {
        426 => b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        _ => b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    }
}

/// Parses the opening request at the start of `buf`: `Ok(None)` until its blank line
/// arrived, then the accepted request and the length of its head (bytes after it are
/// frames), or why it is refused. Checks in a fixed order, so one request always gets
/// one answer.
pub fn parse_request(buf: &[u8], config: &HandshakeConfig) -> Result<Option<(Accepted, usize)>, HandshakeError> {
    let window = &buf[..buf.len().min(config.max_head)];
    let Some(end) = memchr::memmem::find(window, b"\r\n\r\n") else {
        if buf.len() >= config.max_head {
            return Err(HandshakeError::TooLarge(config.max_head));
        }
        return Ok(None);
    };
    let head = &buf[..end];
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    request_line(lines.next().unwrap_or_default())?;

    let mut seen = Seen::default();
    let mut count = 0;
    for line in lines {
        count += 1;
        if count > config.max_headers {
            return Err(HandshakeError::TooLarge(config.max_headers));
        }
        let (name, value) = header_line(line)?;
        seen.note(name, value);
    }
    // Every line ended with CRLF: a bare LF inside the head split a line above, which
    // left a line without its CR.
    if head.split(|&b| b == b'\n').count() != memchr::memmem::find_iter(head, b"\r\n").count() + 1 {
        return Err(HandshakeError::HeaderLine);
    }
    if !seen.host {
        return Err(HandshakeError::NoHost);
    }
    if !seen.upgrade {
        return Err(HandshakeError::NoUpgrade);
    }
    if !seen.connection_upgrade {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    if !seen.version_13 || seen.other_version {
        return Err(HandshakeError::Version);
    }
    let key = match seen.keys.as_slice() {
        [key] if is_key(key) => *key,
        _ => return Err(HandshakeError::Key),
    };
    let subprotocol = if config.subprotocols.is_empty() {
        None
    } else {
        let chosen = config.subprotocols.iter().find(|ours| {
            seen.protocols
                .iter()
                .any(|p| tokens(p).any(|t| t.eq_ignore_ascii_case(ours.as_bytes())))
        });
        Some(*chosen.ok_or(HandshakeError::Subprotocol)?)
    };
    Ok(Some((
        Accepted {
            accept: accept_key(key),
            subprotocol,
        },
        end + 4,
    )))
}

/// What the headers said, as far as the handshake cares.
#[derive(Default)]
struct Seen<'a> {
    host: bool,
    upgrade: bool,
    connection_upgrade: bool,
    version_13: bool,
    other_version: bool,
    keys: Vec<&'a [u8]>,
    protocols: Vec<&'a [u8]>,
}

impl<'a> Seen<'a> {
    fn note(&mut self, name: &[u8], value: &'a [u8]) {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("host") {
            self.host = true;
        } else if is("upgrade") {
            self.upgrade |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"websocket"));
        } else if is("connection") {
            self.connection_upgrade |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"upgrade"));
        } else if is("sec-websocket-version") {
            for t in tokens(value) {
                if t == b"13" {
                    self.version_13 = true;
                } else {
                    self.other_version = true;
                }
            }
        } else if is("sec-websocket-key") && self.keys.len() < 2 {
            self.keys.push(value);
        } else if is("sec-websocket-protocol") && self.protocols.len() < 16 {
            self.protocols.push(value);
        }
    }
}

/// The comma-separated, trimmed, non-empty elements of a header value.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty())
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A key is the base64 of 16 bytes: 24 characters ending in `==` (section 4.1, item 7).
fn is_key(key: &[u8]) -> bool {
    let mut out = [0u8; 18];
    key.len() == 24 && STANDARD.decode_slice(key, &mut out) == Ok(16)
}

/// `GET SP target SP HTTP/major.minor`, with a version of at least 1.1.
fn request_line(line: &[u8]) -> Result<(), HandshakeError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HandshakeError::RequestLine);
    };
    if target.is_empty() || !target.iter().all(|b| b.is_ascii_graphic()) {
        return Err(HandshakeError::RequestLine);
    }
    if !method.iter().all(|&b| is_tchar(b)) || method.is_empty() {
        return Err(HandshakeError::RequestLine);
    }
    if method != b"GET" {
        return Err(HandshakeError::NotGet);
    }
    let Some((major, minor)) = version.strip_prefix(b"HTTP/").and_then(|v| {
        let dot = v.iter().position(|&b| b == b'.')?;
        Some((number(&v[..dot])?, number(&v[dot + 1..])?))
    }) else {
        return Err(HandshakeError::RequestLine);
    };
    if (major, minor) < (1, 1) {
        return Err(HandshakeError::HttpVersion);
    }
    Ok(())
}

/// A short run of ASCII digits.
fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

/// `name: value`: a token name, then a value of visible characters, spaces and tabs
/// (and bytes over 0x7F, which HTTP tolerates), trimmed. A line starting with a space
/// is an obsolete folded line, refused.
fn header_line(line: &[u8]) -> Result<(&[u8], &[u8]), HandshakeError> {
    let colon = line.iter().position(|&b| b == b':').ok_or(HandshakeError::HeaderLine)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(HandshakeError::HeaderLine);
    }
    if !value.iter().all(|&b| b == b'\t' || b >= b' ' && b != 0x7F) {
        return Err(HandshakeError::HeaderLine);
    }
    Ok((name, trim(value)))
}

/// A token character (RFC 9110 section 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat, mqtt\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn parse(req: &[u8]) -> Result<Option<(Accepted, usize)>, HandshakeError> {
        parse_request(req, &HandshakeConfig::MQTT)
    }

    fn with(replace: &str, by: &str) -> Vec<u8> {
        String::from_utf8_lossy(SAMPLE).replace(replace, by).into_bytes()
    }

    #[test]
    fn the_rfc_sample_key_gives_the_rfc_accept() {
        // Section 1.3's worked example.
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let (ok, used) = parse(SAMPLE).unwrap().unwrap();
        assert_eq!(used, SAMPLE.len());
        assert_eq!(ok.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(ok.subprotocol, Some("mqtt"));
        let response = String::from_utf8(ok.response()).unwrap();
        assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(response.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(response.contains("\r\nSec-WebSocket-Protocol: mqtt\r\n"));
        assert!(response.ends_with("\r\n\r\n"));
    }

    #[test]
    fn incomplete_heads_wait_and_trailing_bytes_are_left() {
        for cut in 0..SAMPLE.len() {
            assert_eq!(parse(&SAMPLE[..cut]), Ok(None), "cut at {cut}");
        }
        let more = [SAMPLE, b"\x82\x80abcd"].concat();
        assert_eq!(parse(&more).unwrap().unwrap().1, SAMPLE.len());
    }

    #[test]
    fn mqttv31_is_accepted_and_mqtt_preferred() {
        let v31 = with("chat, mqtt", "mqttv3.1");
        assert_eq!(parse(&v31).unwrap().unwrap().0.subprotocol, Some("mqttv3.1"));
        let both = with("chat, mqtt", "mqttv3.1, MQTT");
        assert_eq!(parse(&both).unwrap().unwrap().0.subprotocol, Some("mqtt"));
    }

    /// Section 4.2.1 lists what the server requires; each missing item is refused.
    #[test]
    fn section_4_2_1_requirements_are_refused_when_missing() {
        let cases: &[(&str, &str, HandshakeError)] = &[
            ("GET /chat", "POST /chat", HandshakeError::NotGet),
            ("HTTP/1.1\r\nHost", "HTTP/1.0\r\nHost", HandshakeError::HttpVersion),
            ("GET /chat HTTP/1.1", "GET  /chat HTTP/1.1", HandshakeError::RequestLine),
            ("Host: server.example.com\r\n", "", HandshakeError::NoHost),
            ("Upgrade: websocket", "Upgrade: h2c", HandshakeError::NoUpgrade),
            (
                "Connection: Upgrade",
                "Connection: keep-alive",
                HandshakeError::NoConnectionUpgrade,
            ),
            (
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Version: 8",
                HandshakeError::Version,
            ),
            ("Sec-WebSocket-Version: 13\r\n", "", HandshakeError::Version),
            (
                "dGhlIHNhbXBsZSBub25jZQ==",
                "dGhlIHNhbXBsZSBub25jZQ",
                HandshakeError::Key,
            ),
            (
                "dGhlIHNhbXBsZSBub25jZQ==",
                "dGhlIHNhbXBsZSBub25jZXg=",
                HandshakeError::Key,
            ),
            ("chat, mqtt", "chat", HandshakeError::Subprotocol),
            ("Host: server", " Host: server", HandshakeError::HeaderLine),
            ("Host: server", "Ho st: server", HandshakeError::HeaderLine),
            ("Host: server", "Host: ser\x01ver", HandshakeError::HeaderLine),
        ];
        for (from, to, error) in cases {
            let req = with(from, to);
            assert_eq!(parse(&req), Err(error.clone()), "{to:?}");
        }
        assert_eq!(HandshakeError::Version.status(), 426);
        assert!(refusal(&HandshakeError::Version).starts_with(b"HTTP/1.1 426 "));
        assert!(refusal(&HandshakeError::NoHost).starts_with(b"HTTP/1.1 400 "));
        // Tokens are matched in lists and without regard to case.
        let listed = with("Connection: Upgrade", "Connection: keep-alive, UPGRADE");
        assert!(parse(&listed).unwrap().is_some());
        // A repeated key is refused (section 4.2.1 item 5 wants exactly one).
        let twice = with(
            "Sec-WebSocket-Version",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version",
        );
        assert_eq!(parse(&twice), Err(HandshakeError::Key));
    }

    #[test]
    fn bare_line_feeds_are_refused() {
        let req = with("Upgrade: websocket\r\n", "Upgrade: websocket\n");
        assert_eq!(parse(&req), Err(HandshakeError::HeaderLine));
    }

    #[test]
    fn heads_over_the_limits_are_refused_before_their_end() {
        let config = HandshakeConfig {
            max_head: 100,
            ..HandshakeConfig::MQTT
        };
        let long = vec![b'a'; 100];
        assert_eq!(parse_request(&long, &config), Err(HandshakeError::TooLarge(100)));
        assert_eq!(parse_request(&long[..99], &config), Ok(None));
        let many: Vec<u8> = [&b"GET / HTTP/1.1\r\n"[..], &b"X: y\r\n".repeat(65), b"\r\n"].concat();
        assert_eq!(parse(&many), Err(HandshakeError::TooLarge(64)));
    }
}
