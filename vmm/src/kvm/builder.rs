//! Composes a VM: guest RAM and the window slot, kernel and initramfs, boot
//! information, ACPI tables and MP table, vCPUs and devices.
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Cap, Kvm, VmFd};
use linux_loader::loader::{
    self, Cmdline, KernelLoader, bzimage::BzImage, elf::Elf, elf::PvhBootCapability,
};
use memmap2::{MmapOptions, MmapRaw};
use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
    MmapRegion,
};

use super::arch::acpi::{self, AcpiCpu};
use super::arch::boot::{self, ZeroPageInputs};
use super::arch::cpuid::{CpuTopology, CpuidFeatures, vcpu_entries};
use super::arch::layout::*;
use super::arch::{mptable, regs};
use super::devices::bell::HostBell;
use super::devices::doorbell::Doorbell;
use super::devices::serial::Serial;
use super::devices::{DOORBELL_PORT, Devices};
use super::vstate::vcpu::{self, BootEntry, Control};
use super::vstate::vm;
use super::{KvmConfig, KvmError, KvmVm};
use crate::introspect::Region;

/// Offset of the 64-bit entry point in a loaded bzImage.
const BZIMAGE_ENTRY64: u64 = 0x200;

/// What the kernel loader produced.
#[derive(Debug, Clone, Copy)]
pub struct LoadedKernel {
    pub entry: BootEntry,
    pub setup_header: Option<loader::bootparam::setup_header>,
    /// First byte above the kernel (for a bzImage: above its decompression buffer).
    pub end: u64,
}

/// Loads an ELF vmlinux (PVH entry when it has the note, else its 64-bit
/// `e_entry`) or a bzImage (64-bit entry) into `mem`.
pub fn load_kernel(mem: &GuestMemoryMmap, path: &Path) -> Result<LoadedKernel, KvmError> {
    let err = |e: String| KvmError::Kernel(path.display().to_string(), e);
    let mut file = File::open(path).map_err(|e| err(e.to_string()))?;
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(&mut file, &mut magic).map_err(|e| err(e.to_string()))?;
    let himem = Some(GuestAddress(HIMEM_START));
    if magic == *b"\x7fELF" {
        let r = Elf::load(mem, None, &mut file, himem).map_err(|e| err(e.to_string()))?;
        let entry = match r.pvh_boot_cap {
            PvhBootCapability::PvhEntryPresent(addr) => BootEntry {
                entry: addr.0,
                long_mode: false,
                pvh_info: PVH_INFO_ADDR,
            },
            _ => BootEntry {
                entry: r.kernel_load.0,
                long_mode: true,
                pvh_info: 0,
            },
        };
        Ok(LoadedKernel {
            entry,
            setup_header: None,
            end: r.kernel_end,
        })
    } else {
        let r = BzImage::load(mem, None, &mut file, himem).map_err(|e| err(e.to_string()))?;
        // What the kernel writes while it decompresses, not just what was loaded:
        // the initramfs goes above it.
        let end = r
            .setup_header
            .map_or(r.kernel_end, |h| boot::bzimage_end(&h, r.kernel_end));
        Ok(LoadedKernel {
            entry: BootEntry {
                entry: r.kernel_load.0 + BZIMAGE_ENTRY64,
                long_mode: true,
                pvh_info: 0,
            },
            setup_header: r.setup_header,
            end,
        })
    }
}

/// Reads `path` into the top of low RAM (below `max`), page aligned: `(gpa, size)`.
fn load_initrd(
    mem: &GuestMemoryMmap,
    path: &Path,
    mem_size: u64,
    kernel_end: u64,
    max: u64,
) -> Result<(u64, u64), KvmError> {
    let err = |e: String| KvmError::Initrd(path.display().to_string(), e);
    let data = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let size = u64::try_from(data.len()).map_err(|e| err(e.to_string()))?;
    let top = mem_size.min(MMIO_GAP_START).min(max);
    let gpa = top
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .filter(|&a| a >= kernel_end);
    let gpa = gpa.ok_or_else(|| {
        err(format!(
            "{size} bytes do not fit in guest RAM between the kernel (up to {kernel_end:#x}) and {top:#x}"
        ))
    })?;
    mem.write_slice(&data, GuestAddress(gpa))
        .map_err(|e| err(e.to_string()))?;
    Ok((gpa, size))
}

