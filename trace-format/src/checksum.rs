//! CRC32C (Castagnoli), the one checksum of the ring transport and the trace file.

use crc::{CRC_32_ISCSI, Crc, Digest, Table};

/// Slice-by-16 tables: fast enough that the CRC is not the bottleneck of decode.
static CRC32C: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

/// CRC32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    CRC32C.checksum(bytes)
}

/// An incremental CRC32C, for data in several pieces.
pub(crate) fn crc32c_digest() -> Digest<'static, u32, Table<16>> {
    CRC32C.digest()
}

/// The raw CRC32C register after feeding `bytes` to register `reg` (no
/// initial value or final XOR): `crc32c(b) == !crc32c_advance(!0, b)`. The
/// register is linear in its input, which lets the recovery scan check the
/// CRC of any span from two prefix registers (see `file::span_crc`).
pub(crate) fn crc32c_advance(reg: u32, bytes: &[u8]) -> u32 {
    // The crate reflects a custom initial value and XORs the result with
    // 0xFFFFFFFF; undo both so the register goes in and comes out as is.
    let mut d = CRC32C.digest_with_initial(reg.reverse_bits());
    d.update(bytes);
    !d.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // RFC 3720 (iSCSI) check value and the 32-zero-byte vector.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(b""), 0);
        let mut d = crc32c_digest();
        d.update(b"1234");
        d.update(b"56789");
        assert_eq!(d.finalize(), crc32c(b"123456789"));
        assert_eq!(!crc32c_advance(!0, b"123456789"), 0xE306_9283);
        let mid = crc32c_advance(!0, b"1234");
        assert_eq!(!crc32c_advance(mid, b"56789"), 0xE306_9283);
    }
}
