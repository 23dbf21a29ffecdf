//! The options of a [`Socket`](super::Socket), named after libzmq's.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use monocoque_proto::chassis::link::ReconnectPolicy;
use monocoque_proto::zmtp::curve::{KeyError, KeyPair, PublicKey, SecretKey};
use monocoque_proto::zmtp::{AuthDecision, AuthRequest, Mechanism};
use thiserror::Error;

use crate::driver::DriverKind;

/// How a [`Socket`](super::Socket) behaves; the defaults are libzmq's where it has one.
///
/// Security, as libzmq's options choose it: `curve_server` (with `curve_secret_key`)
/// makes a CURVE server; `curve_server_key` (with our `curve_secret_key`, and
/// optionally `curve_public_key` to check it against) a CURVE client; `plain_server` a
/// PLAIN server; `plain_username` (with `plain_password`) a PLAIN client; none of
/// them, NULL. A server asks the ZAP handler at [`zap_endpoint`](Self::zap_endpoint)
/// about each peer, or else [`authenticator`](Self::authenticator), and without either
/// accepts every peer that completes the handshake, as libzmq does when no ZAP handler
/// is installed.
#[derive(Debug, Clone)]
pub struct Options {
    /// The driver the socket runs on.
    pub driver: DriverKind,
    /// `ZMQ_ROUTING_ID`: the identity a DEALER announces (a ROUTER peer routes by it).
    pub identity: Bytes,
    /// `ZMQ_SNDHWM`: messages queued per peer before DEALER and PUSH block and PUB and
    /// ROUTER drop (1000; 0: no limit).
    pub send_hwm: usize,
    /// The same bound in bytes of frames per peer (64 MiB; 0: no limit; libzmq has
    /// none). A message larger than this still goes, alone.
    pub send_hwm_bytes: usize,
    /// `ZMQ_RCVHWM`: messages received from one peer and not yet taken by `recv`
    /// before the socket stops reading that peer (1000; 0: no limit). The peer then
    /// meets TCP's flow control: its sends block or drop by its own HWM.
    pub recv_hwm: usize,
    /// The same bound in bytes (64 MiB; 0: no limit).
    pub recv_hwm_bytes: usize,
    /// `ZMQ_LINGER`: how long [`Socket::close`](super::Socket::close) (and dropping
    /// the socket) waits for queued messages to be written to a peer. `None`: forever,
    /// libzmq's default (-1); `Some(Duration::ZERO)`: not at all.
    pub linger: Option<Duration>,
    /// `ZMQ_SNDTIMEO`: how long a blocked `send` waits (`None`: forever, libzmq's -1).
    pub send_timeout: Option<Duration>,
    /// `ZMQ_RECONNECT_IVL`: the wait before redialing a lost or refused connection
    /// (100 ms), stretched at random by up to as much again, as libzmq adds up to one
    /// interval of jitter (so peers that lost the same server do not all redial at
    /// once).
    pub reconnect_interval: Duration,
    /// `ZMQ_RECONNECT_IVL_MAX`: when longer than `reconnect_interval`, each failed
    /// attempt doubles the wait up to this (exponential backoff); zero (the default)
    /// keeps every wait at `reconnect_interval`, as in libzmq. A connection that
    /// completes its handshake starts the next reconnect from `reconnect_interval`.
    pub reconnect_interval_max: Duration,
    /// `ZMQ_MAXMSGSIZE` for one frame (64 MiB).
    pub max_frame_size: u64,
    /// `ZMQ_HEARTBEAT_IVL` (`None`: no heartbeats).
    pub heartbeat_interval: Option<Duration>,
    /// `ZMQ_PLAIN_SERVER`: be the PLAIN server.
    pub plain_server: bool,
    /// `ZMQ_PLAIN_USERNAME`: be a PLAIN client with this user name.
    pub plain_username: Option<Bytes>,
    /// `ZMQ_PLAIN_PASSWORD`: the PLAIN client's password.
    pub plain_password: Bytes,
    /// `ZMQ_CURVE_SERVER`: be the CURVE server (needs `curve_secret_key`).
    pub curve_server: bool,
    /// `ZMQ_CURVE_SECRETKEY`: our long-term secret key, 32 bytes or 40 Z85 characters.
    pub curve_secret_key: Option<Bytes>,
    /// `ZMQ_CURVE_PUBLICKEY`: our long-term public key; optional here (it follows from
    /// the secret key), checked against it when given.
    pub curve_public_key: Option<Bytes>,
    /// `ZMQ_CURVE_SERVERKEY`: be a CURVE client of the server with this public key.
    pub curve_server_key: Option<Bytes>,
    /// Judges PLAIN credentials and CURVE client keys on a server (ZAP's role), on the
    /// socket's thread; not asked when [`zap_endpoint`](Self::zap_endpoint) is set.
    pub authenticator: Option<Authenticator>,
    /// `ZMQ_ZAP_DOMAIN`: the domain a server's ZAP requests name (empty by default).
    /// Set, it makes a NULL socket authenticate its peers too, as in libzmq: its
    /// `READY` waits for the verdict.
    pub zap_domain: Bytes,
    /// Where a ZAP handler (RFC 27) listens: a server socket (PLAIN, CURVE, or NULL
    /// with a `zap_domain`) connects its own ZAP client there (a DEALER with REQ's
    /// envelope) and asks it about each peer instead of calling
    /// [`authenticator`](Self::authenticator); a refused peer gets an `ERROR` with the
    /// handler's status code, as libzmq sends it. libzmq's handler lives at
    /// `inproc://zeromq.zap.01` of a shared context; with no shared context, this is a
    /// `tcp://` or `ipc://` endpoint (pyzmq's `zmq.auth` handler on a REP socket, or a
    /// [`ZapHandler`](super::ZapHandler)). `None` (the default): no handler.
    pub zap_endpoint: Option<super::Endpoint>,
    /// How long a peer's handshake waits for the ZAP handler's verdict before the peer
    /// is refused (`ERROR` `500`, [`ZmtpError::Zap`](monocoque_proto::zmtp::ZmtpError::Zap)
    /// kept as the socket's last error): a handler that is down, unreachable or
    /// stuck never hangs a handshake (5 s; libzmq waits out its 30 s handshake
    /// interval instead).
    pub zap_timeout: Duration,
    /// `ZMQ_REQ_RELAXED`: a REQ may send a new request before the last one's reply
    /// came (the old reply is then not delivered), so a REQ whose peer is gone for good
    /// can ask another instead of waiting for ever. Off by default, as in libzmq.
    pub req_relaxed: bool,
    /// `ZMQ_REQ_CORRELATE`: a REQ puts a request id in front of each request and
    /// delivers only the reply that echoes the last one (what makes `req_relaxed` safe
    /// when the same peer answers an abandoned request late). Off by default.
    pub req_correlate: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            driver: DriverKind::default(),
            identity: Bytes::new(),
            send_hwm: 1000,
            send_hwm_bytes: monocoque_proto::zmtp::socket::DEFAULT_HWM_BYTES,
            recv_hwm: 1000,
            recv_hwm_bytes: monocoque_proto::zmtp::socket::DEFAULT_HWM_BYTES,
            linger: None,
            send_timeout: None,
            reconnect_interval: Duration::from_millis(100),
            reconnect_interval_max: Duration::ZERO,
            max_frame_size: monocoque_proto::zmtp::DEFAULT_MAX_FRAME_SIZE,
            heartbeat_interval: None,
            plain_server: false,
            plain_username: None,
            plain_password: Bytes::new(),
            curve_server: false,
            curve_secret_key: None,
            curve_public_key: None,
            curve_server_key: None,
            authenticator: None,
            zap_domain: Bytes::new(),
            zap_endpoint: None,
            zap_timeout: Duration::from_secs(5),
            req_relaxed: false,
            req_correlate: false,
        }
    }
}

