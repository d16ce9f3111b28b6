//! Kconfig text: parsing a config fragment or a `.config`, and checking that every
//! line of a fragment survived `olddefconfig` (Kconfig silently drops options whose
//! dependencies are unmet, so the build must look).
use std::collections::HashMap;
use std::fmt;

/// One option's value, as Kconfig writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `=y`
    Yes,
    /// `=m`
    Module,
    /// `# CONFIG_X is not set` (or `=n` in a hand-written fragment).
    No,
    /// An int, hex or quoted string value, verbatim.
    Other(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Yes => f.write_str("y"),
            Value::Module => f.write_str("m"),
            Value::No => f.write_str("not set"),
            Value::Other(v) => f.write_str(v),
        }
    }
}

/// A fragment line that is neither a comment nor `CONFIG_NAME=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses one line: `Some((name without CONFIG_, value))`, `None` for comments and
/// blanks, `Err` for anything else.
fn parse_line(line: &str) -> Result<Option<(&str, Value)>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if let Some(comment) = line.strip_prefix('#') {
        let unset = comment
            .trim()
            .strip_prefix("CONFIG_")
            .and_then(|r| r.strip_suffix(" is not set"));
        return Ok(unset.filter(|n| is_symbol(n)).map(|n| (n, Value::No)));
    }
    let Some((lhs, rhs)) = line.split_once('=') else {
        return Err(format!("expected `CONFIG_NAME=value`, got `{line}`"));
    };
    let name = lhs
        .trim()
        .strip_prefix("CONFIG_")
        .filter(|n| is_symbol(n))
        .ok_or_else(|| format!("`{}` is not a CONFIG_ symbol", lhs.trim()))?;
    let value = match rhs.trim() {
        "y" => Value::Yes,
        "m" => Value::Module,
        "n" => Value::No,
        "" => return Err(format!("CONFIG_{name} has no value")),
        other => Value::Other(other.to_string()),
    };
    Ok(Some((name, value)))
}

fn is_symbol(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Parses a fragment strictly: every non-comment line must be an option, and no
/// option may appear twice. Keeps the file's order.
pub fn parse_fragment(text: &str) -> Result<Vec<(String, Value)>, ParseError> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = parse_line(line).map_err(|message| ParseError {
            line: i + 1,
            message,
        })?;
        if let Some((name, value)) = entry {
            if out.iter().any(|(n, _)| n == name) {
                return Err(ParseError {
                    line: i + 1,
                    message: format!("CONFIG_{name} is set twice"),
                });
            }
            out.push((name.to_string(), value));
        }
    }
    Ok(out)
}

/// Parses a kernel's `.config` leniently (unknown lines are skipped).
pub fn parse_config(text: &str) -> HashMap<String, Value> {
    text.lines()
        .filter_map(|l| parse_line(l).ok().flatten())
        .map(|(n, v)| (n.to_string(), v))
        .collect()
}

/// A fragment option that does not hold in the final `.config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    pub name: String,
    pub wanted: Value,
    /// `None`: the symbol is absent (unknown to this kernel, or its menu is hidden).
    pub got: Option<Value>,
}

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let got = self
            .got
            .as_ref()
            .map_or_else(|| "absent".to_string(), Value::to_string);
        write!(f, "CONFIG_{}: wanted {}, got {got}", self.name, self.wanted)
    }
}

/// Every fragment option whose value the final config does not have. "Not set"
/// is satisfied by an absent symbol too.
pub fn unmet(fragment: &[(String, Value)], config: &HashMap<String, Value>) -> Vec<Unmet> {
    fragment
        .iter()
        .filter(|(name, wanted)| {
            let got = config.get(name.as_str());
            match wanted {
                Value::No => !matches!(got, None | Some(Value::No)),
                _ => got != Some(wanted),
            }
        })
        .map(|(name, wanted)| Unmet {
            name: name.clone(),
            wanted: wanted.clone(),
            got: config.get(name.as_str()).cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fragment_lines() {
        let text = "# a comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\nCONFIG_D=-1\nCONFIG_E=\"x y\"\nCONFIG_F=n\n";
        let got = parse_fragment(text).unwrap();
        assert_eq!(
            got,
            vec![
                ("A".to_string(), Value::Yes),
                ("B".to_string(), Value::No),
                ("C".to_string(), Value::Module),
                ("D".to_string(), Value::Other("-1".into())),
                ("E".to_string(), Value::Other("\"x y\"".into())),
                ("F".to_string(), Value::No),
            ]
        );
    }

    #[test]
    fn rejects_bad_fragment_lines() {
        assert_eq!(parse_fragment("CONFIG_A=y\nfoo\n").unwrap_err().line, 2);
        assert!(
            parse_fragment("A=y")
                .unwrap_err()
                .message
                .contains("not a CONFIG_")
        );
        assert!(
            parse_fragment("CONFIG_A=")
                .unwrap_err()
                .message
                .contains("no value")
        );
        assert!(
            parse_fragment("CONFIG_A=y\n# CONFIG_A is not set")
                .unwrap_err()
                .message
                .contains("twice")
        );
    }

    #[test]
    fn unmet_names_each_dropped_option() {
        let fragment = parse_fragment(
            "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n# CONFIG_D is not set\nCONFIG_E=-1\n",
        )
        .unwrap();
        let config = parse_config("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_E=0\n");
        let names: Vec<String> = unmet(&fragment, &config)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            names,
            [
                "CONFIG_B: wanted y, got not set",
                "CONFIG_C: wanted not set, got y",
                "CONFIG_E: wanted -1, got 0"
            ]
        );
    }

    #[test]
    fn shipped_fragment_parses_and_keeps_the_essentials() {
        let text = include_str!("../../../fixtures/kernel/schedtape.config");
        let fragment = parse_fragment(text).unwrap();
        let get = |n: &str| {
            fragment
                .iter()
                .find(|(name, _)| name == n)
                .map(|(_, v)| v.clone())
        };
        for name in [
            "SCHED_CLASS_EXT",
            "NET",
            "DEBUG_INFO_BTF",
            "PVH",
            "DEVMEM",
            "SERIAL_8250_CONSOLE",
        ] {
            assert_eq!(get(name), Some(Value::Yes), "{name}");
        }
        assert_eq!(get("MODULES"), Some(Value::No));
        assert_eq!(get("INET"), Some(Value::No));
    }
}
