//! Work types that hand off between workers and measure the wake-up latency:
//! the time from the waker's hand-off to the woken worker running.
//!
//! - FutexPingPong: one iteration is one turn passed through a futex.
//! - PipeIo: one iteration is one byte written to the partner and one read back
//!   (or read and echoed, on the second side).
//! - FutexFanOut: groups of `fan + 1`; each round one member (in turn) does a
//!   chunk of work and wakes the other `fan`, which each do the same chunk and
//!   ack. An iteration is one round woken or led; the next waker waits for
//!   every ack of the previous round.
//! - MutexContention: one iteration is acquire, a chunk of work, release, on a
//!   lock at most `holders` workers hold at once; a worker that had to wait
//!   records the time since the last release.

use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use rustix::fd::BorrowedFd;
use rustix::thread::futex;

use super::sys;
use super::work::{FOREVER, Runner, before, spin_chunk, wait_while};
use crate::telemetry::Slot;
use crate::workplan::{fan_group, pair_of};

impl<'a> Runner<'a> {
    /// The pair's shared slot and this worker's side, or `None` without a partner.
    fn pair(&self) -> Option<(&'a Slot, u32)> {
        let (partner, side) = pair_of(self.c.k, self.c.group.len());
        partner?;
        Some((self.c.group[self.c.k & !1], side))
    }

    /// Alternates with the partner through the pair slot's `turn` futex.
    pub(super) fn ping_pong(&mut self, until: u64) {
        let Some((pair, side)) = self.pair() else {
            return self.idle_until(until);
        };
        let other = side ^ 1;
        let mut first = true;
        while before(until) {
            while pair.turn.load(Acquire) != side {
                if !wait_while(&pair.turn, other, until) {
                    return;
                }
            }
            let woken_at = pair.woken_at_ns.load(Acquire);
            // The first hand-over includes start-up skew; skip it.
            if !first && woken_at != 0 {
                self.slot
                    .record_wake(sys::now_ns().saturating_sub(woken_at));
            }
            first = false;
            self.iteration();
            pair.woken_at_ns.store(sys::now_ns(), Release);
            pair.turn.store(other, Release);
            let _ = futex::wake(&pair.turn, futex::Flags::empty(), 1);
        }
    }

    /// One byte each way through the pair's two pipes; side 0 starts.
    pub(super) fn pipe_io(&mut self, until: u64) {
        let (Some((pair, side)), Some((wr, rd))) = (self.pair(), self.c.pipe) else {
            return self.idle_until(until);
        };
        // SAFETY: the executor opened these fds for this worker before the
        // fork and they stay open for the worker's whole life.
        let (wr, rd) = unsafe { (BorrowedFd::borrow_raw(wr), BorrowedFd::borrow_raw(rd)) };
        let mut byte = [0u8; 1];
        let mut first = true;
        let send = |pair: &Slot| {
            pair.woken_at_ns.store(sys::now_ns(), Release);
            let _ = rustix::io::write(wr, &[1]);
        };
        if side == 0 {
            send(pair);
        }
        while before(until) {
            if until != FOREVER {
                let mut fds = [rustix::event::PollFd::new(
                    &rd,
                    rustix::event::PollFlags::IN,
                )];
                let left = until.saturating_sub(sys::now_ns()).min(10_000_000);
                let ts = rustix::time::Timespec {
                    tv_sec: 0,
                    tv_nsec: i64::try_from(left).unwrap_or(0),
                };
                if !matches!(rustix::event::poll(&mut fds, Some(&ts)), Ok(n) if n > 0) {
                    continue;
                }
            }
            match rustix::io::read(rd, &mut byte) {
                Ok(1) => {}
                Ok(_) => return self.idle_until(until),
                Err(_) => continue,
            }
            let woken_at = pair.woken_at_ns.load(Acquire);
            if !first && woken_at != 0 {
                self.slot
                    .record_wake(sys::now_ns().saturating_sub(woken_at));
            }
            first = false;
            self.iteration();
            send(pair);
        }
    }

    /// Rounds of one waker and `fan` waiters; the waker role rotates through
    /// the group, so every member wakes and is woken equally often.
    pub(super) fn fan_out(&mut self, fan: u32, until: u64) {
        let (leader, _) = fan_group(self.c.k, fan);
        let g = self.c.group[leader];
        let size = (self.c.group.len() - leader).min(fan as usize + 1);
        let me = self.c.k - leader;
        let others = u32::try_from(size - 1).unwrap_or(0);
        if others == 0 {
            return self.idle_until(until);
        }
        while before(until) {
            let round = g.seq.load(Acquire);
            if round != self.fan_seen {
                // Woken for a round someone else led.
                self.fan_seen = round;
                self.slot
                    .record_wake(sys::now_ns().saturating_sub(g.woken_at_ns.load(Acquire)));
                // Handle the event: the same chunk of work the waker did.
                spin_chunk();
                self.iteration();
                if g.acks.fetch_add(1, Release) + 1 >= others {
                    let _ = futex::wake(&g.acks, futex::Flags::empty(), u32::MAX);
                }
            } else if round as usize % size == me {
                // My turn: once everyone saw the previous round, lead the next.
                let acks = g.acks.load(Acquire);
                if round > 0 && acks < others {
                    wait_while(&g.acks, acks, until);
                    continue;
                }
                g.acks.store(0, Relaxed);
                spin_chunk();
                g.woken_at_ns.store(sys::now_ns(), Release);
                self.fan_seen = round.wrapping_add(1);
                g.seq.store(self.fan_seen, Release);
                let _ = futex::wake(&g.seq, futex::Flags::empty(), others);
                self.iteration();
            } else {
                wait_while(&g.seq, round, until);
            }
        }
    }

    /// Acquire a counting lock (the spawn's first slot), work, release.
    pub(super) fn mutex(&mut self, holders: u32, until: u64) {
        let g = self.c.group[0];
        let holders = holders.max(1);
        while before(until) {
            let mut waited = false;
            let acquired = loop {
                let held = g.held.load(Acquire);
                if held < holders {
                    if g.held
                        .compare_exchange(held, held + 1, Acquire, Relaxed)
                        .is_ok()
                    {
                        break true;
                    }
                    continue;
                }
                waited = true;
                if !wait_while(&g.held, held, until) {
                    break false;
                }
            };
            if !acquired {
                return;
            }
            if waited {
                self.slot
                    .record_wake(sys::now_ns().saturating_sub(g.woken_at_ns.load(Acquire)));
            }
            spin_chunk();
            g.woken_at_ns.store(sys::now_ns(), Release);
            g.held.fetch_sub(1, Release);
            let _ = futex::wake(&g.held, futex::Flags::empty(), 1);
            self.iteration();
        }
    }
}
