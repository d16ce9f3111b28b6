//! `replay bisect`: given traces ordered by commit, the first bad commit and
//! the evidence against it. Every candidate is checked against the baseline
//! with the same predicate as `replay check`, using every trace of both; the
//! first bad one is named only when the evidence survives [`confirm`].
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::check::{self, EXIT_BAD, EXIT_GOOD, EXIT_SKIP, is_trace};
use crate::input::read_optional_side_file;
use crate::load::LoadedTrace;
use crate::thresholds::Thresholds;

/// One commit and its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub commit: String,
    pub traces: Vec<PathBuf>,
}

/// The check of one candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub commit: String,
    pub code: u8,
    pub summary: String,
    pub evidence: Vec<String>,
}

/// The whole bisection.
#[derive(Debug, Clone, Serialize)]
pub struct Bisection {
    pub baseline: Vec<PathBuf>,
    pub steps: Vec<Step>,
    /// Index into `steps` of the first bad commit.
    pub first_bad: Option<usize>,
    /// Index into `steps` of the first commit that looked bad when the
    /// evidence was too thin to name it (`cannot_judge` says why).
    pub suspect: Option<usize>,
    /// Why nothing could be judged: no bad commit and no good one either
    /// (an unreadable or empty baseline, every candidate unreadable), or the
    /// first bad-looking commit rests on one outlier run or too few runs.
    pub cannot_judge: Option<String>,
    pub notes: Vec<String>,
}

impl Bisection {
    /// Exit status: 125 when it could not judge, else 0 (bad commit or not).
    pub fn code(&self) -> u8 {
        if self.cannot_judge.is_some() {
            EXIT_SKIP
        } else {
            EXIT_GOOD
        }
    }
}

/// Turns the command-line inputs into candidates, oldest first.
pub fn candidates(inputs: &[PathBuf]) -> Result<Vec<Candidate>> {
    if let [dir] = inputs
        && dir.is_dir()
    {
        return from_dir(dir);
    }
    inputs
        .iter()
        .map(|p| {
            Ok(Candidate {
                commit: commit_of(p)?,
                traces: vec![p.clone()],
            })
        })
        .collect()
}

/// The commit a trace belongs to: the first word of its `.commit` sidecar,
/// else (no sidecar) its file stem. A sidecar that cannot be read or names
/// no commit is an error, not a silent fallback.
pub fn commit_of(path: &Path) -> Result<String> {
    let mut sidecar = path.as_os_str().to_owned();
    sidecar.push(".commit");
    let sidecar = PathBuf::from(sidecar);
    if let Some(text) = read_optional_side_file(&sidecar)? {
        let Some(word) = text.split_whitespace().next() else {
            bail!("{} names no commit (it is empty)", sidecar.display());
        };
        return Ok(word.to_string());
    }
    Ok(path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    ))
}

fn from_dir(dir: &Path) -> Result<Vec<Candidate>> {
    let mut traces: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_trace(p))
        .collect();
    traces.sort();
    if traces.is_empty() {
        bail!("no .trace files in {}", dir.display());
    }
    let mut groups: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for t in traces {
        groups.entry(commit_of(&t)?).or_default().push(t);
    }
    let order_file = dir.join("commits.txt");
    let order: Vec<String> = match read_optional_side_file(&order_file)? {
        Some(text) => text
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect(),
        None => {
            // Recording time of each commit's first trace.
            let mut by_time: Vec<(u64, String)> = groups
                .iter()
                .map(|(c, ts)| {
                    (
                        ts.iter().map(|t| started(t)).min().unwrap_or(u64::MAX),
                        c.clone(),
                    )
                })
                .collect();
            by_time.sort();
            by_time.into_iter().map(|(_, c)| c).collect()
        }
    };
    let mut out = Vec::new();
    for commit in order {
        // A listed commit may be abbreviated in the sidecars, or the other way
        // round: an exact name first, else the one prefix match (several are
        // ambiguous, as `c1` against `c10` and `c1`).
        let key = if groups.contains_key(&commit) {
            Some(commit.clone())
        } else {
            let matches: Vec<&String> = groups
                .keys()
                .filter(|k| k.starts_with(&commit) || commit.starts_with(k.as_str()))
                .collect();
            if matches.len() > 1 {
                bail!(
                    "commit {commit:?} in {} matches the traces of several commits: {matches:?}",
                    order_file.display()
                );
            }
            matches.first().map(|k| (*k).clone())
        };
        if let Some(key) = key
            && let Some(traces) = groups.remove(&key)
        {
            out.push(Candidate {
                commit: key,
                traces,
            });
        }
    }
    if !groups.is_empty() {
        let left: Vec<&String> = groups.keys().collect();
        bail!(
            "traces of commits not in {}: {left:?}",
            order_file.display()
        );
    }
    Ok(out)
}

