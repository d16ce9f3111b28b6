//! Fixed-point fractions, durations and byte sizes.
//!
//! The binary model stores integers only. Human-readable formats (TOML) see
//! floats for fractions and `"10s"` / `"512M"` strings for durations and sizes;
//! the switch is `Serializer::is_human_readable`, so postcard never sees them.

use alloc::format;
use alloc::string::String;
use core::fmt;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const NS_PER_US: u64 = 1_000;
pub const NS_PER_MS: u64 = 1_000_000;
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// A fraction in parts per million: `Fraction::ONE` is 1.0. No NaN can exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fraction(pub u32);

/// Why a float is not a usable fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FractionError {
    #[error("is not a finite number")]
    NotFinite,
    #[error("is negative")]
    Negative,
    #[error("is above 1")]
    AboveOne,
}

impl Fraction {
    pub const ZERO: Fraction = Fraction(0);
    pub const ONE: Fraction = Fraction(1_000_000);

    pub const fn from_ppm(ppm: u32) -> Self {
        Fraction(ppm)
    }

    pub const fn ppm(self) -> u32 {
        self.0
    }

    /// Converts a float in `0.0..=1.0`, rounding to the nearest ppm.
    pub fn from_f64(f: f64) -> Result<Self, FractionError> {
        if !f.is_finite() {
            return Err(FractionError::NotFinite);
        }
        if f < 0.0 {
            return Err(FractionError::Negative);
        }
        if f > 1.0 {
            return Err(FractionError::AboveOne);
        }
        Ok(Fraction(Self::to_ppm(f)))
    }

    /// Like [`Fraction::from_f64`] but never fails: NaN and negatives become
    /// zero and values above 1 stay above 1, so validation rejects them.
    pub fn from_f64_lossy(f: f64) -> Self {
        if f.is_nan() || f <= 0.0 {
            return Fraction::ZERO;
        }
        if f >= f64::from(u32::MAX) / 1e6 {
            return Fraction(u32::MAX);
        }
        Fraction(Self::to_ppm(f))
    }

    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn to_ppm(f: f64) -> u32 {
        // Callers bound f to 0.0..=4294.96, so the product fits in u32.
        (f * 1e6 + 0.5) as u32
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1e6
    }

    /// `self × whole`, rounded down (exact integer maths).
    pub fn of_u64(self, whole: u64) -> u64 {
        let v = u128::from(whole) * u128::from(self.0) / 1_000_000;
        u64::try_from(v).unwrap_or(u64::MAX)
    }

    /// `self × whole`, rounded down.
    pub fn of_u32(self, whole: u32) -> u32 {
        u32::try_from(u64::from(whole) * u64::from(self.0) / 1_000_000).unwrap_or(u32::MAX)
    }
}

/// Display, serde and TOML reading shared by the parts-per-million types:
/// `value` millionths, written as the shortest exact decimal.
fn fmt_millionths(value: u32, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let (int, frac) = (value / 1_000_000, value % 1_000_000);
    if frac == 0 {
        return write!(f, "{int}");
    }
    let digits = format!("{frac:06}");
    write!(f, "{int}.{}", digits.trim_end_matches('0'))
}

/// An integer in binary formats, a float in human-readable ones.
fn serialize_millionths<S: Serializer>(value: u32, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_f64(f64::from(value) / 1e6)
    } else {
        s.serialize_u32(value)
    }
}

/// Reads what [`serialize_millionths`] wrote; in human-readable formats any
/// number goes through `parse`, whose error becomes the message.
fn deserialize_millionths<'de, D: Deserializer<'de>, T>(
    d: D,
    from_raw: fn(u32) -> T,
    expecting: &'static str,
    parse: fn(f64) -> Result<T, String>,
) -> Result<T, D::Error> {
    if !d.is_human_readable() {
        return u32::deserialize(d).map(from_raw);
    }
    struct V<T> {
        expecting: &'static str,
        parse: fn(f64) -> Result<T, String>,
    }
    impl<T> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            #[allow(clippy::cast_precision_loss)] // only range-checked
            self.visit_f64(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            #[allow(clippy::cast_precision_loss)] // only range-checked
            self.visit_f64(v as f64)
        }
    }
    d.deserialize_any(V { expecting, parse })
}

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_millionths(self.0, f)
    }
}

impl Serialize for Fraction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_millionths(self.0, s)
    }
}

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_millionths(d, Fraction, "a fraction between 0 and 1, e.g. 0.5", |v| {
            Fraction::from_f64(v)
                .map_err(|e| format!("fraction {v} {e}; use a value between 0 and 1"))
        })
    }
}

/// A non-negative decimal in parts per million (`2.5` is `Ppm(2_500_000)`):
/// an integer in the binary form, a number in TOML. No NaN can exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ppm(pub u32);

impl Ppm {
    /// Largest value: 4294.967295.
    pub const MAX: Ppm = Ppm(u32::MAX);

