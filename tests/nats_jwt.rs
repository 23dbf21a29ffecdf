//! Decentralised NATS auth (operator mode: user JWT + NKey, `.creds` files) against a
//! real `nats-server`, on both drivers: every server test runs as `<name>_uring` and
//! `<name>_mio`.
//!
//! The operator, account and user JWTs come from `support::nats_jwt`, which writes them
//! as the nats-io/jwt Go library does (checked here against tokens the Go library wrote
//! for the same keys). Each server trusts the operator and preloads the account through
//! the memory resolver, and runs with `-DV` so that a refusal can be checked against
//! the reason the server logged, not only against its `-ERR`.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use monocoque::driver::DriverKind;
use monocoque::nats::{Auth, Client, ClientOptions, Error, Event, LinkError, ServerErrorKind};
use monocoque::proto::nats::client::{KeyPair, SubscriptionEnd};
use support::nats_jwt::{
    account_jwt, creds_file, operator_jwt, server_config, user_jwt, NKey, Permission, Role, Standard,
};
use support::{NatsConfig, NatsServer, TempDir};

both_drivers! {
    jwt_and_seed_in_options => jwt_and_seed_in_options_uring, jwt_and_seed_in_options_mio;
    creds_file_round_trip => creds_file_round_trip_uring, creds_file_round_trip_mio;
    refused_user_of_unknown_account => refused_user_of_unknown_account_uring, refused_user_of_unknown_account_mio;
    refused_wrong_seed => refused_wrong_seed_uring, refused_wrong_seed_mio;
    refused_expired_jwt => refused_expired_jwt_uring, refused_expired_jwt_mio;
    jwt_expiring_while_connected => jwt_expiring_while_connected_uring, jwt_expiring_while_connected_mio;
    jwt_permissions => jwt_permissions_uring, jwt_permissions_mio;
}

// ---- fixed identities ----

const OPERATOR_RAW: [u8; 32] = [0x4f; 32];
const ACCOUNT_RAW: [u8; 32] = [0x41; 32];
/// An account the server is never told about.
const STRANGER_ACCOUNT_RAW: [u8; 32] = [0x42; 32];
const USER_RAW: [u8; 32] = [0x55; 32];
const OTHER_USER_RAW: [u8; 32] = [0x56; 32];
/// `iat` of every token the tests issue (2023-11-14): fixed, so tokens are reproducible.
const ISSUED_AT: i64 = 1_700_000_000;

const WAIT: Duration = Duration::from_secs(5);

// ---- helpers ----

/// A nats-server in operator mode that trusts [`OPERATOR_RAW`] and knows the account
/// [`ACCOUNT_RAW`], with debug logging (the reason for each refusal).
fn start_server() -> NatsServer {
    let operator = NKey::from_raw(Role::Operator, OPERATOR_RAW);
    let account = NKey::from_raw(Role::Account, ACCOUNT_RAW);
    let config = server_config(
        &operator_jwt(&operator, &Standard::new("monocoque-operator", ISSUED_AT)),
        &[(
            account.public_key(),
            account_jwt(&operator, &account, &Standard::new("monocoque-account", ISSUED_AT)),
        )],
    );
    NatsServer::start_with(NatsConfig::new().raw(&config).trace())
}

/// A user's JWT (signed by `account`) and seed.
struct User {
    jwt: String,
    seed: String,
    public_key: String,
}

fn user(
    account_raw: [u8; 32],
    user_raw: [u8; 32],
    standard: &Standard,
    publish: &Permission,
    subscribe: &Permission,
) -> User {
    let account = NKey::from_raw(Role::Account, account_raw);
    let key = NKey::from_raw(Role::User, user_raw);
    User {
        jwt: user_jwt(&account, &key.public_key(), standard, publish, subscribe),
        seed: key.seed(),
        public_key: key.public_key(),
    }
}

/// The standard user of the known account, with no restrictions.
fn plain_user() -> User {
    user(
        ACCOUNT_RAW,
        USER_RAW,
        &Standard::new("monocoque-user", ISSUED_AT),
        &Permission::default(),
        &Permission::default(),
    )
}

