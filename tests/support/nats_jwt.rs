//! A test-only issuer of NATS v2 JWTs, for decentralised ("operator mode") auth against
//! a real nats-server.
//!
//! Keys are made from fixed raw bytes, so every run uses the same operator, account and
//! user. Tokens are written as the nats-io/jwt v2 Go library writes them (`claims.go`,
//! `doEncode`), field for field and in the same order, so that nats-server decodes them
//! with `jwt.Decode*Claims` exactly as it decodes `nsc`'s:
//!
//! - header `{"typ":"JWT","alg":"ed25519-nkey"}`;
//! - claims: `jti` is the base32 (no padding) SHA-512/256 of the JSON of the standard
//!   claims (`aud exp iat iss name nbf sub`, empty ones left out) written before `jti`
//!   is set; then the claims with `jti` and the `nats` section;
//! - each part base64url without padding; the signature is the issuer's Ed25519
//!   signature of `header.claims`.
//!
//! `tests/nats_jwt.rs` checks a token from this module against one the Go library wrote
//! for the same keys, byte for byte.

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha512_256};

/// What a key stands for: the nkeys prefix of its public key and the JWT claim type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `O...`: signs account JWTs; the server trusts it through `operator:`.
    Operator,
    /// `A...`: signs user JWTs.
    Account,
    /// `U...`: signs the server's nonce when connecting.
    User,
}

impl Role {
    /// The nkeys prefix byte of a public key (`PrefixByteOperator` and friends).
    fn prefix(self) -> u8 {
        match self {
            Role::Operator => 14 << 3,
            Role::Account => 0,
            Role::User => 20 << 3,
        }
    }

    /// The `nats.type` of a JWT whose subject has this role.
    fn claim_type(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Account => "account",
            Role::User => "user",
        }
    }
}

/// The nkeys prefix byte of a seed (`S`).
const PREFIX_SEED: u8 = 18 << 3;

/// An Ed25519 key pair with its nkeys role.
#[derive(Clone)]
pub struct NKey {
    role: Role,
    signing: SigningKey,
}

impl NKey {
    /// The key pair whose 32-byte Ed25519 seed is `raw` (nkeys' `FromRawSeed`).
    pub fn from_raw(role: Role, raw: [u8; 32]) -> Self {
        Self {
            role,
            signing: SigningKey::from_bytes(&raw),
        }
    }

    /// Its role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The encoded public key (`O...`, `A...`, `U...`).
    pub fn public_key(&self) -> String {
        let mut bytes = vec![self.role.prefix()];
        bytes.extend_from_slice(self.signing.verifying_key().as_bytes());
        encode_key(bytes)
    }

    /// The encoded seed (`SO...`, `SA...`, `SU...`).
    pub fn seed(&self) -> String {
        let prefix = self.role.prefix();
        let mut bytes = vec![PREFIX_SEED | (prefix >> 5), (prefix & 31) << 3];
        bytes.extend_from_slice(self.signing.as_bytes());
        encode_key(bytes)
    }

    /// The Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

/// base32 of `bytes` followed by their CRC-16/XMODEM (little endian), as nkeys encodes.
fn encode_key(mut bytes: Vec<u8>) -> String {
    let mut crc: u16 = 0;
    for &b in &bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    bytes.extend_from_slice(&crc.to_le_bytes());
    base32(&bytes)
}

/// RFC 4648 base32 without padding (Go's `base32.StdEncoding.WithPadding(NoPadding)`).
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// RFC 4648 base64url without padding (Go's `base64.RawURLEncoding`).
pub fn base64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A JSON string literal as Go's `encoding/json` writes it (HTML characters and the
/// two JavaScript line separators escaped too).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON array of strings.
fn json_strings(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| json_string(s)).collect();
    format!("[{}]", inner.join(","))
}

/// The standard claims every JWT carries (nats-io/jwt `ClaimsData`), minus `jti` and
/// `iss`, which encoding fills in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standard {
    /// `name`: shown in the server's logs and monitoring.
    pub name: String,
    /// `iat`, Unix seconds (the Go library takes the clock; tests pass a constant).
    pub issued_at: i64,
    /// `exp`, Unix seconds; `None` never expires.
    pub expires: Option<i64>,
}

impl Standard {
    /// A never-expiring claim set named `name`, issued at `issued_at`.
    pub fn new(name: &str, issued_at: i64) -> Self {
        Self {
            name: name.to_owned(),
            issued_at,
            expires: None,
        }
    }

    /// The `ClaimsData` fields in struct order (`aud exp jti iat iss name nbf sub`),
    /// each written only when non-empty, as `omitempty` does.
    fn fields(&self, jti: Option<&str>, iss: &str, sub: &str) -> Vec<String> {
        let mut fields = Vec::new();
        if let Some(exp) = self.expires.filter(|&e| e != 0) {
            fields.push(format!("\"exp\":{exp}"));
        }
        if let Some(jti) = jti {
            fields.push(format!("\"jti\":{}", json_string(jti)));
        }
        if self.issued_at != 0 {
            fields.push(format!("\"iat\":{}", self.issued_at));
        }
        fields.push(format!("\"iss\":{}", json_string(iss)));
        if !self.name.is_empty() {
            fields.push(format!("\"name\":{}", json_string(&self.name)));
        }
        fields.push(format!("\"sub\":{}", json_string(sub)));
        fields
    }
}

