//! Judging real runs under QEMU: the A/A false-alarm rate of `replay check`,
//! injected regressions caught with few runs, and `git bisect run` over a
//! scripted sequence of commits. Slow (dozens of VM boots): run with
//! `cargo test -p e2e --test judging -- --ignored --nocapture --test-threads 1`.
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{root, run_scenario};
use replay::check::{EXIT_BAD, EXIT_GOOD, check};
use replay::compare::Call;
use replay::thresholds::Thresholds;

const BASE: &str = "judge-base";

/// Where traces are kept for offline re-analysis.
fn keep_dir() -> PathBuf {
    let d = root().join("target/judging");
    std::fs::create_dir_all(&d).expect("create target/judging");
    d
}

/// Runs `scenario` (a name or a path) and keeps its trace as `dest`.
fn record(scenario: &str, dest: &Path) {
    let run = run_scenario(scenario, &[]);
    assert_eq!(run.code(), Some(0), "{scenario}: {}", run.log());
    std::fs::copy(&run.trace, dest).expect("keep trace");
}

/// The base scenario with `from` replaced by `to`, saved as `name.toml`.
fn variant(dir: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join(format!("fixtures/scenarios/{BASE}.toml")))
        .expect("base scenario");
    assert!(text.contains(from), "{from:?} not in the base scenario");
    let text = text
        .replace(from, to)
        .replace(&format!("name = \"{BASE}\""), &format!("name = \"{name}\""));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write variant");
    path
}

/// The smallest `k` with P(X > k) < `tail` for X ~ Binomial(`n`, `p`).
fn binomial_quantile(n: usize, p: f64, tail: f64) -> usize {
    let mut cdf = 0.0;
    let mut pmf = (1.0 - p).powf(n as f64);
    for k in 0..=n {
        cdf += pmf;
        if 1.0 - cdf < tail {
            return k;
        }
        pmf *= (n - k) as f64 / (k + 1) as f64 * p / (1.0 - p);
    }
    n
}

#[test]
fn binomial_quantile_matches_tables() {
    // Binomial(20, 0.05): P(X > 4) = 0.0026, P(X > 5) = 0.0003.
    assert_eq!(binomial_quantile(20, 0.05, 1e-3), 5);
    assert_eq!(binomial_quantile(20, 0.05, 1e-2), 4);
    // Binomial(10, 0.5): P(X > 8) = 0.0107, P(X > 9) = 0.00098.
    assert_eq!(binomial_quantile(10, 0.5, 1e-2), 9);
    assert_eq!(binomial_quantile(10, 0.5, 0.02), 8);
}

