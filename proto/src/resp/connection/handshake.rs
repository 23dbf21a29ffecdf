//! The handshake: `HELLO 3` (or RESP2's `AUTH` and `CLIENT SETNAME`) and `SELECT`, with
//! user commands held until it succeeds.
//!
//! RESP3: `HELLO 3 [AUTH user pass] [SETNAME name]` and `SELECT db` are pipelined. When
//! `HELLO` is refused (`-NOPROTO`, `-ERR unknown command` from Redis < 6, or any other
//! error, `-WRONGPASS` included), the connection falls back to RESP2 and sends `AUTH`,
//! `CLIENT SETNAME` and `SELECT` again in RESP2 form (the pipelined `SELECT` ran before
//! authentication, so its reply is ignored). An error reply to any of those is fatal.

use std::time::Instant;

use super::queue::{Entry, Role, Step};
use super::{Connection, ConnectionError, Event, HandshakeError};
use crate::resp::{Cmd, Protocol, Value};

impl Connection {
    /// Queues the first handshake commands; connects at once if there are none.
    pub(super) fn start_handshake(&mut self, now: Instant) {
        if self.config.protocol == Protocol::Resp3 {
            let mut hello = Cmd::new("HELLO").arg("3");
            if let Some(password) = &self.config.password {
                let user = self.config.username.as_deref().unwrap_or("default");
                hello = hello.arg("AUTH").arg(user).arg(password);
            }
            if let Some(name) = &self.config.client_name {
                hello = hello.arg("SETNAME").arg(name);
            }
            self.hello3_in_flight += 1;
            self.sync_decoder();
            self.push_handshake(Step::Hello, &hello, now);
            self.push_select(now);
        } else {
            self.push_resp2_handshake(now);
        }
        if self.handshake_outstanding == 0 {
            self.complete_handshake();
        }
    }

    /// The reply to a handshake command.
    pub(super) fn on_handshake_reply(&mut self, step: Step, value: Value, now: Instant) {
        self.handshake_outstanding = self.handshake_outstanding.saturating_sub(1);
        match step {
            Step::Hello => {
                self.hello3_in_flight = self.hello3_in_flight.saturating_sub(1);
                if value.is_error() {
                    self.protocol = Protocol::Resp2;
                    self.sync_decoder();
                    // The pipelined SELECT ran before authentication: ignore it, send it
                    // again after AUTH.
                    for at in 0..self.fifo.entries().len() {
                        self.fifo.update(at, |entry| {
                            if let Role::Handshake(s @ Step::Select) = &mut entry.role {
                                *s = Step::Stale;
                            }
                        });
                    }
                    self.push_resp2_handshake(now);
                } else {
                    self.protocol = Protocol::Resp3;
                    self.sync_decoder();
                    self.hello = Some(value);
                }
            }
            Step::Stale => {}
            Step::Auth | Step::SetName | Step::Select => {
                if let Some(message) = value.as_error() {
                    let error = HandshakeError::Rejected {
                        command: step.command(),
                        message: message.clone(),
                    };
                    self.poison(ConnectionError::Handshake(error));
                    return;
                }
            }
        }
        if self.handshake_outstanding == 0 {
            self.complete_handshake();
        }
    }

    /// `AUTH`, `CLIENT SETNAME` and `SELECT`, as configured.
    fn push_resp2_handshake(&mut self, now: Instant) {
        if let Some(password) = &self.config.password {
            let auth = match &self.config.username {
                Some(user) => Cmd::new("AUTH").arg(user).arg(password),
                None => Cmd::new("AUTH").arg(password),
            };
            self.push_handshake(Step::Auth, &auth, now);
        }
        if let Some(name) = &self.config.client_name {
            let setname = Cmd::new("CLIENT").arg("SETNAME").arg(name);
            self.push_handshake(Step::SetName, &setname, now);
        }
        self.push_select(now);
    }

    fn push_select(&mut self, now: Instant) {
        if self.config.database != 0 {
            let select = Cmd::new("SELECT").arg(self.config.database);
            self.push_handshake(Step::Select, &select, now);
        }
    }

    /// Handshake commands skip the high-water mark: they are few and must go first.
    fn push_handshake(&mut self, step: Step, cmd: &Cmd, now: Instant) {
        cmd.encode(&mut self.transmit);
        let deadline = self.deadline(now);
        self.fifo.push(Entry {
            owner: 0,
            role: Role::Handshake(step),
            deadline,
        });
        self.handshake_outstanding += 1;
    }

    /// Reports the connection and releases the held commands, in order.
    fn complete_handshake(&mut self) {
        self.connected = true;
        self.events.push_back(Event::Connected {
            protocol: self.protocol,
            hello: self.hello.clone(),
        });
        self.transmit.append(&mut self.held);
        while let Some(entry) = self.held_fifo.pop() {
            self.fifo.push(entry);
        }
        self.settle_front();
    }
}
