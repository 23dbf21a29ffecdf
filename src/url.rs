//! The parts of `redis://` and `nats://` URLs both clients parse the same way.

/// Why a `host[:port]` authority was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthorityError {
    /// `[` without its closing `]`.
    Ipv6,
    /// The port is not a number in 1..=65535 (or junk follows `]`).
    Port(String),
    /// Nothing before the port.
    MissingHost,
}

/// Splits `host[:port]` or `[v6]:port`; `default_port` when no port is given.
pub(crate) fn split_host_port(hostport: &str, default_port: u16) -> Result<(String, u16), AuthorityError> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let end = rest.find(']').ok_or(AuthorityError::Ipv6)?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| AuthorityError::Port(p.to_owned()))?),
        };
        (host, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(AuthorityError::MissingHost);
    }
    let port = match port {
        None | Some("") => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 => n,
            _ => return Err(AuthorityError::Port(p.to_owned())),
        },
    };
    Ok((host.to_owned(), port))
}

/// Decodes `%XX` escapes; `None` for a broken escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            out.push(hex_value(hex[0])? << 4 | hex_value(hex[1])?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
