//! The QEMU command line: machine, accelerator, topology, RAM files (one per
//! NUMA node), firmware, CPU model, and the kernel command line.
use std::path::Path;

use super::{Accel, BootTuning, Machine, QemuConfig, Window};

/// The kernel command line: console, exit, the ring window (reserved with
/// `memmap=`), the boot tuning, then the caller's arguments.
pub(super) fn kernel_cmdline(config: &QemuConfig, window: Window, tuning: &BootTuning) -> String {
    format!(
        "console=ttyS0 reboot=t panic=-1 memmap={}K${}K schedtape.ring={:#x},{:#x} {} {}",
        window.size >> 10,
        window.gpa >> 10,
        window.gpa,
        window.size,
        tuning.cmdline(),
        config.cmdline
    )
}

pub(super) fn qemu_args(
    config: &QemuConfig,
    ram: &[(&Path, u64)],
    qmp: &Path,
    window: Window,
    tuning: &BootTuning,
) -> Vec<String> {
    let smp = config.smp;
    let mem = config.memory_mib;
    let cmdline = kernel_cmdline(config, window, tuning);
    let machine = Machine::for_layout(&smp);
    let numa = smp.sockets > 1;
    let mut args: Vec<String> = vec![
        "-M".into(),
        if numa {
            machine.arg().to_string()
        } else {
            format!("{},memory-backend=ram0", machine.arg())
        },
        "-accel".into(),
        config.accel.name().into(),
        "-m".into(),
        format!("{mem}M"),
        "-smp".into(),
        format!(
            "cpus={},sockets={},dies={},cores={},threads={}",
            smp.cpus(),
            smp.sockets,
            smp.dies,
            smp.cores,
            smp.threads
        ),
        "-kernel".into(),
        config.kernel.display().to_string(),
        "-initrd".into(),
        config.initrd.display().to_string(),
        "-append".into(),
        cmdline,
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-serial".into(),
        "stdio".into(),
        "-no-reboot".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", qmp.display()),
    ];
    // One RAM file per node (socket); with several, each is a `-numa` node
    // with its socket's CPUs (QEMU then builds an SRAT).
    let per_node = smp.cpus() / smp.sockets.max(1);
    for (node, (path, size)) in (0u32..).zip(ram) {
        args.extend([
            "-object".into(),
            format!(
                "memory-backend-file,id=ram{node},size={size},mem-path={},share=on",
                path.display()
            ),
        ]);
        if numa {
            args.extend([
                "-numa".into(),
                format!(
                    "node,nodeid={node},cpus={}-{},memdev=ram{node}",
                    node * per_node,
                    (node + 1) * per_node - 1
                ),
            ]);
        }
    }
    if machine == Machine::Pc {
        // No PCI hotplug: drops the slot methods from the DSDT the guest's ACPI
        // interpreter would otherwise parse at boot.
        args.extend(
            [
                "-global",
                "PIIX4_PM.acpi-root-pci-hotplug=off",
                "-global",
                "PIIX4_PM.acpi-pci-hotplug-with-bridge-support=off",
            ]
            .map(String::from),
        );
    }
    if let Some(bios) = &tuning.bios {
        args.extend(["-bios".into(), bios.display().to_string()]);
    }
    if config.accel == Accel::Kvm {
        args.extend(["-cpu".into(), "host".into()]);
    } else {
        // TCG's `max` CPU says AMD family 15, for which Linux puts every die of
        // a package in one LLC; as Intel it reads LLC sharing from leaf 4 and
        // dies from leaf 0x1F, so each die is its own LLC as the topology asks.
        // (Same vendor for every topology, so runs compare. A kernel built with
        // CPU mitigations may enable PTI for this CPU where it would not for
        // AMD; the project kernel has none.)
        args.extend(["-cpu".into(), "max,vendor=GenuineIntel".into()]);
    }
    args
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::{SmpLayout, WINDOW_SIZE, test_config, window_for};
    use super::*;

    #[test]
    fn each_node_gets_its_ram_file_and_cpus() {
        let mut config = test_config(Accel::Tcg, None);
        config.smp = SmpLayout {
            sockets: 2,
            dies: 1,
            cores: 2,
            threads: 2,
        };
        let ram = [(Path::new("/r0"), 256 << 20), (Path::new("/r1"), 256 << 20)];
        let window = window_for(512 << 20, 0).unwrap();
        let args = qemu_args(
            &config,
            &ram,
            Path::new("q"),
            window,
            &BootTuning::for_config(&config),
        );
        let after = |flag: &str| -> Vec<&str> {
            args.windows(2)
                .filter(|w| w[0] == flag)
                .map(|w| w[1].as_str())
                .collect()
        };
        assert_eq!(after("-M"), ["pc"]);
        assert_eq!(
            after("-numa"),
            [
                "node,nodeid=0,cpus=0-3,memdev=ram0",
                "node,nodeid=1,cpus=4-7,memdev=ram1"
            ]
        );
        assert_eq!(
            after("-object"),
            [
                "memory-backend-file,id=ram0,size=268435456,mem-path=/r0,share=on",
                "memory-backend-file,id=ram1,size=268435456,mem-path=/r1,share=on",
            ]
        );
    }

    #[test]
    fn tuning_goes_on_the_command_line() {
        let tuning = BootTuning {
            bios: Some(PathBuf::from("/usr/share/qemu/qboot.rom")),
            tsc_khz: Some(2_596_099),
            lpj: Some(10_384_000),
            tsc_reliable: true,
            lapic_timer_hz: Some(1_000_000_000),
        };
        let window = Window {
            gpa: 0x1f80_0000,
            size: WINDOW_SIZE,
        };
        let args = qemu_args(
            &test_config(Accel::Tcg, Some(250)),
            &[(Path::new("/dev/shm/x.ram0"), 512 << 20)],
            Path::new("/dev/shm/x.qmp"),
            window,
            &tuning,
        );
        let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
        for arg in [
            "no_timer_check",
            "8250.nr_uarts=1",
            "tsc=reliable",
            "tsc_early_khz=2596099",
            "lpj=10384000",
            "lapic_timer_hz=1000000000",
        ] {
            assert!(
                append.split(' ').any(|a| a == arg),
                "{arg} missing: {append}"
            );
        }
        assert!(
            append.ends_with(" quiet"),
            "caller's arguments go last: {append}"
        );
        let bios = args.iter().position(|a| a == "-bios").unwrap();
        assert_eq!(args[bios + 1], "/usr/share/qemu/qboot.rom");

        let plain = BootTuning {
            bios: None,
            tsc_khz: None,
            lpj: None,
            tsc_reliable: false,
            lapic_timer_hz: None,
        };
        let args = qemu_args(
            &test_config(Accel::Kvm, None),
            &[(Path::new("r"), 512 << 20)],
            Path::new("q"),
            window,
            &plain,
        );
        assert!(!args.iter().any(|a| a == "-bios"));
        assert!(!args.iter().any(|a| a == "-numa"), "one node: no -numa");
        let m = &args[args.iter().position(|a| a == "-M").unwrap() + 1];
        assert!(
            m.starts_with("microvm,") && m.ends_with(",memory-backend=ram0"),
            "{m}"
        );
        assert!(
            !args
                .iter()
                .any(|a| a.contains("lpj=") || a.contains("tsc=") || a.contains("lapic_timer_hz="))
        );
    }
}
