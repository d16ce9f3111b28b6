//! Reading and writing scenarios as TOML (feature `std`).
//!
//! The model's own serde impls switch to human-friendly forms (`"10s"`,
//! `{ frac = 0.5 }`, `"1n2l4c2t"`) for TOML; unknown keys are rejected.

use std::boxed::Box;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};

use super::Scenario;
use super::validate::ScenarioError;

/// Why a scenario file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioFileError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}line {line}, column {column}: {message}", path_prefix(path.as_deref()))]
    Parse {
        path: Option<PathBuf>,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}{source}", path_prefix(path.as_deref()))]
    Invalid {
        path: Option<PathBuf>,
        source: Box<ScenarioError>,
    },
    #[error("cannot write scenario as TOML: {0}")]
    Serialize(String),
    #[error("{}: {what}; a scenario file is a regular file of at most {max} bytes", path.display())]
    NotAScenarioFile {
        path: PathBuf,
        what: String,
        max: u64,
    },
}

/// The largest scenario file read: far above any scenario whose encoding fits
/// [`super::limits::MAX_SCENARIO_BYTES`], small enough to read at once.
pub const MAX_SCENARIO_FILE_BYTES: u64 = 4 << 20;

fn path_prefix(path: Option<&Path>) -> String {
    path.map(|p| std::format!("{}: ", p.display()))
        .unwrap_or_default()
}

impl ScenarioFileError {
    fn with_path(self, p: &Path) -> Self {
        match self {
            ScenarioFileError::Parse {
                line,
                column,
                message,
                ..
            } => ScenarioFileError::Parse {
                path: Some(p.into()),
                line,
                column,
                message,
            },
            ScenarioFileError::Invalid { source, .. } => ScenarioFileError::Invalid {
                path: Some(p.into()),
                source,
            },
            other => other,
        }
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Scenario {
    /// Parses and validates a scenario from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Scenario, ScenarioFileError> {
        let sc = Self::parse_toml(text)?;
        sc.validate().map_err(|source| ScenarioFileError::Invalid {
            path: None,
            source: Box::new(source),
        })?;
        Ok(sc)
    }

    /// Parses TOML without validating (for tools that report all errors).
    pub fn parse_toml(text: &str) -> Result<Scenario, ScenarioFileError> {
        ::toml::from_str(text).map_err(|e: ::toml::de::Error| {
            let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
            ScenarioFileError::Parse {
                path: None,
                line,
                column,
                message: e.message().trim_end().to_string(),
            }
        })
    }

    /// Reads, parses and validates a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioFileError> {
        let path = path.as_ref();
        let io = |source| ScenarioFileError::Io {
            path: path.into(),
            source,
        };
        let refuse = |what: String| ScenarioFileError::NotAScenarioFile {
            path: path.into(),
            what,
            max: MAX_SCENARIO_FILE_BYTES,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(refuse("not a regular file".into()));
        }
        if meta.len() > MAX_SCENARIO_FILE_BYTES {
            return Err(refuse(std::format!("{} bytes", meta.len())));
        }
        let mut text = String::new();
        let file = std::fs::File::open(path).map_err(io)?;
        std::io::Read::read_to_string(
            &mut std::io::Read::take(file, MAX_SCENARIO_FILE_BYTES + 1),
            &mut text,
        )
        .map_err(io)?;
        if text.len() as u64 > MAX_SCENARIO_FILE_BYTES {
            return Err(refuse("it grew while read".into()));
        }
        Self::from_toml_str(&text).map_err(|e| e.with_path(path))
    }

    /// The scenario as TOML that [`Scenario::from_toml_str`] reads back unchanged.
    pub fn to_toml_string(&self) -> Result<String, ScenarioFileError> {
        ::toml::to_string_pretty(self).map_err(|e| ScenarioFileError::Serialize(e.to_string()))
    }
}
