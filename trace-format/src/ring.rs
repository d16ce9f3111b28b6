//! The guest↔host transport: two single-producer byte rings in a shared window.
//!
//! The window is guest-physical memory outside guest RAM, mapped by the guest
//! through `/dev/mem` and by the host through its view of guest memory. The "up"
//! ring carries guest→host frames (records, requests); the smaller "down" ring
//! carries host→guest replies. Positions are free-running `u64` byte counters,
//! published with release stores and read with acquire loads, so no VM exit is
//! needed per frame. The consumer trusts nothing it reads: every length,
//! position and CRC is checked, and a bad ring is reported, never followed.
//!
//! Frame: `u32 len ‖ u32 crc32c(payload) ‖ payload`, padded to 8 bytes. A frame
//! never wraps; the producer writes a [`WRAP`] marker and restarts at offset 0.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::crc32c;

/// Magic at the start of the window.
pub const WINDOW_MAGIC: [u8; 8] = *b"STAPRING";
/// Layout version; bump on any change below.
pub const WINDOW_VERSION: u32 = 1;
/// Bytes before the first ring's data: header and both control blocks.
pub const DATA_START: usize = 0x1000;
/// Largest frame payload either side accepts.
pub const MAX_FRAME: usize = 256 * 1024;
/// Frame length value that tells the consumer to continue at data offset 0.
pub const WRAP: u32 = u32::MAX;

const FRAME_HEADER: usize = 8;
const OFF_MAGIC: usize = 0x00;
const OFF_VERSION: usize = 0x08;
const OFF_LEN: usize = 0x0c;
const OFF_UP_CAP: usize = 0x10;
const OFF_DOWN_CAP: usize = 0x14;
const CTRL_UP: usize = 0x100;
const CTRL_DOWN: usize = 0x200;
// Within a control block: producer fields share one line, the consumer's another.
const CTRL_HEAD: usize = 0x00;
const CTRL_DROPS: usize = 0x08;
const CTRL_TAIL: usize = 0x40;

/// Why a window or ring cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The window is too small or its ring sizes do not fit.
    #[error("ring window of {len} bytes cannot hold rings of {up} and {down} bytes")]
    BadGeometry { len: usize, up: usize, down: usize },
    /// The window does not start with the ring magic.
    #[error("ring window has no valid header (magic or version mismatch)")]
    BadHeader,
    /// The peer published positions that cannot be right.
    #[error("ring positions are inconsistent (head {head}, tail {tail}, capacity {capacity})")]
    Corrupt { head: u64, tail: u64, capacity: u64 },
    /// A frame's header points outside the published data.
    #[error("ring frame at position {pos} has impossible length {len}")]
    BadFrame { pos: u64, len: u32 },
    /// The ring has no room for the frame; it was dropped and counted.
    #[error("ring full: frame of {0} bytes dropped")]
    Full(usize),
    /// The payload exceeds [`MAX_FRAME`] or the ring capacity.
    #[error("frame of {0} bytes is larger than the ring allows")]
    TooLarge(usize),
}

/// Shared memory holding a window. Offsets given by the ring code are always
/// in bounds and `u64` accesses are 8-byte aligned.
pub trait SharedMem {
    /// Window length in bytes.
    fn len(&self) -> usize;
    /// True for a zero-length window (never usable).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Acquire-load of the `u64` at `off`.
    fn load_u64(&self, off: usize) -> u64;
    /// Release-store of the `u64` at `off`.
    fn store_u64(&self, off: usize, value: u64);
    /// Copies bytes out of the window.
    fn read(&self, off: usize, buf: &mut [u8]);
    /// Copies bytes into the window.
    fn write(&self, off: usize, data: &[u8]);
}

/// A window at a raw address (an mmap of `/dev/mem` or of guest RAM).
#[derive(Debug)]
pub struct RawMem {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: RawMem only performs atomic or byte-copy accesses to memory that the
// creator guaranteed stays mapped; it holds no thread-local state.
unsafe impl Send for RawMem {}
// SAFETY: as above; concurrent access is the point, coordinated by the ring protocol.
unsafe impl Sync for RawMem {}

impl RawMem {
    /// Wraps `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be 8-byte aligned and valid for reads and writes of `len`
    /// bytes for the lifetime of the returned value.
    pub unsafe fn new(ptr: *mut u8, len: usize) -> Self {
        RawMem { ptr, len }
    }

