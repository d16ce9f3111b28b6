//! The Mann–Whitney U test: exact for small tie-free samples, otherwise the
//! normal approximation with tie and continuity corrections.
use serde::Serialize;

use super::{normal_sf, to_index};

/// Which difference the test looks for, stated for B relative to A.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alternative {
    TwoSided,
    /// B tends to be larger than A.
    Greater,
    /// B tends to be smaller than A.
    Less,
}

/// Result of one test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MannWhitney {
    /// Pairs (a, b) with b > a, ties counting one half.
    pub u: f64,
    pub p: f64,
    /// True when `p` comes from the exact null distribution.
    pub exact: bool,
}

/// Largest combined sample for which the exact distribution is computed.
const EXACT_MAX_N: usize = 50;

/// Tests A against B; `None` when a side is empty or holds NaN.
pub fn mann_whitney(a: &[f64], b: &[f64], alt: Alternative) -> Option<MannWhitney> {
    if a.is_empty() || b.is_empty() || a.iter().chain(b).any(|v| v.is_nan()) {
        return None;
    }
    let (na, nb) = (a.len(), b.len());
    let n = na + nb;
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&v| (v, false))
        .chain(b.iter().map(|&v| (v, true)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut rank_sum_b = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && all[j].0 == all[i].0 {
            j += 1;
        }
        let t = (j - i) as f64;
        let avg_rank = (i + j + 1) as f64 / 2.0;
        rank_sum_b += avg_rank * all[i..j].iter().filter(|x| x.1).count() as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    let u = rank_sum_b - (nb * (nb + 1)) as f64 / 2.0;
    if tie_term == 0.0 && n <= EXACT_MAX_N {
        return Some(MannWhitney {
            u,
            p: exact_p(na, nb, u, alt),
            exact: true,
        });
    }
    let (naf, nbf, nf) = (na as f64, nb as f64, n as f64);
    let mean = naf * nbf / 2.0;
    let var = naf * nbf / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    if var <= 0.0 {
        return Some(MannWhitney {
            u,
            p: 1.0,
            exact: false,
        });
    }
    let sd = var.sqrt();
    let d = u - mean;
    let p = match alt {
        Alternative::Greater => normal_sf((d - 0.5) / sd),
        Alternative::Less => normal_sf((-d - 0.5) / sd),
        Alternative::TwoSided => (2.0 * normal_sf(((d.abs() - 0.5) / sd).max(0.0))).min(1.0),
    };
    Some(MannWhitney { u, p, exact: false })
}

/// P-value from the exact distribution of U for sample sizes `na`, `nb`.
fn exact_p(na: usize, nb: usize, u: f64, alt: Alternative) -> f64 {
    let dist = u_distribution(na, nb);
    let total: f64 = dist.iter().sum();
    // Without ties U is an integer.
    let k = to_index(u);
    let upper: f64 = dist.iter().skip(k).sum::<f64>() / total;
    let lower: f64 = dist.iter().take(k + 1).sum::<f64>() / total;
    match alt {
        Alternative::Greater => upper,
        Alternative::Less => lower,
        Alternative::TwoSided => (2.0 * upper.min(lower)).min(1.0),
    }
}

/// Counts of arrangements giving each U in `0..=na*nb` (B's U: a's below each b).
fn u_distribution(na: usize, nb: usize) -> Vec<f64> {
    // f[j] holds the distribution for (i b's, j a's); the largest element is
    // either a b (adding j to U) or an a (adding nothing).
    let mut prev: Vec<Vec<f64>> = (0..=na).map(|_| vec![1.0]).collect();
    for i in 1..=nb {
        let mut cur: Vec<Vec<f64>> = Vec::with_capacity(na + 1);
        cur.push(vec![1.0]);
        for j in 1..=na {
            let mut d = vec![0.0; i * j + 1];
            for (u, c) in prev[j].iter().enumerate() {
                d[u + j] += c;
            }
            for (u, c) in cur[j - 1].iter().enumerate() {
                d[u] += c;
            }
            cur.push(d);
        }
        prev = cur;
    }
    prev.swap_remove(na)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_matches_reference() {
        // R: wilcox.test(c(1,2,3,4,5), c(6,7,8,9,10))$p.value = 0.007937
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [6.0, 7.0, 8.0, 9.0, 10.0];
        let r = mann_whitney(&a, &b, Alternative::TwoSided).unwrap();
        assert!(r.exact);
        assert_eq!(r.u, 25.0);
        assert!((r.p - 2.0 / 252.0).abs() < 1e-12, "{r:?}");
        let g = mann_whitney(&a, &b, Alternative::Greater).unwrap();
        assert!((g.p - 1.0 / 252.0).abs() < 1e-12);
        let l = mann_whitney(&a, &b, Alternative::Less).unwrap();
        assert!((l.p - 1.0).abs() < 1e-12);
        // R: wilcox.test(c(1.1,2.2,3.3,4.4), c(2.5,3.5,5.5))$p.value = 0.4
        let r = mann_whitney(
            &[1.1, 2.2, 3.3, 4.4],
            &[2.5, 3.5, 5.5],
            Alternative::TwoSided,
        )
        .unwrap();
        assert!((r.p - 0.4).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn normal_with_ties_matches_reference() {
        // U = 38.5; z = (|U − 21| − 0.5) / σ with the tie-corrected σ gives p = 0.0130
        let a = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0];
        let b = [3.0, 4.0, 4.0, 5.0, 5.0, 6.0];
        let r = mann_whitney(&a, &b, Alternative::TwoSided).unwrap();
        assert!(!r.exact);
        assert!((r.p - 0.013_000).abs() < 1e-5, "{r:?}");
    }

    /// A starved cgroup's zeros against a healthy one's positive values, with
    /// ties: the normal approximation, one-sided in each direction.
    /// By hand (R: `wilcox.test(b, a, "greater", exact = FALSE)` computes the
    /// same): U = 30 of 36, mean 18, tie term 8³ − 8 = 504,
    /// σ² = 36/12 · (13 − 504/132) = 27.545, z = (12 − 0.5)/σ = 2.1911,
    /// P(Z ≥ z) = 0.014220. The continuity correction moves |U − mean|
    /// towards zero: the wrong sign would give 0.008617.
    #[test]
    fn one_sided_normal_with_ties_in_each_direction() {
        let zeros = [0.0; 6];
        let healthy = [0.0, 0.0, 3.0, 5.0, 8.0, 13.0];
        let larger = 0.014_220;
        let not_larger = 0.991_383;

        let g = mann_whitney(&zeros, &healthy, Alternative::Greater).unwrap();
        assert!(!g.exact);
        assert_eq!(g.u, 30.0);
        assert!((g.p - larger).abs() < 1e-5, "{g:?}");
        let l = mann_whitney(&zeros, &healthy, Alternative::Less).unwrap();
        assert!((l.p - not_larger).abs() < 1e-5, "{l:?}");

        // Sides swapped: now B (the zeros) tends to be smaller.
        let l = mann_whitney(&healthy, &zeros, Alternative::Less).unwrap();
        assert_eq!(l.u, 6.0);
        assert!((l.p - larger).abs() < 1e-5, "{l:?}");
        let g = mann_whitney(&healthy, &zeros, Alternative::Greater).unwrap();
        assert!((g.p - not_larger).abs() < 1e-5, "{g:?}");

        let two = mann_whitney(&zeros, &healthy, Alternative::TwoSided).unwrap();
        assert!((two.p - 2.0 * larger).abs() < 2e-5, "{two:?}");
    }

    /// Exact path, B smaller: the lower tail, not the upper.
    #[test]
    fn exact_one_sided_less() {
        // R: wilcox.test(c(6,7,8,9,10), c(1,2,3,4,5), "less")$p.value = 1/252
        let a = [6.0, 7.0, 8.0, 9.0, 10.0];
        let b = [1.0, 2.0, 3.0, 4.0, 5.0];
        let l = mann_whitney(&a, &b, Alternative::Less).unwrap();
        assert!(l.exact);
        assert_eq!(l.u, 0.0);
        assert!((l.p - 1.0 / 252.0).abs() < 1e-12, "{l:?}");
        let g = mann_whitney(&a, &b, Alternative::Greater).unwrap();
        assert!((g.p - 1.0).abs() < 1e-12, "{g:?}");
    }

    #[test]
    fn degenerate_inputs() {
        assert!(mann_whitney(&[], &[1.0], Alternative::TwoSided).is_none());
        let same = mann_whitney(&[2.0; 4], &[2.0; 4], Alternative::TwoSided).unwrap();
        assert_eq!(same.p, 1.0);
        assert!(mann_whitney(&[f64::NAN], &[1.0], Alternative::Less).is_none());
    }
}
