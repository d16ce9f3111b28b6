//! `replay validate`: is every byte of the trace accounted for?
use std::io::Write;

use anyhow::Result;
use trace_format::file::Trace;

use crate::load::LoadedTrace;

/// Decodes every chunk and prints a verdict; returns true when the trace is intact.
pub fn validate(out: &mut impl Write, loaded: &LoadedTrace) -> Result<bool> {
    let trace = loaded.trace()?;
    let mut records = 0u64;
    let mut decode_errors = Vec::new();
    for item in trace.records() {
        match item {
            Ok(_) => records += 1,
            Err(e) => decode_errors.push(e.to_string()),
        }
    }
    let intact = trace.recovery().is_clean() && decode_errors.is_empty();
    writeln!(
        out,
        "{}: {} chunks, {records} records, index {}",
        loaded.path.display(),
        trace.chunks().len(),
        if trace.index().is_some() {
            "present"
        } else {
            "missing"
        }
    )?;
    for e in &decode_errors {
        writeln!(out, "decode error: {e}")?;
    }
    write_recovery(out, &trace)?;
    writeln!(out, "{}", if intact { "ok" } else { "DAMAGED" })?;
    Ok(intact)
}

/// Prints the reader's recovery report when the file was not clean.
pub fn write_recovery(out: &mut impl Write, trace: &Trace<'_>) -> Result<()> {
    let r = trace.recovery();
    if r.is_clean() {
        return Ok(());
    }
    writeln!(out, "\nrecovery")?;
    if !r.index_found {
        writeln!(
            out,
            "  no valid index: the writer did not close the file; chunks were recovered by scanning"
        )?;
    }
    writeln!(out, "  {} chunk(s) recovered", r.chunks_recovered)?;
    for d in &r.damaged {
        writeln!(out, "  damaged chunk at byte {}: {}", d.offset, d.reason)?;
    }
    if r.truncated {
        writeln!(
            out,
            "  file is truncated: {} trailing byte(s) lost",
            r.bytes_unaccounted
        )?;
    } else if r.bytes_unaccounted > 0 {
        writeln!(out, "  {} byte(s) not accounted for", r.bytes_unaccounted)?;
    }
    Ok(())
}
