//! Short names for the errno values the executor meets, for error messages.

/// `"EINVAL (errno 22)"`-style text for an errno.
pub fn describe(errno: i32) -> impl core::fmt::Display {
    Described(errno)
}

struct Described(i32);

impl core::fmt::Display for Described {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match name(self.0) {
            Some(n) => write!(f, "{n} (errno {})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}

/// How a process ended, from its raw wait(2) status: `exited with status 0`,
/// `was killed by signal 9`.
pub fn describe_wait(status: i32) -> impl core::fmt::Display {
    Wait(status)
}

struct Wait(i32);

impl core::fmt::Display for Wait {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let sig = self.0 & 0x7f;
        match sig {
            0 => write!(f, "exited with status {}", (self.0 >> 8) & 0xff),
            0x7f => write!(f, "stopped (status {:#x})", self.0),
            _ => write!(f, "was killed by signal {sig}"),
        }
    }
}

/// The symbolic name of a Linux errno, when it is a common one.
pub fn name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        7 => "E2BIG",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        24 => "EMFILE",
        28 => "ENOSPC",
        30 => "EROFS",
        34 => "ERANGE",
        36 => "ENAMETOOLONG",
        38 => "ENOSYS",
        39 => "ENOTEMPTY",
        95 => "EOPNOTSUPP",
        110 => "ETIMEDOUT",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use alloc::format;

    #[test]
    fn names() {
        assert_eq!(format!("{}", super::describe(22)), "EINVAL (errno 22)");
        assert_eq!(format!("{}", super::describe(999)), "errno 999");
        assert_eq!(
            format!("{}", super::describe_wait(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            format!("{}", super::describe_wait(9)),
            "was killed by signal 9"
        );
    }
}