/// A server's judge of each peer's credentials or key: ZAP (RFC 27) as a function,
/// called on the socket's thread during the handshake.
#[derive(Clone)]
pub struct Authenticator(Arc<dyn Fn(&AuthRequest) -> AuthDecision + Send + Sync>);

impl Authenticator {
    /// An authenticator that calls `judge`.
    pub fn new(judge: impl Fn(&AuthRequest) -> AuthDecision + Send + Sync + 'static) -> Self {
        Authenticator(Arc::new(judge))
    }

    /// Allows CURVE clients whose long-term public key is one of `keys`; denies others
    /// (status 400) and any other mechanism.
    pub fn curve_allow(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        let keys: Vec<PublicKey> = keys.into_iter().collect();
        Authenticator::new(move |request| match request.curve_key {
            Some(key) if keys.contains(&key) => AuthDecision::Allow {
                user_id: Bytes::from(key.to_z85()),
            },
            _ => AuthDecision::Deny {
                status: 400,
                reason: "unknown CURVE key".into(),
            },
        })
    }

    /// Allows PLAIN clients whose user name and password are one of `users`.
    pub fn plain_users(users: impl IntoIterator<Item = (Bytes, Bytes)>) -> Self {
        let users: Vec<(Bytes, Bytes)> = users.into_iter().collect();
        Authenticator::new(move |request| {
            let known = users
                .iter()
                .any(|(u, p)| *u == request.username && *p == request.password && request.curve_key.is_none());
            if known {
                AuthDecision::Allow {
                    user_id: request.username.clone(),
                }
            } else {
                AuthDecision::Deny {
                    status: 400,
                    reason: "wrong user name or password".into(),
                }
            }
        })
    }

    /// The verdict on `request`.
    pub fn judge(&self, request: &AuthRequest) -> AuthDecision {
        (self.0)(request)
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authenticator(..)")
    }
}

