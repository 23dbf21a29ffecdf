//! The reconnect supervisor: which server to dial next and when, as a sans-IO state
//! machine on instants the body passes in.
//!
//! A body (a blocking client) owns the sockets and the driver; it asks [`Supervisor::next`]
//! what to do once its connection is lost, and reports what came of it:
//!
//! 1. [`Action::Connect`]`(index)`: dial server `index` of the pool; call
//!    [`Supervisor::attempt`] just before (the attempt then counts), then
//!    [`Supervisor::failed`] if the TCP connect or the handshake failed, or
//!    [`Supervisor::succeeded`] once the handshake completed;
//! 2. [`Action::Wait`]`(until)`: the backoff; wait in the driver until `until` (or the
//!    caller's deadline, if sooner) and ask again;
//! 3. [`Action::GiveUp`]: the policy's attempts are spent, or every known server
//!    refused the credentials; the reconnect is over, and the next [`Supervisor::next`]
//!    starts a new one.
//!
//! The progress (attempts, round, the server next in turn, when the backoff ends) stays
//! in the supervisor between calls, so a call whose deadline comes first leaves it for
//! the next call to continue. Servers are tried in rounds, starting after the one just
//! lost; two rounds are separated by exponential backoff with jitter drawn from a seeded
//! [`Rng`], so the schedule is reproducible from the seed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How a client reconnects after its connection is lost: rounds through every known
/// server, separated by `initial`, doubling up to `max`, each wait stretched by a random
/// factor of up to `jitter`; at most `max_attempts` connection attempts per reconnect
/// (`None`: until one succeeds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicy {
    /// Wait before the second round (with one server: the second attempt).
    pub initial: Duration,
    /// Longest wait between two rounds.
    pub max: Duration,
    /// Extra random wait, as a fraction of the delay (0.0 to 1.0).
    pub jitter: f64,
    /// Connection attempts per reconnect (each server tried counts one), across the
    /// calls it spans; `None` retries forever.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(25),
            max: Duration::from_secs(2),
            jitter: 0.5,
            max_attempts: Some(60),
        }
    }
}

impl ReconnectPolicy {
    /// The wait before round number `round` (0-based) through the servers, before jitter:
    /// none for the first, then `initial`, `2 * initial`, ... capped at `max`.
    pub fn delay(&self, round: u32) -> Duration {
        if round == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(round - 1).unwrap_or(u32::MAX);
        self.initial.checked_mul(factor).map_or(self.max, |d| d.min(self.max))
    }

    /// [`delay`](Self::delay) stretched by `unit` (a random number in `[0, 1)`) times
    /// `jitter`.
    pub fn delay_with_jitter(&self, round: u32, unit: f64) -> Duration {
        let base = self.delay(round);
        let jitter = self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        base + base.mul_f64(jitter)
    }

    /// Whether attempt number `attempt` (0-based) may be made.
    pub fn allows(&self, attempt: u32) -> bool {
        match self.max_attempts {
            None => true,
            Some(max) => attempt < max.max(1),
        }
    }

    /// One attempt per reconnect, no waiting: a call that finds the connection lost
    /// tries once and fails if that fails; the next call tries again.
    pub fn once() -> Self {
        Self {
            max_attempts: Some(1),
            ..Self::default()
        }
    }
}

/// xorshift64*: enough randomness for jitter and ids, seeded by the caller (this crate
/// reads no clock), so a schedule is reproducible from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (zero, xorshift's fixed point, is replaced by 1).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A server a [`Supervisor`] can dial: it only needs to know whether two name the same
/// place (a server discovered twice, or under other credentials, is kept once).
pub trait Endpoint: Clone {
    /// Whether `self` and `other` are the same server.
    fn same_place(&self, other: &Self) -> bool;
}

/// What the body should do next, from [`Supervisor::next`].
#[derive(Debug, Clone, PartialEq)]
pub enum Action<E> {
    /// Dial server `index` of the pool (after [`Supervisor::attempt`]).
    Connect(usize),
    /// The backoff: nothing to do before this instant.
    Wait(Instant),
    /// The reconnect is over without a connection.
    GiveUp(GaveUp<E>),
}

