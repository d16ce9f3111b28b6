//! Reading every CPU's run queue, and kernel variable access by symbol.
use trace_format::record::{CpuRow, RowFields};

use super::layout::{Field, Layout, Member};
use super::translate::Kernel;

/// Row bits the layout can fill (fields the kernel has).
pub fn row_fields(layout: &Layout) -> RowFields {
    let pairs = [
        (Field::RqNrRunning, RowFields::NR_RUNNING),
        (Field::RqClock, RowFields::CLOCK),
        (Field::RqNrSwitches, RowFields::NR_SWITCHES),
        (Field::RqCfsNrRunning, RowFields::CFS_NR_RUNNING),
        (Field::RqScxNrRunning, RowFields::SCX_NR_RUNNING),
        (Field::RqRunDelay, RowFields::RUN_DELAY),
        (Field::RqPcount, RowFields::PCOUNT),
    ];
    let mut bits = pairs
        .iter()
        .filter(|(f, _)| layout.field(*f).is_some())
        .fold(0u16, |b, (_, bit)| b | bit);
    if layout.field(Field::RqCurr).is_some() && layout.field(Field::TaskPid).is_some() {
        bits |= RowFields::CURR_PID;
    }
    RowFields(bits)
}

/// Reads one row per CPU into `rows` (cleared first). Fails on the first
/// unreadable run queue: a broken translation must not produce garbage rows.
pub fn read_rows(k: &Kernel, rows: &mut Vec<CpuRow>) -> Result<RowFields, String> {
    let layout = k.layout();
    let fields = row_fields(layout);
    let rq_sym = layout
        .symbol("runqueues")
        .filter(|s| s.percpu)
        .ok_or("the vmlinux has no per-CPU runqueues symbol")?
        .addr;
    rows.clear();
    let get = |base: u64, f: Field| -> Result<u64, String> {
        match layout.field(f) {
            Some(m) => read_member(k, base, m),
            None => Ok(0),
        }
    };
    let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    for cpu in 0..k.cpus() {
        let rq = k.per_cpu_addr(rq_sym, cpu).ok_or("cpu out of range")?;
        let mut row = CpuRow {
            nr_running: narrow(get(rq, Field::RqNrRunning)?),
            cfs_nr_running: narrow(get(rq, Field::RqCfsNrRunning)?),
            scx_nr_running: narrow(get(rq, Field::RqScxNrRunning)?),
            curr_pid: 0,
            clock: get(rq, Field::RqClock)?,
            nr_switches: get(rq, Field::RqNrSwitches)?,
            run_delay_ns: get(rq, Field::RqRunDelay)?,
            pcount: get(rq, Field::RqPcount)?,
        };
        if fields.has(RowFields::CURR_PID) {
            let curr = get(rq, Field::RqCurr)?;
            // An unreadable task is reported as pid 0 rather than failing the row.
            row.curr_pid = (curr != 0)
                .then(|| get(curr, Field::TaskPid).ok())
                .flatten()
                .map_or(0, narrow);
        }
        rows.push(row);
    }
    Ok(fields)
}

fn read_member(k: &Kernel, base: u64, m: Member) -> Result<u64, String> {
    let width = usize::try_from(m.size.min(8)).unwrap_or(8);
    k.read_uint(base.wrapping_add(u64::from(m.offset)), width)
}

/// A kernel variable named as `symbol` or `symbol+offset` (decimal or 0x hex).
pub fn parse_target(text: &str) -> Result<(&str, u64), String> {
    match text.split_once('+') {
        None => Ok((text, 0)),
        Some((name, off)) => {
            let off = off.trim();
            let value = match off.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => off.parse(),
            };
            value
                .map(|v| (name.trim(), v))
                .map_err(|_| format!("bad offset in {text:?}"))
        }
    }
}

/// The address of `target` (`symbol[+offset]`) on `cpu`, checked for `width`.
pub fn target_addr(k: &Kernel, target: &str, cpu: Option<u32>, width: u8) -> Result<u64, String> {
    if !matches!(width, 1 | 2 | 4 | 8) {
        return Err(format!("width {width} is not 1, 2, 4 or 8"));
    }
    let (name, off) = parse_target(target)?;
    let s = k
        .layout()
        .symbol(name)
        .ok_or_else(|| format!("no symbol {name:?} in the vmlinux"))?;
    if s.size != 0 && off.saturating_add(u64::from(width)) > s.size {
        return Err(format!(
            "{target}: {width} bytes at offset {off} overrun the {}-byte symbol",
            s.size
        ));
    }
    Ok(k.symbol_addr(name, cpu)?.wrapping_add(off))
}

/// Reads `width` bytes of `target`.
pub fn read_target(k: &Kernel, target: &str, cpu: Option<u32>, width: u8) -> Result<u64, String> {
    let addr = target_addr(k, target, cpu, width)?;
    k.read_uint(addr, usize::from(width))
}

/// Writes the low `width` bytes of `value` to `target`.
pub fn write_target(
    k: &Kernel,
    target: &str,
    cpu: Option<u32>,
    width: u8,
    value: u64,
) -> Result<(), String> {
    if width < 8 && value >> (u32::from(width) * 8) != 0 {
        return Err(format!("value {value} does not fit in {width} bytes"));
    }
    let addr = target_addr(k, target, cpu, width)?;
    k.write(addr, &value.to_le_bytes()[..usize::from(width)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(parse_target("jiffies"), Ok(("jiffies", 0)));
        assert_eq!(parse_target("a+16"), Ok(("a", 16)));
        assert_eq!(parse_target("a+0x10"), Ok(("a", 16)));
        assert!(parse_target("a+zz").is_err());
    }
}
