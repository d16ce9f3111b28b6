//! Percentile bootstrap of the relative change between two medians.
use serde::Serialize;

use super::{SplitMix64, median_in_place, to_index};

/// A two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// True when the whole interval lies within `[-band, band]`.
    pub fn within(&self, band: f64) -> bool {
        self.low >= -band && self.high <= band
    }
}

/// CI (level `1 - alpha`) of `100 × (median(B) / median(A) − 1)`, resampling
/// each side independently `resamples` times. `None` when a side is empty or
/// A's resampled medians are zero too often to form a ratio.
pub fn ratio_of_medians_ci(
    a: &[f64],
    b: &[f64],
    alpha: f64,
    resamples: usize,
    seed: u64,
) -> Option<Interval> {
    if a.is_empty() || b.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut ra = vec![0.0; a.len()];
    let mut rb = vec![0.0; b.len()];
    let mut changes = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for slot in ra.iter_mut() {
            *slot = a[rng.below(a.len())];
        }
        for slot in rb.iter_mut() {
            *slot = b[rng.below(b.len())];
        }
        let (Some(ma), Some(mb)) = (median_in_place(&mut ra), median_in_place(&mut rb)) else {
            return None;
        };
        if ma != 0.0 {
            changes.push(100.0 * (mb - ma) / ma.abs());
        }
    }
    // More than the tail mass undefined: the interval would be meaningless.
    if changes.is_empty() || (changes.len() as f64) < resamples as f64 * (1.0 - alpha / 2.0) {
        return None;
    }
    changes.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = to_index(q * (changes.len() - 1) as f64);
        changes[i.min(changes.len() - 1)]
    };
    Some(Interval {
        low: at(alpha / 2.0),
        high: at(1.0 - alpha / 2.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separated_samples_give_a_tight_interval() {
        let a = [100.0, 101.0, 99.0, 100.5, 99.5];
        let b = [50.0, 50.5, 49.5, 50.2, 49.8];
        let ci = ratio_of_medians_ci(&a, &b, 0.05, 2000, 1).unwrap();
        assert!(ci.low > -52.0 && ci.high < -48.0, "{ci:?}");
        assert!(!ci.within(1.0));
        let same = ratio_of_medians_ci(&a, &a, 0.05, 2000, 1).unwrap();
        assert!(
            same.low < 0.0 && same.high > 0.0 && same.within(2.0),
            "{same:?}"
        );
    }

    #[test]
    fn zero_baseline_has_no_ratio() {
        assert!(ratio_of_medians_ci(&[0.0, 0.0, 0.0], &[1.0, 2.0], 0.05, 100, 1).is_none());
        assert!(ratio_of_medians_ci(&[], &[1.0], 0.05, 100, 1).is_none());
    }

    /// Changes are −50 %, 0 and +50 % with probabilities ¼, ½, ¼: the 20th
    /// and 80th percentiles (alpha 0.4) fall in the outer values, the 40th
    /// and 60th would not.
    #[test]
    fn interval_ends_are_the_alpha_halves_percentiles() {
        let ci = ratio_of_medians_ci(&[2.0], &[1.0, 3.0], 0.4, 4000, 3).unwrap();
        assert_eq!(
            ci,
            Interval {
                low: -50.0,
                high: 50.0
            }
        );
        let ci = ratio_of_medians_ci(&[2.0], &[1.0, 3.0], 0.9, 4000, 3).unwrap();
        assert_eq!(
            ci,
            Interval {
                low: 0.0,
                high: 0.0
            }
        );
    }

    /// A baseline whose resampled median is zero in most resamples (three
    /// zeros of five) gives no interval, though some ratios exist.
    #[test]
    fn mostly_zero_baseline_has_no_ratio() {
        let a = [0.0, 0.0, 0.0, 1.0, 1.0];
        assert!(ratio_of_medians_ci(&a, &[1.0, 2.0], 0.05, 200, 1).is_none());
    }

    /// Two zeros in nine: about 97.0 % of resampled medians are non-zero.
    /// At alpha 0.05 an interval needs 97.5 % (none); at alpha 0.1, 95 %.
    #[test]
    fn undefined_ratios_may_fill_only_one_tail() {
        let a = [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        assert!(ratio_of_medians_ci(&a, &[1.0, 2.0], 0.05, 20_000, 5).is_none());
        assert!(ratio_of_medians_ci(&a, &[1.0, 2.0], 0.1, 20_000, 5).is_some());
    }

    /// Every resample defined, exactly the count the level asks for
    /// (alpha 0: all of them): the interval exists, spanning every change.
    #[test]
    fn all_resamples_defined_at_alpha_zero() {
        let ci = ratio_of_medians_ci(&[2.0], &[1.0, 3.0], 0.0, 50, 7).unwrap();
        assert_eq!(
            ci,
            Interval {
                low: -50.0,
                high: 50.0
            }
        );
    }
}
