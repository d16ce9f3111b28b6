//! Writes seed traces for the `reader` fuzz target into the directory given
//! as the only argument (see trace-format/README.md). A tool, not a test:
//! the seeds are deterministic, so rerunning it rewrites the same bytes.
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;

use support::{all_variants, crafted_resync_trace, more_variants, realistic_stream, write_trace};
use trace_format::file::{ChunkLimits, Trace};
use trace_format::record::Record;

fn main() {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz_seeds DIR");
        std::process::exit(2);
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("{}: {e}", dir.display());
        std::process::exit(1);
    }
    for (name, data) in seeds() {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, &data) {
            eprintln!("{}: {e}", path.display());
            std::process::exit(1);
        }
        println!("{} ({} bytes)", path.display(), data.len());
    }
}

/// Every seed as (file name, bytes).
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    // The multi-chunk trace of tests/file_recovery.rs.
    let bytes = write_trace(
        &realistic_stream(4, 4, 12),
        ChunkLimits {
            max_payload: 400,
            max_span_ns: 250_000_000,
        },
    );
    let spans: Vec<(usize, usize)> = Trace::open(&bytes)
        .expect("a trace just written opens")
        .chunks()
        .iter()
        .map(|c| {
            (
                usize::try_from(c.offset).unwrap(),
                usize::try_from(c.offset + c.total_len()).unwrap(),
            )
        })
        .collect();
    let variants: Vec<(u64, Record)> = all_variants()
        .into_iter()
        .map(|(_, r)| r)
        .chain(more_variants())
        .zip((0u64..).map(|i| i * 1000))
        .map(|(r, ts)| (ts, r))
        .collect();
    vec![
        ("multi_chunk.trace", bytes.clone()),
        ("no_index.trace", bytes[..spans[spans.len() - 1].1].to_vec()),
        (
            "torn.trace",
            bytes[..(spans[2].0 + spans[2].1) / 2].to_vec(),
        ),
        (
            "variants.trace",
            write_trace(
                &variants,
                ChunkLimits {
                    max_payload: 200,
                    max_span_ns: 5000,
                },
            ),
        ),
        (
            "snapshots.trace",
            write_trace(&realistic_stream(2, 8, 3), ChunkLimits::default()),
        ),
        // Fake chunk headers every 32 bytes claiming payloads to the end:
        // quadratic for a scan that re-reads each claimed span.
        ("crafted_resync.trace", crafted_resync_trace(8 * 1024).0),
    ]
}
