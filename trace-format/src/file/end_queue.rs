//! The offsets where pending candidates' checked bytes end, for a sweep that
//! only moves forward: a bucket per 4 KiB page, each sorted once when the
//! sweep enters it. A binary heap over every pending candidate spent most of
//! the scan's time on a crafted file; here each entry is pushed once and
//! sorted once, and only entries ending in the sweep's own page (short
//! spans, a few per page) go through a small heap.

use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::Reverse;

const PAGE_SHIFT: u32 = 12;

/// An entry: end offset and candidate sequence number.
type Entry = (usize, u64);

#[derive(Default)]
pub(crate) struct EndQueue {
    /// Entries of pages after `active`, by page.
    pages: Vec<Vec<Entry>>,
    /// The page the sweep is in; its entries are in `sorted` and `late`.
    active: usize,
    /// The lowest non-empty page after `active`.
    next_page: Option<usize>,
    /// `active`'s entries as of entering it, sorted descending.
    sorted: Vec<Entry>,
    /// Entries pushed into `active` after entering it.
    late: BinaryHeap<Reverse<Entry>>,
}

fn page_of(at: usize) -> usize {
    at >> PAGE_SHIFT
}

impl EndQueue {
    /// Adds an entry; `at` must not be before the sweep.
    pub fn push(&mut self, at: usize, seq: u64) {
        let p = page_of(at);
        if p <= self.active {
            self.late.push(Reverse((at, seq)));
            return;
        }
        if self.pages.len() <= p {
            self.pages.resize_with(p.saturating_add(1), Vec::new);
        }
        if let Some(bucket) = self.pages.get_mut(p) {
            bucket.push((at, seq));
        }
        self.next_page = Some(self.next_page.map_or(p, |n| n.min(p)));
    }

    /// The next offset the sweep must stop at: the lowest entry of the
    /// active page, else the start of the next non-empty page.
    pub fn next_stop(&self) -> Option<usize> {
        let here = [
            self.sorted.last().map(|e| e.0),
            self.late.peek().map(|Reverse(e)| e.0),
        ];
        here.into_iter()
            .flatten()
            .min()
            .or_else(|| self.next_page.map(|p| p << PAGE_SHIFT))
    }

    /// Removes and returns the lowest entry if it ends at `at`, entering
    /// the next page first when the sweep reached it.
    pub fn pop_at(&mut self, at: usize) -> Option<u64> {
        if self.sorted.is_empty() && self.late.is_empty() {
            let p = self.next_page?;
            if p << PAGE_SHIFT != at {
                return None;
            }
            self.enter(p);
        }
        let from_sorted = self.sorted.last().copied();
        let from_late = self.late.peek().map(|Reverse(e)| *e);
        match (from_sorted, from_late) {
            (Some(s), l) if s.0 == at && l.is_none_or(|l| s <= l) => {
                self.sorted.pop();
                Some(s.1)
            }
            (_, Some(l)) if l.0 == at => {
                self.late.pop();
                Some(l.1)
            }
            _ => None,
        }
    }

    fn enter(&mut self, p: usize) {
        self.active = p;
        let mut bucket = self
            .pages
            .get_mut(p)
            .map(core::mem::take)
            .unwrap_or_default();
        bucket.sort_unstable_by(|a, b| b.cmp(a));
        self.sorted = bucket;
        // Pages scanned here are never scanned again: `active` only grows.
        let later = self.pages.get(p.saturating_add(1)..).unwrap_or_default();
        self.next_page = later
            .iter()
            .position(|b| !b.is_empty())
            .map(|i| p.saturating_add(1).saturating_add(i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Pops everything in order the way the sweep does. The sweep only
    /// moves forward: every stop must lie past the previous one (whatever
    /// was due there was popped), so a queue that keeps naming the same
    /// stop, or one behind the sweep, fails here instead of hanging it.
    fn drain(q: &mut EndQueue) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut last = None;
        while let Some(at) = q.next_stop() {
            assert!(
                last.is_none_or(|l| at > l),
                "stop {at} after {last:?}: the sweep would not advance"
            );
            last = Some(at);
            while let Some(seq) = q.pop_at(at) {
                out.push((at, seq));
            }
        }
        out
    }

    #[test]
    fn pops_in_offset_order_across_pages() {
        let mut q = EndQueue::default();
        let mut want = Vec::new();
        for (i, at) in [9000usize, 5, 70_000, 4096, 9000, 4095, 123_456]
            .into_iter()
            .enumerate()
        {
            q.push(at, i as u64);
            want.push((at, i as u64));
        }
        want.sort();
        assert_eq!(drain(&mut q), want);
    }

    #[test]
    fn pushes_while_draining_stay_ordered() {
        let mut q = EndQueue::default();
        q.push(10_000, 0);
        q.push(20_000, 1);
        let at = q.next_stop().unwrap(); // page start of 10_000
        assert_eq!(q.pop_at(at), None);
        q.push(9_000, 2); // into the page just entered
        let got = drain(&mut q);
        assert_eq!(got, vec![(9_000, 2), (10_000, 0), (20_000, 1)]);
    }

    /// The sweep's view: with nothing due in its page, it stops at the start
    /// of the next page holding an entry (never earlier, never later), and
    /// entries already sorted and pushed late come out merged in order.
    #[test]
    fn stops_at_the_next_page_start_then_merges_late_entries() {
        let mut q = EndQueue::default();
        q.push(3 * 4096 + 100, 0);
        q.push(3 * 4096 + 300, 1);
        q.push(7 * 4096, 2);
        assert_eq!(q.next_stop(), Some(3 * 4096));
        // Nothing ends at the page start itself.
        assert_eq!(q.pop_at(3 * 4096), None);
        q.push(3 * 4096 + 200, 3); // late, between the two sorted ones
        q.push(3 * 4096 + 100, 4); // late, same offset as a sorted one
        assert_eq!(q.next_stop(), Some(3 * 4096 + 100));
        let got = drain(&mut q);
        assert_eq!(
            got,
            vec![
                (3 * 4096 + 100, 0),
                (3 * 4096 + 100, 4),
                (3 * 4096 + 200, 3),
                (3 * 4096 + 300, 1),
                (7 * 4096, 2),
            ]
        );
    }
}
