//! Every command shares one notion of "intact" (`Trace::integrity`): a
//! CRC-valid index that disagrees with the chunks, or a CRC-valid trailer
//! pointing anywhere but at the index, is damage to `validate`, `check`,
//! `show` and `stats` alike.
mod support;

use std::path::{Path, PathBuf};

use support::{Synth, replay, s, stdout, trace};
use trace_format::file::{INDEX_SYNC, TRAILER_LEN, TRAILER_MAGIC, Trace};

fn trailer(offset: u64, len: u32) -> Vec<u8> {
    let mut t = offset.to_le_bytes().to_vec();
    t.extend_from_slice(&len.to_le_bytes());
    let crc = trace_format::crc32c(&t);
    t.extend_from_slice(&crc.to_le_bytes());
    t.extend_from_slice(&TRAILER_MAGIC);
    t
}

/// `bytes` with a CRC-valid index listing one record too many in chunk 0.
fn disagreeing_index(bytes: &[u8]) -> Vec<u8> {
    let t = Trace::open(bytes).unwrap();
    let mut index = t.index().unwrap().clone();
    index.chunks[0].records += 1;
    let at = usize::try_from(t.chunks().last().unwrap().offset).unwrap()
        + usize::try_from(t.chunks().last().unwrap().total_len()).unwrap();
    let body = postcard::to_allocvec(&index).unwrap();
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&INDEX_SYNC.to_le_bytes());
    let mut v = body.len();
    while v >= 0x80 {
        out.push(u8::try_from(v & 0x7f).unwrap() | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).unwrap());
    out.extend_from_slice(&body);
    out.extend_from_slice(&trace_format::crc32c(&body).to_le_bytes());
    let len = u32::try_from(out.len() - at).unwrap();
    out.extend_from_slice(&trailer(at as u64, len));
    out
}

/// `bytes` whose CRC-valid trailer points past the end of the file.
fn trailer_past_end(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes[..bytes.len() - TRAILER_LEN].to_vec();
    out.extend_from_slice(&trailer(1 << 40, 100));
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn validate_check_show_and_stats_agree_on_index_and_trailer_damage() {
    let dir = tempfile::tempdir().unwrap();
    let good = trace(dir.path(), "good.trace", Synth::default());
    let base = trace(
        dir.path(),
        "base.trace",
        Synth {
            seed: 5,
            ..Synth::default()
        },
    );
    let bytes = std::fs::read(&good).unwrap();
    assert_eq!(replay(&["validate", s(&good)]).status.code(), Some(0));
    for (name, damaged) in [
        ("index.trace", disagreeing_index(&bytes)),
        ("trailer.trace", trailer_past_end(&bytes)),
    ] {
        let path = write(dir.path(), name, &damaged);
        let o = replay(&["validate", s(&path)]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stdout(&o));
        assert!(stdout(&o).contains("DAMAGED"), "{name}: {}", stdout(&o));
        let o = replay(&["check", "--baseline", s(&base), s(&path)]);
        assert_eq!(o.status.code(), Some(125), "{name}: {}", stdout(&o));
        assert!(stdout(&o).contains("damaged"), "{name}: {}", stdout(&o));
        let o = replay(&["show", s(&path)]);
        assert!(stdout(&o).contains("damaged:"), "{name}: {}", stdout(&o));
        let o = replay(&["stats", s(&path)]);
        assert!(
            stdout(&o).contains("the trace is damaged"),
            "{name}: {}",
            stdout(&o)
        );
    }
}