    fn atomic(&self, off: usize) -> &AtomicU64 {
        assert!(
            off.is_multiple_of(8) && off + 8 <= self.len,
            "ring offset {off} out of bounds"
        );
        // SAFETY: in bounds and aligned (checked above; the base is 8-aligned per
        // `new`), and the memory outlives `self`.
        unsafe { AtomicU64::from_ptr(self.ptr.add(off).cast::<u64>()) }
    }
}

impl SharedMem for RawMem {
    fn len(&self) -> usize {
        self.len
    }
    fn load_u64(&self, off: usize) -> u64 {
        self.atomic(off).load(Ordering::Acquire)
    }
    fn store_u64(&self, off: usize, value: u64) {
        self.atomic(off).store(value, Ordering::Release)
    }
    fn read(&self, off: usize, buf: &mut [u8]) {
        assert!(
            off.checked_add(buf.len())
                .is_some_and(|end| end <= self.len),
            "ring read out of bounds"
        );
        // SAFETY: the range is in bounds (checked above). The producer published
        // these bytes before its release store of `head`, which we acquired.
        unsafe { core::ptr::copy_nonoverlapping(self.ptr.add(off), buf.as_mut_ptr(), buf.len()) }
    }
    fn write(&self, off: usize, data: &[u8]) {
        assert!(
            off.checked_add(data.len())
                .is_some_and(|end| end <= self.len),
            "ring write out of bounds"
        );
        // SAFETY: the range is in bounds (checked above) and owned by the producer
        // until it publishes `head`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(off), data.len()) }
    }
}

/// Sizes of the two rings inside a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub up: usize,
    pub down: usize,
}

impl Geometry {
    /// Splits a window: the down ring gets 1/16 (at least 4 KiB), the up ring the rest.
    pub fn for_window(len: usize) -> Result<Self, RingError> {
        let data = len.saturating_sub(DATA_START);
        let down = (data / 16).max(4096) & !7;
        let up = data.saturating_sub(down) & !7;
        let g = Geometry { up, down };
        g.check(len)?;
        Ok(g)
    }

    fn check(&self, len: usize) -> Result<(), RingError> {
        let fits = DATA_START
            .checked_add(self.up)
            .and_then(|v| v.checked_add(self.down))
            .is_some_and(|end| end <= len);
        if !fits
            || self.up < 4096
            || self.down < 1024
            || !self.up.is_multiple_of(8)
            || !self.down.is_multiple_of(8)
        {
            return Err(RingError::BadGeometry {
                len,
                up: self.up,
                down: self.down,
            });
        }
        Ok(())
    }
}

/// Writes a fresh window header and zeroed control blocks (host side, before boot).
pub fn init_window(mem: &impl SharedMem, geometry: Geometry) -> Result<(), RingError> {
    geometry.check(mem.len())?;
    let bad = RingError::BadGeometry {
        len: mem.len(),
        up: geometry.up,
        down: geometry.down,
    };
    let as_u32 = |v: usize| u32::try_from(v).map_err(|_| bad.clone());
    let (len, up, down) = (
        as_u32(mem.len())?,
        as_u32(geometry.up)?,
        as_u32(geometry.down)?,
    );
    let zeros = [0u8; 256];
    for off in (0..DATA_START).step_by(zeros.len()) {
        mem.write(off, &zeros);
    }
    mem.write(OFF_MAGIC, &WINDOW_MAGIC);
    mem.write(OFF_VERSION, &WINDOW_VERSION.to_le_bytes());
    mem.write(OFF_LEN, &len.to_le_bytes());
    mem.write(OFF_UP_CAP, &up.to_le_bytes());
    mem.write(OFF_DOWN_CAP, &down.to_le_bytes());
    Ok(())
}

/// Reads and checks the window header written by [`init_window`].
pub fn read_geometry(mem: &impl SharedMem) -> Result<Geometry, RingError> {
    if mem.len() < DATA_START {
        return Err(RingError::BadHeader);
    }
    let mut head = [0u8; 24];
    mem.read(0, &mut head);
    let u32_at = |o: usize| u32::from_le_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
    if head[..8] != WINDOW_MAGIC || u32_at(OFF_VERSION) != WINDOW_VERSION {
        return Err(RingError::BadHeader);
    }
    let g = Geometry {
        up: u32_at(OFF_UP_CAP) as usize,
        down: u32_at(OFF_DOWN_CAP) as usize,
    };
    g.check(mem.len())?;
    Ok(g)
}

/// Which ring of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Guest → host.
    Up,
    /// Host → guest.
    Down,
}

#[derive(Debug, Clone, Copy)]
struct Ring {
    ctrl: usize,
    data: usize,
    cap: u64,
}

