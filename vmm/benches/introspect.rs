//! `cargo bench -p vmm --bench introspect [VMLINUX]`: cold and cached resolution
//! of the project kernel's vmlinux (default: the newest cached kernel build).
use std::path::PathBuf;
use std::time::{Duration, Instant};

use std::sync::Arc;

use vmm::introspect::{self, Field, GuestMemory, Kernel, Layout, Region};

/// Times `read_rows` over a synthetic 64-CPU guest laid out with the real
/// vmlinux's offsets: each CPU's run queue and current task in the direct map.
fn snapshot_read_cost(layout: &Arc<Layout>) -> Option<Duration> {
    const CPUS: u32 = 64;
    const PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;
    let rq_sym = layout.symbol("runqueues")?.addr;
    let size = (u64::from(CPUS) + 2) << 20;
    let map = memmap2::MmapMut::map_anon(usize::try_from(size).ok()?).ok()?;
    let regions = vec![Region {
        gpa: 0,
        len: size,
        offset: 0,
    }];
    let mem = GuestMemory::from_mmap(Arc::new(memmap2::MmapRaw::from(map)), regions)?;
    let off = |f: Field| u64::from(layout.field(f).map_or(0, |m| m.offset));
    let mut per_cpu = Vec::new();
    for cpu in 0..CPUS {
        let rq_pa = (u64::from(cpu) + 1) << 20;
        let task_pa = rq_pa + (512 << 10);
        per_cpu.push(PAGE_OFFSET + rq_pa - rq_sym);
        mem.write(rq_pa + off(Field::RqNrRunning), &2u32.to_le_bytes())
            .ok()?;
        mem.write(
            rq_pa + off(Field::RqCurr),
            &(PAGE_OFFSET + task_pa).to_le_bytes(),
        )
        .ok()?;
        mem.write(task_pa + off(Field::TaskPid), &(100 + cpu).to_le_bytes())
            .ok()?;
    }
    let k = Kernel::from_parts(Arc::clone(layout), mem, 0, PAGE_OFFSET, per_cpu);
    let mut rows = Vec::new();
    let rounds = 2000u32;
    let t = Instant::now();
    for _ in 0..rounds {
        introspect::snapshot::read_rows(&k, &mut rows).ok()?;
    }
    let per_cpu = t.elapsed() / (rounds * CPUS);
    assert!(
        rows.iter()
            .enumerate()
            .all(|(i, r)| r.nr_running == 2 && u64::from(r.curr_pid) == 100 + i as u64)
    );
    Some(per_cpu)
}

fn project_vmlinux() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let dir = PathBuf::from(home).join(".cache/schedtape/kernels");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("vmlinux"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let arg = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from);
    let Some(vmlinux) = arg.or_else(project_vmlinux) else {
        eprintln!("introspect bench: no vmlinux (build one with `cargo xtask kernel build`)");
        return;
    };
    let size = std::fs::metadata(&vmlinux).map_or(0, |m| m.len());
    println!("vmlinux {} ({} MB)", vmlinux.display(), size >> 20);
    let cold: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let layout = introspect::resolve_file(&vmlinux).expect("resolves");
            let d = t.elapsed();
            assert!(layout.field(Field::RqNrRunning).is_some());
            d
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let first = introspect::load(&vmlinux, Some(dir.path())).expect("loads");
    assert!(!first.cached);
    let cached: Vec<Duration> = (0..20)
        .map(|_| {
            let r = introspect::load(&vmlinux, Some(dir.path())).expect("loads");
            assert!(r.cached);
            r.elapsed
        })
        .collect();
    let bytes =
        std::fs::metadata(first.cache_file.as_ref().expect("cache file")).map_or(0, |m| m.len());
    println!(
        "cold resolution (symbols + DWARF): median {:?} of 5 (min {:?}; first, maybe from disk, {:?})",
        median(cold.clone()),
        cold.iter().min().copied().unwrap_or_default(),
        cold[0]
    );
    println!(
        "cached resolution: median {:?} of 20 ({} symbols, {} KB cache file)",
        median(cached),
        first.layout.symbols.len(),
        bytes >> 10
    );
    match snapshot_read_cost(&first.layout) {
        Some(d) => {
            println!("snapshot read cost: {d:?} per CPU (64 synthetic CPUs, 9 fields + curr->pid)")
        }
        None => println!("snapshot read cost: not measurable (layout lacks runqueues)"),
    }
    for f in Field::ALL {
        let r = &first.layout.fields[f.index()];
        println!(
            "  {f:?}: {}",
            r.as_ref().map_or("missing".to_string(), |r| format!(
                "{} @ {} ({} B)",
                r.path, r.member.offset, r.member.size
            ))
        );
    }
}
