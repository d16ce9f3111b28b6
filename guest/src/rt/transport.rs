//! Sending records to the host: the ring window, or the console in debug mode.
//!
//! With `schedtape.ring=<gpa>,<size>` on the kernel command line the executor
//! maps the window through `/dev/mem` and writes one postcard `GuestMsg` per
//! frame to the up ring; it reads `HostMsg`s from the down ring. Without it,
//! every record becomes one console line (for hand-run VMs). A full up ring is
//! retried with 1 ms sleeps for a bounded time, then the frame is dropped and
//! the ring's drop counter (which the host reports) counts it. Frames lost for
//! other reasons (too large to encode) are reported in a later `Record::Drop`.
//!
//! With `schedtape.doorbell=<port>` as well (the KVM backend's ioeventfd), the
//! executor rings that port once per batch — before it sleeps, waits for a
//! reply or for ring space, and after `Goodbye` — so the host wakes at once
//! instead of at its next poll. The host polls anyway; without the port (or
//! when `ioperm(2)` refuses it) nothing else changes.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use rustix::fs::{CWD, Mode, OFlags};
use rustix::mm::{MapFlags, ProtFlags};
use trace_format::proto::{GuestMsg, HostMsg, HostRequest, PROTOCOL_VERSION};
use trace_format::record::{ConsoleLine, ConsoleSource, DropReport, Record};
use trace_format::ring::{Consumer, Direction, MAX_FRAME, Popped, Producer, RawMem};

use super::sys;
use crate::cmdline::{RingParam, doorbell_param, ring_param};
use crate::{text, wire};

/// How long a sample may wait for ring space before it is dropped.
const SAMPLE_PATIENCE_NS: u64 = 20_000_000;
/// How long any other record may wait (they are rare and matter more).
const RECORD_PATIENCE_NS: u64 = 2_000_000_000;
/// How long a request waits for the host's reply.
const REPLY_PATIENCE_NS: u64 = 10_000_000_000;

struct Ring {
    up: Producer<RawMem>,
    /// `None` once the host wrote something impossible into the down ring.
    down: Option<Consumer<RawMem>>,
    rx: Vec<u8>,
}

enum Link {
    Ring(Ring),
    Console,
}

/// The executor's only way to talk to the host.
pub struct Transport {
    link: Link,
    buf: Vec<u8>,
    line: String,
    start_ns: u64,
    /// Frames that could not be encoded since the last `Drop` record.
    lost: u64,
    stop: Option<String>,
    next_id: u32,
    /// Replies received but not yet claimed: (request id, result).
    replies: Vec<(u32, Result<u64, String>)>,
    /// The host's doorbell port, when the kernel let us write it.
    doorbell: Option<sys::IoPort>,
    /// Frames pushed since the doorbell last rang.
    unrung: bool,
}

