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
        t[j] = mul_x(mul_x(mul_x(mul_x(j as u32))));
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

/// `v · x^(8n)`: the register after feeding `n` zero bytes to `v`, in two
/// multiplications (tables of `x^(8i)` for the low and high 16 bits of `n`).
#[derive(Debug, Default)]
pub(crate) struct ZeroShift {
    /// `x^(8i)` for `i < 2^16`; filled on first use.
    low: Vec<u32>,
    /// `x^(8 · 2^16 · j)`; grown on demand.
    high: Vec<u32>,
}

impl ZeroShift {
    /// `v` shifted by `n` zero bytes.
    pub fn shift(&mut self, v: u32, n: u64) -> u32 {
        if self.low.is_empty() {
            self.fill_low();
        }
        let lo = (n & 0xFFFF) as usize;
        let hi = super::layout::to_usize(n >> 16);
        let mut out = gf_mul(v, self.low.get(lo).copied().unwrap_or(X0));
        if hi > 0 {
            self.grow_high(hi);
            out = gf_mul(out, self.high.get(hi).copied().unwrap_or(X0));
        }
        out
    }

    fn fill_low(&mut self) {
        self.low.reserve_exact(1 << 16);
        let mut x = X0;
        for _ in 0..(1u32 << 16) {
            self.low.push(x);
            x = times_x8(x);
        }
    }

    fn grow_high(&mut self, upto: usize) {
        if self.high.is_empty() {
            self.high.push(X0);
        }
        // x^(8 · 2^16) = x^(8 · (2^16 − 1)) · x^8.
        let step = times_x8(self.low.last().copied().unwrap_or(X0));
        while self.high.len() <= upto {
            let last = self.high.last().copied().unwrap_or(X0);
            self.high.push(gf_mul(last, step));
        }
    }
}

/// The polynomial 1.
const X0: u32 = 1 << 31;

/// `v · x^8` mod P.
fn times_x8(v: u32) -> u32 {
    let mut v = v;
    for _ in 0..8 {
        v = mul_x(v);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::crc32c_advance;
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
            let (a, b) = ((s >> 32) as u32, s as u32);
            assert_eq!(gf_mul(a, b), gf_mul_slow(a, b), "{a:#x} · {b:#x}");
        }
        assert_eq!(gf_mul(X0, 0xDEAD_BEEF), 0xDEAD_BEEF);
    }

    #[test]
    fn shift_equals_feeding_zero_bytes() {
        let mut z = ZeroShift::default();
        for n in [0u64, 1, 7, 255, 65535, 65536, 65537, 200_000] {
            let zeros = vec![0u8; n as usize];
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
