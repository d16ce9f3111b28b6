//! Pure decisions behind the work types: grouping, sweeps and random picks.
//!
//! Workers of one spawn are numbered `k = 0..n`. Paired types (ping-pong,
//! pipes) pair `2i` with `2i + 1`; fan-out groups are `fan + 1` consecutive
//! workers led by the first (the waker); a mutex group is the whole spawn.

use trace_format::scenario::{WorkPhase, WorkType};

/// `SCHED_NORMAL`, `SCHED_BATCH`, `SCHED_IDLE`: the order PolicyChurn cycles.
pub const POLICY_CYCLE: [u32; 3] = [0, 3, 5];

/// Lowest nice value.
pub const NICE_MIN: i32 = -20;
/// Highest nice value.
pub const NICE_MAX: i32 = 19;

/// The nice value for iteration `i` sweeping `floor..=19`.
pub fn nice_at(i: u64, floor: i32) -> i32 {
    let floor = floor.clamp(NICE_MIN, NICE_MAX);
    let span = u64::try_from(NICE_MAX - floor + 1).unwrap_or(1);
    floor + i32::try_from(i % span).unwrap_or(0)
}

/// The policy for iteration `i` of PolicyChurn.
pub fn policy_at(i: u64) -> u32 {
    POLICY_CYCLE[usize::try_from(i % 3).unwrap_or(0)]
}

/// Fan-out: the index of worker `k`'s group leader, and whether `k` leads.
pub fn fan_group(k: usize, fan: u32) -> (usize, bool) {
    let size = usize::try_from(fan).unwrap_or(usize::MAX).saturating_add(1);
    let leader = k - k % size;
    (leader, leader == k)
}

/// Pairing: `k`'s partner index (`None` for an odd one out) and side (0 or 1).
pub fn pair_of(k: usize, n: usize) -> (Option<usize>, u32) {
    let partner = k ^ 1;
    let side = u32::from(k & 1 == 1);
    ((partner < n).then_some(partner), side)
}

/// An xorshift64 step; `state` must not be 0.
pub fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// The `nth` set bit of `mask` (counting from 0), wrapping around the set bits.
pub fn nth_set_bit(mask: &[u64], nth: u64) -> Option<usize> {
    let count: u64 = mask.iter().map(|w| u64::from(w.count_ones())).sum();
    if count == 0 {
        return None;
    }
    let mut want = nth % count;
    for (i, &w) in mask.iter().enumerate() {
        let ones = u64::from(w.count_ones());
        if want < ones {
            let mut w = w;
            for _ in 0..want {
                w &= w - 1;
            }
            return Some(i * 64 + w.trailing_zeros() as usize);
        }
        want -= ones;
    }
    None
}

/// Whether `pred` holds for `work` or, for a sequence, for any of its phases.
fn any_phase(work: &WorkType, pred: fn(&WorkType) -> bool) -> bool {
    match work {
        WorkType::Sequence(phases) => phases.iter().any(|p: &WorkPhase| pred(&p.work)),
        w => pred(w),
    }
}

/// Work types whose workers measure wake-up latency (samples carry `wake`).
pub fn measures_wakes(work: &WorkType) -> bool {
    any_phase(work, |w| {
        matches!(
            w,
            WorkType::FutexPingPong
                | WorkType::PipeIo
                | WorkType::FutexFanOut { .. }
                | WorkType::MutexContention { .. }
        )
    })
}

/// Work types that need a pipe pair per worker pair, made before the fork.
pub fn needs_pipes(work: &WorkType) -> bool {
    any_phase(work, |w| matches!(w, WorkType::PipeIo))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn sweeps_and_cycles() {
        assert_eq!(nice_at(0, -20), -20);
        assert_eq!(nice_at(39, -20), 19);
        assert_eq!(nice_at(40, -20), -20);
        assert_eq!(nice_at(3, 18), 19);
        assert_eq!(nice_at(2, 18), 18);
        assert_eq!(nice_at(5, 99), 19);
        assert_eq!(
            [policy_at(0), policy_at(1), policy_at(2), policy_at(3)],
            [0, 3, 5, 0]
        );
    }

    #[test]
    fn groups_and_pairs() {
        assert_eq!(fan_group(0, 3), (0, true));
        assert_eq!(fan_group(3, 3), (0, false));
        assert_eq!(fan_group(5, 3), (4, false));
        assert_eq!(pair_of(0, 4), (Some(1), 0));
        assert_eq!(pair_of(3, 4), (Some(2), 1));
        assert_eq!(pair_of(4, 5), (None, 0));
    }

    #[test]
    fn random_bits() {
        let mut s = 1;
        let a = xorshift(&mut s);
        assert_ne!(a, xorshift(&mut s));
        let mask = [0b1010u64, 1];
        assert_eq!(nth_set_bit(&mask, 0), Some(1));
        assert_eq!(nth_set_bit(&mask, 1), Some(3));
        assert_eq!(nth_set_bit(&mask, 2), Some(64));
        assert_eq!(nth_set_bit(&mask, 3), Some(1));
        assert_eq!(nth_set_bit(&[0, 0], 5), None);
    }

    #[test]
    fn wake_and_pipe_needs() {
        let seq = WorkType::Sequence(vec![
            WorkPhase {
                work: WorkType::SpinWait,
                duration_ns: 1,
            },
            WorkPhase {
                work: WorkType::PipeIo,
                duration_ns: 1,
            },
        ]);
        assert!(measures_wakes(&seq) && needs_pipes(&seq));
        assert!(measures_wakes(&WorkType::MutexContention { holders: 1 }));
        assert!(!measures_wakes(&WorkType::SpinWait) && !needs_pipes(&WorkType::FutexPingPong));
    }
}