#[test]
#[ignore = "boots ~50 VMs: run through `cargo test -p e2e --test judging -- --ignored`"]
fn aa_false_alarms_and_injected_regressions() {
    let keep = keep_dir();
    let t = Thresholds::default();
    let pairs = 20;
    let aa: Vec<PathBuf> = (0..2 * pairs)
        .map(|i| keep.join(format!("aa-{i:02}.trace")))
        .collect();
    for p in &aa {
        record(BASE, p);
    }
    let (mut checks, mut alarms, mut flagged_pairs, mut inconclusive) = (0, 0, 0, 0);
    for pair in aa.chunks(2) {
        let r = check(&pair[..1], &pair[1..], &t);
        let rep = r.report.as_ref().expect("report");
        // A pair with nothing compared would count as "no false alarm".
        assert!(
            rep.judged() > 0,
            "A/A pair {}: no metric was compared: {}",
            pair[0].display(),
            r.summary
        );
        checks += rep.judged();
        alarms += rep.count(Call::Worse);
        inconclusive += rep.count(Call::Inconclusive);
        if r.code != EXIT_GOOD {
            flagged_pairs += 1;
            eprintln!(
                "A/A pair {}: {} {:?}",
                pair[0].display(),
                r.summary,
                r.evidence
            );
        }
    }
    let rate = alarms as f64 / checks as f64;
    eprintln!(
        "A/A: {pairs} pairs, {checks} metric checks, {alarms} false alarms ({:.1}%), \
         {inconclusive} inconclusive, {flagged_pairs} pair(s) not exit 0",
        100.0 * rate
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let injected = [
        (
            "judge-cap-halved",
            variant(
                dir.path(),
                "judge-cap-halved",
                "quota_us = 50000",
                "quota_us = 25000",
            ),
        ),
        (
            "judge-extra-sleep",
            variant(
                dir.path(),
                "judge-extra-sleep",
                "sleep_us = 200",
                "sleep_us = 4200",
            ),
        ),
    ];
    let base5 = &aa[..5];
    let mut caught = Vec::new();
    for (name, file) in &injected {
        let runs: Vec<PathBuf> = (0..5)
            .map(|i| keep.join(format!("{name}-{i}.trace")))
            .collect();
        for p in &runs {
            record(file.to_str().expect("utf-8 path"), p);
        }
        let r = check(base5, &runs, &t);
        eprintln!("{name}, 5 vs 5 runs: exit {} — {}", r.code, r.summary);
        for e in &r.evidence {
            eprintln!("    {e}");
        }
        let singles = runs
            .iter()
            .zip(base5)
            .filter(|(b, a)| check(&[(*a).clone()], &[(*b).clone()], &t).code == EXIT_BAD)
            .count();
        eprintln!("{name}, 1 vs 1 runs: {singles} of 5 pairs flagged");
        caught.push((name, r.code));
    }
    // The margin comes from the check's own error model, not from a rate
    // picked by hand: with Benjamini–Hochberg at `alpha` within each primary
    // metric's family, an A/A pair (two independent runs of one scenario) is
    // flagged with probability at most `alpha` per family, so at most
    // `alpha` × (primary metrics) in all, and the flagged pairs are at most
    // Binomial(pairs, that). Fail only on a count that model gives less than
    // 1 time in 1000.
    let families = t.diff.primary_metrics().len() as f64;
    let per_pair = (t.diff.alpha * families).min(1.0);
    let limit = binomial_quantile(pairs, per_pair, 1e-3);
    assert!(
        flagged_pairs <= limit,
        "{flagged_pairs} of {pairs} A/A pairs flagged; at {per_pair} a pair more than {limit} \
         happens less than once in 1000 runs (metric-level rate {:.1}%)",
        100.0 * rate
    );
    for (name, code) in caught {
        assert_eq!(code, EXIT_BAD, "{name} not caught with 5 runs per side");
    }
}

#[test]
#[ignore = "boots VMs: run through `cargo test -p e2e --test judging -- --ignored`"]
fn git_bisect_run_finds_the_commit_that_halves_cpu_max() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path();
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args(args)
            .current_dir(repo)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .expect("git runs");
        assert!(o.status.success(), "git {args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    let base_text = std::fs::read_to_string(root().join(format!("fixtures/scenarios/{BASE}.toml")))
        .expect("base scenario");
    // Six commits; the scenario's cpu.max quota halves at commit 3 and stays.
    let mut shas = Vec::new();
    for i in 0..6 {
        let quota = if i >= 3 { 25000 } else { 50000 };
        let text = base_text.replace("quota_us = 50000", &format!("quota_us = {quota}"));
        std::fs::write(repo.join(format!("{BASE}.toml")), text).expect("write scenario");
        std::fs::write(repo.join("notes.txt"), format!("commit {i}\n")).expect("write notes");
        git(&["add", "."]);
        git(&["commit", "-q", "-m", &format!("commit {i}")]);
        shas.push(git(&["rev-parse", "HEAD"]));
        if i == 0 {
            // The known-good baseline: a run of the first commit.
            let scenario = repo.join(format!("{BASE}.toml"));
            record(scenario.to_str().expect("utf-8"), &repo.join("base.trace"));
        }
    }
    let built = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["build", "--quiet", "-p", "replay"])
        .status()
        .expect("cargo build");
    assert!(built.success());
    let replay_bin = root().join("target/debug/replay");
    // One run per commit: under TCG a cgroup's iter/s swings by up to ~35 %
    // between identical runs, past the default ±20 % band for single runs, so
    // the band is widened to 35 %; halving cpu.max moves iter/s and wait by ~50 %.
    let script = format!(
        "cd {ws} && cargo run --quiet -p xtask -- run scenario {repo}/{BASE}.toml -o {repo}/new.trace \
         && {bin} check --interval-noise 35 --baseline {repo}/base.trace {repo}/new.trace",
        ws = root().display(),
        repo = repo.display(),
        bin = replay_bin.display(),
    );
    git(&["bisect", "start", &shas[5], &shas[0]]);
    let out = git(&["bisect", "run", "sh", "-c", &script]);
    eprintln!("{out}");
    assert!(
        out.contains(&format!("{} is the first bad commit", shas[3])),
        "{out}"
    );
}