impl Ring {
    /// Window offset of free-running position `pos`.
    fn offset(&self, pos: u64) -> usize {
        // `pos % cap` is below `cap`, which came from a usize.
        self.data + usize::try_from(pos % self.cap).unwrap_or(0)
    }

    fn locate(geometry: Geometry, dir: Direction) -> Ring {
        match dir {
            Direction::Up => Ring {
                ctrl: CTRL_UP,
                data: DATA_START,
                cap: geometry.up as u64,
            },
            Direction::Down => Ring {
                ctrl: CTRL_DOWN,
                data: DATA_START + geometry.up,
                cap: geometry.down as u64,
            },
        }
    }
}

fn padded(len: usize) -> usize {
    (FRAME_HEADER + len + 7) & !7
}

/// The writing end of one ring.
#[derive(Debug)]
pub struct Producer<M> {
    mem: M,
    ring: Ring,
    head: u64,
}

impl<M: SharedMem> Producer<M> {
    /// Attaches to ring `dir` of an initialised window, continuing at its head.
    pub fn attach(mem: M, dir: Direction) -> Result<Self, RingError> {
        let ring = Ring::locate(read_geometry(&mem)?, dir);
        let head = mem.load_u64(ring.ctrl + CTRL_HEAD);
        if !head.is_multiple_of(8) {
            return Err(RingError::Corrupt {
                head,
                tail: 0,
                capacity: ring.cap,
            });
        }
        Ok(Producer { mem, ring, head })
    }

    /// Frames dropped so far because the ring was full.
    pub fn drops(&self) -> u64 {
        self.mem.load_u64(self.ring.ctrl + CTRL_DROPS)
    }

    /// Appends one frame, or drops it (and counts the drop) when there is no room.
    pub fn push(&mut self, payload: &[u8]) -> Result<(), RingError> {
        let need = padded(payload.len()) as u64;
        if payload.len() > MAX_FRAME || need > self.ring.cap / 2 {
            return Err(RingError::TooLarge(payload.len()));
        }
        let tail = self.mem.load_u64(self.ring.ctrl + CTRL_TAIL);
        let used = self.head.wrapping_sub(tail);
        if used > self.ring.cap {
            return Err(RingError::Corrupt {
                head: self.head,
                tail,
                capacity: self.ring.cap,
            });
        }
        if !tail.is_multiple_of(8) {
            return Err(RingError::Corrupt {
                head: self.head,
                tail,
                capacity: self.ring.cap,
            });
        }
        let pos = self.head % self.ring.cap;
        let to_end = self.ring.cap - pos;
        let skip = if to_end < need { to_end } else { 0 };
        if used + skip + need > self.ring.cap {
            let drops = self.ring.ctrl + CTRL_DROPS;
            self.mem
                .store_u64(drops, self.mem.load_u64(drops).wrapping_add(1));
            return Err(RingError::Full(payload.len()));
        }
        if skip > 0 {
            self.mem
                .write(self.ring.offset(self.head), &WRAP.to_le_bytes());
            // The start position came from shared memory: wrap, never overflow.
            self.head = self.head.wrapping_add(skip);
        }
        let at = self.ring.offset(self.head);
        let len = u32::try_from(payload.len()).map_err(|_| RingError::TooLarge(payload.len()))?;
        let mut header = [0u8; FRAME_HEADER];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(&crc32c(payload).to_le_bytes());
        self.mem.write(at, &header);
        self.mem.write(at + FRAME_HEADER, payload);
        self.head = self.head.wrapping_add(need);
        self.mem.store_u64(self.ring.ctrl + CTRL_HEAD, self.head);
        Ok(())
    }

    /// Bytes free for frames right now.
    pub fn free(&self) -> u64 {
        let tail = self.mem.load_u64(self.ring.ctrl + CTRL_TAIL);
        self.ring.cap.saturating_sub(self.head.wrapping_sub(tail))
    }
}

/// What [`Consumer::pop`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Popped {
    /// A frame's payload was copied into the buffer; this many bytes.
    Frame(usize),
    /// A frame failed its CRC and was skipped.
    BadCrc,
    /// Nothing published yet.
    Empty,
}

/// The reading end of one ring; treats everything in the window as hostile.
#[derive(Debug)]
pub struct Consumer<M> {
    mem: M,
    ring: Ring,
    tail: u64,
}

