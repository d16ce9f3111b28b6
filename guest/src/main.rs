//! `/init` in the guest: `_start`, the allocator and the panic handler around
//! [`guest::rt::executor::main`]. Build it as guest/README.md describes.
#![no_std]
#![no_main]

mod mem;

use core::fmt::Write;
use guest::rt::sys;
use trace_format::scenario::limits::GUEST_HEAP_BYTES;

core::arch::global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

/// Called by `_start` with the initial stack: argc, argv[], NULL, envp[], NULL, auxv.
unsafe extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: the kernel laid out argc, argc argv pointers and a NULL before envp.
    let envp = unsafe { sp.add(*sp + 2) } as *mut *mut u8;
    // SAFETY: envp is the process's original environment block, and no rustix
    // call has been made yet.
    unsafe { rustix::param::init(envp) };
    guest::rt::executor::main()
}

/// The heap: 16 MiB of zeroed `.bss` ([`GUEST_HEAP_BYTES`]), claimed on first
/// use; scenario limits are sized to it. Workers inherit a copy-on-write copy at fork.
#[global_allocator]
static ALLOCATOR: talc::TalcLock<spinning_top::RawSpinlock, talc::source::Claim> =
    talc::TalcLock::new({
        static mut ARENA: [u8; GUEST_HEAP_BYTES] = [0; GUEST_HEAP_BYTES];
        // SAFETY: the arena is used by nothing but this allocator.
        unsafe { talc::source::Claim::array(&raw mut ARENA) }
    });

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        sys::console(s.as_bytes());
        Ok(())
    }
}

/// Prints the panic; a worker exits, PID 1 reboots (which ends the VM).
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(Console, "schedtape-init: panic: {info}");
    if sys::in_worker() {
        sys::exit(101)
    }
    sys::reboot()
}