impl core::fmt::Debug for Transport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transport")
            .field("ring", &matches!(self.link, Link::Ring(_)))
            .field("lost", &self.lost)
            .field("doorbell", &self.doorbell)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Attaches to the ring named on the command line, else uses the console,
    /// and claims the doorbell port when one is named. Also returns notes for
    /// the trace when something went wrong.
    pub fn open(start_ns: u64) -> (Transport, Vec<String>) {
        let cmdline = sys::read_all("/proc/cmdline").unwrap_or_default();
        let cmdline = core::str::from_utf8(&cmdline).unwrap_or("");
        let mut notes = Vec::new();
        let link = match ring_param(cmdline) {
            Ok(None) => Link::Console,
            Ok(Some(p)) => match attach(p) {
                Ok(ring) => Link::Ring(ring),
                Err(e) => {
                    notes.push(e);
                    Link::Console
                }
            },
            Err(e) => {
                notes.push(String::from(e));
                Link::Console
            }
        };
        let doorbell = match (&link, doorbell_param(cmdline)) {
            (Link::Console, _) | (_, Ok(None)) => None,
            (_, Ok(Some(port))) => sys::IoPort::claim(port)
                .inspect_err(|e| {
                    notes.push(alloc::format!(
                        "doorbell port {port:#x} unusable (ioperm: {}); the host polls the ring",
                        crate::errno::describe(e.raw_os_error())
                    ));
                })
                .ok(),
            (_, Err(e)) => {
                notes.push(alloc::format!("{e}; the host polls the ring"));
                None
            }
        };
        let t = Transport {
            link,
            buf: vec![0; MAX_FRAME],
            line: String::with_capacity(256),
            start_ns,
            lost: 0,
            stop: None,
            next_id: 1,
            replies: Vec::new(),
            doorbell,
            unrung: false,
        };
        (t, notes)
    }

    /// True when records go to the host ring (not the console).
    pub fn has_ring(&self) -> bool {
        matches!(self.link, Link::Ring(_))
    }

    /// Executor time: ns since start.
    pub fn now(&self) -> u64 {
        sys::now_ns().saturating_sub(self.start_ns)
    }

    /// The first message: protocol, boot time, kernel release.
    pub fn hello(&mut self, kernel_release: String) {
        let msg = GuestMsg::Hello {
            protocol: PROTOCOL_VERSION,
            boot_to_init_ns: self.start_ns,
            kernel_release,
        };
        self.send_msg(&msg);
    }

    /// The last message, after `End`.
    pub fn goodbye(&mut self) {
        self.send_msg(&GuestMsg::Goodbye);
        self.flush();
    }

    /// Rings the doorbell if frames were pushed since it last rang: call
    /// once a batch is out, before sleeping or waiting on the host.
    pub fn flush(&mut self) {
        ring_doorbell(self.doorbell.as_ref(), &mut self.unrung);
    }

    /// Sends a record stamped now.
    pub fn record(&mut self, record: &Record) {
        let ts = self.now();
        self.record_at(ts, record);
    }

    /// Sends a record with a given executor timestamp.
    pub fn record_at(&mut self, ts_ns: u64, record: &Record) {
        if self.lost > 0 {
            self.report_drops(ts_ns);
        }
        match &mut self.link {
            Link::Console => {
                self.line.clear();
                let _ = text::line(&mut self.line, ts_ns, record);
                self.line.push('\n');
                sys::console(self.line.as_bytes());
            }
            Link::Ring(_) => {
                if let Record::Console(c) = record {
                    self.line.clear();
                    let _ = writeln!(self.line, "schedtape-init: {}", c.line);
                    sys::console(self.line.as_bytes());
                }
                let patience = match record {
                    Record::WorkerSample(_) => SAMPLE_PATIENCE_NS,
                    _ => RECORD_PATIENCE_NS,
                };
                match wire::encode_record(ts_ns, record, &mut self.buf) {
                    Ok(b) => {
                        let len = b.len();
                        self.push(len, patience);
                    }
                    Err(_) => self.lost += 1,
                }
            }
        }
    }

    /// Sends an executor console line.
    pub fn console(&mut self, line: impl Into<String>) {
        self.record(&Record::Console(ConsoleLine {
            source: ConsoleSource::Executor,
            line: line.into(),
        }));
    }

    /// Reads the down ring; returns the stop reason once the host asked to stop.
    pub fn poll(&mut self) -> Option<&str> {
        let mut bad = None;
        if let Link::Ring(ring) = &mut self.link
            && let Some(down) = &mut ring.down
        {
            loop {
                match down.pop(&mut ring.rx) {
                    Ok(Popped::Empty) => break,
                    Ok(Popped::BadCrc) => bad = Some("a host message failed its CRC".into()),
                    Ok(Popped::Frame(n)) => match postcard::from_bytes::<HostMsg>(&ring.rx[..n]) {
                        Ok(HostMsg::Stop { reason }) => self.stop = Some(reason),
                        Ok(HostMsg::Reply { id, result }) => {
                            // Keep the backlog bounded if the host answers unasked.
                            if self.replies.len() >= 64 {
                                let _ = self.replies.remove(0);
                            }
                            self.replies.push((id, result));
                        }
                        Err(e) => bad = Some(alloc::format!("undecodable host message: {e}")),
                    },
                    Err(e) => {
                        ring.down = None;
                        bad = Some(alloc::format!("down ring unusable: {e}"));
                        break;
                    }
                }
            }
        }
        if let Some(b) = bad {
            self.console(b);
        }
        self.stop.as_deref()
    }

    /// Sends `requests` back to back, then waits (bounded) for every reply, in order.
    pub fn requests(&mut self, requests: &[HostRequest]) -> Vec<Result<u64, String>> {
        if !self.has_ring() {
            return requests
                .iter()
                .map(|_| Err(String::from("no host transport: requests need the ring")))
                .collect();
        }
        let mut ids = Vec::with_capacity(requests.len());
        for request in requests {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            let msg = GuestMsg::Request {
                id,
                request: request.clone(),
            };
            ids.push((id, self.send_request(&msg)));
        }
        self.flush();
        let deadline = sys::now_ns().saturating_add(REPLY_PATIENCE_NS);
        let mut out: Vec<Option<Result<u64, String>>> = ids
            .iter()
            .map(|(_, sent)| (!sent).then(|| Err(String::from("the request could not be sent"))))
            .collect();
        while out.iter().any(Option::is_none) {
            let _ = self.poll();
            for (slot, (id, _)) in out.iter_mut().zip(&ids) {
                if slot.is_none()
                    && let Some(at) = self.replies.iter().position(|(r, _)| r == id)
                {
                    *slot = Some(self.replies.remove(at).1);
                }
            }
            if sys::now_ns() >= deadline {
                break;
            }
            if out.iter().any(Option::is_none) {
                sys::sleep_ns(100_000);
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(String::from("no reply from the host within 10 s"))))
            .collect()
    }

    /// Sends one request and waits for its reply.
    pub fn request(&mut self, request: HostRequest) -> Result<u64, String> {
        self.requests(core::slice::from_ref(&request))
            .pop()
            .unwrap_or_else(|| Err(String::from("no reply")))
    }

    fn send_request(&mut self, msg: &GuestMsg) -> bool {
        match wire::encode(msg, &mut self.buf) {
            Ok(b) => {
                let len = b.len();
                self.push(len, RECORD_PATIENCE_NS)
            }
            Err(_) => false,
        }
    }

    fn send_msg(&mut self, msg: &GuestMsg) {
        match &self.link {
            Link::Console => {
                self.line.clear();
                let _ = writeln!(self.line, "schedtape-init: {msg:?}");
                sys::console(self.line.as_bytes());
            }
            Link::Ring(_) => match wire::encode(msg, &mut self.buf) {
                Ok(b) => {
                    let len = b.len();
                    self.push(len, RECORD_PATIENCE_NS);
                }
                Err(_) => self.lost += 1,
            },
        }
    }

    /// Pushes `buf[..len]`, waiting up to `patience_ns` for space; false when
    /// the frame was dropped (and counted by the ring).
    fn push(&mut self, len: usize, patience_ns: u64) -> bool {
        let Link::Ring(ring) = &mut self.link else {
            return true;
        };
        // A frame never needs more than twice its padded size (wrap skip + frame),
        // so waiting for that much avoids counting retries as ring drops.
        let need = u64::try_from((len + 8 + 7) & !7).unwrap_or(u64::MAX);
        let deadline = sys::now_ns().saturating_add(patience_ns);
        while ring.up.free() < need.saturating_mul(2) && sys::now_ns() < deadline {
            // The host may be asleep on a full ring: wake it (once) to drain.
            ring_doorbell(self.doorbell.as_ref(), &mut self.unrung);
            sys::sleep_ns(1_000_000);
        }
        // Even a dropped frame counts: the host should see the drop counter.
        self.unrung = true;
        ring.up.push(&self.buf[..len]).is_ok()
    }

    fn report_drops(&mut self, ts_ns: u64) {
        let report = Record::Drop(DropReport {
            records: self.lost,
            reason: "the guest could not encode a record".into(),
        });
        let Ok(len) = wire::encode_record(ts_ns, &report, &mut self.buf).map(|b| b.len()) else {
            return;
        };
        if self.push(len, SAMPLE_PATIENCE_NS) {
            self.lost = 0;
        }
    }
}