/// Signs a JWT for `subject` (a public key) by `issuer`, with the `nats` section `nats`
/// (a JSON object, fields in the Go struct order), as `ClaimsData.doEncode` does.
pub fn encode(issuer: &NKey, subject: &str, standard: &Standard, nats: &str) -> String {
    let header = base64url(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let iss = issuer.public_key();
    let hashed = format!("{{{}}}", standard.fields(None, &iss, subject).join(","));
    let jti = base32(&Sha512_256::digest(hashed.as_bytes()));
    let mut fields = standard.fields(Some(&jti), &iss, subject);
    fields.push(format!("\"nats\":{nats}"));
    let claims = base64url(format!("{{{}}}", fields.join(",")).as_bytes());
    let to_sign = format!("{header}.{claims}");
    let signature = base64url(&issuer.sign(to_sign.as_bytes()));
    format!("{to_sign}.{signature}")
}

/// The self-signed operator JWT (`jwt.NewOperatorClaims` with nothing else set).
pub fn operator_jwt(operator: &NKey, standard: &Standard) -> String {
    assert_eq!(
        operator.role(),
        Role::Operator,
        "an operator JWT is self-signed by an operator key"
    );
    encode(
        operator,
        &operator.public_key(),
        standard,
        &format!(r#"{{"type":{},"version":2}}"#, json_string(Role::Operator.claim_type())),
    )
}

/// An account JWT signed by `operator`, with the unlimited limits and empty default
/// permissions `jwt.NewAccountClaims` starts from (a limit left out would read as 0:
/// no connections at all).
pub fn account_jwt(operator: &NKey, account: &NKey, standard: &Standard) -> String {
    assert_eq!(operator.role(), Role::Operator);
    assert_eq!(account.role(), Role::Account);
    let nats = format!(
        concat!(
            r#"{{"limits":{{"subs":-1,"data":-1,"payload":-1,"#,
            r#""imports":-1,"exports":-1,"wildcards":true,"conn":-1,"leaf":-1}},"#,
            r#""default_permissions":{{"pub":{{}},"sub":{{}}}},"type":{},"version":2}}"#
        ),
        json_string(Role::Account.claim_type())
    );
    encode(operator, &account.public_key(), standard, &nats)
}

/// Subjects a user may (`allow`) or may not (`deny`) publish or subscribe to: a
/// `jwt.Permission`. Empty lists are left out, and two empty lists allow everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permission {
    /// `allow`.
    pub allow: Vec<String>,
    /// `deny`.
    pub deny: Vec<String>,
}

impl Permission {
    /// Only `subjects` are allowed.
    pub fn allow(subjects: &[&str]) -> Self {
        Self {
            allow: subjects.iter().map(|s| (*s).to_owned()).collect(),
            deny: Vec::new(),
        }
    }

    fn json(&self) -> String {
        let mut fields = Vec::new();
        if !self.allow.is_empty() {
            fields.push(format!("\"allow\":{}", json_strings(&self.allow)));
        }
        if !self.deny.is_empty() {
            fields.push(format!("\"deny\":{}", json_strings(&self.deny)));
        }
        format!("{{{}}}", fields.join(","))
    }
}

/// A user JWT for `user`'s public key signed by `account`, as `jwt.NewUserClaims` (no
/// limits: `-1`) with the given publish and subscribe permissions.
pub fn user_jwt(
    account: &NKey,
    user: &str,
    standard: &Standard,
    publish: &Permission,
    subscribe: &Permission,
) -> String {
    assert_eq!(account.role(), Role::Account, "user JWTs are signed by an account key");
    let nats = format!(
        r#"{{"pub":{},"sub":{},"subs":-1,"data":-1,"payload":-1,"type":{},"version":2}}"#,
        publish.json(),
        subscribe.json(),
        json_string(Role::User.claim_type())
    );
    encode(account, user, standard, &nats)
}

/// A `.creds` file as `jwt.FormatUserConfig` (and so `nsc generate creds`) writes it.
pub fn creds_file(user_jwt: &str, user_seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{user_seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

/// nats-server configuration for operator mode: trust `operator_jwt` (inline), resolve
/// accounts from memory, preloaded with `accounts` (`(public key, JWT)` pairs). With
/// the memory resolver nats-server 2.9 needs no system account.
pub fn server_config(operator_jwt: &str, accounts: &[(String, String)]) -> String {
    let mut out = format!(
        "operator: {}\nresolver: MEMORY\nresolver_preload: {{\n",
        json_string(operator_jwt)
    );
    for (public_key, jwt) in accounts {
        out.push_str(&format!("  {}: {}\n", json_string(public_key), json_string(jwt)));
    }
    out.push_str("}\n");
    out
}
