//! When things happen: step holds, loop rounds and the sampling clock.
//!
//! All times are ns on the executor's clock (`CLOCK_MONOTONIC` since start).
//! Frac and Fixed steps apply their ops, then their setup, then hold for
//! [`Scenario::hold_ns`]; Loop steps apply their setup once, then re-apply
//! their ops every interval until the scenario duration (counted from the
//! first step) is used up.

use trace_format::scenario::{HoldSpec, Scenario};

/// How long the executor may sleep before it looks at the down ring again.
pub const POLL_NS: u64 = 20_000_000;

/// How one step spends its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Hold this long after ops and setup.
    For(u64),
    /// Re-apply the ops every `interval_ns` until the run's duration is over.
    Loop { interval_ns: u64 },
}

impl Hold {
    /// The hold of step `index` of `sc`.
    pub fn of(sc: &Scenario, index: usize) -> Hold {
        match sc.steps.get(index).map(|s| s.hold) {
            Some(HoldSpec::Loop { interval_ns }) => Hold::Loop { interval_ns },
            _ => Hold::For(sc.hold_ns(index).unwrap_or(0)),
        }
    }

    /// Loop steps create their setup cgroups before the first round of ops.
    pub fn setup_first(self) -> bool {
        matches!(self, Hold::Loop { .. })
    }

    /// When the hold that starts at `start` ends. A loop runs until
    /// `steps_start + duration_ns`, but at least one round.
    pub fn end(self, start: u64, steps_start: u64, duration_ns: u64) -> u64 {
        match self {
            Hold::For(ns) => start.saturating_add(ns),
            Hold::Loop { .. } => steps_start.saturating_add(duration_ns).max(start),
        }
    }
}

/// A periodic deadline that skips missed periods instead of bunching up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticker {
    pub next: u64,
    pub interval: u64,
}

impl Ticker {
    /// First tick one interval after `start`.
    pub fn new(start: u64, interval: u64) -> Self {
        let interval = interval.max(1);
        Ticker {
            next: start.saturating_add(interval),
            interval,
        }
    }

    /// True when a tick is due at `now`; then moves to the next tick after `now`.
    pub fn due(&mut self, now: u64) -> bool {
        if now < self.next {
            return false;
        }
        let behind = (now - self.next) / self.interval + 1;
        self.next = self
            .next
            .saturating_add(behind.saturating_mul(self.interval));
        true
    }
}

/// How long to sleep at `now`: until the earliest deadline, at most [`POLL_NS`].
pub fn sleep_for(now: u64, deadlines: &[u64]) -> u64 {
    deadlines
        .iter()
        .map(|d| d.saturating_sub(now))
        .fold(POLL_NS, u64::min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_format::scenario::{NS_PER_MS, NS_PER_SEC, Step};

    fn scenario(holds: &[HoldSpec]) -> Scenario {
        let mut sc = Scenario::new("t", 4 * NS_PER_SEC);
        for &hold in holds {
            sc.steps.push(Step {
                hold,
                ..Step::default()
            });
        }
        sc
    }

    #[test]
    fn holds_of_each_kind() {
        let sc = scenario(&[
            HoldSpec::frac(0.25),
            HoldSpec::fixed_ms(500),
            HoldSpec::loop_every_ms(100),
        ]);
        assert_eq!(Hold::of(&sc, 0), Hold::For(NS_PER_SEC));
        assert_eq!(Hold::of(&sc, 1), Hold::For(500 * NS_PER_MS));
        let l = Hold::of(&sc, 2);
        assert_eq!(
            l,
            Hold::Loop {
                interval_ns: 100 * NS_PER_MS
            }
        );
        assert!(l.setup_first() && !Hold::of(&sc, 0).setup_first());
        // The loop uses what is left of the 4 s after 1.5 s of earlier steps.
        assert_eq!(l.end(1_500 * NS_PER_MS, 0, sc.duration_ns), 4 * NS_PER_SEC);
        // Past the duration it still gets its first round.
        assert_eq!(l.end(5 * NS_PER_SEC, 0, sc.duration_ns), 5 * NS_PER_SEC);
        assert_eq!(Hold::For(10).end(5, 0, 0), 15);
    }

    #[test]
    fn ticker_skips_missed_ticks() {
        let mut t = Ticker::new(0, 100);
        assert!(!t.due(99));
        assert!(t.due(100));
        assert_eq!(t.next, 200);
        assert!(t.due(450));
        assert_eq!(t.next, 500);
        assert!(!t.due(499));
    }

    #[test]
    fn sleeps_until_the_earliest_deadline() {
        assert_eq!(sleep_for(100, &[150, 1_000_000_000]), 50);
        assert_eq!(sleep_for(100, &[50]), 0);
        assert_eq!(sleep_for(0, &[u64::MAX]), POLL_NS);
    }
}