/// How a reconnect that gave up went.
#[derive(Debug, Clone, PartialEq)]
pub struct GaveUp<E> {
    /// Connection attempts made.
    pub attempts: u32,
    /// Why the last one failed (`None` if none failed).
    pub last: Option<E>,
    /// Every known server refused the credentials (waiting cannot help).
    pub all_refused: bool,
}

/// Where a reconnect stands, kept across calls.
#[derive(Debug, Clone)]
struct Progress<E> {
    /// Attempts made (started).
    attempts: u32,
    /// Attempts that failed.
    failures: u32,
    /// Rounds through the servers completed.
    round: u32,
    /// Index the current round started at.
    start: usize,
    /// Servers tried (or skipped) in the current round.
    tried: usize,
    /// No attempt before this instant.
    next_attempt_at: Option<Instant>,
    /// Servers that refused the credentials in this reconnect.
    refused: BTreeSet<usize>,
    /// Why the last attempt failed.
    last: Option<E>,
}

/// The reconnect state machine: a pool of servers (configured, then discovered), the
/// policy, the jitter's generator, and the progress of the reconnect under way. See the
/// [module documentation](self) for the protocol between it and a body.
#[derive(Debug, Clone)]
pub struct Supervisor<S, E> {
    policy: ReconnectPolicy,
    servers: Vec<S>,
    /// How many of `servers` were configured (the rest were discovered).
    configured: usize,
    /// The server of the current (or last) connection.
    current: usize,
    rng: Rng,
    progress: Option<Progress<E>>,
}

impl<S: Endpoint, E: Clone> Supervisor<S, E> {
    /// A supervisor over `configured` servers (each place kept once, in order), with
    /// `policy` and jitter drawn from a generator seeded with `seed`.
    pub fn new(configured: &[S], policy: ReconnectPolicy, seed: u64) -> Self {
        let mut supervisor = Self {
            policy,
            servers: Vec::with_capacity(configured.len()),
            configured: 0,
            current: 0,
            rng: Rng::new(seed),
            progress: None,
        };
        for server in configured {
            supervisor.add(server.clone());
        }
        supervisor.configured = supervisor.servers.len();
        supervisor
    }

    // ---- getters ----

    /// Every known server: configured, then discovered.
    pub fn servers(&self) -> &[S] {
        &self.servers
    }

    /// The servers added with [`add`](Self::add) after construction (discovered).
    pub fn discovered(&self) -> &[S] {
        &self.servers[self.configured..]
    }

    /// Index of the server of the current (or last) connection.
    pub fn current(&self) -> usize {
        self.current
    }

    /// Whether a reconnect is under way (lost, not yet connected or given up).
    pub fn reconnecting(&self) -> bool {
        self.progress.is_some()
    }

    /// Attempts of the reconnect under way that failed, and the last failure (`None`
    /// before the first).
    pub fn failures(&self) -> (u32, Option<&E>) {
        self.progress
            .as_ref()
            .map_or((0, None), |p| (p.failures, p.last.as_ref()))
    }

    /// The generator the jitter comes from (a body may draw other seeds from it).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    // ---- mutators ----

    /// Adds a server (discovered); returns whether it was new. A reconnect under way
    /// meets it in its next round.
    pub fn add(&mut self, server: S) -> bool {
        if self.servers.iter().any(|s| s.same_place(&server)) {
            return false;
        }
        self.servers.push(server);
        true
    }

    /// Marks server `index` as the current connection's (what the next reconnect
    /// starts after).
    pub fn set_current(&mut self, index: usize) {
        self.current = index;
    }

