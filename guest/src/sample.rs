//! Worker sample maths: cumulative readings in, per-interval deltas out.
//!
//! The executor reads absolute counters (schedstat, status, the telemetry
//! page) and [`SampleState::delta`] turns them into a [`WorkerSample`] whose
//! counters cover only the time since the worker's previous sample.
//!
//! The first interval starts at a baseline reading taken at the instant the
//! worker's spawn record is stamped ([`SampleState::baseline`]): counters
//! since fork (start-up, waiting for the gate) must not be divided by the
//! shorter time since that record. Without a baseline, the first reading only
//! sets one and yields no sample.

use trace_format::record::{WakeStats, WorkerSample};

use crate::telemetry::{CPU_WORDS, HIST_BUCKETS};

/// One reading of a worker's cumulative counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub iterations: u64,
    pub run_ns: u64,
    pub wait_ns: u64,
    pub timeslices: u64,
    pub voluntary: u64,
    pub involuntary: u64,
    /// `se.nr_migrations`, when the kernel exposes it.
    pub migrations: Option<u64>,
    /// CPU changes the worker saw itself (fallback for migrations).
    pub cpu_changes: u64,
    /// Cumulative wake histogram (work types that measure wake-ups).
    pub wake_hist: [u32; HIST_BUCKETS],
    /// Failed work operations (cumulative).
    pub failed: u64,
}

impl Default for Reading {
    fn default() -> Self {
        Reading {
            iterations: 0,
            run_ns: 0,
            wait_ns: 0,
            timeslices: 0,
            voluntary: 0,
            involuntary: 0,
            migrations: None,
            cpu_changes: 0,
            wake_hist: [0; HIST_BUCKETS],
            failed: 0,
        }
    }
}

/// The previous reading of one worker; `None` until the baseline.
#[derive(Debug, Clone, Default)]
pub struct SampleState {
    prev: Option<Reading>,
}

/// What [`SampleState::delta`] made of a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    /// The reading became the baseline; there is no sample.
    Baseline,
    /// `out` holds the interval's sample; `failed` operations failed in it.
    Sample { failed: u64 },
}

fn d64(now: u64, prev: u64) -> u64 {
    now.saturating_sub(prev)
}

fn d32(now: u64, prev: u64) -> u32 {
    u32::try_from(now.saturating_sub(prev)).unwrap_or(u32::MAX)
}

impl SampleState {
    /// Starts the first interval at `now` (read when the spawn record is stamped).
    pub fn baseline(&mut self, now: &Reading) {
        self.prev = Some(*now);
    }