fn options(server: &NatsServer, driver: DriverKind, auth: Auth) -> ClientOptions {
    ClientOptions::from_url(&server.url())
        .expect("valid URL")
        .driver(driver)
        .auth(auth)
}

fn jwt_auth(user: &User) -> Auth {
    Auth::Jwt {
        jwt: user.jwt.clone(),
        seed: user.seed.clone(),
    }
}

fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit in i64")
}

/// Asserts that connecting with `auth` is refused as an authorization failure, and that
/// the server's log gives `reason` for it.
fn assert_refused(server: &NatsServer, driver: DriverKind, auth: Auth, reason: &str) {
    let err = Client::connect_with(options(server, driver, auth)).expect_err("the server refuses");
    assert!(matches!(err, Error::Rejected(_)) && err.is_auth_failure(), "{err:?}");
    assert_eq!(
        err.server_error().map(|e| e.kind()),
        Some(ServerErrorKind::AuthorizationViolation),
        "{err:?}"
    );
    let log = server.log();
    assert!(
        log.contains(reason),
        "the server refused for another reason than {reason:?}:\n{log}"
    );
}

/// Subscribes `subscriber` to `subject`, publishes `payload` from `publisher` and
/// checks it arrives.
fn assert_round_trip(subscriber: &mut Client, publisher: &mut Client, subject: &str, payload: &str) {
    let mut sub = subscriber.subscribe(subject).expect("subscribe");
    subscriber.round_trip().expect("round trip");
    publisher.publish(subject, payload.to_owned()).expect("publish");
    publisher.flush().expect("flush");
    let m = sub.next_message(WAIT).expect("receive").expect("a message in time");
    assert_eq!(&m.payload[..], payload.as_bytes());
    assert_eq!(&m.subject[..], subject.as_bytes());
}

// ---- the issuer writes what nats-io/jwt writes ----