impl<M: SharedMem> Consumer<M> {
    /// Attaches to ring `dir` of an initialised window, continuing at its tail.
    pub fn attach(mem: M, dir: Direction) -> Result<Self, RingError> {
        let ring = Ring::locate(read_geometry(&mem)?, dir);
        let tail = mem.load_u64(ring.ctrl + CTRL_TAIL);
        if !tail.is_multiple_of(8) {
            return Err(RingError::Corrupt {
                head: 0,
                tail,
                capacity: ring.cap,
            });
        }
        Ok(Consumer { mem, ring, tail })
    }

    /// Frames the producer reports dropping (as the producer says; untrusted).
    pub fn drops(&self) -> u64 {
        self.mem.load_u64(self.ring.ctrl + CTRL_DROPS)
    }

    /// Takes the next frame into `buf` (which must hold [`MAX_FRAME`] bytes).
    /// After an error the ring is unusable: the caller should stop reading it.
    pub fn pop(&mut self, buf: &mut [u8]) -> Result<Popped, RingError> {
        loop {
            let head = self.mem.load_u64(self.ring.ctrl + CTRL_HEAD);
            let avail = head.wrapping_sub(self.tail);
            let corrupt = RingError::Corrupt {
                head,
                tail: self.tail,
                capacity: self.ring.cap,
            };
            if avail > self.ring.cap || !avail.is_multiple_of(8) {
                return Err(corrupt);
            }
            if avail == 0 {
                return Ok(Popped::Empty);
            }
            let pos = self.tail % self.ring.cap;
            let at = self.ring.offset(self.tail);
            let mut header = [0u8; FRAME_HEADER];
            self.mem.read(at, &mut header);
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let to_end = self.ring.cap - pos;
            if len == WRAP {
                // The producer never wraps at offset 0, so one pop reads at
                // most one marker.
                if pos == 0 || to_end > avail {
                    return Err(RingError::BadFrame {
                        pos: self.tail,
                        len,
                    });
                }
                self.advance(to_end);
                continue;
            }
            let size = len as usize;
            let need = padded(size) as u64;
            if size > MAX_FRAME || size > buf.len() || need > avail || need > to_end {
                return Err(RingError::BadFrame {
                    pos: self.tail,
                    len,
                });
            }
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let out = &mut buf[..size];
            self.mem.read(at + FRAME_HEADER, out);
            self.advance(need);
            return Ok(if crc32c(out) == crc {
                Popped::Frame(size)
            } else {
                Popped::BadCrc
            });
        }
    }

