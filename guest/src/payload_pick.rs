//! Which started payload an op means: by name, and by cgroup when several
//! copies run. `Some("")` names the runner's cgroup, `None` any cgroup.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// One started payload, as the lookup sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copy<'a> {
    pub name: &'a str,
    /// `None`: the runner's cgroup.
    pub cgroup: Option<&'a str>,
    /// Already waited for or killed by an op.
    pub claimed: bool,
    /// Not yet exited.
    pub running: bool,
}

/// `cgroup "a"` or `the runner's cgroup`.
pub fn place(cgroup: Option<&str>) -> String {
    match cgroup {
        Some(c) => format!("cgroup {c:?}"),
        None => "the runner's cgroup".to_string(),
    }
}

/// The one unclaimed copy of `name` (in `cgroup`, when given) for wait/kill.
pub fn find(copies: &[Copy<'_>], name: &str, cgroup: Option<&str>) -> Result<usize, String> {
    let want = cgroup.map(|c| (!c.is_empty()).then_some(c));
    let hits: Vec<usize> = (0..copies.len())
        .filter(|&i| {
            let c = &copies[i];
            !c.claimed && c.name == name && want.is_none_or(|w| c.cgroup == w)
        })
        .collect();
    match (hits.as_slice(), want) {
        ([i], _) => Ok(*i),
        ([], Some(w)) => Err(format!("payload {name:?} is not running in {}", place(w))),
        ([], None) => Err(format!(
            "payload {name:?} is not running (never started, or already waited for or killed)"
        )),
        (many, _) => {
            let places: Vec<String> = many.iter().map(|&i| place(copies[i].cgroup)).collect();
            Err(format!(
                "payload {name:?} has {} running copies (in {}); name the cgroup to pick one",
                many.len(),
                places.join(", ")
            ))
        }
    }
}

/// Index of a copy of `name` still running in `cgroup` (a second start there is refused).
pub fn running_in(copies: &[Copy<'_>], name: &str, cgroup: Option<&str>) -> Option<usize> {
    copies
        .iter()
        .position(|c| !c.claimed && c.running && c.name == name && c.cgroup == cgroup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(name: &'static str, cgroup: Option<&'static str>) -> Copy<'static> {
        Copy {
            name,
            cgroup,
            claimed: false,
            running: true,
        }
    }

    #[test]
    fn picks_by_name_then_cgroup() {
        let c = [copy("s", None), copy("s", Some("a")), copy("t", Some("a"))];
        assert_eq!(find(&c, "t", None), Ok(2));
        assert_eq!(find(&c, "s", Some("a")), Ok(1));
        assert_eq!(find(&c, "s", Some("")), Ok(0));
        assert_eq!(
            find(&c, "s", None).unwrap_err(),
            "payload \"s\" has 2 running copies (in the runner's cgroup, cgroup \"a\"); name the cgroup to pick one"
        );
        assert_eq!(
            find(&c, "t", Some("b")).unwrap_err(),
            "payload \"t\" is not running in cgroup \"b\""
        );
        assert!(
            find(&c, "u", None)
                .unwrap_err()
                .starts_with("payload \"u\" is not running (")
        );
    }

    #[test]
    fn claimed_copies_are_invisible_and_exited_ones_may_restart() {
        let mut c = [copy("s", None), copy("s", Some("a"))];
        c[1].claimed = true;
        assert_eq!(find(&c, "s", None), Ok(0));
        assert_eq!(running_in(&c, "s", None), Some(0));
        assert_eq!(running_in(&c, "s", Some("a")), None);
        c[0].running = false;
        assert_eq!(running_in(&c, "s", None), None);
        // Exited but not yet waited for: wait still finds it.
        assert_eq!(find(&c, "s", None), Ok(0));
    }
}