/// Tokens, keys and `.creds` file written by nats-io/jwt v2.3.0 (Debian
/// `golang-github-nats-io-jwt-dev`, the version nats-server 2.9.10 builds with) with
/// nkeys 0.3.0, for raw seeds `[0x4f; 32]` (operator), `[0x41; 32]` (account) and
/// `[0x55; 32]` (user): `NewOperatorClaims`/`NewAccountClaims`/`NewUserClaims`, names
/// set, the user with `exp` 4102444800, `Pub.Allow` `jwt.allowed` and `Sub.Deny`
/// `jwt.secret.>` and `other`; `iat` was the Go program's clock.
mod go_fixture {
    pub const ISSUED_AT: i64 = 1_795_626_668;
    pub const OPERATOR_PUBLIC: &str = "OAAOHRLLSGVQUALROS4WMRPK7EUDM3G3VYPIP7JBX6DGMHMG6PT66YXZ";
    pub const OPERATOR_SEED: &str = "SOAE6T2PJ5HU6T2PJ5HU6T2PJ5HU6T2PJ5HU6T2PJ5HU6T2PJ5HU6T52FU";
    pub const ACCOUNT_PUBLIC: &str = "ADNZSX7CKFU5CQOKXG53VEV2UAPZ6LQ6ZZ67JSZKYBIZB437ZQPZ25ZN";
    pub const ACCOUNT_SEED: &str = "SAAECQKBIFAUCQKBIFAUCQKBIFAUCQKBIFAUCQKBIFAUCQKBIFAUCQMMIU";
    pub const USER_PUBLIC: &str = "UDDIEJRXY7JRB3CXMJ56AC5CLHJFG5E7JKXWIRDQZ756KORV64ZEFCPX";
    pub const USER_SEED: &str = "SUAFKVKVKVKVKVKVKVKVKVKVKVKVKVKVKVKVKVKVKVKVKVKVKVKVKVLTVA";
    pub const OPERATOR_JWT: &str = concat!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.",
        "eyJqdGkiOiJKN0VRQVJJUjZDWVNLNFYyVlhDU0dWR1RNWjJWRU9HT0lMU0Y2NjJEUkg2Nko3TzczRlFRIiwiaWF0IjoxNzk1NjI2NjY4",
        "LCJpc3MiOiJPQUFPSFJMTFNHVlFVQUxST1M0V01SUEs3RVVETTNHM1ZZUElQN0pCWDZER01ITUc2UFQ2NllYWiIsIm5hbWUiOiJtb25v",
        "Y29xdWUtb3BlcmF0b3IiLCJzdWIiOiJPQUFPSFJMTFNHVlFVQUxST1M0V01SUEs3RVVETTNHM1ZZUElQN0pCWDZER01ITUc2UFQ2NllY",
        "WiIsIm5hdHMiOnsidHlwZSI6Im9wZXJhdG9yIiwidmVyc2lvbiI6Mn19.",
        "hf1AJvL9TiW_p5ybLdr-qVkm8CUWX_7iZ9nfshGr5MNBkrlDNYe3MP3qfUyhqDAiDmgra2P6Qcay--gFkFzyAw",
    );
    pub const ACCOUNT_JWT: &str = concat!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.",
        "eyJqdGkiOiJNR0g3QklPNTJGMjIyRVJDU1Y0NUVZR0dHVFVLTUROV1NVNVQzQllYRFNDRTZXTFFQSjJRIiwiaWF0IjoxNzk1NjI2NjY4",
        "LCJpc3MiOiJPQUFPSFJMTFNHVlFVQUxST1M0V01SUEs3RVVETTNHM1ZZUElQN0pCWDZER01ITUc2UFQ2NllYWiIsIm5hbWUiOiJtb25v",
        "Y29xdWUtYWNjb3VudCIsInN1YiI6IkFETlpTWDdDS0ZVNUNRT0tYRzUzVkVWMlVBUFo2TFE2Wlo2N0pTWktZQklaQjQzN1pRUFoyNVpO",
        "IiwibmF0cyI6eyJsaW1pdHMiOnsic3VicyI6LTEsImRhdGEiOi0xLCJwYXlsb2FkIjotMSwiaW1wb3J0cyI6LTEsImV4cG9ydHMiOi0x",
        "LCJ3aWxkY2FyZHMiOnRydWUsImNvbm4iOi0xLCJsZWFmIjotMX0sImRlZmF1bHRfcGVybWlzc2lvbnMiOnsicHViIjp7fSwic3ViIjp7",
        "fX0sInR5cGUiOiJhY2NvdW50IiwidmVyc2lvbiI6Mn19.",
        "BT6wB6_R5V6Es38u2YhXQynQnjFk39C8kKr87k3mh_X_NzsmqT7Btl1ITT2e8g99e8hoii2spKgDVXG8hHW5Dw",
    );
    pub const USER_JWT: &str = concat!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.",
        "eyJleHAiOjQxMDI0NDQ4MDAsImp0aSI6IkVZNlkyU0dLVUdZR0gyMzdOT0tMWjRETU9WVUxBVlVIVTNCSktLWE1XQlBCNUlNWFMySUEi",
        "LCJpYXQiOjE3OTU2MjY2NjgsImlzcyI6IkFETlpTWDdDS0ZVNUNRT0tYRzUzVkVWMlVBUFo2TFE2Wlo2N0pTWktZQklaQjQzN1pRUFoy",
        "NVpOIiwibmFtZSI6Im1vbm9jb3F1ZS11c2VyIFx1MDAzY1x1MDAyNlx1MDAzZSIsInN1YiI6IlVERElFSlJYWTdKUkIzQ1hNSjU2QUM1",
        "Q0xISkZHNUU3SktYV0lSRFFaNzU2S09SVjY0WkVGQ1BYIiwibmF0cyI6eyJwdWIiOnsiYWxsb3ciOlsiand0LmFsbG93ZWQiXX0sInN1",
        "YiI6eyJkZW55IjpbImp3dC5zZWNyZXQuXHUwMDNlIiwib3RoZXIiXX0sInN1YnMiOi0xLCJkYXRhIjotMSwicGF5bG9hZCI6LTEsInR5",
        "cGUiOiJ1c2VyIiwidmVyc2lvbiI6Mn19.",
        "wuKgIl5bXoNAYlLETUSdywVn8GSxUcQReESVjxygqVS-Q6rLTW14BcBJrY6O0UibfsXAD5XAZJ5zZAnWPgdvBQ",
    );
}

