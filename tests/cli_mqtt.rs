//! `monocoque mqtt pub` and `monocoque mqtt sub` against mosquitto, and against its
//! clients: ours publishes to `mosquitto_sub`, `mosquitto_pub` publishes to ours, in
//! 3.1.1 and 5.0, on both drivers.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use monocoque::driver::DriverKind;
use support::Mosquitto;

const PATIENCE: Duration = Duration::from_secs(20);

both_drivers! {
    ours_to_ours => ours_to_ours_uring, ours_to_ours_mio;
    ours_pub_to_mosquitto_sub => ours_pub_to_mosquitto_sub_uring, ours_pub_to_mosquitto_sub_mio;
    mosquitto_pub_to_ours_sub => mosquitto_pub_to_ours_sub_uring, mosquitto_pub_to_ours_sub_mio;
    pub_lines_and_retained => pub_lines_and_retained_uring, pub_lines_and_retained_mio;
    persistent_session_with_c => persistent_session_with_c_uring, persistent_session_with_c_mio;
}

fn monocoque(broker: &Mosquitto, driver: DriverKind, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_monocoque"));
    cmd.args(["mqtt"]).args(args).args([
        "-h",
        "127.0.0.1",
        "-p",
        &broker.addr.port().to_string(),
        "--driver",
        driver.name(),
    ]);
    cmd
}

/// Starts a subscriber (ours with `-d`, or mosquitto_sub with `-d`) and waits until
/// its stderr/stdout says the SUBACK came, so what is published next reaches it.
fn start_sub(mut cmd: Command, ready: &'static str) -> (Child, mpsc::Receiver<()>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the subscriber");
    let (tx, rx) = mpsc::channel();
    // mosquitto_sub -d writes its debug lines on stdout; ours on stderr: watch both.
    let stderr = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(ready) {
                let _ = tx2.send(());
            }
        }
    });
    let _ = tx;
    (child, rx)
}

fn wait_ready(rx: &mpsc::Receiver<()>) {
    rx.recv_timeout(PATIENCE).expect("the subscriber said it is subscribed");
}

fn finish(child: Child) -> Output {
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn run(mut cmd: Command) -> Output {
    let output = cmd.output().expect("run");
    assert!(
        output.status.success(),
        "{cmd:?}: {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn ours_to_ours(driver: DriverKind) {
    let broker = Mosquitto::start();
    for version in ["311", "5"] {
        for qos in ["0", "1", "2"] {
            let topic = format!("o/{version}/{qos}");
            let sub = monocoque(
                &broker,
                driver,
                &["sub", "-t", &topic, "-C", "1", "-v", "-q", qos, "-V", version, "-d"],
            );
            let (child, ready) = start_sub(sub, "subscribed");
            wait_ready(&ready);
            run(monocoque(
                &broker,
                driver,
                &["pub", "-t", &topic, "-m", "hello there", "-q", qos, "-V", version],
            ));
            let out = finish(child);
            assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{topic} hello there\n"));
        }
    }
}

fn ours_pub_to_mosquitto_sub(driver: DriverKind) {
    let broker = Mosquitto::start();
    for version in ["mqttv311", "mqttv5"] {
        let topic = format!("m/{version}");
        let mut sub = broker.subscriber();
        sub.args(["-t", &topic, "-C", "3", "-q", "2", "-V", version]);
        let mut child = sub.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // mosquitto_sub has no ready signal on stderr: publish retained-free probes
        // until it prints one, then the real messages.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
                let _ = tx.send(std::mem::take(&mut line));
            }
        });
        let mut first = None;
        for _ in 0..100 {
            run(monocoque(
                &broker,
                driver,
                &["pub", "-t", &topic, "-m", "probe", "-q", "1", "-V", version],
            ));
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                first = Some(line);
                break;
            }
        }
        assert_eq!(first.as_deref(), Some("probe\n"));
        for (qos, msg) in [("1", "one"), ("2", "two")] {
            run(monocoque(
                &broker,
                driver,
                &["pub", "-t", &topic, "-m", msg, "-q", qos, "-V", version],
            ));
        }
        let rest: Vec<String> = (0..2).map(|_| rx.recv_timeout(PATIENCE).expect("a line")).collect();
        assert_eq!(rest, ["one\n", "two\n"]);
        assert!(child.wait().unwrap().success());
    }
}

