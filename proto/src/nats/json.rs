//! The JSON bodies of `INFO` (server to client) and `CONNECT` (client to server).
//!
//! Both parse with every field optional and unknown fields ignored, so a newer server or
//! client that adds fields is understood; both serialise without the optional fields that
//! are unset, as nats-server and nats.go do.

use serde::{Deserialize, Serialize};

/// What a server says about itself in `INFO`, first on every connection and again later
/// (cluster changes, lame-duck mode).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerInfo {
    /// The server's unique id.
    pub server_id: String,
    /// The server's configured name (its id when none was configured).
    pub server_name: String,
    /// The server's version.
    pub version: String,
    /// The Go version the server was built with.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub go: String,
    /// The protocol level: 1 supports `INFO` updates and headers-era features.
    pub proto: i32,
    /// The git commit the server was built from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// The address the server listens on.
    pub host: String,
    /// The port the server listens on.
    pub port: u16,
    /// Whether the server supports `HPUB`/`HMSG`.
    pub headers: bool,
    /// The largest payload (headers included) the server accepts.
    pub max_payload: i64,
    /// Whether `CONNECT` must carry credentials.
    #[serde(skip_serializing_if = "is_false")]
    pub auth_required: bool,
    /// Whether the connection must be upgraded to TLS.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    /// Whether the server verifies client certificates.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    /// Whether the client may upgrade to TLS (but need not).
    #[serde(skip_serializing_if = "is_false")]
    pub tls_available: bool,
    /// Whether JetStream is enabled.
    #[serde(skip_serializing_if = "is_false")]
    pub jetstream: bool,
    /// The nonce an NKey client signs in `CONNECT` (`sig`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Other servers of the cluster a client may connect to (`host:port`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    /// Other servers of the cluster reachable over WebSocket.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ws_connect_urls: Vec<String>,
    /// Lame-duck mode: the server is shutting down, clients should move elsewhere.
    #[serde(skip_serializing_if = "is_false")]
    pub ldm: bool,
    /// The id the server gave this client connection.
    #[serde(skip_serializing_if = "is_zero")]
    pub client_id: u64,
    /// The client's address as the server sees it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// The server's own address, when configured to advertise it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The cluster's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The JetStream domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The server's curve key for encrypted replies (xkey).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xkey: Option<String>,
}

/// What a client says about itself and its credentials in `CONNECT`.
///
/// [`Default`] is what nats-server assumes for a field a client leaves out (verbose,
/// pedantic and echo on, everything else off); [`ConnectOptions::client`] is what this
/// crate's client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectOptions {
    /// Ask the server to acknowledge every op with `+OK`.
    pub verbose: bool,
    /// Ask the server to check subjects strictly.
    pub pedantic: bool,
    /// Whether the client requires TLS.
    pub tls_required: bool,
    /// Token authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// User for user/password authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password for user/password authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// The connection's name, shown in monitoring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The client's implementation language.
    pub lang: String,
    /// The client's version.
    pub version: String,
    /// 0: original protocol; 1: the client understands `INFO` updates.
    pub protocol: u8,
    /// Whether the client receives its own publishes on its subscriptions.
    pub echo: bool,
    /// The NKey signature of the server's nonce (base64url).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// The user JWT (JWT authentication).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    /// The client's public NKey (NKey authentication).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
    /// Whether the client understands `HMSG`.
    pub headers: bool,
    /// Whether the client wants a 503 status message when a request has no responders.
    pub no_responders: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            verbose: true,
            pedantic: true,
            tls_required: false,
            auth_token: None,
            user: None,
            pass: None,
            name: None,
            lang: String::new(),
            version: String::new(),
            protocol: 0,
            echo: true,
            sig: None,
            jwt: None,
            nkey: None,
            headers: false,
            no_responders: false,
        }
    }
}

impl ConnectOptions {
    /// What Monocoque's client sends by default: not verbose, not pedantic, protocol 1,
    /// echo, headers and no-responders on, no credentials.
    pub fn client() -> Self {
        Self {
            verbose: false,
            pedantic: false,
            lang: "rust".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol: 1,
            headers: true,
            no_responders: true,
            ..Self::default()
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_nats_server_info_parses() {
        // As nats-server 2.10 sends it, fields we do not model included.
        let json = br#"{"server_id":"NDJ3ZQ4Z","server_name":"n1","version":"2.10.16","proto":1,"git_commit":"80bc9a0","go":"go1.22.3","host":"0.0.0.0","port":4222,"headers":true,"auth_required":true,"max_payload":1048576,"jetstream":true,"client_id":5,"client_ip":"127.0.0.1","nonce":"abc-_","cluster":"c","connect_urls":["10.0.0.2:4222","10.0.0.3:4222"],"ldm":true,"xkey":"XA","unknown_future_field":{"x":[1,2]}}"#;
        let info: ServerInfo = serde_json::from_slice(json).unwrap();
        assert_eq!(info.server_id, "NDJ3ZQ4Z");
        assert_eq!(info.port, 4222);
        assert_eq!(info.max_payload, 1 << 20);
        assert!(info.headers && info.auth_required && info.jetstream && info.ldm);
        assert!(!info.tls_required && !info.tls_available);
        assert_eq!(info.nonce.as_deref(), Some("abc-_"));
        assert_eq!(info.connect_urls, ["10.0.0.2:4222", "10.0.0.3:4222"]);
        assert_eq!(info.client_id, 5);
        let again: ServerInfo = serde_json::from_slice(&serde_json::to_vec(&info).unwrap()).unwrap();
        assert_eq!(again, info);
    }

    #[test]
    fn empty_info_takes_defaults() {
        let info: ServerInfo = serde_json::from_slice(b"{}").unwrap();
        assert_eq!(info, ServerInfo::default());
        let text = serde_json::to_string(&info).unwrap();
        assert!(!text.contains("nonce") && !text.contains("connect_urls"), "{text}");
    }

    #[test]
    fn connect_skips_unset_credentials() {
        let mut opts = ConnectOptions::client();
        let text = serde_json::to_string(&opts).unwrap();
        for absent in ["auth_token", "user", "pass", "name", "sig", "jwt", "nkey"] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
        assert!(text.contains(r#""verbose":false"#) && text.contains(r#""headers":true"#));
        assert!(text.contains(r#""no_responders":true"#) && text.contains(r#""protocol":1"#));
        opts.user = Some("u".into());
        opts.pass = Some("p\"".into());
        let again: ConnectOptions = serde_json::from_str(&serde_json::to_string(&opts).unwrap()).unwrap();
        assert_eq!(again, opts);
    }

    #[test]
    fn missing_connect_fields_mean_what_nats_server_assumes() {
        let opts: ConnectOptions = serde_json::from_slice(br#"{"lang":"go","extra":1}"#).unwrap();
        assert!(opts.verbose && opts.pedantic && opts.echo);
        assert!(!opts.headers && !opts.no_responders);
        assert_eq!(opts.lang, "go");
    }
}
