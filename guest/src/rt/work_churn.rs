//! Work types that churn kernel state or memory, one change per iteration.
//!
//! - CachePressure: one walk over a `kib`-KiB buffer, touching each cache line.
//! - ForkExit: fork a child that exits at once, and reap it.
//! - AffinityChurn: `sched_setaffinity` to a random allowed CPU, then a chunk of work.
//! - PolicyChurn: switch to the next of normal, batch, idle, then a chunk of work.
//! - NiceSweep: set the next nice value of -20..=19 (from the lowest the
//!   kernel allows), then a chunk of work.
//! - PageFaultChurn: write every page of a 1 MiB region, then `MADV_DONTNEED` it.

use core::ptr;
use rustix::mm::{Advice, MapFlags, ProtFlags};
use rustix::process::WaitOptions;
use rustix::thread::CpuSet;

use super::sys;
use super::work::{Runner, before, spin_chunk};
use crate::telemetry::{CPU_WORDS, OP_FORK, OP_MAP, OP_WAIT};
use crate::workplan::{nice_at, nth_set_bit, policy_at, xorshift};

const LINE: usize = 64;
const PAGE: usize = 4096;
const FAULT_REGION: usize = 1 << 20;

/// A private anonymous mapping of `len` bytes, or the errno of its failure.
fn map(len: usize) -> Result<(usize, usize), i32> {
    // SAFETY: a fresh private anonymous mapping that nothing else refers to.
    let p = unsafe {
        rustix::mm::mmap_anonymous(
            ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }
    .map_err(|e| e.raw_os_error())?;
    Ok((p as usize, len))
}

/// The mapping in `slot`, at least `len` bytes, mapped on first use.
fn region(slot: &mut Option<(usize, usize)>, len: usize) -> Result<(usize, usize), i32> {
    if let Some((addr, have)) = *slot {
        if have >= len {
            return Ok((addr, have));
        }
        // SAFETY: the region was mapped by `map` and no reference into it survives.
        let _ = unsafe { rustix::mm::munmap(addr as *mut _, have) };
        *slot = None;
    }
    let mapped = map(len)?;
    *slot = Some(mapped);
    Ok(mapped)
}

impl Runner<'_> {
    pub(super) fn cache_pressure(&mut self, kib: u32, until: u64) {
        let len = (kib.max(1) as usize * 1024).next_multiple_of(PAGE);
        let addr = match region(&mut self.cache, len) {
            Ok((addr, _)) => addr,
            Err(errno) => {
                self.slot.note_failure(OP_MAP, errno);
                return self.idle_until(until);
            }
        };
        while before(until) {
            for off in (0..len).step_by(LINE) {
                let p = (addr + off) as *mut u8;
                // SAFETY: `p` lies inside the live mapping of `len` bytes.
                unsafe { ptr::write_volatile(p, ptr::read_volatile(p).wrapping_add(1)) };
            }
            self.iteration();
        }
    }

    /// One iteration is one fork whose child was reaped; a failed fork (out
    /// of PIDs under `pids.max`, or memory) is counted as a failure, not work.
    pub(super) fn fork_exit(&mut self, until: u64) {
        while before(until) {
            match sys::fork() {
                Ok(None) => sys::exit(0),
                Ok(Some(pid)) => {
                    let reaped = match rustix::process::Pid::from_raw(pid as i32) {
                        Some(pid) => rustix::process::waitpid(Some(pid), WaitOptions::empty())
                            .map(|_| ())
                            .map_err(|e| e.raw_os_error()),
                        None => Err(0),
                    };
                    match reaped {
                        Ok(()) => self.iteration(),
                        Err(errno) => self.slot.note_failure(OP_WAIT, errno),
                    }
                }
                Err(e) => {
                    self.slot.note_failure(OP_FORK, e.raw_os_error());
                    // Back off before trying again.
                    sys::sleep_ns(1_000_000);
                }
            }
        }
    }

    /// The CPUs the worker may use: what the cgroup (and its affinity) allows.
    fn refresh_allowed(&mut self, widen: bool) -> [u64; CPU_WORDS] {
        if widen {
            let mut all = CpuSet::new();
            (0..CPU_WORDS * 64).for_each(|c| all.set(c));
            let _ = rustix::thread::sched_setaffinity(None, &all);
        }
        let mut mask = [0u64; CPU_WORDS];
        if let Ok(set) = rustix::thread::sched_getaffinity(None) {
            for c in 0..CPU_WORDS * 64 {
                if set.is_set(c) {
                    mask[c / 64] |= 1 << (c % 64);
                }
            }
        }
        self.allowed = Some(mask);
        mask
    }

    pub(super) fn affinity_churn(&mut self, until: u64) {
        let mut allowed = match self.allowed {
            Some(m) => m,
            None => self.refresh_allowed(false),
        };
        while before(until) {
            let pick = xorshift(&mut self.rng);
            if let Some(cpu) = nth_set_bit(&allowed, pick) {
                let mut one = CpuSet::new();
                one.set(cpu);
                if rustix::thread::sched_setaffinity(None, &one).is_err() {
                    // The cpuset changed under us: take the new one.
                    allowed = self.refresh_allowed(true);
                }
            } else {
                allowed = self.refresh_allowed(true);
            }
            spin_chunk();
            self.iteration();
        }
    }

    pub(super) fn policy_churn(&mut self, until: u64) {
        while before(until) {
            let _ = sys::sched_setscheduler(0, policy_at(self.step), 0);
            spin_chunk();
            self.iteration();
        }
    }

    pub(super) fn nice_sweep(&mut self, until: u64) {
        while before(until) {
            let nice = nice_at(self.step, self.nice_floor);
            if rustix::process::setpriority_process(None, nice).is_err() {
                // Not allowed this low: the sweep starts one higher from now on.
                self.nice_floor = (nice + 1).min(crate::workplan::NICE_MAX);
            }
            spin_chunk();
            self.iteration();
        }
    }

    pub(super) fn page_fault(&mut self, until: u64) {
        let (addr, len) = match region(&mut self.pages, FAULT_REGION) {
            Ok(r) => r,
            Err(errno) => {
                self.slot.note_failure(OP_MAP, errno);
                return self.idle_until(until);
            }
        };
        while before(until) {
            for off in (0..len).step_by(PAGE) {
                // SAFETY: `addr + off` lies inside the live mapping of `len` bytes.
                unsafe { ptr::write_volatile((addr + off) as *mut u8, 1) };
            }
            // SAFETY: the region is ours; dropping its pages only zeroes them.
            let _ = unsafe { rustix::mm::madvise(addr as *mut _, len, Advice::LinuxDontNeed) };
            self.iteration();
        }
    }
}
