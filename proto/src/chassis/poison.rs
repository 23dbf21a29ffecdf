//! The terminal state of a connection whose byte stream can no longer be trusted.

/// Holds the first fatal error of a connection, forever.
///
/// Once [`poison`](Self::poison)ed, every later [`check`](Self::check) reports the same
/// error, so each pending and future operation fails the same way and nothing more is
/// parsed from a stream whose framing is lost. The body then reconnects.
#[derive(Debug, Clone)]
pub struct PoisonGuard<E> {
    error: Option<E>,
}

impl<E> Default for PoisonGuard<E> {
    fn default() -> Self {
        Self { error: None }
    }
}

impl<E: Clone> PoisonGuard<E> {
    /// A healthy guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Ok` while healthy; the stored error once poisoned.
    pub fn check(&self) -> Result<(), E> {
        match &self.error {
            None => Ok(()),
            Some(e) => Err(e.clone()),
        }
    }

    /// Poisons the guard with `error` unless it already is; returns the error that is
    /// now stored (the first one wins).
    pub fn poison(&mut self, error: E) -> E {
        self.error.get_or_insert(error).clone()
    }

    /// Whether the guard is poisoned.
    pub fn is_poisoned(&self) -> bool {
        self.error.is_some()
    }

    /// The stored error, if any.
    pub fn error(&self) -> Option<&E> {
        self.error.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_error_wins_and_sticks() {
        let mut g = PoisonGuard::<&'static str>::new();
        assert!(g.check().is_ok());
        assert_eq!(g.poison("decode"), "decode");
        assert_eq!(g.poison("later"), "decode");
        assert_eq!(g.check(), Err("decode"));
        assert!(g.is_poisoned());
    }
}