/// Guest RAM as one anonymous host mapping, its regions (split around the
/// MMIO gap, back to back in the mapping), and vm-memory's view of it.
/// The mapping is `MADV_DONTFORK` (as QEMU's RAM): a forked child gets no
/// copy-on-write share of it, and it never merges with a neighbouring
/// anonymous mapping (such as the window), so `/proc/PID/smaps` shows the
/// guest RAM as one entry of its own size.
fn guest_ram(mem_size: u64) -> Result<(Arc<MmapRaw>, Vec<Region>, GuestMemoryMmap), KvmError> {
    let layout = |e: String| KvmError::Layout(format!("guest RAM: {e}"));
    let total = usize::try_from(mem_size).map_err(|e| layout(e.to_string()))?;
    let ram = Arc::new(MmapRaw::from(
        MmapOptions::new()
            .len(total)
            .map_anon()
            .map_err(|e| layout(e.to_string()))?,
    ));
    ram.advise(memmap2::Advice::DontFork)
        .map_err(|e| layout(format!("MADV_DONTFORK: {e}")))?;
    // No MADV_HUGEPAGE (QEMU asks for it): natively it cut spawn → vCPUs
    // running from 19.1 to 14.6 ms, but inside the nested lane's L1 loading
    // the kernel took a median 975 ms with it against 430 ms without (16
    // boots each, `bench nested`): huge-page faults there compact memory.
    let mut regions = Vec::new();
    let mut mapped = Vec::new();
    let mut offset = 0u64;
    for (gpa, len) in ram_ranges(mem_size) {
        let at = usize::try_from(offset).map_err(|e| layout(e.to_string()))?;
        let size = usize::try_from(len).map_err(|e| layout(e.to_string()))?;
        // SAFETY: `at + size <= total` (the ranges add up to `mem_size`), the
        // mapping is private, anonymous and read-write as declared, and the
        // returned Arc keeps it alive as long as the KvmVm holding `mem`.
        let region = unsafe {
            MmapRegion::build_raw(
                ram.as_mut_ptr().add(at),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            )
        }
        .map_err(|e| layout(e.to_string()))?;
        mapped.push(
            GuestRegionMmap::new(region, GuestAddress(gpa))
                .ok_or_else(|| layout(format!("region at {gpa:#x} overflows")))?,
        );
        regions.push(Region { gpa, len, offset });
        offset += len;
    }
    let mem = GuestMemoryMmap::from_regions(mapped).map_err(|e| layout(e.to_string()))?;
    Ok((ram, regions, mem))
}

fn write(mem: &GuestMemoryMmap, gpa: u64, bytes: &[u8]) -> Result<(), KvmError> {
    mem.write_slice(bytes, GuestAddress(gpa))
        .map_err(|e| KvmError::Layout(format!("writing {} bytes at {gpa:#x}: {e}", bytes.len())))
}

