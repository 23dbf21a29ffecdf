//! `monocoque mqtt pub` and `monocoque mqtt sub` against mosquitto, and against its
//! clients: ours publishes to `mosquitto_sub`, `mosquitto_pub` publishes to ours, in
//! 3.1.1 and 5.0, on both drivers; and through our own broker.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use monocoque::driver::DriverKind;
use support::mqtt::{self, OurBroker};
use support::Mosquitto;

const PATIENCE: Duration = Duration::from_secs(20);

both_drivers! {
    ours_to_ours => ours_to_ours_uring, ours_to_ours_mio;
    ours_to_ours_on_our_broker => ours_to_ours_on_our_broker_uring, ours_to_ours_on_our_broker_mio;
    ours_pub_to_mosquitto_sub => ours_pub_to_mosquitto_sub_uring, ours_pub_to_mosquitto_sub_mio;
    mosquitto_pub_to_ours_sub => mosquitto_pub_to_ours_sub_uring, mosquitto_pub_to_ours_sub_mio;
    pub_lines_and_retained => pub_lines_and_retained_uring, pub_lines_and_retained_mio;
    persistent_session_with_c => persistent_session_with_c_uring, persistent_session_with_c_mio;
}

fn monocoque(port: u16, driver: DriverKind, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_monocoque"));
    cmd.args(["mqtt"])
        .args(args)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--driver", driver.name()]);
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

/// Our `sub` then our `pub` on the broker at `port`, each version and QoS.
fn ours_to_ours_on(port: u16, driver: DriverKind) {
    for version in ["311", "5"] {
        for qos in ["0", "1", "2"] {
            let topic = format!("o/{version}/{qos}");
            let sub = monocoque(
                port,
                driver,
                &["sub", "-t", &topic, "-C", "1", "-v", "-q", qos, "-V", version, "-d"],
            );
            let (child, ready) = start_sub(sub, "subscribed");
            wait_ready(&ready);
            run(monocoque(
                port,
                driver,
                &["pub", "-t", &topic, "-m", "hello there", "-q", qos, "-V", version],
            ));
            let out = finish(child);
            assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{topic} hello there\n"));
        }
    }
}

fn ours_to_ours(driver: DriverKind) {
    let broker = Mosquitto::start();
    ours_to_ours_on(broker.addr.port(), driver);
}

/// The whole stack of ours: `monocoque mqtt pub`/`sub` through our broker.
fn ours_to_ours_on_our_broker(driver: DriverKind) {
    let broker = OurBroker::start(driver);
    ours_to_ours_on(broker.port(), driver);
}

fn ours_pub_to_mosquitto_sub(driver: DriverKind) {
    let broker = Mosquitto::start();
    for version in ["mqttv311", "mqttv5"] {
        let topic = format!("m/{version}");
        // Returns once mosquitto_sub's debug output shows its SUBACK.
        let sub = mqtt::mosquitto_sub(
            broker.addr.port(),
            &["-F", "MSG|%p", "-t", &topic, "-C", "3", "-q", "2", "-V", version],
        );
        for (qos, msg) in [("0", "zero"), ("1", "one"), ("2", "two")] {
            run(monocoque(
                broker.addr.port(),
                driver,
                &["pub", "-t", &topic, "-m", msg, "-q", qos, "-V", version],
            ));
        }
        assert_eq!(sub.messages(), ["MSG|zero", "MSG|one", "MSG|two"]);
    }
}

fn mosquitto_pub_to_ours_sub(driver: DriverKind) {
    let broker = Mosquitto::start();
    for (ours, theirs) in [("311", "mqttv311"), ("5", "mqttv5")] {
        let topic = format!("t/{ours}");
        let filter = format!("t/{ours}/#");
        let sub = monocoque(
            broker.addr.port(),
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
    let sub = monocoque(
        broker.addr.port(),
        driver,
        &["sub", "-t", "l", "-C", "3", "-q", "1", "-d"],
    );
    let (child, ready) = start_sub(sub, "subscribed");
    wait_ready(&ready);
    let mut p = monocoque(broker.addr.port(), driver, &["pub", "-t", "l", "-l", "-q", "1"]);
    let mut publisher = p.stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    publisher.stdin.take().unwrap().write_all(b"a\nbb\nccc\n").unwrap();
    assert!(publisher.wait().unwrap().success());
    assert_eq!(String::from_utf8_lossy(&finish(child).stdout), "a\nbb\nccc\n");

    // -r: a retained message reaches a subscriber that comes later (mosquitto_sub too).
    run(monocoque(
        broker.addr.port(),
        driver,
        &["pub", "-t", "keep", "-m", "kept", "-r", "-q", "1", "-V", "5"],
    ));
    let out = run(monocoque(
        broker.addr.port(),
        driver,
        &["sub", "-t", "keep", "-C", "1", "-W", "20"],
    ));
    assert_eq!(out.stdout, b"kept\n");
    let mut theirs = broker.subscriber();
    theirs.args(["-t", "keep", "-C", "1", "-W", "20"]);
    assert_eq!(run(theirs).stdout, b"kept\n");
    // -n: an empty retained message deletes it; -W ends a sub that got nothing.
    run(monocoque(
        broker.addr.port(),
        driver,
        &["pub", "-t", "keep", "-n", "-r"],
    ));
    let out = run(monocoque(broker.addr.port(), driver, &["sub", "-t", "keep", "-W", "1"]));
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
}

/// `-c -i ID`: a subscriber's session keeps what is published while it is gone.
fn persistent_session_with_c(driver: DriverKind) {
    let broker = Mosquitto::start();
    for version in ["311", "5"] {
        let id = format!("cli-persist-{version}-{driver}");
        let sub = |count: &str| {
            monocoque(
                broker.addr.port(),
                driver,
                &[
                    "sub", "-t", "p/#", "-c", "-i", &id, "-q", "1", "-V", version, "-C", count, "-W", "20",
                ],
            )
        };
        // Subscribe once (ending after -W 1 with nothing), then go away.
        let mut first = monocoque(
            broker.addr.port(),
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