fn started(path: &Path) -> u64 {
    LoadedTrace::open(path)
        .ok()
        .and_then(|l| l.trace().ok().map(|t| t.meta().started_unix_ns))
        .unwrap_or(u64::MAX)
}

/// Checks every candidate against the baseline (default: the oldest candidate).
pub fn bisect(
    mut cands: Vec<Candidate>,
    baseline: &[PathBuf],
    t: &Thresholds,
) -> Result<Bisection> {
    let baseline = if baseline.is_empty() {
        if cands.len() < 2 {
            bail!("need at least two commits, or --baseline and one commit");
        }
        cands.remove(0).traces
    } else {
        baseline.to_vec()
    };
    let mut steps = Vec::new();
    for c in &cands {
        let r = check::check(&baseline, &c.traces, t);
        steps.push(Step {
            commit: c.commit.clone(),
            code: r.code,
            summary: r.summary,
            evidence: r.evidence,
        });
    }
    let first_bad = steps.iter().position(|s| s.code == EXIT_BAD);
    let judged_good = steps.iter().any(|s| s.code == EXIT_GOOD);
    if let Some(i) = first_bad
        && let Err(why) = confirm(&cands, &steps, i, &baseline, t)
    {
        return Ok(Bisection {
            baseline,
            steps,
            first_bad: None,
            suspect: Some(i),
            cannot_judge: Some(why),
            notes: Vec::new(),
        });
    }
    let cannot_judge = match steps.first() {
        _ if first_bad.is_some() || judged_good => None,
        None => Some("no commit to judge".to_string()),
        Some(s) => Some(format!(
            "no commit could be judged against the baseline (first, {}: {})",
            s.commit, s.summary
        )),
    };
    let mut notes = Vec::new();
    if first_bad.is_none() && judged_good {
        let skipped: Vec<&str> = steps
            .iter()
            .filter(|s| s.code == EXIT_SKIP)
            .map(|s| s.commit.as_str())
            .collect();
        if !skipped.is_empty() {
            notes.push(format!("could not judge {}", skipped.join(", ")));
        }
    }
    if let Some(i) = first_bad {
        let skipped: Vec<&str> = steps[..i]
            .iter()
            .rev()
            .take_while(|s| s.code == EXIT_SKIP)
            .map(|s| s.commit.as_str())
            .collect();
        if !skipped.is_empty() {
            notes.push(format!(
                "could not judge {} just before it: the first bad commit may be any of them",
                skipped.join(", ")
            ));
        }
        let good_after: Vec<&str> = steps[i + 1..]
            .iter()
            .filter(|s| s.code == EXIT_GOOD)
            .map(|s| s.commit.as_str())
            .collect();
        if !good_after.is_empty() {
            notes.push(format!(
                "not monotone: later commit(s) {} look good again (flaky, or fixed later)",
                good_after.join(", ")
            ));
        }
    }
    Ok(Bisection {
        baseline,
        steps,
        first_bad,
        suspect: None,
        cannot_judge,
        notes,
    })
}