#[test]
fn issuer_writes_what_nats_io_jwt_writes() {
    let operator = NKey::from_raw(Role::Operator, OPERATOR_RAW);
    let account = NKey::from_raw(Role::Account, ACCOUNT_RAW);
    let user = NKey::from_raw(Role::User, USER_RAW);
    assert_eq!(operator.public_key(), go_fixture::OPERATOR_PUBLIC);
    assert_eq!(operator.seed(), go_fixture::OPERATOR_SEED);
    assert_eq!(account.public_key(), go_fixture::ACCOUNT_PUBLIC);
    assert_eq!(account.seed(), go_fixture::ACCOUNT_SEED);
    assert_eq!(user.public_key(), go_fixture::USER_PUBLIC);
    assert_eq!(user.seed(), go_fixture::USER_SEED);
    // The client's own seed decoder agrees.
    let client_key = KeyPair::from_seed(&user.seed()).expect("a user seed");
    assert_eq!(client_key.public_key(), go_fixture::USER_PUBLIC);

    let at = |name: &str| Standard::new(name, go_fixture::ISSUED_AT);
    assert_eq!(
        operator_jwt(&operator, &at("monocoque-operator")),
        go_fixture::OPERATOR_JWT
    );
    assert_eq!(
        account_jwt(&operator, &account, &at("monocoque-account")),
        go_fixture::ACCOUNT_JWT
    );
    let mut standard = at("monocoque-user <&>");
    standard.expires = Some(4_102_444_800);
    let subscribe = Permission {
        allow: Vec::new(),
        deny: vec!["jwt.secret.>".to_owned(), "other".to_owned()],
    };
    let jwt = user_jwt(
        &account,
        &user.public_key(),
        &standard,
        &Permission::allow(&["jwt.allowed"]),
        &subscribe,
    );
    assert_eq!(jwt, go_fixture::USER_JWT);

    // jwt.FormatUserConfig for the same token and seed.
    let creds = creds_file(&jwt, &user.seed());
    let expected = format!(
        "-----BEGIN NATS USER JWT-----\n{}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n",
        go_fixture::USER_JWT,
        go_fixture::USER_SEED
    );
    assert_eq!(creds, expected);
}

// ---- against nats-server ----

fn jwt_and_seed_in_options(driver: DriverKind) {
    let server = start_server();
    let alice = plain_user();
    let bob = user(
        ACCOUNT_RAW,
        OTHER_USER_RAW,
        &Standard::new("bob", ISSUED_AT),
        &Permission::default(),
        &Permission::default(),
    );
    let mut subscriber = Client::connect_with(options(&server, driver, jwt_auth(&alice))).expect("alice connects");
    let mut publisher = Client::connect_with(options(&server, driver, jwt_auth(&bob))).expect("bob connects");
    assert_round_trip(&mut subscriber, &mut publisher, "jwt.greeting", "signed by the account");
    let log = server.log();
    for user in [&alice, &bob] {
        assert!(
            log.contains(&format!("Authenticated JWT: Client \"{}\"", user.public_key)),
            "the server authenticated {} by its JWT:\n{log}",
            user.public_key
        );
    }
    // Without credentials an operator-mode server wants a JWT.
    let err = Client::connect_with(options(&server, driver, Auth::None)).expect_err("refused");
    assert!(err.is_auth_failure(), "{err:?}");
    assert!(server.log().contains("Authentication requires a user JWT"));
}