/// Creates the VM, loads everything, and starts the vCPU threads. With
/// `doorbell`, registers the ring doorbell's ioeventfd and, when that works,
/// names its port on the command line (`schedtape.doorbell=`); otherwise the
/// guest is not told and the host polls.
pub fn build(
    config: &KvmConfig,
    doorbell: bool,
    prepare: impl FnOnce(&crate::backend::GuestWindow),
) -> Result<KvmVm, KvmError> {
    let start = Instant::now();
    let topo = CpuTopology::new(config.topology);
    let mem_size = config.memory_mib << 20;
    if mem_size < 32 << 20 {
        return Err(KvmError::Layout(format!(
            "{} MiB of guest memory is too little (need 32)",
            config.memory_mib
        )));
    }
    let mut stages = Stages::new(start);
    let kvm = Kvm::new().map_err(|e| KvmError::Open(e.to_string()))?;
    let vm = Arc::new(vm::create_vm(&kvm)?);
    let doorbell = if doorbell {
        Doorbell::register(&vm, DOORBELL_PORT)
    } else {
        Doorbell::unregistered(DOORBELL_PORT, "the doorbell was not asked for")
    };

    stages.mark("vm");
    let (ram, ram_regions, mem) = guest_ram(mem_size)?;
    let window_len = usize::try_from(WINDOW_SIZE).expect("4 MiB fits usize");
    let window_map = Arc::new(MmapRaw::from(
        MmapOptions::new()
            .len(window_len)
            .map_anon()
            .map_err(|e| KvmError::Layout(format!("window: {e}")))?,
    ));
    let window_gpa = window_gpa(mem_size);
    let mut slot = 0;
    for region in mem.iter() {
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|e| KvmError::Layout(e.to_string()))?;
        // SAFETY: `mem` is kept in the returned KvmVm, which outlives the VM fd users
        // (vCPU threads are joined before it drops).
        unsafe { vm::map_slot(&vm, slot, region.start_addr().0, host, region.len())? };
        slot += 1;
    }
    // SAFETY: `window_map` is kept alive by the KvmVm (and by every GuestWindow).
    unsafe { vm::map_slot(&vm, slot, window_gpa, window_map.as_mut_ptr(), WINDOW_SIZE)? };
    let window = crate::backend::GuestWindow::new(Arc::clone(&window_map), 0, window_len)
        .ok_or_else(|| KvmError::Layout("window mapping".into()))?;
    prepare(&window);
    stages.mark("memory");

    let kernel = load_kernel(&mem, &config.kernel)?;
    let initrd = match &config.initrd {
        Some(p) => {
            let max = kernel
                .setup_header
                .map_or(0x37ff_ffff, |h| u64::from(h.initrd_addr_max));
            Some(load_initrd(&mem, p, mem_size, kernel.end, max)?)
        }
        None => None,
    };
    let mut cmdline = Cmdline::new(CMDLINE_MAX).map_err(|e| KvmError::Cmdline(e.to_string()))?;
    let full = kernel_args(&config.cmdline, window_gpa, doorbell.port());
    cmdline
        .insert_str(&full)
        .map_err(|e| KvmError::Cmdline(e.to_string()))?;
    loader::load_cmdline(&mem, GuestAddress(CMDLINE_ADDR), &cmdline)
        .map_err(|e| KvmError::Cmdline(e.to_string()))?;
    let cmdline_len =
        u32::try_from(full.trim().len()).map_err(|e| KvmError::Cmdline(e.to_string()))?;

    stages.mark("kernel");
    let apic_ids: Vec<u32> = (0..topo.cpus()).map(|c| topo.apic_id(c)).collect();
    let acpi_cpus: Vec<AcpiCpu> = (0..topo.cpus())
        .map(|c| {
            let node = config.topology.locate(c).map_or(0, |l| l.node);
            AcpiCpu {
                apic_id: topo.apic_id(c),
                node,
            }
        })
        .collect();
    let numa = acpi::numa_memory(mem_size, u32::from(config.topology.nodes))
        .map_err(|e| KvmError::Layout(e.to_string()))?;
    let tables = acpi::tables(&acpi_cpus, &numa).map_err(|e| KvmError::Layout(e.to_string()))?;
    for (gpa, bytes) in &tables.blobs {
        write(&mem, *gpa, bytes)?;
    }

    let e820 = boot::e820_map(mem_size, (window_gpa, WINDOW_SIZE));
    if kernel.entry.long_mode {
        let to32 = |v: u64| {
            u32::try_from(v).map_err(|_| KvmError::Layout(format!("{v:#x} is above 4 GiB")))
        };
        let inputs = ZeroPageInputs {
            setup_header: kernel.setup_header,
            cmdline_addr: to32(CMDLINE_ADDR)?,
            cmdline_len,
            initrd: match initrd {
                Some((a, s)) => Some((to32(a)?, to32(s)?)),
                None => None,
            },
            acpi_rsdp: Some(tables.rsdp_addr),
        };
        let params =
            boot::zero_page(&inputs, &e820).map_err(|e| KvmError::Layout(e.to_string()))?;
        mem.write_obj(params, GuestAddress(ZERO_PAGE_ADDR))
            .map_err(|e| KvmError::Layout(e.to_string()))?;
    } else {
        let e820_len = u32::try_from(e820.len()).expect("few e820 entries");
        write(
            &mem,
            PVH_INFO_ADDR,
            &boot::pvh_start_info(
                CMDLINE_ADDR,
                initrd,
                PVH_MODLIST_ADDR,
                e820_len,
                tables.rsdp_addr,
            ),
        )?;
        if let Some(i) = initrd {
            write(&mem, PVH_MODLIST_ADDR, &boot::pvh_module(i))?;
        }
        write(&mem, PVH_MEMMAP_ADDR, &boot::pvh_memmap(&e820))?;
    }
    for (gpa, page) in regs::identity_page_tables()
        .into_iter()
        .chain(regs::descriptor_tables(kernel.entry.long_mode))
    {
        write(&mem, gpa, &page)?;
    }
    // The MP table as well, for kernels without ACPI; it cannot hold 8-bit-plus
    // APIC IDs, and then ACPI alone describes the CPUs.
    let ebda = u32::try_from(EBDA_START).expect("below 1 MiB");
    match mptable::mptable(ebda, &apic_ids) {
        Ok(table) => write(&mem, EBDA_START, &table)?,
        Err(mptable::MpTableError::ApicIdTooLarge(_)) => {}
        Err(e) => return Err(KvmError::Layout(e.to_string())),
    }

    stages.mark("tables");
    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| KvmError::Open(format!("KVM_GET_SUPPORTED_CPUID: {e}")))?;
    let features = CpuidFeatures {
        tsc_deadline: kvm.check_extension(Cap::TscDeadlineTimer),
    };
    let mut vcpus = Vec::new();
    for cpu in 0..topo.cpus() {
        let entries = vcpu_entries(supported.as_slice(), &topo, cpu, features);
        let boot = (cpu == 0).then_some(kernel.entry);
        vcpus.push(vcpu::create(&vm, apic_ids[cpu as usize], &entries, boot)?);
    }

    stages.mark("vcpus");
    let bell = HostBell::new().map_err(KvmError::Bell)?;
    let clone = || bell.try_clone().map_err(KvmError::Bell);
    let mut d = Devices::new(
        start,
        Serial::new(irq_pulse(&vm, 4)),
        Serial::new(irq_pulse(&vm, 3)),
    );
    d.stop_at_boot_mark = config.stop_at_boot_mark;
    d.bell = Some(clone()?);
    let devices = Arc::new(Mutex::new(d));
    let control = Control::new(vcpus.len(), clone()?);
    let threads =
        vcpu::spawn_all(vcpus, &control, &devices).map_err(|e| KvmError::Thread(e.to_string()))?;
    stages.mark("threads");
    Ok(KvmVm {
        vm,
        mem,
        ram,
        ram_regions,
        window_map,
        window_gpa,
        devices,
        control,
        threads,
        apic_ids,
        start,
        frozen: None,
        console_line: Vec::new(),
        bell,
        watches: Default::default(),
        next_watch: 0,
        doorbell,
        cmdline: full,
        build_stages: stages.done,
    })
}

