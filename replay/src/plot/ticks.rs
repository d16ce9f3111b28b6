//! Round axis ticks: steps of 1, 2 or 5 × 10^k, so every label is a value a
//! reader can interpolate between (0, 20k, 40k… rather than 0, 1.6M, 3.3M).

/// The smallest 1, 2 or 5 × 10^k step that cuts `span` into at most `max_ticks` intervals.
pub fn nice_step(span: f64, max_ticks: usize) -> f64 {
    if !(span.is_finite() && span > 0.0) || max_ticks == 0 {
        return 1.0;
    }
    let raw = span / max_ticks as f64;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&s| s * (1.0 + 1e-9) >= raw)
        .unwrap_or(10.0 * mag)
}

/// Ticks `0, step, 2·step, …` up to the first at or above `max`; the last is
/// the axis top. At most `max_ticks + 1` values.
pub fn ticks(max: f64, max_ticks: usize) -> Vec<f64> {
    let step = nice_step(max, max_ticks);
    let n = crate::stat::to_index((max / step - 1e-9).ceil()).max(1);
    (0..=n).map(|i| i as f64 * step).collect()
}

/// A tick value, short: `0`, `0.5`, `20k`, `1.5M`.
pub fn label(v: f64) -> String {
    let (scaled, unit) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = format!("{scaled:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(3_400_000.0, 5), 1_000_000.0);
        assert_eq!(nice_step(80_000.0, 5), 20_000.0);
        assert_eq!(nice_step(1.0, 5), 0.2);
        assert_eq!(nice_step(12.0, 12), 1.0);
        assert_eq!(nice_step(25.0, 12), 5.0);
        assert_eq!(nice_step(0.0, 5), 1.0);
        assert_eq!(nice_step(f64::NAN, 5), 1.0);
        for span in [0.37, 7.0, 99.0, 1234.5, 6.1e7] {
            let s = nice_step(span, 6);
            let mantissa = s / 10f64.powf(s.log10().floor());
            assert!(
                [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9),
                "{span}: {s}"
            );
            assert!(span / s <= 6.0 + 1e-9, "{span}: {s}");
        }
    }

    #[test]
    fn ticks_cover_the_maximum_with_round_values() {
        assert_eq!(
            ticks(73_000.0, 5),
            vec![0.0, 20_000.0, 40_000.0, 60_000.0, 80_000.0]
        );
        assert_eq!(ticks(100.0, 5), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(ticks(1.0, 5).len(), 6);
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(label(0.0), "0");
        assert_eq!(label(0.5), "0.5");
        assert_eq!(label(20_000.0), "20k");
        assert_eq!(label(1_500_000.0), "1.5M");
        assert_eq!(label(250.0), "250");
    }
}
