//! The parts of `redis://` and `nats://` URLs both clients parse the same way, and
//! [`UrlError`], why either refused one.

/// Why a server URL (`redis://...`, `nats://...`) was rejected, by either client's
/// `ClientOptions::from_url`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Nothing to connect to (an empty string, or only commas).
    #[error("no server URL given")]
    Empty,
    /// Not the client's scheme (`rediss://`, `tls://`: TLS and websockets are not
    /// supported yet).
    #[error("unsupported scheme in {url:?}: expected {expected}:// (TLS and websockets are not supported)")]
    Scheme {
        /// The URL as given (with any password masked).
        url: String,
        /// The scheme the client takes (`redis`, `nats`).
        expected: &'static str,
    },
    /// Nothing between the scheme (or `@`) and the port or path: what stood there.
    #[error("missing host in {0:?}")]
    MissingHost(String),
    /// The port is not a number from 1 to 65535.
    #[error("invalid port {0:?}")]
    Port(String),
    /// A Redis URL's path is not `/` followed by a database number.
    #[error("invalid database {0:?}: expected /<number>")]
    Database(String),
    /// A `%` not followed by two hex digits, or decoded bytes that are not UTF-8, in
    /// the part named.
    #[error("invalid percent-encoding in the {0}")]
    PercentEncoding(&'static str),
    /// An IPv6 address opened with `[` but never closed.
    #[error("unterminated IPv6 address")]
    Ipv6,
    /// A part the client's URLs do not have (a query or a fragment; a path, for NATS):
    /// what it would set, the builder methods of `ClientOptions` do.
    #[error("unsupported URL part {0:?}: use ClientOptions' builder methods instead")]
    Unsupported(String),
}

/// What follows `scheme://` in `url` (the scheme in any case), if `url` starts with it.
pub(crate) fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    let rest = url.get(scheme.len()..)?.strip_prefix("://")?;
    url[..scheme.len()].eq_ignore_ascii_case(scheme).then_some(rest)
}

/// [`percent_decode`] of `s`, the URL's `what` (user name, password, token).
pub(crate) fn decode_part(s: &str, what: &'static str) -> Result<String, UrlError> {
    percent_decode(s).ok_or(UrlError::PercentEncoding(what))
}

/// Splits `host[:port]` or `[v6]:port`; `default_port` when no port is given.
pub(crate) fn split_host_port(hostport: &str, default_port: u16) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let end = rest.find(']').ok_or(UrlError::Ipv6)?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| UrlError::Port(p.to_owned()))?),
        };
        (host, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost(hostport.to_owned()));
    }
    let port = match port {
        None | Some("") => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 => n,
            _ => return Err(UrlError::Port(p.to_owned())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_match_in_any_case() {
        assert_eq!(strip_scheme("REDIS://h:1", "redis"), Some("h:1"));
        assert_eq!(strip_scheme("nats://", "nats"), Some(""));
        assert_eq!(strip_scheme("rediss://h", "redis"), None);
        assert_eq!(strip_scheme("redis:/h", "redis"), None);
        assert_eq!(strip_scheme("ré", "redis"), None);
    }

    #[test]
    fn authorities() {
        assert_eq!(split_host_port("h", 7), Ok(("h".into(), 7)));
        assert_eq!(split_host_port("[::1]:8", 7), Ok(("::1".into(), 8)));
        assert_eq!(split_host_port(":8", 7), Err(UrlError::MissingHost(":8".into())));
        assert_eq!(split_host_port("h:0", 7), Err(UrlError::Port("0".into())));
        assert_eq!(split_host_port("[::1", 7), Err(UrlError::Ipv6));
        assert_eq!(decode_part("a%2Fb", "token"), Ok("a/b".into()));
        assert_eq!(decode_part("%zz", "token"), Err(UrlError::PercentEncoding("token")));
    }
}