/// How long each stage of [`build`] took, in order (for start-up profiles).
struct Stages {
    last: Instant,
    done: Vec<(&'static str, Duration)>,
}

impl Stages {
    fn new(start: Instant) -> Self {
        Stages {
            last: start,
            done: Vec::new(),
        }
    }

    /// Ends stage `name` now.
    fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.done.push((name, now - self.last));
        self.last = now;
    }
}

/// An edge on ISA interrupt `irq` through the in-kernel PIC/IOAPIC.
/// The kernel command line: the caller's arguments, `pci=conf1` unless they
/// say otherwise about PCI (the VMM's empty PCI bus answers configuration
/// mechanism #1: see [`crate::kvm::devices::PCI_CONFIG_ADDRESS`]; Linux's
/// default probe would want a host bridge or a DMI date first), then the
/// ring window and the doorbell.
pub fn kernel_args(user: &str, window_gpa: u64, doorbell: Option<u16>) -> String {
    let mut full = user.trim().to_string();
    if !full.split_whitespace().any(|a| a.starts_with("pci=")) {
        full.push_str(" pci=conf1");
    }
    full.push_str(&format!(" schedtape.ring={window_gpa:#x},{WINDOW_SIZE:#x}"));
    if let Some(port) = doorbell {
        full.push_str(&format!(" schedtape.doorbell={port:#x}"));
    }
    full.trim().to_string()
}