/// Why the security options do not make a mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecurityError {
    /// A key option is neither 32 bytes nor 40 Z85 characters.
    #[error("{option}: {source}")]
    Key {
        /// The option (`curve_secret_key`...).
        option: &'static str,
        /// What was wrong with it.
        #[source]
        source: KeyError,
    },
    /// CURVE needs our secret key.
    #[error("CURVE needs curve_secret_key")]
    MissingSecretKey,
    /// `curve_public_key` is not the public half of `curve_secret_key`.
    #[error("curve_public_key is not the public half of curve_secret_key")]
    KeyMismatch,
}

impl Options {
    /// The mechanism these options ask for.
    pub fn mechanism(&self) -> Result<Mechanism, SecurityError> {
        let key_error = |option| move |source| SecurityError::Key { option, source };
        if self.curve_server || self.curve_server_key.is_some() {
            let secret = self.curve_secret_key.as_ref().ok_or(SecurityError::MissingSecretKey)?;
            let keys =
                KeyPair::from_secret(SecretKey::from_bytes_or_z85(secret).map_err(key_error("curve_secret_key"))?);
            if let Some(public) = &self.curve_public_key {
                let public = PublicKey::from_bytes_or_z85(public).map_err(key_error("curve_public_key"))?;
                if public != keys.public {
                    return Err(SecurityError::KeyMismatch);
                }
            }
            return Ok(match &self.curve_server_key {
                Some(server) if !self.curve_server => Mechanism::CurveClient {
                    keys,
                    server_key: PublicKey::from_bytes_or_z85(server).map_err(key_error("curve_server_key"))?,
                },
                _ => Mechanism::CurveServer { keys },
            });
        }
        if self.plain_server {
            return Ok(Mechanism::PlainServer);
        }
        Ok(match &self.plain_username {
            Some(username) => Mechanism::PlainClient {
                username: username.clone(),
                password: self.plain_password.clone(),
            },
            None => Mechanism::Null,
        })
    }

    /// The reconnect policy of each connected endpoint, for the chassis' link
    /// supervisor: libzmq's `ZMQ_RECONNECT_IVL` and `ZMQ_RECONNECT_IVL_MAX`, jitter of
    /// up to one wait, and no limit on attempts (a ZeroMQ socket redials until closed).
    pub fn reconnect_policy(&self) -> ReconnectPolicy {
        ReconnectPolicy {
            initial: self.reconnect_interval,
            // libzmq ignores a maximum that is not above the interval.
            max: self.reconnect_interval_max.max(self.reconnect_interval),
            jitter: 1.0,
            max_attempts: None,
        }
    }

    /// The verdict on a peer's credentials: the authenticator's, else allowed.
    pub(crate) fn judge(&self, request: &AuthRequest) -> AuthDecision {
        match &self.authenticator {
            Some(authenticator) => authenticator.judge(request),
            None => AuthDecision::Allow { user_id: Bytes::new() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_options_make_libzmqs_schedule() {
        let ms = Duration::from_millis;
        let fixed = Options::default().reconnect_policy();
        assert_eq!(
            (fixed.delay(1), fixed.delay(5)),
            (ms(100), ms(100)),
            "no backoff by default"
        );
        assert_eq!(fixed.max_attempts, None);
        let backoff = Options {
            reconnect_interval_max: ms(1000),
            ..Options::default()
        }
        .reconnect_policy();
        let delays: Vec<Duration> = (1..6).map(|r| backoff.delay(r)).collect();
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(800), ms(1000)]);
        let below = Options {
            reconnect_interval_max: ms(50),
            ..Options::default()
        }
        .reconnect_policy();
        assert_eq!(below.delay(4), ms(100), "a maximum below the interval is ignored");
    }

    #[test]
    fn security_options_choose_the_mechanism() {
        let pair = crate::zmq::generate_keypair().unwrap();
        let server = Options {
            curve_server: true,
            curve_secret_key: Some(Bytes::from(pair.secret.to_z85().as_str().to_owned())),
            ..Options::default()
        };
        assert_eq!(server.mechanism(), Ok(Mechanism::CurveServer { keys: pair.clone() }));
        let client = Options {
            curve_server_key: Some(Bytes::copy_from_slice(&pair.public.0)),
            curve_secret_key: Some(Bytes::copy_from_slice(pair.secret.as_bytes())),
            curve_public_key: Some(Bytes::from(crate::zmq::generate_keypair().unwrap().public.to_z85())),
            ..Options::default()
        };
        assert_eq!(client.mechanism(), Err(SecurityError::KeyMismatch));
        let client = Options {
            curve_server_key: Some(Bytes::from_static(b"short")),
            ..client
        };
        assert_eq!(client.mechanism(), Err(SecurityError::KeyMismatch), "checked first");
        let no_secret = Options {
            curve_server: true,
            ..Options::default()
        };
        assert_eq!(no_secret.mechanism(), Err(SecurityError::MissingSecretKey));
        let plain = Options {
            plain_username: Some("u".into()),
            plain_password: "p".into(),
            ..Options::default()
        };
        assert!(matches!(plain.mechanism(), Ok(Mechanism::PlainClient { .. })));
        assert_eq!(Options::default().mechanism(), Ok(Mechanism::Null));
    }
}
