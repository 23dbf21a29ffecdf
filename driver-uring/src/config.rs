//! Sizes and switches of one io_uring driver.

use crate::UringError;

/// How one [`UringDriver`](crate::UringDriver) sizes its ring and buffers.
///
/// The defaults suit a client or a server thread with up to a few thousand connections:
/// 4 MiB of receive buffers shared by every connection of the ring (an idle connection
/// holds none), and 2 MiB of registered send buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UringConfig {
    /// Submission queue entries (1..=32768). All submissions of one loop iteration go in
    /// one `io_uring_enter`; a fuller queue is flushed early.
    pub sq_entries: u32,
    /// Completion queue entries (at least `sq_entries`, at most 65536). Multishot
    /// receive posts one completion per received buffer, so this is larger than the
    /// submission queue. The kernel keeps overflowing completions (`FEAT_NODROP`).
    pub cq_entries: u32,
    /// Bytes per receive buffer in the provided-buffer ring.
    pub recv_buffer_size: u32,
    /// Number of receive buffers: a power of two, 1..=32768. When every buffer is held
    /// (by the kernel or by `Bytes` views the sessions keep), receives pause and resume as
    /// views drop; no byte is lost.
    pub recv_buffers: u16,
    /// The receive ring's low-water mark: while fewer receive buffers than this are in
    /// the ring (the rest held by `Bytes` views a program keeps), each receive is copied
    /// into an exactly-sized heap buffer and its ring buffer given back at once, so kept
    /// values can never empty the ring and stall receiving. Zero cost while the ring is
    /// healthy. Capped at half of `recv_buffers`; 0 never copies (kept views then pause
    /// receiving until they drop).
    pub recv_low_water: u16,
    /// Bytes per registered send buffer: an arena this small or smaller is copied into
    /// one and sent from it; a larger one is sent vectored, straight from its segments.
    pub send_buffer_size: u32,
    /// Number of registered send buffers (0 disables the copy path: every send is
    /// vectored). At most one send is in flight per connection.
    pub send_buffers: u16,
    /// `listen(2)` backlog of listeners.
    pub listen_backlog: i32,
    /// Sets `SO_REUSEPORT` on listeners, so one driver per core can each listen on the
    /// same port (thread per core).
    pub reuse_port: bool,
    /// Creates a plain ring, without `SINGLE_ISSUER`, `DEFER_TASKRUN`, `COOP_TASKRUN` or
    /// `SUBMIT_ALL`, even where the kernel has them (for comparison and for testing the
    /// fallback path).
    pub plain_ring: bool,
    /// Arms a single-shot receive (re-armed after each completion) instead of a
    /// multishot one: the fallback for kernels without multishot receive, forced here
    /// for comparison and for testing it.
    pub single_shot_recv: bool,
    /// Arms a single-shot accept (re-armed after each connection) instead of a
    /// multishot one: the fallback for kernels without multishot accept, forced here.
    pub single_shot_accept: bool,
    /// The core this driver serves: every [`ConnId`](monocoque_proto::ConnId) and
    /// [`ListenerId`](monocoque_proto::ListenerId) it hands out names it, so a message
    /// about a connection can be routed back to its driver (default 0).
    pub core: monocoque_proto::CoreId,
}

impl Default for UringConfig {
    fn default() -> Self {
        Self {
            sq_entries: 1024,
            cq_entries: 8192,
            recv_buffer_size: 16 * 1024,
            recv_buffers: 256,
            recv_low_water: 64,
            send_buffer_size: 64 * 1024,
            send_buffers: 32,
            listen_backlog: 1024,
            reuse_port: false,
            plain_ring: false,
            single_shot_recv: false,
            single_shot_accept: false,
            core: monocoque_proto::CoreId(0),
        }
    }
}

impl UringConfig {
    /// The low-water mark in force: `recv_low_water`, at most half the ring.
    pub fn effective_low_water(&self) -> u16 {
        self.recv_low_water.min(self.recv_buffers / 2)
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), UringError> {
        let bad = |field, reason| Err(UringError::InvalidConfig { field, reason });
        if !(1..=32768).contains(&self.sq_entries) {
            return bad("sq_entries", "must be 1..=32768");
        }
        if self.cq_entries < self.sq_entries || self.cq_entries > 65536 {
            return bad("cq_entries", "must be at least sq_entries and at most 65536");
        }
        if self.recv_buffers == 0 || !self.recv_buffers.is_power_of_two() || self.recv_buffers > 32768 {
            return bad("recv_buffers", "must be a power of two, 1..=32768");
        }
        if self.recv_buffer_size == 0 || self.recv_buffer_size > 1 << 30 {
            return bad("recv_buffer_size", "must be 1..=1 GiB");
        }
        if (self.recv_buffer_size as u64) * (self.recv_buffers as u64) > 1 << 32 {
            return bad("recv_buffers", "times recv_buffer_size must be at most 4 GiB");
        }
        if self.send_buffers > 0 && (self.send_buffer_size == 0 || self.send_buffer_size > 1 << 30) {
            return bad("send_buffer_size", "must be 1..=1 GiB when send_buffers > 0");
        }
        if self.send_buffers > 16384 {
            return bad(
                "send_buffers",
                "must be at most 16384 (the kernel's registered-buffer limit)",
            );
        }
        if (self.send_buffer_size as u64) * (self.send_buffers as u64) > 1 << 32 {
            return bad("send_buffers", "times send_buffer_size must be at most 4 GiB");
        }
        if self.listen_backlog < 1 {
            return bad("listen_backlog", "must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert!(UringConfig::default().validate().is_ok());
    }

    #[test]
    fn buffer_ring_size_must_be_a_power_of_two() {
        let cfg = UringConfig {
            recv_buffers: 12,
            ..UringConfig::default()
        };
        match cfg.validate() {
            Err(UringError::InvalidConfig { field, .. }) => assert_eq!(field, "recv_buffers"),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn completion_queue_not_smaller_than_submission_queue() {
        let cfg = UringConfig {
            sq_entries: 64,
            cq_entries: 32,
            ..UringConfig::default()
        };
        assert!(matches!(
            cfg.validate(),
            Err(UringError::InvalidConfig {
                field: "cq_entries",
                ..
            })
        ));
    }
}