    /// The connection was lost at `now`: starts a reconnect whose first attempt waits
    /// the first backoff (`initial`, with jitter), where [`next`](Self::next) would
    /// start one that dials at once. For peers that expect a pause before a redial, as
    /// libzmq makes one (`ZMQ_RECONNECT_IVL`): a server that accepts and then drops
    /// every connection is not redialed in a tight loop. The waits after that attempt
    /// go on doubling from there. Ignored while a reconnect is under way.
    pub fn lost(&mut self, now: Instant) {
        if self.progress.is_some() {
            return;
        }
        let delay = self.policy.delay_with_jitter(1, self.rng.unit());
        self.progress = Some(Progress {
            attempts: 0,
            failures: 0,
            // Round 0 (no wait) is the one this replaces: the next round waits double.
            round: 1,
            start: self.current + 1,
            tried: 0,
            next_attempt_at: Some(now + delay),
            refused: BTreeSet::new(),
            last: None,
        });
    }

    /// What to do next, at `now`. Starts a reconnect if none is under way.
    #[must_use]
    pub fn next(&mut self, now: Instant) -> Action<E> {
        let count = self.servers.len();
        let first = self.current + 1;
        let progress = self.progress.get_or_insert_with(|| Progress {
            attempts: 0,
            failures: 0,
            round: 0,
            start: first,
            tried: 0,
            next_attempt_at: None,
            refused: BTreeSet::new(),
            last: None,
        });
        loop {
            if progress.attempts > 0 && !self.policy.allows(progress.attempts) {
                return Action::GiveUp(self.give_up(false));
            }
            if let Some(at) = progress.next_attempt_at {
                if now < at {
                    return Action::Wait(at);
                }
                progress.next_attempt_at = None;
            }
            if progress.tried >= count {
                // The pool may have grown meanwhile (discovered servers).
                if count == 0 || (0..count).all(|i| progress.refused.contains(&i)) {
                    return Action::GiveUp(self.give_up(true));
                }
                progress.round += 1;
                progress.tried = 0;
                progress.start = first;
                let delay = self.policy.delay_with_jitter(progress.round, self.rng.unit());
                progress.next_attempt_at = Some(now + delay);
                continue;
            }
            let index = (progress.start + progress.tried) % count;
            if progress.refused.contains(&index) {
                progress.tried += 1;
                continue;
            }
            return Action::Connect(index);
        }
    }

    /// The body is about to dial the server [`next`](Self::next) named: the attempt
    /// counts, and the round moves past that server.
    pub fn attempt(&mut self) {
        if let Some(progress) = &mut self.progress {
            progress.tried += 1;
            progress.attempts += 1;
        }
    }

    /// The attempt on server `index` failed with `error`; `refused` when the server
    /// refused the credentials (it is skipped for the rest of this reconnect). Ignored
    /// when no reconnect is under way.
    pub fn failed(&mut self, index: usize, error: E, refused: bool) {
        let Some(progress) = &mut self.progress else { return };
        progress.failures += 1;
        progress.last = Some(error);
        if refused {
            progress.refused.insert(index);
        }
    }

    /// A connection to server `index` completed its handshake: the reconnect is over.
    pub fn succeeded(&mut self, index: usize) {
        self.current = index;
        self.progress = None;
    }

