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
    if bytes.len() < 32 {
        return advance_short(reg, bytes);
    }
    // The crate reflects a custom initial value and XORs the result with
    // 0xFFFFFFFF; undo both so the register goes in and comes out as is.
    let mut d = CRC32C.digest_with_initial(reg.reverse_bits());
    d.update(bytes);
    !d.finalize()
}

/// [`crc32c_advance`] for the recovery scan's many short spans, where
/// setting up a digest costs more than the bytes: four bytes per step with
/// the slice-by-16 tables' first four (table k: a byte then k zero bytes).
fn advance_short(reg: u32, bytes: &[u8]) -> u32 {
    let t = CRC32C.table();
    let mut words = bytes.chunks_exact(4);
    let mut r = reg;
    for w in words.by_ref() {
        let [a, b, c, d] = (r ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]])).to_le_bytes();
        r = t[3][usize::from(a)]
            ^ t[2][usize::from(b)]
            ^ t[1][usize::from(c)]
            ^ t[0][usize::from(d)];
    }
    words.remainder().iter().fold(r, |r, &b| {
        t[0][usize::from(r.to_le_bytes()[0] ^ b)] ^ (r >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

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
        let long: Vec<u8> = (0..300u32).map(|i| (i * 7).to_le_bytes()[0]).collect();
        assert_eq!(!crc32c_advance(!0, &long), crc32c(&long));
        for cut in 0..40 {
            let split = crc32c_advance(crc32c_advance(!0, &long[..cut]), &long[cut..]);
            assert_eq!(!split, crc32c(&long), "cut at {cut}");
            assert_eq!(!crc32c_advance(!0, &long[..cut]), crc32c(&long[..cut]));
        }
    }
}
