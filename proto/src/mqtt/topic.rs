//! Topic name and topic filter syntax (4.7), for the broker to judge what the codec
//! passes through: a bad filter is refused per subscription in `SUBACK`, not by closing
//! the connection.

/// Whether `name` can be a `PUBLISH` topic name: at least one byte, no `+` or `#`
/// [MQTT-4.7.3-1, MQTT-3.3.2-2]. (The codec checks the UTF-8 rules.)
pub fn valid_topic_name(name: &[u8]) -> bool {
    !name.is_empty() && memchr::memchr2(b'+', b'#', name).is_none()
}

/// Whether `filter` is a well-formed topic filter: at least one byte, `#` only as the
/// whole last level, `+` only as a whole level [MQTT-4.7.1-1, MQTT-4.7.1-2]; for a
/// shared subscription `$share/{group}/{filter}`, a group without `/`, `+` or `#` and a
/// valid filter after it [MQTT-4.8.2-1, MQTT-4.8.2-2].
pub fn valid_topic_filter(filter: &[u8]) -> bool {
    if let Some(rest) = filter.strip_prefix(b"$share/") {
        let Some(slash) = memchr::memchr(b'/', rest) else {
            return false;
        };
        let (group, inner) = (&rest[..slash], &rest[slash + 1..]);
        return !group.is_empty() && memchr::memchr2(b'+', b'#', group).is_none() && plain_filter(inner);
    }
    plain_filter(filter)
}

fn plain_filter(filter: &[u8]) -> bool {
    if filter.is_empty() {
        return false;
    }
    let mut levels = filter.split(|&b| b == b'/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        match level {
            b"#" if last => {}
            b"+" => {}
            _ if memchr::memchr2(b'+', b'#', level).is_some() => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_topic_name(b"a/b"));
        assert!(valid_topic_name(b"/"));
        assert!(!valid_topic_name(b""));
        assert!(!valid_topic_name(b"a/+"));
        assert!(!valid_topic_name(b"a/#"));
    }

    #[test]
    fn filters_of_section_4_7() {
        for ok in [
            &b"sport/tennis/player1/#"[..],
            b"#",
            b"+",
            b"+/tennis/#",
            b"sport/+/player1",
            b"/+",
            b"$share/g/a/#",
        ] {
            assert!(valid_topic_filter(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b""[..],
            b"sport/tennis#",
            b"sport/tennis/#/ranking",
            b"sport+",
            b"$share/g",
            b"$share//a",
            b"$share/g+/a",
            b"$share/g/",
        ] {
            assert!(!valid_topic_filter(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