/// Whether the commit at `i`, the first that looked bad, may be named.
///
/// The commits judged good before it are, by bisection's own assumption,
/// like the baseline: their traces join it, and the call must hold against
/// that pooled baseline (a lone outlier baseline run then no longer decides).
/// A baseline of one run with no good commit to pool cannot tell an outlier
/// from a regression, and a commit of a single run must be repeated by the
/// next commit that could be judged. `Err` says why the commit cannot be named.
fn confirm(
    cands: &[Candidate],
    steps: &[Step],
    i: usize,
    baseline: &[PathBuf],
    t: &Thresholds,
) -> std::result::Result<(), String> {
    let commit = &steps[i].commit;
    let mut pooled = baseline.to_vec();
    for (c, s) in cands.iter().zip(steps).take(i) {
        if s.code == EXIT_GOOD {
            pooled.extend(c.traces.iter().cloned());
        }
    }
    if let [only] = pooled.as_slice() {
        return Err(format!(
            "{commit} looks worse than the baseline, but the baseline is one run ({}) and no commit before it was judged good: an outlier baseline makes every commit look worse; record more baseline runs",
            only.display()
        ));
    }
    let new = &cands[i].traces;
    let pooled_check = check::check(&pooled, new, t);
    if pooled_check.code != EXIT_BAD {
        return Err(format!(
            "{commit} looks worse than the baseline, but not against the baseline and the {} good commit trace(s) before it ({})",
            pooled.len() - baseline.len(),
            pooled_check.summary
        ));
    }
    if new.len() == 1 {
        let next = steps[i + 1..].iter().find(|s| s.code != EXIT_SKIP);
        match next {
            Some(s) if s.code == EXIT_BAD => {}
            Some(s) => {
                return Err(format!(
                    "{commit} looks worse in its one run, but the next commit, {}, does not: one outlier run cannot name a commit; record more runs of {commit}",
                    s.commit
                ));
            }
            None => {
                return Err(format!(
                    "{commit} looks worse in its one run and no later commit repeats it: record more runs of {commit}"
                ));
            }
        }
    }
    Ok(())
}

/// Prints the bisection.
pub fn render(out: &mut impl Write, b: &Bisection, json: bool) -> Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, b)?;
        writeln!(out)?;
        return Ok(());
    }
    let base: Vec<String> = b.baseline.iter().map(|p| p.display().to_string()).collect();
    writeln!(out, "baseline: {}", base.join(", "))?;
    for s in &b.steps {
        let word = match s.code {
            EXIT_GOOD => "good",
            EXIT_BAD => "BAD",
            _ => "skip",
        };
        writeln!(out, "  {word:4}  {}  {}", s.commit, s.summary)?;
    }
    match b.first_bad {
        Some(i) => {
            let s = &b.steps[i];
            writeln!(out, "\nfirst bad commit: {}", s.commit)?;
            for e in &s.evidence {
                writeln!(out, "  {e}")?;
            }
        }
        None => match &b.cannot_judge {
            Some(why) => {
                if let Some(i) = b.suspect {
                    let s = &b.steps[i];
                    writeln!(out, "\nsuspect (not named): {}", s.commit)?;
                    for e in &s.evidence {
                        writeln!(out, "  {e}")?;
                    }
                }
                writeln!(out, "\ncannot judge: {why}")?;
            }
            None => writeln!(out, "\nno commit regressed against the baseline")?,
        },
    }
    for n in &b.notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_commits_match_exactly_before_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        for c in ["c1", "c10", "c2"] {
            std::fs::write(dir.path().join(format!("{c}.trace")), b"").unwrap();
        }
        std::fs::write(dir.path().join("commits.txt"), "c2\nc10\nc1\n").unwrap();
        let order: Vec<String> = candidates(&[dir.path().to_path_buf()])
            .unwrap()
            .into_iter()
            .map(|c| c.commit)
            .collect();
        assert_eq!(order, ["c2", "c10", "c1"]);
        // An abbreviation that fits two commits is an error, not a guess.
        std::fs::write(dir.path().join("commits.txt"), "c\n").unwrap();
        let err = candidates(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(
            err.to_string().contains("matches the traces of several"),
            "{err}"
        );
    }
}
