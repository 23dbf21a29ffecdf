//! The broker's config file (`monocoque mqtt broker --config FILE`): TOML, read into
//! the [`ConnectionConfig`] limits and the [`Access`] rules of the sans-IO broker.
//!
//! ```toml
//! listen = "127.0.0.1:1883"          # --listen overrides it
//! allow_anonymous = false            # default: true without users, false with
//!
//! [limits]
//! max_packet_size = 1048576          # bytes, checked from the fixed header
//! topic_alias_maximum = 10           # each way; 0 turns topic aliases off
//! max_keep_alive = 60                # seconds: 5.0 clients get it as Server Keep Alive,
//!                                    # 3.1.1 clients asking for more (or 0) are refused
//! receive_maximum = 1024             # QoS 2 messages a client may have unreleased (0x93)
//! max_inflight = 1024                # QoS 1/2 messages in flight to a client
//! max_queued_messages = 1000         # QoS 1/2 messages a session queues (offline too)
//! max_output_bytes = 1048576         # unsent bytes before a connection stops taking more
//! connect_timeout = 10               # seconds to send CONNECT (and each AUTH step)
//!
//! [[user]]                           # `monocoque mqtt passwd` prints a hash
//! name = "alice"
//! password_hash = "pbkdf2-sha256$100000$<salt hex>$<hash hex>"
//! publish = ["sensors/alice/#"]      # this user's ACL rules (topic filters)
//! subscribe = ["sensors/#"]
//!
//! [acl]                              # present (or any user rule): the ACL is enforced
//! all = { publish = ["clients/%c/#"], subscribe = ["clients/%c/#", "users/%u/#"] }
//! anonymous = { subscribe = ["public/#"] }
//!
//! [redirect]                         # send every client elsewhere (CONNACK 0x9C/0x9D)
//! server_reference = "other.example:1883"
//! permanent = false
//! ```
//!
//! Unknown keys are refused, so a misspelt limit is an error rather than a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use monocoque_proto::mqtt::broker::{
    Access, Acl, ConnectionConfig, PasswordHash, PasswordHashError, Redirect, Rules, Users,
};
use serde::Deserialize;

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, or not this format.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// A user's password hash is not in the expected form.
    #[error("user {user}: {source}")]
    PasswordHash {
        /// The user.
        user: String,
        /// What is wrong with it.
        #[source]
        source: PasswordHashError,
    },
    /// Two users of one name.
    #[error("user {0} is defined twice")]
    DuplicateUser(String),
    /// A limit outside what MQTT allows.
    #[error("limits.{0} is out of range")]
    Limit(&'static str),
}

