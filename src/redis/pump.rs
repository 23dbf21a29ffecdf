//! Streaming pipelines on the Redis client's body: hand what is buffered to the kernel
//! and return the replies that have arrived, without waiting for the whole batch.

use std::time::Instant;

use monocoque_proto::resp::{Connection, Value};
use monocoque_proto::Driver;

use super::body::Inner;
use super::calls::Redialed;
use super::{Error, LinkError};

impl<D: Driver<Connection>> Inner<D> {
    /// See [`Client::pump_into`](super::Client::pump_into).
    pub(crate) fn pump_into(
        &mut self,
        wait_until: Option<Instant>,
        out: &mut Vec<Result<Value, Error>>,
    ) -> Result<usize, Error> {
        self.pump_with(wait_until, |inner| inner.drain_finished_into(out))
    }

    /// [`pump_into`](Self::pump_into)'s loop, handing the outcomes that have arrived over
    /// with `take` (which returns how many it handed over).
    pub(crate) fn pump_with(
        &mut self,
        wait_until: Option<Instant>,
        mut take: impl FnMut(&mut Self) -> usize,
    ) -> Result<usize, Error> {
        let mut turned = false;
        let mut appended = 0;
        loop {
            if self.prepare()? {
                continue;
            }
            let timeout = self.proto.options.response_timeout;
            if !self.is_ready() && self.proto.batch.has_unsent() {
                // Only unsent requests are left: nothing on a dead connection survives.
                let held = self.proto.batch.held_deadline(timeout);
                let until = match (held, wait_until) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                match self.redial(until) {
                    Ok(()) => {}
                    Err(Redialed::Later(e)) => {
                        self.proto.batch.expire_unsent_with(timeout, Instant::now(), &e);
                        appended += take(self);
                        if appended > 0 || wait_until.is_some_and(|d| Instant::now() >= d) {
                            return Ok(appended);
                        }
                    }
                    Err(Redialed::Over(e @ Error::Link(LinkError::Driver(_)))) => return Err(e),
                    Err(Redialed::Over(e)) => self.proto.batch.fail_unsent(&e),
                }
                continue;
            }
            if !turned {
                // Hand what is encoded to the kernel and take in what arrived, without
                // blocking; then submit what the replies made room for.
                self.turn(Some(Instant::now()))?;
                turned = true;
                continue;
            }
            // Requests still held in the client's queue fail by their deadline, as in
            // `drive`: the connection does not know them, so nothing else would.
            let held = self.proto.batch.held_deadline(timeout);
            if held.is_some_and(|d| Instant::now() >= d) {
                self.proto.batch.expire_unsent(timeout, Instant::now());
            }
            appended += take(self);
            let expired = wait_until.is_some_and(|d| Instant::now() >= d);
            if appended > 0 || self.proto.batch.all_finished() || expired || self.link.is_none() {
                return Ok(appended);
            }
            let until = match (self.proto.batch.held_deadline(timeout), wait_until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.turn(until)?;
        }
    }

    /// Moves the outcomes at the front of the batch, up to the first request still
    /// waiting, into `out`; returns how many.
    fn drain_finished_into(&mut self, out: &mut Vec<Result<Value, Error>>) -> usize {
        let mut n = 0;
        while let Some(slot) = self.proto.batch.pop_finished() {
            if let Some(outcome) = slot {
                out.push(outcome);
                n += 1;
            }
        }
        n
    }
}