fn irq_pulse(vm: &Arc<VmFd>, irq: u32) -> Box<dyn FnMut() + Send> {
    let vm = Arc::clone(vm);
    Box::new(move || {
        let _ = vm.set_irq_line(irq, true);
        let _ = vm.set_irq_line(irq, false);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_skip::{self, Need};

    #[test]
    fn kernel_args_select_pci_conf1_unless_the_caller_chose() {
        let a = kernel_args(" console=ttyS0 ", 0x2000_0000, Some(0x448));
        assert_eq!(
            a,
            format!(
                "console=ttyS0 pci=conf1 schedtape.ring=0x20000000,{WINDOW_SIZE:#x} \
                 schedtape.doorbell=0x448"
            )
        );
        let own = kernel_args("pci=off", 0x1000, None);
        assert!(own.starts_with("pci=off schedtape.ring=0x1000,"), "{own}");
        assert!(!own.contains("conf1"));
    }

    /// The size of the mapping of this process that holds `addr`.
    fn own_mapping_size(addr: usize) -> Option<u64> {
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        maps.lines().find_map(|l| {
            let (start, end) = l.split_whitespace().next()?.split_once('-')?;
            let (start, end) = (
                u64::from_str_radix(start, 16).ok()?,
                u64::from_str_radix(end, 16).ok()?,
            );
            (start..end).contains(&(addr as u64)).then_some(end - start)
        })
    }

    #[test]
    fn guest_ram_stays_one_mapping_of_its_own_size_next_to_another_anonymous_one() {
        let size: usize = 64 << 20;
        let (ram, _, _) = guest_ram(u64::try_from(size).unwrap()).unwrap();
        let at = ram.as_mut_ptr() as usize;
        // An anonymous read-write mapping right below or above it (whichever is
        // free), like the window, which Linux would merge with plain RAM.
        let len = 4 << 20;
        let neighbour = [at - len, at + size].into_iter().find_map(|want| {
            // SAFETY: a fresh private anonymous mapping at a free address
            // (MAP_FIXED_NOREPLACE never replaces one), unmapped below.
            let p = unsafe {
                libc::mmap(
                    want as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED && p as usize != want {
                // SAFETY: a kernel without MAP_FIXED_NOREPLACE mapped it elsewhere.
                unsafe { libc::munmap(p, len) };
            }
            (p as usize == want).then_some(p)
        });
        let Some(neighbour) = neighbour else {
            panic!("no free address next to the guest RAM at {at:#x}");
        };
        let seen = own_mapping_size(at);
        // SAFETY: unmaps only the mapping made above.
        unsafe { libc::munmap(neighbour, len) };
        assert_eq!(seen, Some(u64::try_from(size).unwrap()));
    }

    /// The file `name` of the run's cached project kernel; skips (or fails
    /// where the run requires the kernel) when there is none.
    fn cached_kernel_file(name: &str) -> Option<std::path::PathBuf> {
        let found = test_skip::project_kernel_dir()
            .map(|d| d.join(name))
            .filter(|p| p.exists());
        if found.is_none() {
            test_skip::skip(Need::Kernel, &format!("no cached project {name}"));
        }
        found
    }

    #[test]
    fn a_cached_bzimage_loads_for_the_64bit_entry_with_its_buffer_reserved() {
        let Some(bz) = cached_kernel_file("bzImage") else {
            return;
        };
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 256 << 20)]).unwrap();
        let k = load_kernel(&mem, &bz).unwrap();
        let hdr = k.setup_header.expect("a bzImage has a setup header");
        assert!(k.entry.long_mode);
        assert_eq!(k.entry.entry, u64::from(hdr.code32_start) + 0x200);
        assert!(hdr.version >= 0x20c, "64-bit entry needs protocol 2.12+");
        assert_ne!(hdr.xloadflags & 1, 0, "XLF_KERNEL_64");
        assert!(k.end >= hdr.pref_address + u64::from(hdr.init_size));
        // The initramfs lands above the decompression buffer, or does not load.
        let dir = tempfile::tempdir().unwrap();
        let initrd = dir.path().join("initrd");
        std::fs::write(&initrd, vec![7u8; 1 << 20]).unwrap();
        let (gpa, size) = load_initrd(&mem, &initrd, 256 << 20, k.end, 0x7fff_ffff).unwrap();
        assert!(gpa >= k.end && gpa + size <= 256 << 20);
        std::fs::write(&initrd, vec![7u8; 40 << 20]).unwrap();
        let small = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
        let k = load_kernel(&small, &bz).unwrap();
        assert!(load_initrd(&small, &initrd, 64 << 20, k.end, 0x7fff_ffff).is_err());
    }

    #[test]
    fn loads_the_cached_vmlinux_through_its_pvh_note() {
        let Some(vmlinux) = cached_kernel_file("vmlinux") else {
            return;
        };
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 256 << 20)]).unwrap();
        let k = load_kernel(&mem, &vmlinux).unwrap();
        assert!(!k.entry.long_mode, "expected a PVH entry");
        assert!(k.entry.entry >= HIMEM_START && k.entry.entry < k.end);
        // Cross-check with the symbol table: the note points at pvh_start_xen.
        let bytes = std::fs::read(&vmlinux).unwrap();
        let elf = goblin::elf::Elf::parse(&bytes).unwrap();
        let sym = elf
            .syms
            .iter()
            .find(|s| elf.strtab.get_at(s.st_name) == Some("pvh_start_xen"))
            .expect("pvh_start_xen symbol");
        assert_eq!(sym.st_value - 0xffff_ffff_8000_0000, k.entry.entry);
    }
}
