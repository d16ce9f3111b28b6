//! `replay validate`: is the trace intact ([`trace_format::file::Integrity`],
//! the notion every command shares)?
use std::io::Write;

use anyhow::Result;
use trace_format::file::{Integrity, Recovery};

use crate::load::LoadedTrace;

/// Decodes every chunk and prints a verdict; returns true when the trace is intact.
pub fn validate(out: &mut impl Write, loaded: &LoadedTrace) -> Result<bool> {
    let trace = loaded.trace()?;
    let integrity = trace.integrity();
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
    write_integrity(out, &integrity)?;
    let verdict = if integrity.is_intact() {
        "ok"
    } else if integrity.is_damaged() {
        "DAMAGED"
    } else {
        "INCOMPLETE"
    };
    writeln!(out, "{verdict}")?;
    Ok(integrity.is_intact())
}

/// Prints what keeps a trace from being intact (nothing when it is), and
/// notes a format 1.0 header, which no CRC covers.
pub fn write_integrity(out: &mut impl Write, i: &Integrity) -> Result<()> {
    write_recovery(out, &i.recovery)?;
    for fault in &i.faults {
        writeln!(out, "  {fault}")?;
    }
    if !i.header_protected {
        writeln!(
            out,
            "note: format 1.0 file: its header's minor version and flags are not CRC-checked"
        )?;
    }
    Ok(())
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
