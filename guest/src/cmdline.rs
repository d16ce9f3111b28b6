//! The kernel command line: where the host put the ring window, and the
//! optional doorbell port that wakes the host after a batch of records.

/// The `schedtape.ring=<gpa>,<size>` parameter: a guest-physical window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingParam {
    pub gpa: u64,
    pub size: u64,
}

/// Finds `schedtape.ring=` in a command line; `Ok(None)` when absent.
pub fn ring_param(cmdline: &str) -> Result<Option<RingParam>, &'static str> {
    let Some(value) = cmdline
        .split_ascii_whitespace()
        .rev()
        .find_map(|arg| arg.strip_prefix("schedtape.ring="))
    else {
        return Ok(None);
    };
    let (gpa, size) = value
        .split_once(',')
        .ok_or("schedtape.ring needs <gpa>,<size>")?;
    let gpa = parse_u64(gpa).ok_or("schedtape.ring: bad address")?;
    let size = parse_u64(size).ok_or("schedtape.ring: bad size")?;
    if size == 0 {
        return Err("schedtape.ring: size is 0");
    }
    Ok(Some(RingParam { gpa, size }))
}

/// The `schedtape.doorbell=<port>` parameter (an x86 I/O port; the KVM
/// backend adds it); `Ok(None)` when absent.
pub fn doorbell_param(cmdline: &str) -> Result<Option<u16>, &'static str> {
    let Some(value) = param(cmdline, "schedtape.doorbell") else {
        return Ok(None);
    };
    parse_u64(value)
        .and_then(|p| u16::try_from(p).ok())
        .map(Some)
        .ok_or("schedtape.doorbell: bad port")
}

/// The value of the last `key=value` argument of a command line.
pub fn param<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .rev()
        .find_map(|arg| arg.strip_prefix(key)?.strip_prefix('='))
}

/// Parses decimal or `0x` hexadecimal.
pub fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ring() {
        let line = "console=ttyS0 schedtape.ring=0x1fc00000,4194304 reboot=t\n";
        assert_eq!(
            ring_param(line),
            Ok(Some(RingParam {
                gpa: 0x1fc0_0000,
                size: 4 << 20
            }))
        );
        assert_eq!(ring_param("console=ttyS0 quiet"), Ok(None));
        assert!(ring_param("schedtape.ring=0x1000").is_err());
        assert!(ring_param("schedtape.ring=zz,1").is_err());
        assert!(ring_param("schedtape.ring=1,0").is_err());
        assert_eq!(parse_u64("0X10"), Some(16));
        assert_eq!(
            param("a=1 schedtape.backend=qemu b", "schedtape.backend"),
            Some("qemu")
        );
        assert_eq!(param("schedtape.backendx=1", "schedtape.backend"), None);
    }

    #[test]
    fn finds_the_doorbell() {
        let line = "console=ttyS0 schedtape.ring=0x4000000,0x400000 schedtape.doorbell=0x448\n";
        assert_eq!(doorbell_param(line), Ok(Some(0x448)));
        assert_eq!(doorbell_param("schedtape.doorbell=1096"), Ok(Some(0x448)));
        assert_eq!(doorbell_param("console=ttyS0 quiet"), Ok(None));
        assert_eq!(doorbell_param("schedtape.doorbellx=0x448"), Ok(None));
        // The last one wins, as for every parameter.
        assert_eq!(
            doorbell_param("schedtape.doorbell=0x448 schedtape.doorbell=0x80"),
            Ok(Some(0x80))
        );
        assert!(doorbell_param("schedtape.doorbell=0x10000").is_err());
        assert!(doorbell_param("schedtape.doorbell=").is_err());
        assert!(doorbell_param("schedtape.doorbell=port").is_err());
    }
}
