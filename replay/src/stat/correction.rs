//! Multiple-testing correction across the metrics of one comparison.

/// Benjamini–Hochberg adjusted p-values (false discovery rate), in input order.
/// `None` entries are not tests and stay `None`; they do not count towards m.
pub fn benjamini_hochberg(p: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut tested: Vec<(usize, f64)> = p
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    let m = tested.len() as f64;
    tested.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut out = vec![None; p.len()];
    let mut running = 1.0f64;
    for (rank, &(i, pv)) in tested.iter().enumerate().rev() {
        let adj = (pv * m / (rank + 1) as f64).min(1.0);
        running = running.min(adj);
        out[i] = Some(running);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_values() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "BH") = 0.02 0.04 0.04 0.02
        let adj = benjamini_hochberg(&[Some(0.01), Some(0.04), None, Some(0.03), Some(0.005)]);
        let want = [Some(0.02), Some(0.04), None, Some(0.04), Some(0.02)];
        assert_eq!(adj.len(), want.len(), "{adj:?}");
        for (a, w) in adj.iter().zip(want) {
            match (a, w) {
                (Some(a), Some(w)) => assert!((a - w).abs() < 1e-12, "{adj:?}"),
                (None, None) => {}
                _ => panic!("{adj:?}"),
            }
        }
    }
}
