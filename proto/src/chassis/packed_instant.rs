//! [`Epoch`] and [`PackedInstant`]: an optional instant in 8 bytes, for the one timer
//! a driver keeps per connection.
//!
//! An `Option<Instant>` is 16 bytes; a driver holding one in every connection's slot
//! pays that a million times. Nanoseconds since the driver's epoch fit a `u64` for 584
//! years, and an instant at or after the epoch comes back exactly, so a timer wheel
//! that reads the armed instant back still fires nothing early or late.

use std::time::{Duration, Instant};

/// The instant a driver's [`PackedInstant`]s count from (its creation, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epoch(Instant);

/// An optional instant as nanoseconds past an [`Epoch`] plus one (0: none). Only the
/// epoch that packed it reads it back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PackedInstant(u64);

impl PackedInstant {
    /// No instant.
    pub const NONE: PackedInstant = PackedInstant(0);

    /// Whether it holds an instant.
    pub fn is_some(self) -> bool {
        self.0 != 0
    }
}

impl Epoch {
    /// Counts from `origin`.
    pub fn new(origin: Instant) -> Self {
        Epoch(origin)
    }

    /// `at` packed. An instant before the epoch is packed as the epoch itself (later
    /// than asked, but already past for a driver created at its epoch); one more than
    /// 584 years after it, as the latest instant a `u64` holds.
    pub fn pack(self, at: Option<Instant>) -> PackedInstant {
        match at {
            None => PackedInstant::NONE,
            Some(at) => {
                let nanos = at.saturating_duration_since(self.0).as_nanos();
                PackedInstant(u64::try_from(nanos).unwrap_or(u64::MAX - 1).min(u64::MAX - 1) + 1)
            }
        }
    }

    /// The instant `packed` holds: exactly the one packed, if that was at or after the
    /// epoch.
    pub fn unpack(self, packed: PackedInstant) -> Option<Instant> {
        let nanos = packed.0.checked_sub(1)?;
        // Beyond what `Instant` holds (never for an instant this epoch packed).
        self.0.checked_add(Duration::from_nanos(nanos))
    }

    /// `at` as it reads back once packed (clamped to the epoch).
    pub fn normalize(self, at: Option<Instant>) -> Option<Instant> {
        self.unpack(self.pack(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly_from_the_epoch_on() {
        let t0 = Instant::now();
        let epoch = Epoch::new(t0);
        assert_eq!(epoch.pack(None), PackedInstant::NONE);
        assert!(!epoch.pack(None).is_some());
        assert_eq!(epoch.unpack(PackedInstant::NONE), None);
        for d in [0, 1, 999, 1_000_000_007, 86_400 * 1_000_000_000 + 3] {
            let at = t0 + Duration::from_nanos(d);
            let packed = epoch.pack(Some(at));
            assert!(packed.is_some());
            assert_eq!(epoch.unpack(packed), Some(at), "{d} ns after the epoch");
        }
        let a = epoch.pack(Some(t0 + Duration::from_nanos(5)));
        let b = epoch.pack(Some(t0 + Duration::from_nanos(6)));
        assert_ne!(a, b, "one nanosecond apart stays apart");
    }

    #[test]
    fn an_instant_before_the_epoch_reads_back_as_the_epoch() {
        let t0 = Instant::now();
        let epoch = Epoch::new(t0 + Duration::from_secs(1));
        assert_eq!(epoch.normalize(Some(t0)), Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn is_8_bytes() {
        assert_eq!(std::mem::size_of::<PackedInstant>(), 8);
    }
}
