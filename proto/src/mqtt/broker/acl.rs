//! Access control: which topics a client may publish to and which filters it may
//! subscribe to.
//!
//! An [`Acl`] holds topic patterns per user, for anonymous clients, and for every
//! client (mosquitto's `pattern` rules), where `%u` stands for the username and `%c`
//! for the client identifier. At `CONNECT` the broker resolves them into one
//! [`ClientAcl`] for the connection. Anything no pattern allows is refused.

use std::collections::HashMap;

use bytes::Bytes;

use crate::mqtt::topic_matches;

/// Patterns a set of clients may publish to and subscribe to (topic filters, with
/// `%u`/`%c` in the common rules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Filters of the topics it may publish to.
    pub publish: Vec<String>,
    /// Filters that bound what it may subscribe to.
    pub subscribe: Vec<String>,
}

/// The access control list of a broker.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    /// Rules of each user, by username.
    pub users: HashMap<String, Rules>,
    /// Rules of clients that gave no username.
    pub anonymous: Rules,
    /// Rules for every client, after `%u`/`%c` substitution (a pattern with `%u` does
    /// not apply to an anonymous client).
    pub all: Rules,
}

impl Acl {
    /// The rules of one client, resolved.
    pub fn for_client(&self, username: Option<&[u8]>, client_id: &[u8]) -> ClientAcl {
        let mut acl = ClientAcl::default();
        let own = match username {
            Some(name) => std::str::from_utf8(name).ok().and_then(|n| self.users.get(n)),
            None => Some(&self.anonymous),
        };
        if let Some(own) = own {
            acl.publish
                .extend(own.publish.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())));
            acl.subscribe
                .extend(own.subscribe.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())));
        }
        let resolve = |p: &String| substitute(p, username, client_id);
        acl.publish.extend(self.all.publish.iter().filter_map(resolve));
        acl.subscribe.extend(self.all.subscribe.iter().filter_map(resolve));
        acl
    }
}

/// `pattern` with `%u` and `%c` replaced; `None` when it names a username the client
/// does not have, or a value that would change the filter's structure (a `/`, `+` or
/// `#` in it: a client id `#` must not widen `clients/%c/#`).
fn substitute(pattern: &str, username: Option<&[u8]>, client_id: &[u8]) -> Option<Bytes> {
    let safe = |v: &[u8]| memchr::memchr3(b'/', b'+', b'#', v).is_none();
    if !pattern.contains('%') {
        return Some(Bytes::copy_from_slice(pattern.as_bytes()));
    }
    let mut out = Vec::with_capacity(pattern.len() + 16);
    let mut rest = pattern.as_bytes();
    while let Some(i) = memchr::memchr(b'%', rest) {
        out.extend_from_slice(&rest[..i]);
        match rest.get(i + 1) {
            Some(b'u') => {
                let u = username?;
                if !safe(u) {
                    return None;
                }
                out.extend_from_slice(u);
            }
            Some(b'c') => {
                if !safe(client_id) {
                    return None;
                }
                out.extend_from_slice(client_id);
            }
            _ => {
                out.push(b'%');
                rest = &rest[i + 1..];
                continue;
            }
        }
        rest = &rest[i + 2..];
    }
    out.extend_from_slice(rest);
    Some(Bytes::from(out))
}

/// One connection's resolved rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAcl {
    publish: Vec<Bytes>,
    subscribe: Vec<Bytes>,
}

impl ClientAcl {
    /// Whether the client may publish to `topic`.
    pub fn may_publish(&self, topic: &[u8]) -> bool {
        self.publish.iter().any(|p| topic_matches(p, topic))
    }

    /// Whether the client may subscribe to `filter` (for a shared subscription, the
    /// filter after `$share/{group}/`): some pattern must cover every topic the filter
    /// can match.
    pub fn may_subscribe(&self, filter: &[u8]) -> bool {
        self.subscribe.iter().any(|p| covers(p, filter))
    }
}

/// Whether every topic `filter` matches is matched by `pattern`.
fn covers(pattern: &[u8], filter: &[u8]) -> bool {
    // A `$` topic is reached only by a pattern that names its first level.
    if pattern.first().is_some_and(|b| matches!(b, b'+' | b'#')) && filter.first() == Some(&b'$') {
        return false;
    }
    let mut p = pattern.split(|&b| b == b'/');
    let mut f = filter.split(|&b| b == b'/');
    loop {
        match (p.next(), f.next()) {
            (Some(b"#"), _) => return true,
            (Some(b"+"), Some(fl)) if fl != b"#" => {}
            (Some(pl), Some(fl)) if pl == fl && pl != b"+" && pl != b"#" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(publish: &[&str], subscribe: &[&str]) -> Rules {
        Rules {
            publish: publish.iter().map(|s| s.to_string()).collect(),
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn coverage_of_filters_by_patterns() {
        for (pattern, filter, want) in [
            ("a/#", "a/#", true),
            ("a/#", "a", true),
            ("a/#", "a/+/c", true),
            ("a/+", "a/b", true),
            ("a/+", "a/+", true),
            ("a/+", "a/#", false),
            ("a/b", "a/+", false),
            ("a/b", "a/b", true),
            ("#", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("a/+/c", "a/b/c/d", false),
        ] {
            assert_eq!(
                covers(pattern.as_bytes(), filter.as_bytes()),
                want,
                "{pattern} vs {filter}"
            );
        }
    }

    #[test]
    fn per_user_anonymous_and_substituted_patterns() {
        let mut acl = Acl {
            anonymous: rules(&[], &["public/#"]),
            all: rules(&["clients/%c/#", "users/%u/out"], &["clients/%c/#"]),
            ..Acl::default()
        };
        acl.users
            .insert("alice".into(), rules(&["sensors/alice/#"], &["sensors/#"]));
        let alice = acl.for_client(Some(b"alice"), b"c1");
        assert!(alice.may_publish(b"sensors/alice/t"));
        assert!(!alice.may_publish(b"sensors/bob/t"));
        assert!(alice.may_publish(b"clients/c1/x"));
        assert!(!alice.may_publish(b"clients/c2/x"));
        assert!(alice.may_publish(b"users/alice/out"));
        assert!(alice.may_subscribe(b"sensors/+/t"));
        assert!(!alice.may_subscribe(b"#"));
        let anon = acl.for_client(None, b"c9");
        assert!(anon.may_subscribe(b"public/x"));
        assert!(!anon.may_publish(b"users//out"), "%u needs a username");
        assert!(anon.may_publish(b"clients/c9/x"));
        // A client id that would widen the pattern gets nothing from it.
        let sneaky = acl.for_client(None, b"#");
        assert!(!sneaky.may_publish(b"clients/other/x"));
        // An unknown user gets only the common patterns.
        let bob = acl.for_client(Some(b"bob"), b"b");
        assert!(!bob.may_publish(b"sensors/alice/t"));
        assert!(bob.may_publish(b"users/bob/out"));
    }
}
