//! The reconnect loop: waits for a handshake under way, then does what the chassis'
//! [`Supervisor`] says (dial a server, wait the backoff in a driver turn, give up),
//! never past the caller's deadline.

use std::time::Instant;

use monocoque_proto::chassis::link::{Action, Endpoint, GaveUp, Supervisor};

use super::Link;

/// A client body that keeps one link and reconnects it through the chassis'
/// [`Supervisor`]: the protocol-specific steps the shared loops call.
pub(crate) trait Redial {
    /// A server of the pool.
    type Server: Endpoint;
    /// Why a link died.
    type Lost: Clone;
    /// What the protocol keeps per connection.
    type State;
    /// The client's error.
    type Error: Clone;

    /// The supervisor: the pool and the reconnect under way.
    fn supervisor(&mut self) -> &mut Supervisor<Self::Server, Self::Error>;
    /// The link under way, if any.
    fn link(&self) -> Option<&Link<Self::Lost, Self::State>>;
    /// Starts an attempt on server `index`: dial, adopt, queue the handshake (the
    /// TCP connect no later than `deadline`).
    fn start_link(&mut self, index: usize, deadline: Option<Instant>) -> Result<(), Self::Error>;
    /// Marks the link dead: its handshake did not complete in time.
    fn handshake_timed_out(&mut self);
    /// Takes the dead link out of the driver (a link that never completed its handshake
    /// is reported to the supervisor as a failed attempt).
    fn bury_link(&mut self);
    /// One driver turn until `until`.
    fn turn_until(&mut self, until: Instant) -> Result<(), Self::Error>;
    /// Whether `error` says the server refused the credentials (it is skipped for the
    /// rest of the reconnect).
    fn refused(error: &Self::Error) -> bool;
}

/// How [`wait_handshake`] ended.
#[derive(Debug)]
pub(crate) enum Handshake<L, E> {
    /// The link is ready.
    Ready,
    /// The limit came first; the link stays, for the next call to wait for.
    Later,
    /// The link died (it is buried); why, or `None` when there was no link.
    Dead(Option<L>),
    /// The driver failed.
    Failed(E),
}

/// Waits for the link's handshake until `limit` (`None`: until it completes or its own
/// deadline passes), in driver turns.
pub(crate) fn wait_handshake<B: Redial>(body: &mut B, limit: Option<Instant>) -> Handshake<B::Lost, B::Error> {
    loop {
        let Some(link) = body.link() else {
            return Handshake::Dead(None);
        };
        if let Some(lost) = link.dead.clone() {
            body.bury_link();
            return Handshake::Dead(Some(lost));
        }
        if link.ready {
            return Handshake::Ready;
        }
        let by = link.handshake_by;
        let now = Instant::now();
        if now >= by {
            body.handshake_timed_out();
            continue;
        }
        if limit.is_some_and(|l| now >= l) {
            return Handshake::Later;
        }
        if let Err(e) = body.turn_until(limit.map_or(by, |l| l.min(by))) {
            return Handshake::Failed(e);
        }
    }
}

/// Why [`reconnect`] returned without a ready link.
#[derive(Debug)]
pub(crate) enum Redialed<E> {
    /// The caller's deadline came first; the reconnect (and a handshake under way) goes
    /// on in the next call.
    Later,
    /// The supervisor gave up: the next call starts a new reconnect.
    GaveUp(GaveUp<E>),
    /// The driver failed.
    Failed(E),
}

