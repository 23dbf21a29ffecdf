//! `monocoque nats pub|sub|req` against a real nats-server, on both drivers: the
//! binary's output and exit status, with the other side played by the library client.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::nats::{Client, ClientOptions};
use support::{NatsConfig, NatsServer};

const DRIVERS: [&str; 2] = ["uring", "mio"];
const WAIT: Duration = Duration::from_secs(10);

fn monocoque(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_monocoque"));
    cmd.args(args);
    cmd
}

/// `monocoque nats --server <url> --driver <driver> <extra...>`, run to completion.
fn ours(url: &str, driver: &str, extra: &[&str]) -> Output {
    let mut args = vec!["nats", "--server", url, "--driver", driver];
    args.extend_from_slice(extra);
    monocoque(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run the monocoque binary")
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout {:?}\nstderr {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn client(server: &NatsServer, driver: &str) -> Client {
    let kind: DriverKind = driver.parse().expect("driver name");
    Client::connect_with(ClientOptions::from_url(&server.url()).expect("url").driver(kind)).expect("connect")
}

/// Starts `monocoque nats ... sub ...` and waits for its "Subscribing on" line.
fn start_sub(url: &str, driver: &str, extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut args = vec!["nats", "--server", url, "--driver", driver, "sub"];
    args.extend_from_slice(extra);
    let mut child = monocoque(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn monocoque nats sub");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx.recv_timeout(WAIT).expect("sub announces its subscription");
    assert!(line.starts_with("Subscribing on "), "{line}");
    (child, rx)
}

/// Waits for `child` to exit (killing it after `WAIT`) and returns its stdout.
fn finish(mut child: Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut out = String::new();
            child
                .stdout
                .take()
                .expect("stdout")
                .read_to_string(&mut out)
                .expect("read");
            return (status.code(), out);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("monocoque nats sub did not exit");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn pub_delivers_count_copies() {
    let server = NatsServer::start();
    for driver in DRIVERS {
        let mut lib = client(&server, driver);
        let mut sub = lib.subscribe("cli.pub").expect("subscribe");
        lib.round_trip().expect("round trip");
        let out = ours(
            &server.url(),
            driver,
            &["pub", "cli.pub", "hello there", "--count", "5"],
        );
        assert!(out.status.success(), "{}", show(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Published 5 message(s) to \"cli.pub\"\n"
        );
        for _ in 0..5 {
            let m = sub.next_message(WAIT).expect("receive").expect("a message");
            assert_eq!(m.payload, "hello there");
        }
        assert_eq!(sub.next_message(Duration::from_millis(100)).expect("receive"), None);
    }
}

#[test]
fn sub_prints_and_exits_after_count() {
    let server = NatsServer::start();
    for driver in DRIVERS {
        let (child, _stderr) = start_sub(&server.url(), driver, &["cli.sub.*", "--count", "3"]);
        let mut lib = client(&server, driver);
        lib.publish("cli.sub.a", "one").expect("publish");
        lib.publish_with_reply("cli.sub.b", "answer.here", "two")
            .expect("publish");
        let mut headers = monocoque::nats::HeaderMap::new();
        headers.insert("X-Id", "7").expect("header");
        lib.publish_with_headers("cli.sub.c", &headers, "three")
            .expect("publish");
        lib.publish("cli.sub.d", "four is never printed").expect("publish");
        lib.flush().expect("flush");
        let (code, out) = finish(child);
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(
            out,
            "[#1] Received on \"cli.sub.a\"\none\n\n\
             [#2] Received on \"cli.sub.b\" with reply \"answer.here\"\ntwo\n\n\
             [#3] Received on \"cli.sub.c\"\nX-Id: 7\nthree\n\n"
        );
    }
}

#[test]
fn sub_in_a_queue_group_shares_the_messages() {
    let server = NatsServer::start();
    for driver in DRIVERS {
        let (a, _ea) = start_sub(
            &server.url(),
            driver,
            &["cli.q", "--queue", "g", "--count", "4", "--raw"],
        );
        let (b, _eb) = start_sub(
            &server.url(),
            driver,
            &["cli.q", "--queue", "g", "--count", "4", "--raw"],
        );
        let mut lib = client(&server, driver);
        // Publish until both members have had their four (each message goes to one).
        let mut sent = 0;
        let deadline = Instant::now() + WAIT;
        let (mut a, mut b) = (Some(a), Some(b));
        let mut outputs = Vec::new();
        while (a.is_some() || b.is_some()) && Instant::now() < deadline {
            lib.publish("cli.q", format!("m{sent}")).expect("publish");
            lib.flush().expect("flush");
            sent += 1;
            thread::sleep(Duration::from_millis(5));
            for slot in [&mut a, &mut b] {
                if let Some(child) = slot.as_mut() {
                    if child.try_wait().expect("wait").is_some() {
                        outputs.push(finish(slot.take().expect("child")));
                    }
                }
            }
        }
        assert_eq!(outputs.len(), 2, "both members exited after 4 messages each");
        let mut seen = std::collections::HashSet::new();
        for (code, out) in &outputs {
            assert_eq!(*code, Some(0));
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 4, "{out}");
            for line in lines {
                assert!(seen.insert(line.to_owned()), "{line} delivered to both members");
            }
        }
    }
}

#[test]
fn req_prints_the_reply_or_fails() {
    let server = NatsServer::start();
    for driver in DRIVERS {
        let url = server.url();
        let kind: DriverKind = driver.parse().expect("driver");
        let (ready_tx, ready_rx) = mpsc::channel();
        let responder = thread::spawn(move || {
            let mut lib =
                Client::connect_with(ClientOptions::from_url(&url).expect("url").driver(kind)).expect("connect");
            let mut sub = lib.subscribe("cli.svc").expect("subscribe");
            lib.round_trip().expect("round trip");
            ready_tx.send(()).expect("ready");
            let m = sub.next_message(WAIT).expect("receive").expect("the request");
            let reply = String::from_utf8_lossy(m.reply.as_deref().expect("reply subject")).into_owned();
            lib.publish(&reply, format!("echo: {}", String::from_utf8_lossy(&m.payload)))
                .expect("reply");
            lib.flush().expect("flush");
        });
        ready_rx.recv_timeout(WAIT).expect("responder ready");
        let out = ours(&server.url(), driver, &["req", "cli.svc", "ping?", "--timeout", "5s"]);
        assert!(out.status.success(), "{}", show(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "echo: ping?\n");
        responder.join().expect("responder");

        let out = ours(&server.url(), driver, &["req", "cli.nobody", "x"]);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no responders"),
            "{}",
            show(&out)
        );
        assert!(out.stdout.is_empty());

        let mut lib = client(&server, driver);
        let _silent = lib.subscribe("cli.silent").expect("subscribe");
        lib.round_trip().expect("round trip");
        let started = Instant::now();
        let out = ours(&server.url(), driver, &["req", "cli.silent", "x", "--timeout", "300ms"]);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("timed out"),
            "{}",
            show(&out)
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}

#[test]
fn connection_and_auth_failures_exit_1() {
    let server = NatsServer::start_with(NatsConfig::new().token("t0k"));
    let port = support::free_port();
    for driver in DRIVERS {
        let out = ours(&format!("nats://127.0.0.1:{port}"), driver, &["pub", "x", "y"]);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
            "{}",
            show(&out)
        );

        let out = ours(&server.url(), driver, &["pub", "x", "y"]);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Authorization Violation"),
            "{}",
            show(&out)
        );

        let with_token = format!("nats://t0k@127.0.0.1:{}", server.port());
        let out = ours(&with_token, driver, &["pub", "x", "y"]);
        assert!(out.status.success(), "{}", show(&out));

        let out = ours("tls://127.0.0.1:1", driver, &["pub", "x", "y"]);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("unsupported scheme"),
            "{}",
            show(&out)
        );
    }
}

/// `--creds FILE` (a user JWT and seed, as `nsc` writes them) against a server in
/// operator mode, and `--nkey FILE` against one that lists NKey users: the subscriber
/// and the publisher are both the binary, so both authenticate.
#[test]
fn creds_and_nkey_files_authenticate() {
    use support::nats_jwt::{account_jwt, creds_file, operator_jwt, server_config, user_jwt};
    use support::nats_jwt::{NKey, Permission, Role, Standard};

    let operator = NKey::from_raw(Role::Operator, [0x4f; 32]);
    let account = NKey::from_raw(Role::Account, [0x41; 32]);
    let user = NKey::from_raw(Role::User, [0x55; 32]);
    let config = server_config(
        &operator_jwt(&operator, &Standard::new("cli-operator", 1_700_000_000)),
        &[(
            account.public_key(),
            account_jwt(&operator, &account, &Standard::new("cli-account", 1_700_000_000)),
        )],
    );
    let jwt = user_jwt(
        &account,
        &user.public_key(),
        &Standard::new("cli-user", 1_700_000_000),
        &Permission::default(),
        &Permission::default(),
    );
    let dir = support::TempDir::new("cli-creds");
    let creds = dir.path.join("user.creds");
    std::fs::write(&creds, creds_file(&jwt, &user.seed())).expect("write creds");
    let creds = creds.to_str().expect("utf-8 path");
    let nkey = dir.path.join("user.nk");
    std::fs::write(&nkey, format!("{}\n", user.seed())).expect("write seed");
    let nkey = nkey.to_str().expect("utf-8 path");

    let operator_mode = NatsServer::start_with(NatsConfig::new().raw(&config));
    let nkey_users = NatsServer::start_with(NatsConfig::new().nkey_user(&user.public_key()));
    for driver in DRIVERS {
        for (server, flag, file) in [(&operator_mode, "--creds", creds), (&nkey_users, "--nkey", nkey)] {
            let (child, _stderr) = start_sub(&server.url(), driver, &["cli.auth", "--count", "1", flag, file]);
            let out = ours(&server.url(), driver, &[flag, file, "pub", "cli.auth", "signed"]);
            assert!(out.status.success(), "{flag}: {}", show(&out));
            let (code, printed) = finish(child);
            assert_eq!(code, Some(0), "{flag}: {printed}");
            assert_eq!(printed, "[#1] Received on \"cli.auth\"\nsigned\n\n", "{flag}");

            let out = ours(&server.url(), driver, &["pub", "cli.auth", "anonymous"]);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{flag} server refuses no credentials: {}",
                show(&out)
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("Authorization Violation"),
                "{}",
                show(&out)
            );
        }
    }
}
