//! The MQTT client's calls that wait for the kernel to take their output, against a
//! real mosquitto frozen with SIGSTOP: a publish past the high-water mark and a flush
//! each return `Error::Timeout` by their deadline, and a publish blocked at the mark
//! ends as soon as the broker is thawed, woken by the driver's report of the write
//! (`Activity::Sent`), not at its deadline.
//!
//! The client lives in a worker thread (a driver stays on the thread that made it) and
//! the test waits for it with a watchdog, so a call that hangs fails the test instead
//! of blocking it.

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::mqtt::{Client, ClientOptions, Error, QoS};
use support::{Frozen, Mosquitto};

both_drivers! {
    publish_past_high_water_times_out => publish_past_high_water_times_out_uring, publish_past_high_water_times_out_mio;
    flush_into_a_frozen_broker_times_out => flush_into_a_frozen_broker_times_out_uring, flush_into_a_frozen_broker_times_out_mio;
    a_publish_blocked_at_high_water_wakes_on_the_thaw => a_publish_blocked_at_high_water_wakes_on_the_thaw_uring, a_publish_blocked_at_high_water_wakes_on_the_thaw_mio;
}

/// The operation timeout of the calls that must time out.
const TIMEOUT: Duration = Duration::from_secs(1);
/// A timer tick plus a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(3);
/// How long the watchdog waits for a step before failing the test.
const WATCHDOG: Duration = Duration::from_secs(60);
/// How long the broker stays frozen while a call waits for room.
const FROZEN_FOR: Duration = Duration::from_secs(2);
/// The operation timeout of a call that must end on the thaw, not on its deadline.
const LONG: Duration = Duration::from_secs(40);
/// One publish's payload.
const PAYLOAD: usize = 64 * 1024;

fn options(broker: &Mosquitto, driver: DriverKind, timeout: Duration, max_outgoing: usize) -> ClientOptions {
    let mut options = ClientOptions::from_url(&format!("mqtt://{}", broker.addr))
        .expect("valid URL")
        .driver(driver)
        .client_id(format!("deadlines-{driver}"))
        .operation_timeout(timeout);
    options.max_outgoing_bytes = max_outgoing;
    options
}

/// What `publish` did: the first error (or the last result), the longest call, and
/// when it returned.
type Outcome = (Result<(), Error>, Duration, Instant);

/// Connects in a worker thread, freezes the broker, then runs `calls` there; thaws the
/// broker `thaw_after` after the calls started (`None`: once they returned). Returns
/// what `calls` returned and when the broker was thawed.
fn frozen(
    broker: &Mosquitto,
    options: ClientOptions,
    thaw_after: Option<Duration>,
    calls: impl FnOnce(&mut Client) -> Outcome + Send + 'static,
) -> (Outcome, Instant) {
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let mut client = Client::connect_with(options).expect("connect to mosquitto");
        client.flush().expect("flush");
        let _ = tx.send(None);
        let _ = go_rx.recv();
        let _ = tx.send(Some(calls(&mut client)));
    });
    let mut frozen = None;
    let watch = |what: &str, frozen: &mut Option<Frozen>| {
        rx.recv_timeout(WATCHDOG).unwrap_or_else(|_| {
            // Thaw, so a failing test leaves no stopped process.
            frozen.take();
            panic!("{what} did not happen within {WATCHDOG:?}")
        })
    };
    assert!(watch("connecting", &mut frozen).is_none());
    frozen = Some(Frozen::stop(broker.pid()));
    go_tx.send(()).expect("worker alive");
    if let Some(after) = thaw_after {
        thread::sleep(after);
        frozen = None;
    }
    let thawed = Instant::now();
    let outcome = watch("the calls under test returning", &mut frozen).expect("an outcome");
    drop(frozen);
    (outcome, thawed)
}

/// Publishes `count` QoS 0 messages of [`PAYLOAD`] bytes until one fails, then flushes if
/// asked.
fn publish(client: &mut Client, count: usize, flush: bool) -> Outcome {
    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
    let mut longest = Duration::ZERO;
    for _ in 0..count {
        let start = Instant::now();
        let result = client.publish("bulk", payload.clone(), QoS::AtMostOnce, false);
        longest = longest.max(start.elapsed());
        if result.is_err() {
            return (result, longest, Instant::now());
        }
    }
    let result = if flush { client.flush() } else { Ok(()) };
    (result, longest, Instant::now())
}

/// Publishing into a frozen broker until the outgoing buffer is full: the publish at the
/// mark waits the operation timeout for the kernel, then fails with a timeout.
fn publish_past_high_water_times_out(driver: DriverKind) {
    let broker = Mosquitto::start();
    let options = options(&broker, driver, TIMEOUT, 1 << 20);
    // The socket buffers take a few MiB, the client 1 MiB more; 256 MiB cannot fit.
    let ((result, longest, _), _) = frozen(&broker, options, None, |c| publish(c, 4096, false));
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    assert!(
        longest >= TIMEOUT - Duration::from_millis(50),
        "gave up early: {longest:?}"
    );
    assert!(longest <= TIMEOUT + MARGIN, "the publish at the mark took {longest:?}");
}

/// 64 MiB of publishes a frozen broker does not read: the flush gives up at the
/// operation timeout with the rest still buffered.
fn flush_into_a_frozen_broker_times_out(driver: DriverKind) {
    let broker = Mosquitto::start();
    let options = options(&broker, driver, TIMEOUT, 128 << 20);
    let ((result, elapsed, _), _) = frozen(&broker, options, None, |client| {
        let (published, _, _) = publish(client, 1024, false);
        assert!(published.is_ok(), "{published:?}");
        let start = Instant::now();
        let result = client.flush();
        (result, start.elapsed(), Instant::now())
    });
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(50),
        "gave up early: {elapsed:?}"
    );
    assert!(elapsed <= TIMEOUT + MARGIN, "the flush took {elapsed:?}");
}

/// A publish blocked at the high-water mark of a frozen broker ends once the broker is
/// thawed, long before its deadline: the waiting call sleeps in the driver's turn until
/// the driver reports the write that made room (`Activity::Sent`), and the flush of the
/// rest wakes on the write that empties the buffer. A wait that ended only at its
/// deadline would take `LONG` per wait and fail.
fn a_publish_blocked_at_high_water_wakes_on_the_thaw(driver: DriverKind) {
    let broker = Mosquitto::start();
    let options = options(&broker, driver, LONG, 1 << 20);
    // 64 MiB: the socket buffers take a few MiB, the client 1 MiB more.
    let ((result, longest, done), thawed) = frozen(&broker, options, Some(FROZEN_FOR), |c| publish(c, 1024, true));
    result.expect("every publish and the flush succeed once the broker is back");
    assert!(
        longest >= FROZEN_FOR - Duration::from_millis(500),
        "no publish waited for the frozen broker ({longest:?})"
    );
    let after = done.saturating_duration_since(thawed);
    assert!(
        after <= MARGIN + MARGIN,
        "done {after:?} after the thaw (a wait for the deadline takes {LONG:?})"
    );
}
