//! Struct member offsets and sizes from the vmlinux DWARF (gimli).
//!
//! Only the compilation unit defining the scheduler's types is parsed: the CU
//! that holds a core scheduler function (found through `.debug_aranges`), with
//! a scan of CU names as the fallback.
use gimli::{
    AttributeValue, DebugInfoOffset, DwAt, EndianSlice, LittleEndian, UnitOffset, constants,
};

use super::elf::Vmlinux;
use super::layout::{Field, Member, Resolved, Symbol};

type R<'a> = EndianSlice<'a, LittleEndian>;
type Dwarf<'a> = gimli::Dwarf<R<'a>>;
type Unit<'a> = gimli::Unit<R<'a>>;

/// Functions defined in kernel/sched/core.c, whose CU defines `struct rq`.
const ANCHOR_FUNCTIONS: [&str; 5] = [
    "sched_fork",
    "__schedule",
    "sched_tick",
    "scheduler_tick",
    "wake_up_new_task",
];
/// CU names that define `struct rq` and `struct task_struct`.
const ANCHOR_CUS: [&str; 2] = ["kernel/sched/core.c", "kernel/sched/fair.c"];

/// Resolves every [`Field`]; `Err` says why none can be (no DWARF, no `struct rq`).
pub fn resolve(
    elf: &Vmlinux<'_>,
    symbol: impl Fn(&str) -> Option<Symbol>,
) -> Result<Vec<Option<Resolved>>, String> {
    let Some(info) = elf.section(".debug_info").filter(|s| !s.is_empty()) else {
        return Err("the vmlinux has no DWARF (.debug_info is missing; stripped image?)".into());
    };
    let load = |id: gimli::SectionId| -> Result<R<'_>, gimli::Error> {
        let data = if id == gimli::SectionId::DebugInfo {
            info
        } else {
            elf.section(id.name()).unwrap_or(&[])
        };
        Ok(EndianSlice::new(data, LittleEndian))
    };
    let dwarf = Dwarf::load(load).map_err(|e| format!("cannot load DWARF: {e}"))?;
    let mut tried = Vec::new();
    let candidates = ANCHOR_FUNCTIONS
        .iter()
        .filter_map(|f| symbol(f))
        .filter_map(|s| cu_for_address(&dwarf, s.addr));
    for off in candidates {
        if tried.contains(&off) {
            continue;
        }
        tried.push(off);
        if let Some(fields) = resolve_in(&dwarf, off) {
            return Ok(fields);
        }
    }
    // Fallback: find the CU by name (parses every CU's root entry).
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Some(off) = header.offset().as_debug_info_offset() else {
            continue;
        };
        if tried.contains(&off) {
            continue;
        }
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let named = unit
            .name
            .map(|n| n.slice())
            .is_some_and(|n| ANCHOR_CUS.iter().any(|c| n.ends_with(c.as_bytes())));
        if named && let Some(fields) = resolve_in(&dwarf, off) {
            return Ok(fields);
        }
    }
    Err("no compilation unit of the vmlinux DWARF defines struct rq".into())
}

/// The CU whose address ranges cover `addr`.
fn cu_for_address(dwarf: &Dwarf<'_>, addr: u64) -> Option<DebugInfoOffset> {
    let mut headers = dwarf.debug_aranges.headers();
    while let Ok(Some(h)) = headers.next() {
        let mut entries = h.entries();
        while let Ok(Some(e)) = entries.next() {
            if e.address() <= addr && addr < e.address().saturating_add(e.length()) {
                return Some(h.debug_info_offset());
            }
        }
    }
    None
}

/// Resolves the fields in one CU; `None` when it does not define `struct rq`.
fn resolve_in(dwarf: &Dwarf<'_>, off: DebugInfoOffset) -> Option<Vec<Option<Resolved>>> {
    let header = dwarf.debug_info.header_from_offset(off).ok()?;
    let unit = dwarf.unit(header).ok()?;
    let cu = Cu { dwarf, unit: &unit };
    let [rq, task] = cu.find_structs(["rq", "task_struct"]);
    let rq = rq?;
    let fields = Field::ALL
        .iter()
        .map(|&f| {
            let (outer, paths) = f.candidates();
            let base = if outer == "rq" { Some(rq) } else { task }?;
            paths.iter().find_map(|p| {
                cu.member_path(base, p).map(|member| Resolved {
                    path: format!("{outer}.{p}"),
                    member,
                })
            })
        })
        .collect();
    Some(fields)
}

struct Cu<'d, 'a> {
    dwarf: &'d Dwarf<'a>,
    unit: &'d Unit<'a>,
}