    /// Ends the reconnect under way.
    fn give_up(&mut self, all_refused: bool) -> GaveUp<E> {
        let progress = self.progress.take();
        GaveUp {
            attempts: progress.as_ref().map_or(0, |p| p.attempts),
            last: progress.and_then(|p| p.last),
            all_refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Server(&'static str);

    impl Endpoint for Server {
        fn same_place(&self, other: &Self) -> bool {
            self.0.eq_ignore_ascii_case(other.0)
        }
    }

    fn policy(max_attempts: Option<u32>) -> ReconnectPolicy {
        ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            jitter: 0.0,
            max_attempts,
        }
    }

    fn supervisor(servers: &[&'static str], policy: ReconnectPolicy) -> Supervisor<Server, &'static str> {
        let servers: Vec<Server> = servers.iter().map(|s| Server(s)).collect();
        Supervisor::new(&servers, policy, 7)
    }

    /// Fails every attempt at once; returns what was dialled and when, until `GiveUp`
    /// or `limit` actions.
    fn run(
        sup: &mut Supervisor<Server, &'static str>,
        start: Instant,
        limit: usize,
        refuses: impl Fn(usize) -> bool,
    ) -> (Vec<(usize, Duration)>, Option<GaveUp<&'static str>>) {
        let mut now = start;
        let mut dialled = Vec::new();
        for _ in 0..limit {
            match sup.next(now) {
                Action::Connect(i) => {
                    sup.attempt();
                    dialled.push((i, now - start));
                    sup.failed(i, "refused", refuses(i));
                }
                Action::Wait(until) => {
                    assert!(until > now, "a wait must be in the future");
                    now = until;
                }
                Action::GiveUp(g) => return (dialled, Some(g)),
            }
        }
        (dialled, None)
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stretches_it() {
        let p = policy(None);
        let delays: Vec<u64> = (0..5).map(|r| p.delay(r).as_millis() as u64).collect();
        assert_eq!(delays, [0, 100, 200, 400, 400]);
        assert_eq!(p.delay(u32::MAX), p.max);
        let j = ReconnectPolicy { jitter: 0.5, ..p };
        assert_eq!(j.delay_with_jitter(1, 0.0), Duration::from_millis(100));
        assert_eq!(j.delay_with_jitter(1, 7.0), Duration::from_millis(150), "unit clamped");
        assert!(
            ReconnectPolicy {
                max_attempts: Some(0),
                ..p
            }
            .allows(0),
            "at least one"
        );
        assert!(!policy(Some(2)).allows(2));
    }

    #[test]
    fn rounds_start_after_the_lost_server_and_wait_between_rounds() {
        let mut sup = supervisor(&["a", "b", "c"], policy(Some(7)));
        sup.set_current(1);
        let t0 = Instant::now();
        let (dialled, gave_up) = run(&mut sup, t0, 100, |_| false);
        let ms = |d: Duration| d.as_millis() as u64;
        let got: Vec<(usize, u64)> = dialled.iter().map(|&(i, d)| (i, ms(d))).collect();
        // Round 0 at once from c, round 1 after 100 ms, round 2 after 200 more; the
        // seventh attempt is the last the policy allows.
        assert_eq!(got, [(2, 0), (0, 0), (1, 0), (2, 100), (0, 100), (1, 100), (2, 300)]);
        let gave_up = gave_up.expect("gives up");
        assert_eq!(gave_up.attempts, 7);
        assert_eq!(gave_up.last, Some("refused"));
        assert!(!gave_up.all_refused);
        assert!(!sup.reconnecting(), "the next call starts a new reconnect");
    }

    #[test]
    fn one_server_waits_between_attempts_and_gives_up_without_a_last_wait() {
        let mut sup = supervisor(&["only"], policy(Some(4)));
        let t0 = Instant::now();
        let (dialled, gave_up) = run(&mut sup, t0, 100, |_| false);
        let at: Vec<u64> = dialled.iter().map(|&(_, d)| d.as_millis() as u64).collect();
        assert_eq!(at, [0, 100, 300, 700]);
        assert_eq!(gave_up.map(|g| g.attempts), Some(4));
    }

    #[test]
    fn progress_survives_a_caller_that_stops_waiting() {
        let mut sup = supervisor(&["a", "b"], policy(None));
        let t0 = Instant::now();
        for i in [1, 0] {
            assert_eq!(sup.next(t0), Action::Connect(i));
            sup.attempt();
            sup.failed(i, "down", false);
        }
        let Action::Wait(until) = sup.next(t0) else {
            panic!("backoff")
        };
        assert_eq!(until, t0 + Duration::from_millis(100));
        // A caller whose deadline comes first asks again later: same wait, no attempt.
        assert_eq!(sup.next(t0 + Duration::from_millis(50)), Action::Wait(until));
        assert_eq!(sup.failures(), (2, Some(&"down")));
        // Not asking for a while does not add attempts; the round resumes where it was.
        assert_eq!(sup.next(t0 + Duration::from_secs(9)), Action::Connect(1));
        // A caller that did not start the attempt it was offered gets it again.
        assert_eq!(sup.next(t0 + Duration::from_secs(9)), Action::Connect(1));
        sup.attempt();
        sup.succeeded(1);
        assert!(!sup.reconnecting());
        assert_eq!(sup.current(), 1);
        // The next loss starts after server 1, at once.
        assert_eq!(sup.next(t0 + Duration::from_secs(10)), Action::Connect(0));
    }

    #[test]
    fn a_lost_connection_waits_the_first_backoff_then_doubles() {
        let mut sup = supervisor(&["only"], policy(None));
        let t0 = Instant::now();
        sup.lost(t0);
        assert!(sup.reconnecting());
        assert_eq!(sup.next(t0), Action::Wait(t0 + Duration::from_millis(100)));
        // A second loss reported meanwhile does not restart the wait.
        sup.lost(t0 + Duration::from_millis(50));
        let (dialled, _) = run(&mut sup, t0, 8, |_| false);
        let at: Vec<u64> = dialled.iter().map(|&(_, d)| d.as_millis() as u64).collect();
        // 100 ms, then 200, 400, capped at 400.
        assert_eq!(at, [100, 300, 700, 1100]);
        sup.succeeded(0);
        assert!(!sup.reconnecting());
        // A loss after a success starts over from the first backoff.
        let t1 = t0 + Duration::from_secs(5);
        sup.lost(t1);
        assert_eq!(sup.next(t1), Action::Wait(t1 + Duration::from_millis(100)));
    }

    #[test]
    fn refused_servers_are_skipped_and_all_refused_gives_up_at_once() {
        let mut sup = supervisor(&["a", "b", "c"], policy(None));
        let t0 = Instant::now();
        let (dialled, gave_up) = run(&mut sup, t0, 100, |i| i != 2);
        // a and b refuse in round 0; later rounds dial only c.
        let order: Vec<usize> = dialled.iter().take(5).map(|&(i, _)| i).collect();
        assert_eq!(order, [1, 2, 0, 2, 2]);
        assert!(gave_up.is_none(), "c keeps being retried");

        let mut sup = supervisor(&["a", "b"], policy(None));
        let (dialled, gave_up) = run(&mut sup, t0, 100, |_| true);
        assert_eq!(dialled.len(), 2);
        let gave_up = gave_up.expect("all refused");
        assert!(gave_up.all_refused);
        assert_eq!(gave_up.attempts, 2);
    }

    #[test]
    fn discovered_servers_join_the_next_round_each_place_once() {
        let mut sup = supervisor(&["a", "A", "b"], policy(None));
        assert_eq!(sup.servers().len(), 2);
        assert!(!sup.add(Server("B")));
        assert!(sup.add(Server("c")));
        assert_eq!(sup.discovered(), [Server("c")]);
        let t0 = Instant::now();
        let (dialled, _) = run(&mut sup, t0, 8, |_| false);
        let order: Vec<usize> = dialled.iter().map(|&(i, _)| i).collect();
        assert_eq!(order[..6], [1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn jitter_is_reproducible_from_the_seed_and_within_bounds() {
        let p = ReconnectPolicy {
            jitter: 1.0,
            ..policy(Some(20))
        };
        let schedule = |seed| {
            let mut sup: Supervisor<Server, &str> = Supervisor::new(&[Server("a")], p, seed);
            let t0 = Instant::now();
            let (dialled, _) = run(&mut sup, t0, 100, |_| false);
            dialled.windows(2).map(|w| w[1].1 - w[0].1).collect::<Vec<_>>()
        };
        let a = schedule(1);
        assert_eq!(a, schedule(1));
        assert_ne!(a, schedule(2));
        for (round, gap) in (1u32..).zip(&a) {
            let base = p.delay(round);
            assert!(*gap >= base && *gap <= base * 2, "round {round}: {gap:?} vs {base:?}");
        }
    }

    #[test]
    fn random_units_are_in_range() {
        let mut rng = Rng::new(0);
        let xs: Vec<f64> = (0..1000).map(|_| rng.unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }
}