fn mosquitto_pub_to_ours_sub(driver: DriverKind) {
    let broker = Mosquitto::start();
    for (ours, theirs) in [("311", "mqttv311"), ("5", "mqttv5")] {
        let topic = format!("t/{ours}");
        let filter = format!("t/{ours}/#");
        let sub = monocoque(
            &broker,
            driver,
            &[
                "sub", "-t", &filter, "-t", "other", "-C", "2", "-q", "2", "-V", ours, "-d",
            ],
        );
        let (child, ready) = start_sub(sub, "subscribed");
        wait_ready(&ready);
        for (qos, msg) in [("1", "first"), ("2", "second")] {
            let mut p = broker.publisher();
            p.args(["-t", &format!("{topic}/x"), "-m", msg, "-q", qos, "-V", theirs]);
            run(p);
        }
        let out = finish(child);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "first\nsecond\n");
    }
}

fn pub_lines_and_retained(driver: DriverKind) {
    let broker = Mosquitto::start();
    // -l: one message per line of standard input.
    let sub = monocoque(&broker, driver, &["sub", "-t", "l", "-C", "3", "-q", "1", "-d"]);
    let (child, ready) = start_sub(sub, "subscribed");
    wait_ready(&ready);
    let mut p = monocoque(&broker, driver, &["pub", "-t", "l", "-l", "-q", "1"]);
    let mut publisher = p.stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    publisher.stdin.take().unwrap().write_all(b"a\nbb\nccc\n").unwrap();
    assert!(publisher.wait().unwrap().success());
    assert_eq!(String::from_utf8_lossy(&finish(child).stdout), "a\nbb\nccc\n");

    // -r: a retained message reaches a subscriber that comes later (mosquitto_sub too).
    run(monocoque(
        &broker,
        driver,
        &["pub", "-t", "keep", "-m", "kept", "-r", "-q", "1", "-V", "5"],
    ));
    let out = run(monocoque(
        &broker,
        driver,
        &["sub", "-t", "keep", "-C", "1", "-W", "20"],
    ));
    assert_eq!(out.stdout, b"kept\n");
    let mut theirs = broker.subscriber();
    theirs.args(["-t", "keep", "-C", "1", "-W", "20"]);
    assert_eq!(run(theirs).stdout, b"kept\n");
    // -n: an empty retained message deletes it; -W ends a sub that got nothing.
    run(monocoque(&broker, driver, &["pub", "-t", "keep", "-n", "-r"]));
    let out = run(monocoque(&broker, driver, &["sub", "-t", "keep", "-W", "1"]));
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
}

/// `-c -i ID`: a subscriber's session keeps what is published while it is gone.
fn persistent_session_with_c(driver: DriverKind) {
    let broker = Mosquitto::start();
    for version in ["311", "5"] {
        let id = format!("cli-persist-{version}-{driver}");
        let sub = |count: &str| {
            monocoque(
                &broker,
                driver,
                &[
                    "sub", "-t", "p/#", "-c", "-i", &id, "-q", "1", "-V", version, "-C", count, "-W", "20",
                ],
            )
        };
        // Subscribe once (ending after -W 1 with nothing), then go away.
        let mut first = monocoque(
            &broker,
            driver,
            &["sub", "-t", "p/#", "-c", "-i", &id, "-q", "1", "-V", version, "-W", "1"],
        );
        assert!(first.status().unwrap().success());
        for msg in ["x", "y"] {
            let mut p = broker.publisher();
            p.args(["-t", "p/a", "-m", msg, "-q", "1"]);
            run(p);
        }
        let out = run(sub("2"));
        assert_eq!(out.stdout, b"x\ny\n");
    }
}