impl Cu<'_, '_> {
    /// Top-level struct definitions (not declarations) by name.
    fn find_structs<const N: usize>(&self, names: [&str; N]) -> [Option<UnitOffset>; N] {
        let mut found = [None; N];
        let Ok(mut tree) = self.unit.entries_tree(None) else {
            return found;
        };
        let Ok(root) = tree.root() else {
            return found;
        };
        let mut children = root.children();
        while let Ok(Some(node)) = children.next() {
            let e = node.entry();
            if e.tag() != constants::DW_TAG_structure_type
                || self.flag(e, constants::DW_AT_declaration)
            {
                continue;
            }
            let Some(name) = self.name(e) else { continue };
            for (i, n) in names.iter().enumerate() {
                if found[i].is_none() && name == n.as_bytes() {
                    found[i] = Some(e.offset());
                }
            }
            if found.iter().all(Option::is_some) {
                break;
            }
        }
        found
    }

    /// Follows `a.b.c` from struct `base`; offsets add up, size is the last member's.
    fn member_path(&self, base: UnitOffset, path: &str) -> Option<Member> {
        let mut ty = base;
        let mut offset = 0u64;
        let mut size = 0u64;
        for name in path.split('.') {
            let (off, member_ty) = self.member(self.strip(ty)?, name)?;
            offset = offset.checked_add(off)?;
            size = self.size_of(member_ty)?;
            ty = member_ty;
        }
        Some(Member {
            offset: u32::try_from(offset).ok()?,
            size: u32::try_from(size).ok()?,
        })
    }

    /// A named member of a struct or union, looking inside anonymous members.
    fn member(&self, st: UnitOffset, name: &str) -> Option<(u64, UnitOffset)> {
        let mut tree = self.unit.entries_tree(Some(st)).ok()?;
        let root = tree.root().ok()?;
        let mut children = root.children();
        let mut anonymous = Vec::new();
        while let Ok(Some(node)) = children.next() {
            let e = node.entry();
            if e.tag() != constants::DW_TAG_member {
                continue;
            }
            let off = match e.attr_value(constants::DW_AT_data_member_location) {
                Ok(Some(v)) => v.udata_value()?,
                Ok(None) => 0, // union members
                Err(_) => return None,
            };
            let ty = self.type_of(e)?;
            match self.name(e) {
                Some(n) if n == name.as_bytes() => return Some((off, ty)),
                Some(_) => {}
                None => anonymous.push((off, ty)),
            }
        }
        anonymous.into_iter().find_map(|(off, ty)| {
            let (inner, t) = self.member(self.strip(ty)?, name)?;
            Some((off.checked_add(inner)?, t))
        })
    }

    /// Skips typedefs and qualifiers.
    fn strip(&self, mut ty: UnitOffset) -> Option<UnitOffset> {
        for _ in 0..16 {
            let e = self.unit.entry(ty).ok()?;
            match e.tag() {
                constants::DW_TAG_typedef
                | constants::DW_TAG_const_type
                | constants::DW_TAG_volatile_type
                | constants::DW_TAG_atomic_type
                | constants::DW_TAG_restrict_type => ty = self.type_of(&e)?,
                _ => return Some(ty),
            }
        }
        None
    }

    fn size_of(&self, ty: UnitOffset) -> Option<u64> {
        let ty = self.strip(ty)?;
        let e = self.unit.entry(ty).ok()?;
        if let Ok(Some(v)) = e.attr_value(constants::DW_AT_byte_size) {
            return v.udata_value();
        }
        match e.tag() {
            constants::DW_TAG_pointer_type => Some(8),
            constants::DW_TAG_array_type => {
                let elem = self.size_of(self.type_of(&e)?)?;
                let mut tree = self.unit.entries_tree(Some(ty)).ok()?;
                let root = tree.root().ok()?;
                let mut children = root.children();
                let mut total = elem;
                while let Ok(Some(node)) = children.next() {
                    let c = node.entry();
                    if c.tag() != constants::DW_TAG_subrange_type {
                        continue;
                    }
                    let count = match c.attr_value(constants::DW_AT_count) {
                        Ok(Some(v)) => v.udata_value()?,
                        _ => match c.attr_value(constants::DW_AT_upper_bound) {
                            Ok(Some(v)) => v.udata_value()?.checked_add(1)?,
                            _ => return None,
                        },
                    };
                    total = total.checked_mul(count)?;
                }
                Some(total)
            }
            _ => None,
        }
    }

    fn type_of(&self, e: &gimli::DebuggingInformationEntry<'_, '_, R<'_>>) -> Option<UnitOffset> {
        match e.attr_value(constants::DW_AT_type).ok()?? {
            AttributeValue::UnitRef(o) => Some(o),
            _ => None,
        }
    }

    fn name<'s>(&'s self, e: &gimli::DebuggingInformationEntry<'_, '_, R<'s>>) -> Option<&'s [u8]> {
        let v = e.attr_value(constants::DW_AT_name).ok()??;
        self.dwarf.attr_string(self.unit, v).ok().map(|s| s.slice())
    }

    fn flag(&self, e: &gimli::DebuggingInformationEntry<'_, '_, R<'_>>, at: DwAt) -> bool {
        matches!(e.attr_value(at), Ok(Some(AttributeValue::Flag(true))))
    }
}
