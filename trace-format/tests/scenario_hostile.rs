//! The hostile scenario seeds of the fuzz corpus (`fuzz/seeds/scenario/`):
//! each is refused by validation, with an error naming the field its first
//! line (`# expect: FIELD`) gives, and none panics, as TOML or as postcard.
use std::path::Path;

use trace_format::scenario::Scenario;

fn seeds() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/scenario");
    let mut seeds: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    seeds.sort();
    seeds
}

#[test]
fn every_hostile_seed_is_refused_naming_its_field() {
    let seeds = seeds();
    assert!(seeds.len() >= 6, "seeds went missing: {seeds:?}");
    for (name, text) in seeds {
        let field = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{name}: first line must be `# expect: FIELD`"));
        let err = match Scenario::from_toml_str(&text) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(field), "{name}: {err}");
        assert!(!err.contains('\n'), "{name}: one line: {err}");
    }
}

#[test]
fn hostile_seeds_as_postcard_are_caught_by_the_guest_checks() {
    for (name, text) in seeds() {
        let Ok(scenario) = Scenario::parse_toml(&text) else {
            continue;
        };
        // What the guest decodes: the same checks refuse it without panicking.
        let bytes = postcard::to_allocvec(&scenario).unwrap();
        let back: Scenario = postcard::from_bytes(&bytes).unwrap();
        assert!(back.validate().is_err(), "{name}");
    }
}

#[test]
fn a_scenario_of_sixty_thousand_cgroups_is_refused_before_boot() {
    let mut text = String::from(
        "name = \"many\"\ntopology = \"1n1l2c1t\"\nduration = \"2s\"\n\n[[steps]]\nname = \"s\"\nhold = { frac = 1.0 }\n",
    );
    for i in 0..60_000 {
        text.push_str(&format!("\n[[steps.setup]]\nname = \"c{i}\"\n"));
    }
    let err = Scenario::from_toml_str(&text).unwrap_err().to_string();
    assert!(err.contains("cgroup"), "{err}");
}

#[test]
fn scenario_files_are_regular_and_bounded() {
    use trace_format::scenario::MAX_SCENARIO_FILE_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(MAX_SCENARIO_FILE_BYTES + 1).unwrap();
    let err = Scenario::load(&big).unwrap_err().to_string();
    assert!(
        err.contains("a scenario file is a regular file of at most"),
        "{err}"
    );
    let err = Scenario::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    let err = Scenario::load("/dev/zero").unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
}
