//! Thin system-call helpers: process control rustix keeps private (fork,
//! exit, sched_setscheduler), I/O port access (ioperm), clocks, sleeping, and
//! whole-file reads/writes.

use alloc::vec::Vec;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;
use rustix::time::{ClockId, Timespec};

pub type Result<T> = core::result::Result<T, Errno>;

const SYS_SCHED_SETSCHEDULER: usize = 144;
const SYS_CLONE: usize = 56;
const SYS_EXIT_GROUP: usize = 231;
const SYS_EXECVE: usize = 59;
const SYS_IOPERM: usize = 173;
const SIGCHLD: usize = 17;

static IN_WORKER: AtomicBool = AtomicBool::new(false);

/// True in forked workers (a panic there must not reboot the VM).
pub fn in_worker() -> bool {
    IN_WORKER.load(Ordering::Relaxed)
}

fn ret(raw: isize) -> Result<usize> {
    if (-4095..0).contains(&raw) {
        let errno = i32::try_from(-raw).unwrap_or(22);
        Err(Errno::from_raw_os_error(errno))
    } else {
        Ok(raw.cast_unsigned())
    }
}

/// `fork()`: `Ok(None)` in the child, `Ok(Some(pid))` in the parent.
pub fn fork() -> Result<Option<u32>> {
    let raw: isize;
    // SAFETY: clone(SIGCHLD, 0, ...) is fork: the child gets a copy of this
    // single-threaded address space and resumes here with rax = 0. The kernel
    // clobbers only rcx and r11 besides rax.
    unsafe {
        asm!("syscall",
            inlateout("rax") SYS_CLONE as isize => raw,
            in("rdi") SIGCHLD, in("rsi") 0usize, in("rdx") 0usize,
            in("r10") 0usize, in("r8") 0usize,
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    match ret(raw)? {
        0 => {
            IN_WORKER.store(true, Ordering::Relaxed);
            Ok(None)
        }
        pid => Ok(Some(u32::try_from(pid).unwrap_or(u32::MAX))),
    }
}

/// `exit_group(code)`.
pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes one integer and does not return.
    unsafe {
        asm!("syscall", in("rax") SYS_EXIT_GROUP, in("rdi") code as isize,
            options(nostack, noreturn));
    }
}

/// `execve(path, argv, envp)`; returns only on failure. Each array ends in a
/// null pointer and each string in a NUL byte.
pub fn execve(path: *const u8, argv: *const *const u8, envp: *const *const u8) -> Errno {
    let raw: isize;
    // SAFETY: the caller passes NUL-terminated strings and null-terminated
    // pointer arrays that stay alive across the call; on success it never returns.
    unsafe {
        asm!("syscall",
            inlateout("rax") SYS_EXECVE as isize => raw,
            in("rdi") path, in("rsi") argv, in("rdx") envp,
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    match ret(raw) {
        Err(e) => e,
        Ok(_) => Errno::IO,
    }
}

/// `sched_setscheduler(pid, policy, {priority})`; pid 0 is the caller.
pub fn sched_setscheduler(pid: u32, policy: u32, priority: u32) -> Result<()> {
    let param: i32 = i32::try_from(priority).unwrap_or(0);
    let raw: isize;
    // SAFETY: the third argument points at a live `struct sched_param` (one int).
    unsafe {
        asm!("syscall",
            inlateout("rax") SYS_SCHED_SETSCHEDULER as isize => raw,
            in("rdi") pid as usize, in("rsi") policy as usize,
            in("rdx") core::ptr::from_ref(&param),
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret(raw).map(|_| ())
}

/// One x86 I/O port this thread may write: constructed only once `ioperm(2)`
/// granted it, so `out` cannot fault.
#[derive(Debug)]
pub struct IoPort(u16);

impl IoPort {
    /// Asks the kernel for access to `port` (needs CAP_SYS_RAWIO and a kernel
    /// with `CONFIG_X86_IOPL_IOPERM`; ENOSYS without it).
    pub fn claim(port: u16) -> Result<IoPort> {
        let raw: isize;
        // SAFETY: ioperm(from, num, turn_on) takes three integers and only
        // changes this thread's I/O permission bitmap.
        unsafe {
            asm!("syscall",
                inlateout("rax") SYS_IOPERM as isize => raw,
                in("rdi") usize::from(port), in("rsi") 1usize, in("rdx") 1usize,
                lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret(raw).map(|_| IoPort(port))
    }

    /// One `out` of a byte to the port.
    pub fn write_u8(&self, value: u8) {
        // SAFETY: `claim` obtained permission for exactly this port, so the
        // instruction does not fault; it touches no memory and no flags.
        unsafe {
            asm!("out dx, al", in("dx") self.0, in("al") value,
                options(nomem, nostack, preserves_flags));
        }
    }
}

/// `CLOCK_MONOTONIC`, ns.
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

fn timespec(ns: u64) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX),
        tv_nsec: i64::try_from(ns % 1_000_000_000).unwrap_or(0),
    }
}

/// Sleeps `ns` (relative); returns early on a signal, which is fine here.
pub fn sleep_ns(ns: u64) {
    if ns > 0 {
        let _ = rustix::thread::nanosleep(&timespec(ns));
    }
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `deadline_ns`.
pub fn sleep_until(deadline_ns: u64) {
    let _ = rustix::thread::clock_nanosleep_absolute(
        rustix::thread::ClockId::Monotonic,
        &timespec(deadline_ns),
    );
}

/// Reads a file into `buf`; returns the length read (capped at `buf.len()`).
pub fn read_into(path: &str, buf: &mut [u8]) -> Result<usize> {
    let fd = rustix::fs::openat(CWD, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut len = 0;
    while len < buf.len() {
        match rustix::io::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

/// Reads a whole file.
pub fn read_all(path: &str) -> Result<Vec<u8>> {
    let fd = rustix::fs::openat(CWD, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match rustix::io::read(&fd, &mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes `data` to an existing file in one `write` (as sysfs and cgroupfs want).
pub fn write_file(path: &str, data: &[u8]) -> Result<()> {
    let fd = rustix::fs::openat(CWD, path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    let n = rustix::io::write(&fd, data)?;
    if n != data.len() {
        return Err(Errno::IO);
    }
    Ok(())
}

pub fn mkdir(path: &str) -> Result<()> {
    rustix::fs::mkdirat(CWD, path, Mode::from_raw_mode(0o755))
}

pub fn rmdir(path: &str) -> Result<()> {
    rustix::fs::unlinkat(CWD, path, AtFlags::REMOVEDIR)
}

fn stdout() -> BorrowedFd<'static> {
    // SAFETY: fd 1 is the console for the whole life of PID 1 (opened at start
    // when the kernel did not); writes to a closed fd only return EBADF.
    unsafe { BorrowedFd::borrow_raw(1) }
}

/// Writes bytes to the console (fd 1), ignoring errors.
pub fn console(bytes: &[u8]) {
    write_all(stdout(), bytes);
}

fn write_all(fd: impl AsFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match rustix::io::write(&fd, bytes) {
            Ok(0) | Err(_) => return,
            Ok(n) => bytes = &bytes[n..],
        }
    }
}

/// Flushes file systems and reboots (the host runs QEMU with `-no-reboot`,
/// so this ends the VM).
pub fn reboot() -> ! {
    rustix::fs::sync();
    let _ = rustix::system::reboot(rustix::system::RebootCommand::Restart);
    exit(1)
}

/// A PID from the `u32` the records use; `None` for values the kernel never gives.
pub fn pid_of(pid: u32) -> Option<rustix::process::Pid> {
    rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)
}

/// `s` as a NUL-terminated byte string, for exec.
pub fn cstr(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

/// A NULL-terminated pointer array over `strings`, as execve wants (argv, envp).
pub fn pointers(strings: &[Vec<u8>]) -> Vec<*const u8> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(core::iter::once(core::ptr::null()))
        .collect()
}