    /// Fills `out` with the deltas from the previous reading to `now`, and the
    /// interval's CPU mask and wake maximum; reuses `out`'s vectors. Without a
    /// previous reading, `now` becomes the baseline and `out` is untouched.
    pub fn delta(
        &mut self,
        now: &Reading,
        cpus: &[u64; CPU_WORDS],
        wake_max_ns: Option<u64>,
        out: &mut WorkerSample,
    ) -> Delta {
        let Some(p) = self.prev.replace(*now) else {
            return Delta::Baseline;
        };
        out.iterations = d64(now.iterations, p.iterations);
        out.run_ns = d64(now.run_ns, p.run_ns);
        out.wait_ns = d64(now.wait_ns, p.wait_ns);
        out.timeslices = d32(now.timeslices, p.timeslices);
        out.voluntary_switches = d32(now.voluntary, p.voluntary);
        out.involuntary_switches = d32(now.involuntary, p.involuntary);
        out.migrations = match (now.migrations, p.migrations) {
            (Some(n), Some(p)) => d32(n, p),
            _ => d32(now.cpu_changes, p.cpu_changes),
        };
        let used = cpus.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
        out.cpus_seen.clear();
        out.cpus_seen.extend_from_slice(&cpus[..used]);
        match wake_max_ns {
            None => out.wake = None,
            Some(max_ns) => {
                let wake = out.wake.get_or_insert_with(WakeStats::default);
                wake.max_ns = max_ns;
                let deltas = now
                    .wake_hist
                    .iter()
                    .zip(&p.wake_hist)
                    .map(|(n, p)| n.saturating_sub(*p));
                let used = deltas.clone().rposition(|d| d != 0).map_or(0, |i| i + 1);
                wake.hist.buckets.clear();
                wake.hist.buckets.extend(deltas.take(used));
            }
        }
        Delta::Sample {
            failed: d64(now.failed, p.failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// A worker that did `iterations` and ran `run_ns` since fork.
    fn at(iterations: u64, run_ns: u64) -> Reading {
        Reading {
            iterations,
            run_ns,
            ..Reading::default()
        }
    }

    #[test]
    fn first_interval_starts_at_the_baseline_not_at_fork() {
        // 40 ms of start-up since fork: 2,000 iterations and 40 ms waiting,
        // read when the spawn record was stamped.
        let mut st = SampleState::default();
        let base = Reading {
            wait_ns: 40_000_000,
            ..at(2_000, 1_000_000)
        };
        st.baseline(&base);
        // 1 ms later, the first sample covers that 1 ms only.
        let now = Reading {
            wait_ns: 40_000_000,
            ..at(2_050, 2_000_000)
        };
        let mut out = WorkerSample::default();
        let d = st.delta(&now, &[0; CPU_WORDS], None, &mut out);
        assert_eq!(d, Delta::Sample { failed: 0 });
        assert_eq!(
            (out.iterations, out.run_ns, out.wait_ns),
            (50, 1_000_000, 0)
        );
    }

    #[test]
    fn without_a_baseline_the_first_reading_only_sets_one() {
        let mut st = SampleState::default();
        let mut out = WorkerSample {
            iterations: 7,
            ..WorkerSample::default()
        };
        let d = st.delta(&at(5_000, 9_000), &[1; CPU_WORDS], None, &mut out);
        assert_eq!(d, Delta::Baseline);
        assert_eq!(out.iterations, 7, "no sample written");
        st.delta(&at(5_100, 9_500), &[0; CPU_WORDS], None, &mut out);
        assert_eq!((out.iterations, out.run_ns), (100, 500));
    }

    #[test]
    fn deltas_since_previous_sample() {
        let mut st = SampleState::default();
        st.baseline(&Reading::default());
        let mut out = WorkerSample::default();
        let mut r = Reading {
            iterations: 100,
            run_ns: 5_000,
            wait_ns: 700,
            timeslices: 3,
            voluntary: 1,
            involuntary: 2,
            migrations: Some(4),
            cpu_changes: 9,
            failed: 3,
            ..Reading::default()
        };
        let mut cpus = [0u64; CPU_WORDS];
        cpus[0] = 0b11;
        // The baseline had no migrations counter: fall back to CPU changes.
        let d = st.delta(&r, &cpus, None, &mut out);
        assert_eq!(d, Delta::Sample { failed: 3 });
        assert_eq!(
            (out.iterations, out.run_ns, out.migrations),
            (100, 5_000, 9)
        );
        assert_eq!(out.cpus_seen, vec![0b11]);
        assert_eq!(out.wake, None);

        r.iterations = 250;
        r.run_ns = 9_000;
        r.timeslices = 10;
        r.migrations = Some(6);
        r.wake_hist[3] = 5;
        let d = st.delta(&r, &[0; CPU_WORDS], Some(12), &mut out);
        assert_eq!(d, Delta::Sample { failed: 0 });
        assert_eq!(
            (out.iterations, out.run_ns, out.timeslices),
            (150, 4_000, 7)
        );
        assert_eq!(
            (out.wait_ns, out.voluntary_switches, out.migrations),
            (0, 0, 2)
        );
        assert!(out.cpus_seen.is_empty());
        let wake = out.wake.as_ref().unwrap();
        assert_eq!(
            (wake.max_ns, &wake.hist.buckets[..]),
            (12, &[0, 0, 0, 5][..])
        );
    }

    #[test]
    fn falls_back_to_cpu_changes_and_saturates() {
        let mut st = SampleState::default();
        st.baseline(&Reading::default());
        let mut out = WorkerSample::default();
        let r = Reading {
            cpu_changes: 3,
            run_ns: 10,
            ..Reading::default()
        };
        st.delta(&r, &[0; CPU_WORDS], None, &mut out);
        assert_eq!(out.migrations, 3);
        // A counter that goes backwards (should not happen) gives 0, not a wrap.
        let r2 = Reading { run_ns: 5, ..r };
        st.delta(&r2, &[0; CPU_WORDS], None, &mut out);
        assert_eq!((out.run_ns, out.migrations), (0, 0));
    }
}