fn creds_file_round_trip(driver: DriverKind) {
    let server = start_server();
    let alice = plain_user();
    let dir = TempDir::new("nats-creds");
    let path = dir.path.join("alice.creds");
    std::fs::write(&path, creds_file(&alice.jwt, &alice.seed)).expect("write the creds file");
    let mut client =
        Client::connect_with(options(&server, driver, Auth::CredsFile(path.clone()))).expect("connect with .creds");
    let mut other = Client::connect_with(options(&server, driver, Auth::CredsFile(path.clone())))
        .expect("a second connection with the same .creds");
    assert_round_trip(&mut client, &mut other, "creds.hello", "from a creds file");
    assert!(server
        .log()
        .contains(&format!("Authenticated JWT: Client \"{}\"", alice.public_key)));

    // The same file written with CRLF line ends (as on Windows) works too.
    let crlf = dir.path.join("crlf.creds");
    std::fs::write(&crlf, creds_file(&alice.jwt, &alice.seed).replace('\n', "\r\n")).expect("write");
    Client::connect_with(options(&server, driver, Auth::CredsFile(crlf)))
        .expect("CRLF .creds")
        .round_trip()
        .expect("round trip");

    // A missing file is reported as such, not as a server refusal.
    let err = Client::connect_with(options(&server, driver, Auth::CredsFile(dir.path.join("nope.creds"))))
        .expect_err("no such file");
    assert!(matches!(err, Error::CredsFile { .. }), "{err:?}");
}

fn refused_user_of_unknown_account(driver: DriverKind) {
    let server = start_server();
    // Same user key and claims, signed by an account the server was not given.
    let stranger = user(
        STRANGER_ACCOUNT_RAW,
        USER_RAW,
        &Standard::new("monocoque-user", ISSUED_AT),
        &Permission::default(),
        &Permission::default(),
    );
    assert_refused(&server, driver, jwt_auth(&stranger), "Account JWT lookup error");
    // The control: the same user of the known account gets in.
    Client::connect_with(options(&server, driver, jwt_auth(&plain_user())))
        .expect("the known account's user connects")
        .round_trip()
        .expect("round trip");
}

fn refused_wrong_seed(driver: DriverKind) {
    let server = start_server();
    let alice = plain_user();
    let mallory_seed = NKey::from_raw(Role::User, OTHER_USER_RAW).seed();
    let auth = Auth::Jwt {
        jwt: alice.jwt.clone(),
        seed: mallory_seed,
    };
    assert_refused(&server, driver, auth, "Signature not verified");
}

fn refused_expired_jwt(driver: DriverKind) {
    let server = start_server();
    let mut standard = Standard::new("monocoque-user", ISSUED_AT);
    standard.expires = Some(ISSUED_AT + 60);
    let expired = user(
        ACCOUNT_RAW,
        USER_RAW,
        &standard,
        &Permission::default(),
        &Permission::default(),
    );
    assert_refused(&server, driver, jwt_auth(&expired), "claim is expired");

    // The control: an `exp` an hour ahead is accepted.
    standard.expires = Some(unix_now() + 3600);
    let valid = user(
        ACCOUNT_RAW,
        USER_RAW,
        &standard,
        &Permission::default(),
        &Permission::default(),
    );
    Client::connect_with(options(&server, driver, jwt_auth(&valid)))
        .expect("a JWT that expires later connects")
        .round_trip()
        .expect("round trip");
}