/// The file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<SocketAddr>,
    allow_anonymous: Option<bool>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    user: Vec<UserEntry>,
    acl: Option<AclEntry>,
    redirect: Option<RedirectEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    max_packet_size: Option<u32>,
    topic_alias_maximum: Option<u16>,
    max_keep_alive: Option<u16>,
    receive_maximum: Option<u16>,
    max_inflight: Option<u16>,
    max_queued_messages: Option<usize>,
    max_output_bytes: Option<usize>,
    connect_timeout: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    password_hash: String,
    publish: Option<Vec<String>>,
    subscribe: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesEntry {
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    subscribe: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AclEntry {
    #[serde(default)]
    all: RulesEntry,
    #[serde(default)]
    anonymous: RulesEntry,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedirectEntry {
    server_reference: String,
    #[serde(default)]
    permanent: bool,
}

/// A broker's configuration, read from its file.
#[derive(Debug)]
pub struct BrokerConfig {
    /// The address to listen on, if the file names one.
    pub listen: Option<SocketAddr>,
    /// The limits of each connection.
    pub connection: ConnectionConfig,
    /// Users, ACL, redirection.
    pub access: Access,
}

impl BrokerConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<BrokerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Reads and checks a config file's text.
    pub fn parse(text: &str) -> Result<BrokerConfig, ConfigError> {
        let file: File = toml::from_str(text)?;
        let mut connection = ConnectionConfig::default();
        let limits = &file.limits;
        if let Some(max) = limits.max_packet_size {
            // 2 bytes is the smallest packet; 268,435,455 + 5 the largest (1.5.5).
            if !(2..=268_435_460).contains(&max) {
                return Err(ConfigError::Limit("max_packet_size"));
            }
            connection.max_packet_size = max;
        }
        if let Some(max) = limits.topic_alias_maximum {
            connection.topic_alias_maximum = max;
        }
        if let Some(keep_alive) = limits.max_keep_alive {
            if keep_alive == 0 {
                return Err(ConfigError::Limit("max_keep_alive"));
            }
            connection.max_keep_alive = Some(keep_alive);
        }
        if let Some(max) = limits.receive_maximum {
            // 0 is a protocol error in a CONNACK's Receive Maximum (3.2.2.3.3).
            if max == 0 {
                return Err(ConfigError::Limit("receive_maximum"));
            }
            connection.receive_maximum = max;
        }
        if let Some(max) = limits.max_inflight {
            if max == 0 {
                return Err(ConfigError::Limit("max_inflight"));
            }
            connection.max_inflight = max;
        }
        if let Some(max) = limits.max_queued_messages {
            connection.max_queued_messages = max;
        }
        if let Some(max) = limits.max_output_bytes {
            if max == 0 {
                return Err(ConfigError::Limit("max_output_bytes"));
            }
            connection.max_output_bytes = max;
        }
        if let Some(secs) = limits.connect_timeout {
            if secs == 0 {
                return Err(ConfigError::Limit("connect_timeout"));
            }
            connection.connect_timeout = Duration::from_secs(secs);
        }

        let mut access = Access::default();
        let with_rules = file.acl.is_some() || file.user.iter().any(|u| u.publish.is_some() || u.subscribe.is_some());
        let mut acl = with_rules.then(Acl::default);
        if let (Some(acl), Some(entry)) = (acl.as_mut(), file.acl) {
            acl.all = rules(entry.all);
            acl.anonymous = rules(entry.anonymous);
        }
        if !file.user.is_empty() || file.allow_anonymous == Some(false) {
            let mut users = Users::new(file.allow_anonymous.unwrap_or(file.user.is_empty()));
            let mut seen = std::collections::HashSet::new();
            for u in file.user {
                if !seen.insert(u.name.clone()) {
                    return Err(ConfigError::DuplicateUser(u.name));
                }
                let hash = PasswordHash::parse(&u.password_hash).map_err(|source| ConfigError::PasswordHash {
                    user: u.name.clone(),
                    source,
                })?;
                users.insert(&u.name, hash);
                if let Some(acl) = acl.as_mut() {
                    let own = rules(RulesEntry {
                        publish: u.publish.unwrap_or_default(),
                        subscribe: u.subscribe.unwrap_or_default(),
                    });
                    acl.users.insert(u.name, own);
                }
            }
            access.users = Some(users);
        }
        access.acl = acl;
        access.redirect = file.redirect.map(|r| Redirect {
            server_reference: Bytes::from(r.server_reference),
            permanent: r.permanent,
        });
        Ok(BrokerConfig {
            listen: file.listen,
            connection,
            access,
        })
    }
}

fn rules(entry: RulesEntry) -> Rules {
    Rules {
        publish: entry.publish,
        subscribe: entry.subscribe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "pbkdf2-sha256$1000$30313233343536373839616263646566$\
        0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn a_full_file_reads_into_limits_and_access() {
        let hash = PasswordHash::new(b"wonderland", b"0123456789abcdef", 1000).to_string();
        let text = format!(
            r#"
listen = "127.0.0.1:1999"
[limits]
max_packet_size = 4096
topic_alias_maximum = 3
max_keep_alive = 30
receive_maximum = 16
max_inflight = 8
max_queued_messages = 50
max_output_bytes = 65536
connect_timeout = 2
[[user]]
name = "alice"
password_hash = "{hash}"
publish = ["a/#"]
[acl]
all = {{ subscribe = ["clients/%c/#"] }}
[redirect]
server_reference = "other:1883"
permanent = true
"#
        );
        let c = BrokerConfig::parse(&text).unwrap();
        assert_eq!(c.listen, Some("127.0.0.1:1999".parse().unwrap()));
        assert_eq!(c.connection.max_packet_size, 4096);
        assert_eq!(c.connection.topic_alias_maximum, 3);
        assert_eq!(c.connection.max_keep_alive, Some(30));
        assert_eq!(c.connection.receive_maximum, 16);
        assert_eq!(c.connection.max_inflight, 8);
        assert_eq!(c.connection.max_queued_messages, 50);
        assert_eq!(c.connection.max_output_bytes, 65536);
        assert_eq!(c.connection.connect_timeout, Duration::from_secs(2));
        let users = c.access.users.as_ref().unwrap();
        assert!(!users.allow_anonymous, "users given: anonymous refused by default");
        assert_eq!(users.check(Some(b"alice"), Some(b"wonderland")), Ok(()));
        let acl = c.access.acl.as_ref().unwrap();
        let alice = acl.for_client(Some(b"alice"), b"c1");
        assert!(alice.may_publish(b"a/b") && !alice.may_publish(b"b"));
        assert!(alice.may_subscribe(b"clients/c1/x") && !alice.may_subscribe(b"a/#"));
        let r = c.access.redirect.as_ref().unwrap();
        assert_eq!((&r.server_reference[..], r.permanent), (&b"other:1883"[..], true));
    }

    #[test]
    fn an_empty_file_is_the_open_default_and_mistakes_are_refused() {
        let c = BrokerConfig::parse("").unwrap();
        assert!(c.access.users.is_none() && c.access.acl.is_none() && c.access.redirect.is_none());
        assert_eq!(c.connection, ConnectionConfig::default());
        for bad in [
            "[limits]\nmax_pakcet_size = 1",
            "[limits]\nmax_packet_size = 1",
            "[limits]\nmax_keep_alive = 0",
            "[[user]]\nname = \"a\"\npassword_hash = \"plain\"",
            "[[user]]\nname = \"a\"\npassword = \"plain\"",
            "listen = \"nowhere\"",
        ] {
            assert!(BrokerConfig::parse(bad).is_err(), "{bad}");
        }
        let twice = format!(
            "[[user]]\nname = \"a\"\npassword_hash = \"{HASH}\"\n[[user]]\nname = \"a\"\npassword_hash = \"{HASH}\""
        );
        assert!(matches!(
            BrokerConfig::parse(&twice),
            Err(ConfigError::DuplicateUser(_))
        ));
    }
}