/// Continues the reconnect (or starts one) until a link is ready or `deadline`: waits
/// for a handshake under way, then does what the supervisor says: dial a server, wait
/// the backoff (a driver turn: other sessions on the driver run meanwhile), or give up.
pub(crate) fn reconnect<B: Redial>(body: &mut B, deadline: Option<Instant>) -> Result<(), Redialed<B::Error>> {
    loop {
        if body.link().is_some() {
            match wait_handshake(body, deadline) {
                Handshake::Ready => return Ok(()),
                Handshake::Later => return Err(Redialed::Later),
                // Buried, and counted as a failed attempt by `bury_link`.
                Handshake::Dead(_) => continue,
                Handshake::Failed(e) => return Err(Redialed::Failed(e)),
            }
        }
        let now = Instant::now();
        let action = body.supervisor().next(now);
        if let Action::GiveUp(gave_up) = action {
            return Err(Redialed::GaveUp(gave_up));
        }
        if deadline.is_some_and(|d| now >= d) {
            return Err(Redialed::Later);
        }
        match action {
            Action::Wait(at) => body
                .turn_until(deadline.map_or(at, |d| d.min(at)))
                .map_err(Redialed::Failed)?,
            Action::Connect(index) => {
                body.supervisor().attempt();
                if let Err(e) = body.start_link(index, deadline) {
                    let refused = B::refused(&e);
                    body.supervisor().failed(index, e, refused);
                }
            }
            Action::GiveUp(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use monocoque_proto::{ConnId, CoreId};

    use super::*;

    /// A body without sockets: `dial` says what an attempt on each server does, the
    /// handshake completes in the first turn after `ready_after_turns` turns.
    struct Fake {
        sup: Supervisor<Named, String>,
        link: Option<(usize, Link<String>)>,
        dial: fn(usize) -> Result<(), String>,
        handshake_by: Duration,
        ready_after_turns: Option<usize>,
        dialled: Vec<usize>,
        turns: usize,
    }

    #[derive(Debug, Clone)]
    struct Named(usize);

    impl Endpoint for Named {
        fn same_place(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }

    fn fake(servers: usize, max_attempts: u32, dial: fn(usize) -> Result<(), String>) -> Fake {
        let policy = monocoque_proto::chassis::link::ReconnectPolicy {
            // No backoff: the loop never has to wait out real time.
            initial: Duration::ZERO,
            max: Duration::ZERO,
            jitter: 0.0,
            max_attempts: Some(max_attempts),
        };
        let servers: Vec<Named> = (0..servers).map(Named).collect();
        Fake {
            sup: Supervisor::new(&servers, policy, 1),
            link: None,
            dial,
            handshake_by: Duration::from_secs(60),
            ready_after_turns: None,
            dialled: Vec::new(),
            turns: 0,
        }
    }

    impl Redial for Fake {
        type Server = Named;
        type Lost = String;
        type State = ();
        type Error = String;

        fn supervisor(&mut self) -> &mut Supervisor<Named, String> {
            &mut self.sup
        }

        fn link(&self) -> Option<&Link<String>> {
            self.link.as_ref().map(|(_, l)| l)
        }

        fn start_link(&mut self, index: usize, _: Option<Instant>) -> Result<(), String> {
            self.dialled.push(index);
            (self.dial)(index)?;
            self.sup.set_current(index);
            let link = Link::new(ConnId::new(CoreId(0), 0, 0), Instant::now() + self.handshake_by);
            self.link = Some((index, link));
            Ok(())
        }

        fn handshake_timed_out(&mut self) {
            if let Some((_, l)) = &mut self.link {
                l.kill("handshake timeout".to_owned());
            }
        }

        fn bury_link(&mut self) {
            if let Some((index, l)) = self.link.take() {
                if !l.ready {
                    let lost = l.dead.unwrap_or_default();
                    self.sup.failed(index, lost, false);
                }
            }
        }

        fn turn_until(&mut self, _: Instant) -> Result<(), String> {
            self.turns += 1;
            if let (Some((index, l)), Some(n)) = (&mut self.link, self.ready_after_turns) {
                if self.turns >= n {
                    l.ready = true;
                    let index = *index;
                    self.sup.succeeded(index);
                }
            }
            Ok(())
        }

        fn refused(error: &String) -> bool {
            error == "refused"
        }
    }

    #[test]
    fn failed_dials_rotate_skip_refusals_and_give_up_with_the_last_error() {
        let mut body = fake(2, 5, |i| Err(if i == 0 { "refused" } else { "down" }.to_owned()));
        let result = reconnect(&mut body, None);
        let Err(Redialed::GaveUp(gave_up)) = result else {
            panic!("{result:?}")
        };
        // After server 0 (the current one): 1, then 0 refuses and is skipped from then on.
        assert_eq!(body.dialled, [1, 0, 1, 1, 1]);
        assert_eq!(gave_up.attempts, 5);
        assert_eq!(gave_up.last.as_deref(), Some("down"));
    }

    #[test]
    fn a_handshake_outlives_the_call_that_started_it() {
        let mut body = fake(1, 5, |_| Ok(()));
        body.ready_after_turns = Some(1);
        // A deadline already past: the dial is not even made.
        assert!(matches!(
            reconnect(&mut body, Some(Instant::now())),
            Err(Redialed::Later)
        ));
        assert!(body.dialled.is_empty());
        // A call with time: dials, waits one turn, the handshake completes.
        assert!(matches!(reconnect(&mut body, None), Ok(())));
        assert_eq!((body.dialled.len(), body.turns), (1, 1));
        assert!(!body.sup.reconnecting());

        // A handshake still under way when the caller's time is up stays for the next.
        let mut body = fake(1, 5, |_| Ok(()));
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(matches!(reconnect(&mut body, Some(soon)), Err(Redialed::Later)));
        assert!(body.link.is_some(), "the handshake is still under way");
        body.ready_after_turns = Some(0);
        assert!(matches!(reconnect(&mut body, None), Ok(())));
        assert_eq!(body.dialled.len(), 1, "one dial across the calls");
    }

    #[test]
    fn a_handshake_past_its_deadline_is_a_failed_attempt() {
        let mut body = fake(1, 2, |_| Ok(()));
        body.handshake_by = Duration::ZERO;
        let result = reconnect(&mut body, None);
        let Err(Redialed::GaveUp(gave_up)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(gave_up.attempts, 2);
        assert_eq!(gave_up.last.as_deref(), Some("handshake timeout"));
        assert!(body.link.is_none(), "buried");
    }
}
