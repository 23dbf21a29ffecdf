//! The NATS header block reader ([`Headers`]) on arbitrary bytes.
//!
//! A header block reaches a client as the first `hdr_len` bytes of an `HMSG`, whatever
//! they hold, and is parsed only when the application looks: every accessor must work on
//! any bytes, hand out views of the block, and agree with the strict check and with the
//! builder that writes blocks.

use bytes::Bytes;

use crate::nats::{HeaderMap, Headers, StatusCode};

/// Reads `data` as a header block with every accessor and checks what they return
/// against each other; a block that passes [`Headers::validate`] is rebuilt with
/// [`HeaderMap`] and must read back the same.
pub fn nats_headers(data: &[u8]) {
    let raw = Bytes::copy_from_slice(data);
    let headers = Headers::from_raw(raw.clone());
    let within = |view: &Bytes| {
        let start = view.as_ptr() as usize;
        let base = raw.as_ptr() as usize;
        view.is_empty() || (start >= base && start + view.len() <= base + raw.len())
    };

    let status = headers.status();
    let description = headers.description();
    if let Some(d) = &description {
        assert!(status.is_some(), "a description without a status");
        assert!(within(d), "the description is not a view of the block");
        assert!(!d.is_empty(), "an empty description is reported as none");
        assert!(!d.contains(&b'\n'), "a description spans lines");
    }
    if let Some(code) = status {
        assert!(code.as_u16() <= 999, "status {code} is more than three digits");
        assert_eq!(StatusCode::from_u16(code.as_u16()), code);
        assert_eq!(headers.is_no_responders(), code.as_u16() == 503);
    }

    let pairs: Vec<(Bytes, Bytes)> = headers.iter().collect();
    for (name, value) in &pairs {
        assert!(within(name) && within(value), "a pair is not a view of the block");
        assert!(!name.is_empty(), "an empty name");
        assert!(!name.contains(&b':'), "a name holds the colon");
        for part in [name, value] {
            assert!(!part.contains(&b'\n'), "a name or value spans lines");
            assert!(
                !matches!(part.first(), Some(b' ' | b'\t')) && !matches!(part.last(), Some(b' ' | b'\t')),
                "an untrimmed name or value"
            );
        }
        let first = pairs.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        assert_eq!(headers.get(name).as_ref(), first, "get disagrees with iter");
        let all: Vec<Bytes> = headers.get_all(name).collect();
        assert_eq!(
            all.len(),
            pairs.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count()
        );
    }

    if headers.validate().is_err() || headers.is_empty() {
        return;
    }
    // A valid block: the builder writes one that reads back the same (where the values
    // are ones the builder accepts; a reader takes a lone CR inside a value, a writer
    // does not).
    let mut map = HeaderMap::new();
    if let Some(code) = status {
        if map
            .set_status(code.as_u16(), description.clone().unwrap_or_default())
            .is_err()
        {
            return;
        }
    }
    for (name, value) in &pairs {
        if map.append(name.clone(), value.clone()).is_err() {
            return;
        }
    }
    let rebuilt = map.to_headers();
    assert_eq!(rebuilt.len(), map.encoded_len(), "encoded_len disagrees with the block");
    assert_eq!(rebuilt.validate(), Ok(()), "the builder wrote an invalid block");
    assert_eq!(rebuilt.status(), status);
    assert_eq!(rebuilt.description(), description);
    assert_eq!(
        rebuilt.iter().collect::<Vec<_>>(),
        pairs,
        "the rebuilt block reads differently"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_servers_send_and_junk() {
        for block in [
            &b""[..],
            b"NATS/1.0\r\n\r\n",
            b"NATS/1.0 503\r\n\r\n",
            b"NATS/1.0 404 No Messages\r\n\r\n",
            b"NATS/1.0 503abc\r\n\r\n",
            b"NATS/1.0\r\nA: 1\r\nb:2\nNats-Msg-Id:  x \r\n\r\n",
            b"NATS/1.0\r\nno colon\r\n:empty name\r\n\r\n",
            b"NATS/1.0\r\nA: x\ry\r\n\r\n",
            b"NATS/1.0 12",
            b"\r\n\r\n\r\n",
            b"NATS/1.0\r\nA: 1\r\n\r\ntrailing",
        ] {
            nats_headers(block);
        }
    }
}
