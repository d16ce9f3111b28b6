//! The table `cargo xtask test` ends with: per phase what ran, and every test
//! that skipped, why, and whether the skip was expected (its prerequisite is
//! absent here) or not (the probe found it, or `--require` demanded it).
use std::collections::BTreeSet;
use std::fmt::Write as _;

use vmm::test_skip::{Need, Skip};

/// Test counts summed over the `test result:` lines of one cargo run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl Counts {
    /// Adds one libtest line such as
    /// `test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; ...`.
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        let rest = rest.split_once(". ").map_or(rest, |(_, r)| r);
        for part in rest.split(';') {
            let mut words = part.split_whitespace();
            let (Some(n), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// One phase's outcome.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub ok: bool,
    pub counts: Counts,
    pub skips: Vec<Skip>,
}

/// Which needs this run requires: a skip for one of them is unexpected.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    pub required: BTreeSet<Need>,
}

impl Expectations {
    pub fn expected(&self, skip: &Skip) -> bool {
        !self.required.contains(&skip.need)
    }
}

/// The skips recorded in a skip log (other lines are ignored).
pub fn parse_log(text: &str) -> Vec<Skip> {
    text.lines().filter_map(Skip::parse).collect()
}

/// Renders the table; the second value is the number of unexpected skips.
pub fn table(phases: &[Phase], exp: &Expectations) -> (String, usize) {
    let mut rows: Vec<[String; 4]> = vec![[
        "phase".into(),
        "test".into(),
        "outcome".into(),
        "reason".into(),
    ]];
    let mut unexpected = 0;
    for p in phases {
        let c = p.counts;
        let outcome = match (p.ok, c == Counts::default()) {
            (true, true) => "ok".to_string(),
            (false, true) => "FAILED".to_string(),
            (ok, false) => format!(
                "{}: {} passed, {} failed, {} ignored; {} skip report(s)",
                if ok { "ok" } else { "FAILED" },
                c.passed,
                c.failed,
                c.ignored,
                p.skips.len()
            ),
        };
        rows.push([p.name.clone(), "(all)".into(), outcome, String::new()]);
        for s in &p.skips {
            let expected = exp.expected(s);
            unexpected += usize::from(!expected);
            let outcome = if expected {
                "skipped (expected)"
            } else {
                "SKIPPED (UNEXPECTED)"
            };
            let reason = if expected {
                format!("no {}: {}", s.need, s.reason)
            } else {
                format!("{} is present or required here, yet: {}", s.need, s.reason)
            };
            rows.push([p.name.clone(), s.test.clone(), outcome.into(), reason]);
        }
    }
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut out = String::new();
    for r in &rows {
        let line = format!("{:<w0$}  {:<w1$}  {:<w2$}  {}", r[0], r[1], r[2], r[3]);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    (out, unexpected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(test: &str, need: Need) -> Skip {
        Skip {
            test: test.into(),
            need,
            reason: "why".into(),
        }
    }

    #[test]
    fn counts_sum_libtest_result_lines() {
        let mut c = Counts::default();
        c.add_line("test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.29s");
        c.add_line(
            "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        c.add_line("test foo ... ok");
        assert_eq!(
            c,
            Counts {
                passed: 13,
                failed: 2,
                ignored: 3
            }
        );
    }

    #[test]
    fn a_skip_for_a_required_need_is_unexpected_and_others_are_not() {
        let exp = Expectations {
            required: BTreeSet::from([Need::Kvm, Need::Kernel]),
        };
        let phases = [Phase {
            name: "tests".into(),
            ok: true,
            counts: Counts {
                passed: 5,
                failed: 0,
                ignored: 1,
            },
            skips: vec![
                skip("kvm_boot::one_vcpu", Need::Cpuid),
                skip("builder::loads", Need::Kernel),
            ],
        }];
        let (text, unexpected) = table(&phases, &exp);
        assert_eq!(unexpected, 1, "{text}");
        let line = |t: &str| text.lines().find(|l| l.contains(t)).unwrap().to_string();
        assert!(
            line("kvm_boot::one_vcpu").contains("skipped (expected)"),
            "{text}"
        );
        assert!(
            line("kvm_boot::one_vcpu").contains("no cpuid: why"),
            "{text}"
        );
        assert!(line("builder::loads").contains("UNEXPECTED"), "{text}");
        assert!(
            line("(all)").contains("ok: 5 passed, 0 failed, 1 ignored; 2 skip report(s)"),
            "{text}"
        );
    }

    #[test]
    fn nothing_skipped_nothing_unexpected() {
        let exp = Expectations {
            required: Need::ALL.into_iter().collect(),
        };
        let phases = [Phase {
            name: "format".into(),
            ok: true,
            counts: Counts::default(),
            skips: vec![],
        }];
        let (text, unexpected) = table(&phases, &exp);
        assert_eq!(unexpected, 0);
        assert!(text.lines().nth(1).unwrap().starts_with("format"), "{text}");
    }

    #[test]
    fn the_log_keeps_only_skip_lines() {
        let log = "SCHEDTAPE-SKIP a::b kvm no kvm\nnoise\nSCHEDTAPE-SKIP c::d kernel none\n";
        let skips = parse_log(log);
        assert_eq!(skips.len(), 2);
        assert_eq!(skips[1].need, Need::Kernel);
    }
}
