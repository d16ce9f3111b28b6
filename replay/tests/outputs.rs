//! Commands that write a file (`plot -o`, `export -o`) never overwrite an
//! input, under any spelling, and leave nothing behind when they fail.
mod support;

use std::path::{Path, PathBuf};

use support::{Synth, replay, s, stderr, trace};

/// Runs `args`, expects the exit-2 refusal, and checks every input kept its bytes.
fn refused(args: &[&str], inputs: &[(&Path, &[u8])]) {
    let o = replay(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains("refusing to overwrite it"), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for (path, bytes) in inputs {
        assert!(
            std::fs::read(path).unwrap() == *bytes,
            "{args:?} changed {}",
            path.display()
        );
    }
}

/// Two traces and their bytes, plus the spellings of `a` as an output.
struct Fixture {
    _dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    a_bytes: Vec<u8>,
    b_bytes: Vec<u8>,
    /// `a` as a symlink, a hard link and `sub/../a.trace`.
    spellings: Vec<PathBuf>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let a = trace(dir.path(), "a.trace", Synth::default());
    let b = trace(
        dir.path(),
        "b.trace",
        Synth {
            speed: 0.5,
            ..Synth::default()
        },
    );
    let symlink = dir.path().join("link.svg");
    std::os::unix::fs::symlink(&a, &symlink).unwrap();
    let hard = dir.path().join("hard.svg");
    std::fs::hard_link(&a, &hard).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let dotted = dir.path().join("sub/../a.trace");
    Fixture {
        a_bytes: std::fs::read(&a).unwrap(),
        b_bytes: std::fs::read(&b).unwrap(),
        _dir: dir,
        a,
        b,
        spellings: vec![symlink, hard, dotted],
    }
}

#[test]
fn plot_refuses_to_write_onto_an_input() {
    let f = fixture();
    let inputs: [(&Path, &[u8]); 2] = [(&f.a, &f.a_bytes), (&f.b, &f.b_bytes)];
    refused(&["plot", s(&f.a), "-o", s(&f.a)], &inputs);
    refused(&["plot", s(&f.a), s(&f.b), "-o", s(&f.b)], &inputs);
    for out in &f.spellings {
        refused(&["plot", s(&f.a), "-o", s(out)], &inputs);
        refused(&["plot", s(&f.b), s(&f.a), "-o", s(out)], &inputs);
    }
}

#[test]
fn export_refuses_to_write_onto_its_input() {
    let f = fixture();
    let inputs: [(&Path, &[u8]); 1] = [(&f.a, &f.a_bytes)];
    refused(&["export", "--perfetto", s(&f.a), "-o", s(&f.a)], &inputs);
    for out in &f.spellings {
        refused(&["export", "--perfetto", s(&f.a), "-o", s(out)], &inputs);
    }
}

#[test]
fn outputs_replace_whole_files_and_leave_no_temporary_behind() {
    let f = fixture();
    let dir = f.a.parent().unwrap();
    let svg = dir.join("out.svg");
    std::fs::write(&svg, b"old picture").unwrap();
    let o = replay(&["plot", s(&f.a), s(&f.b), "-o", s(&svg)]);
    assert!(o.status.success(), "{o:?}");
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    // A failing command keeps the old output whole.
    let garbage = dir.join("garbage.trace");
    std::fs::write(&garbage, b"not a trace").unwrap();
    let before = std::fs::read(&svg).unwrap();
    let o = replay(&["plot", s(&garbage), "-o", s(&svg)]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(std::fs::read(&svg).unwrap(), before);
    let json = dir.join("out.json");
    let o = replay(&["export", "--perfetto", s(&f.a), "-o", s(&json)]);
    assert!(o.status.success(), "{o:?}");
    let stray: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    // An output whose directory does not exist is a one-line error.
    let o = replay(&["plot", s(&f.a), "-o", s(&dir.join("nodir/x.svg"))]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
}

#[test]
fn an_output_in_a_missing_directory_is_one_clear_line() {
    let f = fixture();
    let out = f.a.with_file_name("nodir").join("x.svg");
    let o = replay(&["plot", s(&f.a), "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.ends_with("nodir does not exist\n"), "{err}");
}
