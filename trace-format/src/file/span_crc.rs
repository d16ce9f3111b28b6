//! CRC32C of any span from prefix registers, in O(1) per span.
//!
//! The CRC register is linear over GF(2): feeding `data[a..b]` to register
//! `h` gives `shift(h ⊕ G(a), b − a) ⊕ G(b)`, where `G(p)` is the register
//! of one sweep over the file up to `p` and `shift(v, n)` multiplies `v` by
//! `x^(8n)` mod the CRC polynomial. So the recovery scan checks the CRC of
//! every candidate chunk, however long and however much candidates overlap,
//! with one pass over the bytes and two multiplications per candidate.
//!
//! Registers are in the reflected form CRC32C uses: bit 31 is `x^0`.

use alloc::vec::Vec;

use crate::checksum::crc32c_advance;

/// CRC32C's polynomial, reflected: `x^32` mod P.
const POLY: u32 = 0x82F6_3B78;

/// `v · x` mod P.
const fn mul_x(v: u32) -> u32 {
    if v & 1 == 0 { v >> 1 } else { (v >> 1) ^ POLY }
}

/// `j · x^4` mod P for the low nibble `j` (the bits that wrap).
const NIBBLE_WRAP: [u32; 16] = {
    let mut t = [0u32; 16];
    let mut j = 0;
    while j < 16 {
        // j < 16: the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        let nibble = j as u32;
        t[j] = mul_x(mul_x(mul_x(mul_x(nibble))));
        j += 1;
    }
    t
};

/// `a · b` mod P, four bits of `a` at a time (no data-dependent branches).
pub(crate) fn gf_mul(a: u32, b: u32) -> u32 {
    // multiples[n] = (nibble n as a polynomial of degree < 4) · b, where
    // bit 3 of n is x^0 and bit 0 is x^3 (reflected, like the register).
    let mut multiples = [0u32; 16];
    let b1 = mul_x(b);
    let b2 = mul_x(b1);
    let b3 = mul_x(b2);
    let basis = [b3, b2, b1, b];
    for n in 1..16usize {
        let low = n.trailing_zeros() as usize;
        multiples[n] = multiples[n & (n - 1)] ^ basis[low];
    }
    // Horner from the highest-degree nibble of `a` (its low bits) down.
    let mut p = 0u32;
    for t in 0..8 {
        p = (p >> 4) ^ NIBBLE_WRAP[(p & 0xF) as usize];
        let nibble = (a >> (4 * t)) & 0xF;
        p ^= multiples[nibble as usize];
    }
    p
}

/// Bits of `n` per table in [`ZeroShift`].
const DIGIT_BITS: u32 = 11;
const DIGITS: usize = 1 << DIGIT_BITS;

/// `v · x^(8n)`: the register after feeding `n` zero bytes to `v`, with one
/// multiplication per non-zero 11-bit digit of `n` (two for spans under
/// 4 MiB). Table `k` holds `x^(8 · i · 2^(11k))` for `i < 2048`, built the
/// first time a length needs it, so a small scan pays for small tables.
#[derive(Debug, Default)]
pub(crate) struct ZeroShift {
    tables: Vec<Vec<u32>>,
}

impl ZeroShift {
    /// `v` shifted by `n` zero bytes.
    pub fn shift(&mut self, v: u32, n: u64) -> u32 {
        let mut out = v;
        let mut rest = n;
        let mut k = 0;
        while rest > 0 {
            let digit = super::layout::to_usize(rest & (DIGITS as u64 - 1));
            if digit > 0 {
                let power = self.table(k).get(digit).copied().unwrap_or(X0);
                out = gf_mul(out, power);
            }
            rest >>= DIGIT_BITS;
            k += 1;
        }
        out
    }

    /// Table `k`, built (with those below it) on first use.
    fn table(&mut self, k: usize) -> &[u32] {
        while self.tables.len() <= k {
            let table = match self.tables.last() {
                // x^(8i): one zero byte at a time.
                None => successive(X0, |x| crc32c_advance(x, &[0])),
                // The previous table's step, 2048 times over.
                Some(prev) => {
                    let step = gf_mul(
                        prev.last().copied().unwrap_or(X0),
                        prev.get(1).copied().unwrap_or(X0),
                    );
                    successive(X0, |x| gf_mul(x, step))
                }
            };
            self.tables.push(table);
        }
        self.tables.get(k).map(Vec::as_slice).unwrap_or_default()
    }
}

/// `[first, next(first), next(next(first)), …]`, [`DIGITS`] long.
fn successive(first: u32, next: impl Fn(u32) -> u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(DIGITS);
    let mut x = first;
    for _ in 0..DIGITS {
        out.push(x);
        x = next(x);
    }
    out
}

/// The polynomial 1.
const X0: u32 = 1 << 31;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Bit-at-a-time reference multiplication.
    fn gf_mul_slow(a: u32, b: u32) -> u32 {
        let mut p = 0;
        let mut b = b;
        for k in 0..32 {
            if a & (X0 >> k) != 0 {
                p ^= b;
            }
            b = mul_x(b);
        }
        p
    }

    #[test]
    fn multiplication_matches_the_reference() {
        let mut s = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let [a0, a1, a2, a3, b0, b1, b2, b3] = s.to_le_bytes();
            let (a, b) = (
                u32::from_le_bytes([a0, a1, a2, a3]),
                u32::from_le_bytes([b0, b1, b2, b3]),
            );
            assert_eq!(gf_mul(a, b), gf_mul_slow(a, b), "{a:#x} · {b:#x}");
        }
        assert_eq!(gf_mul(X0, 0xDEAD_BEEF), 0xDEAD_BEEF);
    }

    #[test]
    fn shift_equals_feeding_zero_bytes() {
        let mut z = ZeroShift::default();
        for n in [0u64, 1, 7, 2047, 2048, 2049, 65536, 4_194_305, 9_000_000] {
            let zeros = vec![0u8; crate::file::layout::to_usize(n)];
            let v = 0xA5A5_1234;
            assert_eq!(z.shift(v, n), crc32c_advance(v, &zeros), "n = {n}");
        }
    }

    #[test]
    fn span_register_from_prefix_registers() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut z = ZeroShift::default();
        let g = |p: usize| crc32c_advance(0, &data[..p]);
        let h = crc32c_advance(!0, b"header");
        for (a, b) in [(0, 0), (10, 4000), (100, 101), (1234, 5000)] {
            let direct = crc32c_advance(h, &data[a..b]);
            assert_eq!(z.shift(h ^ g(a), (b - a) as u64) ^ g(b), direct);
        }
    }
}