fn jwt_expiring_while_connected(driver: DriverKind) {
    let server = start_server();
    let mut standard = Standard::new("monocoque-user", ISSUED_AT);
    let expires = unix_now() + 2;
    standard.expires = Some(expires);
    let short_lived = user(
        ACCOUNT_RAW,
        USER_RAW,
        &standard,
        &Permission::default(),
        &Permission::default(),
    );
    // The default reconnect policy (60 attempts with backoff): a server that refused the
    // credentials is not tried again, so the reconnect gives up after one attempt.
    let mut client = Client::connect_with(options(&server, driver, jwt_auth(&short_lived)))
        .expect("connects while the JWT is valid");
    client.round_trip().expect("round trip before expiry");

    // nats-server arms a timer for `exp` and then closes the connection with
    // `-ERR 'User Authentication Expired'`.
    let disconnected = loop {
        match client.next_event(Duration::from_secs(4)) {
            Ok(Some(Event::Disconnected(e))) => break e,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no disconnection within 4 s of a 2 s JWT:\n{}", server.log()),
            Err(e) => panic!("the loss should be reported as an event first: {e:?}"),
        }
    };
    assert_eq!(
        disconnected.server_error().map(|e| e.kind()),
        Some(ServerErrorKind::AuthenticationExpired),
        "{disconnected:?}"
    );
    // The server compares whole seconds (`now > exp`): during the second `exp` itself
    // the JWT still counts as valid, and the connection would be accepted and expired
    // again at once. Reconnect once it is past, so every attempt is refused as expired.
    while unix_now() <= expires {
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let err = client.round_trip().expect_err("the expired JWT cannot reconnect");
    assert!(err.is_auth_failure(), "{err:?}");
    assert!(
        matches!(err, Error::Link(LinkError::Reconnect { attempts: 1, .. })),
        "the refusing server is not retried: {err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no backoff rounds after a refusal"
    );
    assert!(!client.is_connected());
    let log = server.log();
    assert!(log.contains("claim is expired"), "refused because it expired:\n{log}");
}

fn jwt_permissions(driver: DriverKind) {
    let server = start_server();
    let limited = user(
        ACCOUNT_RAW,
        USER_RAW,
        &Standard::new("limited", ISSUED_AT),
        &Permission::allow(&["jwt.allowed"]),
        &Permission {
            allow: Vec::new(),
            deny: vec!["jwt.secret.>".to_owned()],
        },
    );
    let watcher_user = user(
        ACCOUNT_RAW,
        OTHER_USER_RAW,
        &Standard::new("watcher", ISSUED_AT),
        &Permission::default(),
        &Permission::default(),
    );
    let mut client = Client::connect_with(options(&server, driver, jwt_auth(&limited))).expect("connects");
    let mut watcher = Client::connect_with(options(&server, driver, jwt_auth(&watcher_user))).expect("connects");
    let mut everything = watcher.subscribe("jwt.>").expect("subscribe");
    watcher.round_trip().expect("round trip");

    // Publishing outside `nats.pub.allow` is answered with a non-fatal -ERR.
    client.publish("jwt.denied", "not allowed").expect("buffered");
    client.publish("jwt.allowed", "allowed").expect("buffered");
    client.round_trip().expect("round trip");
    let mut errors = Vec::new();
    while let Some(event) = client.next_event(Duration::from_millis(300)).expect("event") {
        if let Event::ServerError(e) = event {
            errors.push(e);
        }
    }
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind(), ServerErrorKind::PublishPermissionViolation);
    let text = String::from_utf8_lossy(errors[0].text()).into_owned();
    assert!(
        text.contains("Permissions Violation for Publish to \"jwt.denied\""),
        "{text}"
    );
    let m = everything
        .next_message(WAIT)
        .expect("receive")
        .expect("the allowed publish");
    assert_eq!(&m.subject[..], b"jwt.allowed");
    assert_eq!(
        everything.next_message(Duration::from_millis(200)).expect("receive"),
        None
    );
    assert!(client.is_connected());
    assert_eq!(
        client.connections(),
        1,
        "a permission error does not cost the connection"
    );

    // Subscribing inside `nats.sub.deny` ends that subscription only.
    let mut secret = client.subscribe("jwt.secret.plans").expect("subscribe is sent");
    let mut open = client.subscribe("jwt.open").expect("subscribe");
    client.round_trip().expect("round trip");
    let mut refused = None;
    while let Some(event) = client.next_event(Duration::from_millis(300)).expect("event") {
        if let Event::SubscriptionEnded { sid, reason } = event {
            refused = Some((sid, reason));
        }
    }
    let (sid, reason) = refused.expect("the denied subscription ends");
    assert_eq!(&sid, secret.sid());
    assert!(
        matches!(&reason, SubscriptionEnd::Refused(e) if e.kind() == ServerErrorKind::SubscribePermissionViolation),
        "{reason:?}"
    );
    assert!(matches!(
        secret.next_message(Duration::ZERO),
        Err(Error::SubscriptionClosed)
    ));
    watcher.publish("jwt.open", "still here").expect("publish");
    watcher.flush().expect("flush");
    let m = open
        .next_message(WAIT)
        .expect("receive")
        .expect("the other subscription works");
    assert_eq!(&m.payload[..], b"still here");
    assert_eq!(client.connections(), 1);
}
