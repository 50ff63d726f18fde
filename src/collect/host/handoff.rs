//! What one collector reads and leaves for a later one in the same scrape, so a source read by
//! two collectors is read once: netdev's rtnetlink dump for netclass, cpu's /proc/stat for
//! stat.
//!
//! What is left is taken at most once, so no two scrapes share a read, and what is older than
//! [`Handoff::MAX_AGE`] (the later collector skipped, a scrape cut short) is not taken: the
//! later collector then reads the source itself.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A read left by one collector for another.
#[derive(Debug)]
pub(in crate::collect::host) struct Handoff<T>(Mutex<Option<(Instant, T)>>);

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Handoff(Mutex::new(None))
    }
}

impl<T> Handoff<T> {
    /// How old a read may be when taken: well beyond the time between two collectors of one
    /// scrape, well below any scrape interval.
    pub(in crate::collect::host) const MAX_AGE: Duration = Duration::from_millis(500);

    /// Leaves `read`, replacing one nobody took.
    pub(in crate::collect::host) fn leave(&self, read: T) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), read));
    }

    /// The read left, if any and fresh; it is gone afterwards.
    pub(in crate::collect::host) fn take(&self) -> Option<T> {
        let left = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        left.and_then(|(at, read)| (at.elapsed() < Self::MAX_AGE).then_some(read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_taken_once_and_only_while_fresh() {
        let handoff = Handoff::default();
        assert_eq!(handoff.take(), None::<u32>);
        handoff.leave(1);
        handoff.leave(2);
        assert_eq!(handoff.take(), Some(2), "the newer read replaces the older");
        assert_eq!(handoff.take(), None, "taken once");
        *handoff.0.lock().unwrap() = Some((Instant::now() - Handoff::<u32>::MAX_AGE, 3));
        assert_eq!(handoff.take(), None, "too old");
    }
}