    /// `f` rounded to the nearest ppm; `None` when negative, not finite or above [`Ppm::MAX`].
    pub fn from_f64(f: f64) -> Option<Ppm> {
        if !f.is_finite() || f < 0.0 || f > Self::MAX.as_f64() {
            return None;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        // f is in 0.0..=4294.967295, so the rounded product fits in u32.
        let ppm = (f * 1e6 + 0.5).min(f64::from(u32::MAX)) as u32;
        Some(Ppm(ppm))
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1e6
    }
}

impl fmt::Display for Ppm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_millionths(self.0, f)
    }
}

impl Serialize for Ppm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_millionths(self.0, s)
    }
}

impl<'de> Deserialize<'de> for Ppm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_millionths(d, Ppm, "a non-negative number, e.g. 1.5", |v| {
            Ppm::from_f64(v)
                .ok_or_else(|| format!("{v} is out of range 0..={}; use e.g. 1.5", Ppm::MAX))
        })
    }
}

/// Formats nanoseconds with the largest unit that divides them exactly.
pub fn format_duration(ns: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (60 * NS_PER_SEC, "m"),
        (NS_PER_SEC, "s"),
        (NS_PER_MS, "ms"),
        (NS_PER_US, "us"),
        (1, "ns"),
    ];
    for (scale, unit) in UNITS {
        if ns != 0 && ns.is_multiple_of(scale) {
            return format!("{}{unit}", ns / scale);
        }
    }
    String::from("0s")
}

/// Parses `"10s"`, `"2.5s"`, `"500ms"`, `"100us"`, `"40ns"` or `"1m"` into ns.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let scale = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => NS_PER_US,
        "ms" => NS_PER_MS,
        "s" => NS_PER_SEC,
        "m" | "min" => 60 * NS_PER_SEC,
        "" => {
            return Err(format!(
                "duration {s:?} needs a unit (ns, us, ms, s or m), e.g. \"10s\""
            ));
        }
        other => {
            return Err(format!(
                "duration {s:?} has unknown unit {other:?}; use ns, us, ms, s or m"
            ));
        }
    };
    scaled_decimal(num, scale).ok_or_else(|| {
        format!("duration {s:?} is not a non-negative number with a unit, e.g. \"10s\"")
    })
}

/// Parses `"512M"`, `"4G"`, `"64K"`, `"1024"` (bytes) into bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let scale = match unit.trim().trim_end_matches(['B', 'b', 'i']) {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        "T" | "t" => 1 << 40,
        _ => return Err(format!("size {s:?} has an unknown unit; use K, M, G or T")),
    };
    scaled_decimal(num, scale).ok_or_else(|| {
        format!("size {s:?} is not a non-negative number with a unit, e.g. \"512M\"")
    })
}

/// `num × scale` for a decimal string such as `"2.5"`, exact and without floats.
fn scaled_decimal(num: &str, scale: u64) -> Option<u64> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v: u64 = if int.is_empty() {
        0
    } else {
        int.parse::<u64>().ok()?.checked_mul(scale)?
    };
    let mut div = 1u64;
    for c in frac.chars() {
        let d = u64::from(c.to_digit(10)?);
        div = div.checked_mul(10)?;
        v = v.checked_add(d.checked_mul(scale)? / div)?;
    }
    Some(v)
}

/// Serde helper: `u64` ns in binary formats, `"10s"` strings in TOML.
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(ns: &u64, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&format_duration(*ns))
        } else {
            s.serialize_u64(*ns)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        if !d.is_human_readable() {
            return u64::deserialize(d);
        }
        struct V;
        impl Visitor<'_> for V {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"10s\" or \"500ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                parse_duration(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
                Err(E::custom(format!(
                    "duration {v} needs a unit; write it as a string, e.g. \"{v}ms\""
                )))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
                Err(E::custom(format!(
                    "duration {v} needs a unit; write it as a string, e.g. \"{v}ms\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// Serde helper: optional byte size; integers or `"512M"` strings in TOML.
pub mod opt_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        if !d.is_human_readable() {
            return Option::<u64>::deserialize(d);
        }
        struct V;
        impl Visitor<'_> for V {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes or a string such as \"512M\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<u64>, E> {
                parse_bytes(v).map(Some).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<u64>, E> {
                u64::try_from(v)
                    .map(Some)
                    .map_err(|_| E::custom(format!("size {v} is negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<u64>, E> {
                Ok(Some(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Serde helper: optional duration; `u64` ns in binary formats, `"10s"` in TOML.
pub mod opt_duration {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(ns) if s.is_human_readable() => s.serialize_some(&format_duration(*ns)),
            v => v.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        if !d.is_human_readable() {
            return Option::<u64>::deserialize(d);
        }
        /// One duration, through [`duration`]'s human-readable form.
        struct Human(u64);
        impl<'de> Deserialize<'de> for Human {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                duration::deserialize(d).map(Human)
            }
        }
        Option::<Human>::deserialize(d).map(|h| h.map(|Human(ns)| ns))
    }
}
