//! A fixed-size text buffer for paths and short lines, so hot paths never allocate.

use core::fmt;

/// Text formatted into `N` bytes on the stack; writes past the end fail.
#[derive(Clone)]
pub struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackStr<N> {
    pub const fn new() -> Self {
        StackStr {
            buf: [0; N],
            len: 0,
        }
    }

    /// Formats `args` into a fresh buffer; `None` when it does not fit.
    pub fn format(args: fmt::Arguments<'_>) -> Option<Self> {
        let mut s = Self::new();
        fmt::Write::write_fmt(&mut s, args).ok()?;
        Some(s)
    }

    pub fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended, so the prefix is valid UTF-8.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<const N: usize> Default for StackStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        if end > N {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for StackStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> core::ops::Deref for StackStr<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// Formats into a [`StackStr`] of the given size (`None` on overflow).
#[macro_export]
macro_rules! stack_format {
    ($n:literal, $($arg:tt)*) => {
        $crate::stackfmt::StackStr::<$n>::format(format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_and_overflows() {
        let s = stack_format!(32, "/proc/{}/schedstat", 1234).unwrap();
        assert_eq!(s.as_str(), "/proc/1234/schedstat");
        assert!(stack_format!(4, "{}", "too long").is_none());
    }
}