/// One `out` to the doorbell when anything was pushed since the last one.
fn ring_doorbell(doorbell: Option<&sys::IoPort>, unrung: &mut bool) {
    if let (Some(port), true) = (doorbell, *unrung) {
        port.write_u8(1);
    }
    *unrung = false;
}

fn attach(p: RingParam) -> Result<Ring, String> {
    let err = |what: &str, e: &dyn core::fmt::Display| alloc::format!("ring window: {what}: {e}");
    let len = usize::try_from(p.size).map_err(|e| err("size", &e))?;
    let fd = rustix::fs::openat(
        CWD,
        "/dev/mem",
        OFlags::RDWR | OFlags::SYNC | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err("open /dev/mem", &crate::errno::describe(e.raw_os_error())))?;
    // SAFETY: a fresh shared mapping of the window; nothing else refers to it.
    let ptr = unsafe {
        rustix::mm::mmap(
            core::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            &fd,
            p.gpa,
        )
    }
    .map_err(|e| err("mmap /dev/mem", &crate::errno::describe(e.raw_os_error())))?;
    // SAFETY: the mapping is page aligned, `len` bytes long, and never unmapped.
    let (up_mem, down_mem) =
        unsafe { (RawMem::new(ptr.cast(), len), RawMem::new(ptr.cast(), len)) };
    let up = Producer::attach(up_mem, Direction::Up).map_err(|e| err("up ring", &e))?;
    let down = Consumer::attach(down_mem, Direction::Down).map_err(|e| err("down ring", &e))?;
    Ok(Ring {
        up,
        down: Some(down),
        rx: vec![0; MAX_FRAME],
    })
}