    fn advance(&mut self, by: u64) {
        self.tail = self.tail.wrapping_add(by);
        self.mem.store_u64(self.ring.ctrl + CTRL_TAIL, self.tail);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// An 8-aligned heap window.
    struct Heap(Vec<u64>);

    impl Heap {
        fn new(len: usize) -> Self {
            Heap(vec![0; len / 8])
        }
        fn mem(&mut self) -> RawMem {
            // SAFETY: the Vec outlives every RawMem made in these tests and is 8-aligned.
            unsafe { RawMem::new(self.0.as_mut_ptr().cast(), self.0.len() * 8) }
        }
    }

    fn window(len: usize) -> (Heap, Producer<RawMem>, Consumer<RawMem>) {
        let mut heap = Heap::new(len);
        init_window(&heap.mem(), Geometry::for_window(len).unwrap()).unwrap();
        let p = Producer::attach(heap.mem(), Direction::Up).unwrap();
        let c = Consumer::attach(heap.mem(), Direction::Up).unwrap();
        (heap, p, c)
    }

    fn payload(i: usize) -> Vec<u8> {
        (0..(i * 37) % 700)
            .map(|b| (b ^ i).to_le_bytes()[0])
            .collect()
    }

    #[test]
    fn frames_round_trip_across_many_wraps() {
        let (_heap, mut p, mut c) = window(DATA_START + 16 * 1024);
        let mut buf = vec![0u8; MAX_FRAME];
        for i in 0..5000 {
            p.push(&payload(i)).unwrap();
            assert_eq!(c.pop(&mut buf).unwrap(), Popped::Frame(payload(i).len()));
            assert_eq!(&buf[..payload(i).len()], &payload(i)[..]);
        }
        assert_eq!(c.pop(&mut buf).unwrap(), Popped::Empty);
    }

    #[test]
    fn hostile_start_positions_wrap_instead_of_overflowing() {
        let len = DATA_START + 8192;
        let mut heap = Heap::new(len);
        let mem = heap.mem();
        init_window(&mem, Geometry::for_window(len).unwrap()).unwrap();
        // Head and tail both just below 2^64, as a hostile peer could leave them.
        let start = u64::MAX - 7;
        mem.store_u64(CTRL_UP + CTRL_HEAD, start);
        mem.store_u64(CTRL_UP + CTRL_TAIL, start);
        let mut p = Producer::attach(heap.mem(), Direction::Up).unwrap();
        let mut c = Consumer::attach(heap.mem(), Direction::Up).unwrap();
        let mut buf = vec![0u8; MAX_FRAME];
        for i in 0..50 {
            // Positions are not meaningful any more; what matters is no panic.
            let _ = p.push(&payload(i));
            let _ = c.pop(&mut buf);
        }
    }

    #[test]
    fn a_wrap_marker_at_offset_zero_is_a_bad_frame() {
        let len = DATA_START + 8192;
        let (mut heap, _p, mut c) = window(len);
        let mem = heap.mem();
        let ring = Ring::locate(read_geometry(&mem).unwrap(), Direction::Up);
        mem.write(ring.data, &WRAP.to_le_bytes());
        // A whole ring's worth "available", so the marker's skip fits in it.
        mem.store_u64(CTRL_UP + CTRL_HEAD, ring.cap);
        let mut buf = vec![0u8; MAX_FRAME];
        assert!(matches!(c.pop(&mut buf), Err(RingError::BadFrame { .. })));
    }

    #[test]
    fn full_ring_drops_and_counts() {
        let (_heap, mut p, mut c) = window(DATA_START + 8192);
        let cap = Geometry::for_window(DATA_START + 8192).unwrap().up;
        let frame = [7u8; 100];
        let fits = cap / padded(frame.len());
        for _ in 0..fits {
            p.push(&frame).unwrap();
        }
        assert_eq!(p.push(&frame), Err(RingError::Full(100)));
        assert_eq!(c.drops(), 1);
        let mut buf = vec![0u8; MAX_FRAME];
        assert_eq!(c.pop(&mut buf).unwrap(), Popped::Frame(100));
        p.push(&frame).unwrap();
    }

    #[test]
    fn concurrent_producer_and_consumer() {
        let (heap, mut p, mut c) = window(DATA_START + 64 * 1024);
        let n = 20_000;
        let t = std::thread::spawn(move || {
            let mut sent = 0;
            while sent < n {
                match p.push(&payload(sent)) {
                    Ok(()) => sent += 1,
                    Err(RingError::Full(_)) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            p.drops()
        });
        let mut buf = vec![0u8; MAX_FRAME];
        let mut got = 0;
        while got < n {
            match c.pop(&mut buf).unwrap() {
                Popped::Frame(len) => {
                    assert_eq!(&buf[..len], &payload(got)[..]);
                    got += 1;
                }
                Popped::Empty => std::thread::yield_now(),
                Popped::BadCrc => panic!("crc"),
            }
        }
        t.join().unwrap();
        drop(heap);
    }

    #[test]
    fn corrupted_payload_is_a_crc_error_not_a_panic() {
        let (mut heap, mut p, mut c) = window(DATA_START + 8192);
        p.push(b"hello ring").unwrap();
        heap.mem().write(DATA_START + FRAME_HEADER + 1, b"X");
        let mut buf = vec![0u8; MAX_FRAME];
        assert_eq!(c.pop(&mut buf).unwrap(), Popped::BadCrc);
        assert_eq!(c.pop(&mut buf).unwrap(), Popped::Empty);
    }

    #[test]
    fn hostile_control_words_never_panic() {
        let len = DATA_START + 8192;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut buf = vec![0u8; MAX_FRAME];
        for _ in 0..2000 {
            let (mut heap, mut p, mut c) = window(len);
            p.push(b"some frame").unwrap();
            let mem = heap.mem();
            match next() % 4 {
                0 => mem.store_u64(CTRL_UP + CTRL_HEAD, next()),
                1 => mem.store_u64(CTRL_UP + CTRL_HEAD, (next() % 9000) & !7),
                2 => mem.write(DATA_START, &next().to_le_bytes()),
                _ => {
                    let off = DATA_START + usize::try_from(next() % 8000).unwrap();
                    mem.write(off, &next().to_le_bytes());
                }
            }
            for _ in 0..4 {
                if c.pop(&mut buf).is_err() {
                    break;
                }
            }
        }
    }

    #[test]
    fn bad_geometry_and_header_are_refused() {
        assert!(Geometry::for_window(100).is_err());
        let mut heap = Heap::new(DATA_START + 8192);
        assert_eq!(read_geometry(&heap.mem()), Err(RingError::BadHeader));
        assert!(
            init_window(
                &heap.mem(),
                Geometry {
                    up: 1 << 20,
                    down: 4096
                }
            )
            .is_err()
        );
    }
}
