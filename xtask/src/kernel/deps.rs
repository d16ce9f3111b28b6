//! Host packages a command needs (the kernel build's, QEMU, payload programs):
//! found with `dpkg-query`, installed with `apt-get` when we are root, else
//! named in the exact command to run.
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Debian packages for building the kernel (`dwarves` is pahole, for BTF;
/// `lz4` compresses the bzImage).
pub const BUILD_PACKAGES: &[&str] = &[
    "make",
    "gcc",
    "libc6-dev",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "libssl-dev",
    "dwarves",
    "cpio",
    "xz-utils",
    "patch",
    "lz4",
];

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The packages of `wanted` that dpkg does not list as installed; `None` without dpkg.
pub fn missing(wanted: &[&str]) -> Option<Vec<String>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Abbrev}\\n"])
        .args(wanted)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    // dpkg-query exits 1 when some package is unknown; its stdout still lists the rest.
    let text = String::from_utf8_lossy(&out.stdout);
    let installed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, status)| status.starts_with("ii"))
        .map(|(name, _)| name.split(':').next().unwrap_or(name))
        .collect();
    Some(
        wanted
            .iter()
            .filter(|p| !installed.contains(p))
            .map(|p| (*p).to_string())
            .collect(),
    )
}

/// Makes sure `wanted` are installed, installing them as root; `purpose` goes in messages.
pub fn ensure(wanted: &[&str], purpose: &str) -> Result<()> {
    let mut needs = Prerequisites::default();
    needs.need(wanted, purpose);
    needs.ensure()
}

/// Host packages a command will need, gathered before anything is built so that
/// one `dpkg-query` checks them and one `apt-get install` fetches what is missing.
#[derive(Debug, Default)]
pub struct Prerequisites {
    /// Package and what it is for, in the order asked.
    wanted: Vec<(String, String)>,
}

/// Missing packages as another user than root: the one line to run.
#[derive(Debug, thiserror::Error)]
#[error("missing packages: {listed}\ninstall them with:\n  sudo {line}")]
pub struct NotInstalled {
    /// `pkg (purpose), …`.
    pub listed: String,
    /// `apt-get install -y pkg …`.
    pub line: String,
    /// The purposes of the missing packages.
    pub purposes: Vec<String>,
}

impl Prerequisites {
    /// Adds `packages`, needed for `purpose` (a package asked twice keeps its first purpose).
    pub fn need(&mut self, packages: &[&str], purpose: &str) {
        for p in packages {
            if !self.wanted.iter().any(|(have, _)| have == p) {
                self.wanted.push(((*p).to_string(), purpose.to_string()));
            }
        }
    }

    /// The packages asked for, in order.
    pub fn packages(&self) -> impl Iterator<Item = &str> {
        self.wanted.iter().map(|(p, _)| p.as_str())
    }

    /// The asked packages dpkg does not list, with their purposes; `None` without dpkg.
    pub fn missing(&self) -> Option<Vec<(String, String)>> {
        let names: Vec<&str> = self.packages().collect();
        let missing = missing(&names)?;
        Some(
            self.wanted
                .iter()
                .filter(|(p, _)| missing.contains(p))
                .cloned()
                .collect(),
        )
    }

    /// Installs what is missing in one `apt-get install` as root; as another
    /// user fails with [`NotInstalled`], which names the one command to run.
    pub fn ensure(&self) -> Result<()> {
        self.ensure_as(is_root())
    }

    fn ensure_as(&self, root: bool) -> Result<()> {
        if self.wanted.is_empty() {
            return Ok(());
        }
        let Some(missing) = self.missing() else {
            eprintln!(
                "prerequisites: no dpkg here; assuming these are installed: {}",
                self.packages().collect::<Vec<_>>().join(" ")
            );
            return Ok(());
        };
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = missing.iter().map(|(p, _)| p.clone()).collect();
        let line = format!("apt-get install -y {}", names.join(" "));
        let listed = describe(&missing);
        if !root {
            return Err(NotInstalled {
                listed,
                line,
                purposes: missing.into_iter().map(|(_, why)| why).collect(),
            }
            .into());
        }
        eprintln!("prerequisites: installing {listed}");
        let t0 = std::time::Instant::now();
        if apt(&["install", "-y", "--no-install-recommends"], &names).is_err() {
            eprintln!("prerequisites: install failed; running apt-get update and retrying");
            apt(&["update"], &[])?;
            apt(&["install", "-y", "--no-install-recommends"], &names)?;
        }
        eprintln!(
            "prerequisites: installed {} package(s) in {:.1}s",
            names.len(),
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// `a, b (for x); c (for y)`: packages grouped by purpose, in order.
fn describe(missing: &[(String, String)]) -> String {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (pkg, why) in missing {
        match groups.iter_mut().find(|(w, _)| w == why) {
            Some((_, pkgs)) => pkgs.push(pkg),
            None => groups.push((why, vec![pkg])),
        }
    }
    groups
        .iter()
        .map(|(why, pkgs)| format!("{} (for {why})", pkgs.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs `apt-get ARGS PKGS` non-interactively, its output shown.
pub fn apt(args: &[&str], pkgs: &[String]) -> Result<()> {
    let status = Command::new("apt-get")
        .arg("-q")
        .args(args)
        .args(pkgs)
        .env("DEBIAN_FRONTEND", "noninteractive")
        // apt's chatter is progress: stdout is kept for the command's results.
        .stdout(std::io::stderr())
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!(
            "apt-get {} {} failed ({status})",
            args.join(" "),
            pkgs.join(" ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_user_gets_one_install_line_for_everything_missing() {
        let mut needs = Prerequisites::default();
        needs.need(
            &["schedtape-absent-a", "schedtape-absent-b"],
            "the QEMU backend",
        );
        needs.need(
            &["schedtape-absent-a", "schedtape-absent-c"],
            "payload \"p\" (x)",
        );
        let missing = needs.missing().expect("dpkg-query runs on Debian hosts");
        assert_eq!(missing.len(), 3);
        let err = needs.ensure_as(false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing packages: schedtape-absent-a, schedtape-absent-b (for the QEMU backend); \
             schedtape-absent-c (for payload \"p\" (x))\ninstall them with:\n  \
             sudo apt-get install -y schedtape-absent-a schedtape-absent-b schedtape-absent-c"
        );
        let not = err.downcast_ref::<NotInstalled>().unwrap();
        assert_eq!(not.purposes.len(), 3);
    }
}
