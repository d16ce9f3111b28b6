//! Output paths checked before a run starts: the directory exists, the path
//! is a file we may replace, and it is none of the run's inputs.
use std::path::Path;

use anyhow::{Result, bail};

/// Fails unless `out` can hold a new file that overwrites none of `inputs`
/// (each named for the message), however either is spelt (links, `..`).
pub fn check_writable(out: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    let shown = out.display();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("{shown}: {} is not a directory", parent.display()),
        Err(_) => bail!("{shown}: directory {} does not exist", parent.display()),
    }
    if std::fs::metadata(out).is_ok_and(|m| !m.is_file()) {
        bail!("{shown} exists and is not a regular file");
    }
    let paths: Vec<&Path> = inputs.iter().map(|(_, p)| *p).collect();
    if let Err(replay::output::OutputError::IsAnInput { input, .. }) =
        replay::output::check_not_an_input(out, &paths)
    {
        let what = inputs
            .iter()
            .find(|(_, p)| *p == input)
            .map_or("an input", |(w, _)| w);
        bail!(
            "{shown} is {what} ({}): refusing to overwrite an input",
            input.display()
        );
    }
    Ok(())
}

/// Where a run records `out` until it is closed: `out.<pid>.partial` beside
/// it (a run killed outright leaves its trace there, readable by `replay`).
pub fn partial_path(out: &Path) -> std::path::PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.partial", std::process::id()));
    out.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_traces_sit_beside_their_output() {
        let p = partial_path(Path::new("runs/a.trace"));
        assert_eq!(p.parent(), Some(Path::new("runs")));
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(name, format!("a.trace.{}.partial", std::process::id()));
    }

    #[test]
    fn refuses_inputs_however_spelt_and_missing_directories() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("s.toml");
        std::fs::write(&input, "name = 'x'").unwrap();
        let link = dir.path().join("link.trace");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        let hard = dir.path().join("hard.trace");
        std::fs::hard_link(&input, &hard).unwrap();
        let dotted = dir.path().join("sub/../s.toml");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let inputs = [("the scenario file", input.as_path())];
        for out in [&input, &link, &hard, &dotted] {
            let err = check_writable(out, &inputs).unwrap_err().to_string();
            assert!(err.contains("is the scenario file"), "{err}");
        }
        let fresh = dir.path().join("new.trace");
        check_writable(&fresh, &inputs).unwrap();
        let err = check_writable(&dir.path().join("nodir/x.trace"), &inputs)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("nodir does not exist"), "{err}");
        let err = check_writable(dir.path(), &inputs).unwrap_err().to_string();
        assert!(err.ends_with("is not a regular file"), "{err}");
    }
}
