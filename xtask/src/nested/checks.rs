//! The lane's checks: each is one `xtask run scenario … --backend kvm` inside
//! L1, writing `<name>.trace`, `.stdout`, `.stderr` and `.code` to the results disk.

/// Where L1 mounts the lane's inputs and results.
pub const INPUTS: &str = "/inputs";
pub const RESULTS: &str = "/results";

/// One run of our VMM inside L1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// File stem of its outputs, and what `--check` selects.
    pub name: &'static str,
    pub scenario: &'static str,
    /// Options after the common ones.
    pub extra: &'static [&'static str],
    /// `/init` for L2 (under the inputs), instead of the guest executor.
    pub init: Option<&'static str>,
}

const fn check(
    name: &'static str,
    scenario: &'static str,
    extra: &'static [&'static str],
) -> Check {
    Check {
        name,
        scenario,
        extra,
        init: None,
    }
}

/// Every check, in the order L1 runs them.
pub const ALL: &[Check] = &[
    check("smoke", "smoke", &[]),
    check(
        "topology-1n2l2c2t",
        "smoke",
        &["--topology", "1n2l2c2t", "--no-kaslr"],
    ),
    check(
        "topology-2n1l2c1t",
        "smoke",
        &["--topology", "2n1l2c1t", "--no-kaslr"],
    ),
    check(
        "topology-2n2l1c2t",
        "smoke",
        &["--topology", "2n2l1c2t", "--no-kaslr"],
    ),
    check(
        "topology-1n1l4c1t",
        "smoke",
        &["--topology", "1n1l4c1t", "--no-kaslr"],
    ),
    check("introspect-kaslr", "introspect", &[]),
    check("introspect-no-kaslr", "introspect", &["--no-kaslr"]),
    check("sched-lifecycle", "sched-lifecycle", &[]),
    // Cgroup freeze and thaw (and the other cgroup ops) as tests/ops.rs runs them.
    check(
        "ops-cgroups",
        "ops-cgroups",
        &[
            "--thresholds",
            "/inputs/tree/fixtures/thresholds/mixed-lifetimes.toml",
        ],
    ),
    Check {
        name: "panic",
        scenario: "smoke",
        extra: &["--margin", "30"],
        init: Some("inits/not-an-elf"),
    },
    Check {
        name: "hang",
        scenario: "smoke",
        extra: &["--margin", "4"],
        init: Some("inits/hang"),
    },
];

/// The checks `names` selects (all when empty); an unknown name is an error.
pub fn select(names: &[String]) -> Result<Vec<Check>, String> {
    if names.is_empty() {
        return Ok(ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            ALL.iter().find(|c| c.name == n).copied().ok_or_else(|| {
                let known: Vec<&str> = ALL.iter().map(|c| c.name).collect();
                format!("--check {n:?}: no such check (known: {})", known.join(", "))
            })
        })
        .collect()
}

impl Check {
    /// The arguments of `xtask` for this check inside L1.
    pub fn argv(&self) -> Vec<String> {
        let init = self.init.unwrap_or("schedtape-init");
        let mut argv: Vec<String> = ["run", "scenario", self.scenario, "--backend", "kvm"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.extend([
            "--kernel".into(),
            format!("{INPUTS}/kernel"),
            "--vmlinux".into(),
            format!("{INPUTS}/vmlinux"),
            "--init".into(),
            format!("{INPUTS}/{init}"),
            "-o".into(),
            format!("{RESULTS}/{}.trace", self.name),
        ]);
        argv.extend(self.extra.iter().map(|s| s.to_string()));
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_selectable() {
        let mut names: Vec<&str> = ALL.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(select(&[]).unwrap(), ALL);
        let picked = select(&["hang".into(), "smoke".into()]).unwrap();
        assert_eq!(
            picked.iter().map(|c| c.name).collect::<Vec<_>>(),
            ["hang", "smoke"]
        );
        let err = select(&["nope".into()]).unwrap_err();
        assert!(
            err.starts_with("--check \"nope\": no such check (known: smoke,"),
            "{err}"
        );
    }

    #[test]
    fn every_check_runs_our_vmm_into_the_results() {
        for c in ALL {
            let argv = c.argv();
            let at = |flag: &str| {
                argv.iter()
                    .position(|a| a == flag)
                    .map(|i| argv[i + 1].clone())
            };
            assert_eq!(at("--backend").as_deref(), Some("kvm"), "{argv:?}");
            assert_eq!(at("-o"), Some(format!("/results/{}.trace", c.name)));
            assert!(at("--init").unwrap().starts_with("/inputs/"), "{argv:?}");
            for arg in &argv {
                if arg.starts_with('/') && !arg.starts_with(RESULTS) {
                    assert!(arg.starts_with(INPUTS), "{arg} is not on the inputs disk");
                }
            }
        }
    }
}
