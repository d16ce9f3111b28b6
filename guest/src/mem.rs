//! The C memory routines the compiler emits calls to (there is no libc).
//! String instructions keep them short and stop LLVM from turning a loop
//! back into a call to the function itself.

use core::arch::asm;

/// # Safety
/// The usual `memcpy` contract: valid, non-overlapping ranges of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid for `n` bytes.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _,
            options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// The usual `memmove` contract: valid ranges of `n` bytes, which may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // SAFETY: dest is below src or past its end, so a forward copy is safe.
        return unsafe { memcpy(dest, src, n) };
    }
    // SAFETY: dest overlaps the tail of src: copy backwards, then restore DF=0.
    unsafe {
        asm!("std", "rep movsb", "cld",
            inout("rcx") n => _, inout("rdi") dest.wrapping_add(n).wrapping_sub(1) => _,
            inout("rsi") src.wrapping_add(n).wrapping_sub(1) => _, options(nostack));
    }
    dest
}

/// # Safety
/// The usual `memset` contract: a valid range of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range is valid for `n` bytes.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _, in("al") c.to_le_bytes()[0],
            options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// The usual `memcmp` contract: valid ranges of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n, within both ranges; volatile keeps this a plain loop.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// As [`memcmp`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// # Safety
/// `s` points at a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the string is NUL-terminated, so every byte up to the NUL is readable.
    while unsafe { s.add(n).read_volatile() } != 0 {
        n += 1;
    }
    n
}

// The prebuilt `alloc` crate was compiled with unwinding, so its landing pads
// name these two symbols. This binary aborts on panic and never unwinds, so
// they are unreachable; they exist only to satisfy the linker.

/// Never called: nothing unwinds in a `panic = "abort"` binary.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_Resume() -> ! {
    guest::rt::sys::exit(134)
}

/// Never called: nothing unwinds in a `panic = "abort"` binary.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}
