//! `replay validate`: is every byte of the trace accounted for?
use std::io::Write;

use anyhow::Result;
use trace_format::file::Recovery;

use crate::load::LoadedTrace;

/// Decodes every chunk and prints a verdict; returns true when the trace is intact.
pub fn validate(out: &mut impl Write, loaded: &LoadedTrace) -> Result<bool> {
    let trace = loaded.trace()?;
    let recovery = trace.verify();
    let records: u64 = trace.chunks().iter().map(|c| u64::from(c.records)).sum();
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
    write_recovery(out, &recovery)?;
    let intact = recovery.is_clean();
    writeln!(out, "{}", if intact { "ok" } else { "DAMAGED" })?;
    Ok(intact)
}

/// Prints a recovery report when the file was not clean.
pub fn write_recovery(out: &mut impl Write, r: &Recovery) -> Result<()> {
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
        writeln!(
            out,
            "  damaged: {} byte(s) at offset {}: {}",
            d.len, d.offset, d.reason
        )?;
    }
    if r.truncated {
        writeln!(
            out,
            "  file is truncated (no valid trailer); {} byte(s) unaccounted for",
            r.bytes_unaccounted
        )?;
    } else if r.bytes_unaccounted > 0 {
        writeln!(out, "  {} byte(s) not accounted for", r.bytes_unaccounted)?;
    }
    Ok(())
}
