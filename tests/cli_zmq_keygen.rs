//! `monocoque zmq keygen` prints a fresh CURVE pair in Z85 whose halves belong
//! together, and libzmq takes it (its public key derived from the secret matches).

mod support;

use std::process::Command;

use monocoque_proto::zmtp::curve::{KeyPair, PublicKey, SecretKey};

/// One run of `monocoque zmq keygen`: the public and secret key lines.
fn keygen() -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_monocoque"))
        .args(["zmq", "keygen"])
        .output()
        .expect("run monocoque zmq keygen");
    assert!(out.status.success(), "keygen failed");
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let public = lines[0].strip_prefix("public-key: ").expect("public line").to_owned();
    let secret = lines[1].strip_prefix("secret-key: ").expect("secret line").to_owned();
    assert_eq!((public.len(), secret.len()), (40, 40), "{text}");
    (public, secret)
}

#[test]
fn keygen_prints_a_matching_fresh_pair() {
    let (public, secret) = keygen();
    let pair = KeyPair::from_secret(SecretKey::from_bytes_or_z85(secret.as_bytes()).expect("Z85 secret"));
    assert_eq!(
        pair.public,
        PublicKey::from_bytes_or_z85(public.as_bytes()).expect("Z85 public")
    );
    assert_ne!(keygen().0, public, "two runs, two pairs");

    // libzmq derives the same public key from the secret one.
    let out = Command::new(support::pyzmq_python())
        .args([
            "-c",
            "import sys, zmq; print(zmq.curve_public(sys.argv[1].encode()).decode())",
            &secret,
        ])
        .output()
        .expect("run pyzmq");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), public);
}
