//! What L1 boots and reads: its initramfs (busybox, the modules, `/init`, this
//! program with its libraries, a warm introspection cache) and two ext4 disks,
//! the lane's inputs (read-only) and an empty one for the results.
//!
//! Disks rather than a 9p share: Debian's cloud kernel has no `NET_9P`, but
//! ext4 and virtio-pci are built in and `virtio_blk` is one module; `mkfs.ext4
//! -d` fills an image and `debugfs` reads one back, both without root.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::checks::{Check, INPUTS, RESULTS};
use super::fetch::{Ingredients, MODULES};
use crate::initramfs::Initramfs;
use crate::kernel::KernelImage;

/// Prefix of the lines L1's `/init` prints for the host to follow.
pub const MARK: &str = "schedtape-nested:";

/// The files a lane needs on the host before L1 boots.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub kernel: &'a KernelImage,
    pub guest_init: PathBuf,
    /// schedtape-scx, when a check needs it.
    pub scheduler: Option<PathBuf>,
    pub workspace: PathBuf,
}

/// L1's initramfs as bytes.
pub fn l1_initramfs(
    ing: &Ingredients,
    checks: &[Check],
    work: &Path,
    full_vmlinux: &Path,
) -> Result<Vec<u8>> {
    let mut fs = l1_base(ing, &init_script(checks), work, &this_program())?;
    // The layout resolved here, once: from the full vmlinux's DWARF inside L1
    // under TCG it would cost minutes per boot.
    let cache = work.join("introspect");
    vmm::introspect::load(full_vmlinux, Some(&cache))
        .map_err(|e| anyhow::anyhow!("{}: {e}", full_vmlinux.display()))?;
    for entry in std::fs::read_dir(&cache)
        .context("introspection cache")?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        fs.add_file(
            &format!("root/.cache/schedtape/introspect/{name}"),
            std::fs::read(entry.path())
                .with_context(|| format!("cannot read {}", entry.path().display()))?,
            0o644,
        )?;
    }
    Ok(fs.to_bytes())
}

/// What every L1 initramfs holds: busybox, the KVM modules, `init` and
/// `program` (this program or a build of it; stripped, with its libraries)
/// as `/xtask`.
pub(super) fn l1_base(
    ing: &Ingredients,
    init: &str,
    work: &Path,
    program: &Path,
) -> Result<Initramfs> {
    let mut fs = Initramfs::new();
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    fs.add_file("bin/busybox", read(&ing.busybox)?, 0o755)?;
    for (name, path) in MODULES.iter().zip(&ing.modules) {
        fs.add_file(&format!("modules/{name}.ko"), read(path)?, 0o644)?;
    }
    fs.add_file("init", init.as_bytes().to_vec(), 0o755)?;
    let stripped = work.join("xtask");
    crate::kernel::image::strip_debug(program, &stripped)?;
    crate::stage::stage_binary(&mut fs, &stripped, "xtask")?;
    Ok(fs)
}

/// This program's file; /proc/self/exe still reads it when a rebuild
/// replaced the file.
pub(super) fn this_program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}

/// Shell lines that keep L1's kvm from live-patching its text while L2 VMs
/// come and go (see nested/hold.rs); shared by the lane and the bench.
pub fn hold_apic_keys() -> String {
    r#"/xtask nested hold-apic-keys >/tmp/hold.log 2>&1 &
n=0
until grep -q 'HELD' /tmp/hold.log; do
  n=$((n+1)); [ $n -gt 100 ] && { say "warning: no APIC-key holder: $(cat /tmp/hold.log)"; break; }
  sleep 0.1
done"#
        .replace("HELD", super::hold::HELD)
}

/// When L1's `/init` dumps a check's threads and kills it: well past the
/// slowest check (~25 s), and before the host gives up on L1 itself.
pub const STUCK_AFTER: std::time::Duration = std::time::Duration::from_secs(150);

/// `suspect_why PREFIX`: why a failed check (its `PREFIX.stderr` and
/// `.ktrace`) looks like the emulated SVM's doing rather than our VMM's, or
/// nothing. Two signatures, both seen in the lane while QEMU's TCG also
/// corrupted L1's own kernel stacks: L2 triple-faulting, and an L2 vCPU that
/// faults on one nested page fault over and over, inside L1's KVM where our
/// VMM never sees it, because its page tables point outside its RAM (a PTE
/// with bit 32 flipped: GPA 0x100e20ff8 in a 512 MiB guest).
const SUSPECT_WHY: &str = r#"suspect_why() {
  tf=$(grep -o 'vCPU [0-9]* triple-faulted' "$1.stderr" 2>/dev/null | head -n 1)
  [ -n "$tf" ] && { echo "$tf in L2"; return; }
  set -- $(tail -n 1000 "$1.ktrace" 2>/dev/null |
    grep -o 'vcpu [0-9]* reason npf rip 0x[0-9a-f]* info1 0x[0-9a-f]* info2 0x[0-9a-f]*' |
    sort | uniq -c | sort -rn | head -n 1)
  [ "${1:-0}" -ge 200 ] &&
    echo "L2's vCPU $3 hit the same nested page fault $1 times, looping inside L1's KVM (RIP $7, GPA ${11})"
}"#;

/// L1's `/init`: modules, `/dev/kvm`, the disks, each check, power off.
pub fn init_script(checks: &[Check]) -> String {
    let mut s = String::from(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root SCHEDTAPE_ROOT=/work
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /sys/fs/cgroup && mount -t tmpfs tmpfs /dev/shm && mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
say() { echo "MARK $*"; }
fail() { say "failed: $*"; sync; reboot -f; }
say "L1 up"
for m in MODULES; do insmod /modules/$m.ko || fail "insmod $m"; done
[ -c /dev/kvm ] || fail "no /dev/kvm after loading kvm_amd"
grep -q '^kvm_amd ' /proc/modules || fail "kvm_amd is not loaded"
mkdir -p INPUTS RESULTS
mount -o ro /dev/vda INPUTS || fail "cannot mount the inputs disk"
mount /dev/vdb RESULTS || fail "cannot mount the results disk"
HOLD_APIC_KEYS
[ -f INPUTS/schedtape-scx ] && export SCHEDTAPE_SCX=INPUTS/schedtape-scx
# This boot's checks (the host resumes a lane after L1 died), and one to crash L1 in.
checks=; crash=
for w in $(cat /proc/cmdline); do
  case $w in schedtape.checks=*) checks=${w#*=};; schedtape.crash=*) crash=${w#*=};; esac
done
# The workspace root: the inputs' fixtures, and a writable target/ in L1's RAM.
mkdir -p /work && ln -s INPUTS/tree/fixtures /work/fixtures
say "ready"
# KVM's exits and injections into L2, kept in L1's trace buffer: the last of
# them go to the results beside a failed check (what the vCPUs did before a
# triple fault or a hang, which L2's registers no longer show).
T=/sys/kernel/tracing
mount -t tracefs tracefs $T 2>/dev/null
for e in kvm_exit kvm_inj_exception kvm_inj_virq kvm_userspace_exit; do
  echo 1 >$T/events/kvm/$e/enable 2>/dev/null
done
# Where a stuck check's threads wait (kernel stacks), every CPU's backtrace and
# the blocked tasks, on the console; then the check is killed.
stuck() {
  say "check $1 stuck after STUCK s; its threads:"
  for t in /proc/$2/task/*; do
    say "  thread ${t##*/} $(cat $t/comm) state $(cut -d' ' -f3 $t/stat) wchan $(cat $t/wchan)"
    sed "s/^/MARK     /" $t/stack
  done
  echo l >/proc/sysrq-trigger; echo w >/proc/sysrq-trigger
  kill -9 $2
}
SUSPECT_WHY
run_check() {
  name=$1; shift
  [ -z "$checks" ] || case ",$checks," in *",$name,"*) ;; *) return;; esac
  say "check $name started"
  [ "$name" = "$crash" ] && { sleep 5; echo c >/proc/sysrq-trigger; } &
  echo >$T/trace 2>/dev/null
  /xtask "$@" >RESULTS/$name.stdout 2>RESULTS/$name.stderr &
  pid=$!
  ( sleep STUCK; [ -d /proc/$pid ] && stuck $name $pid ) &
  dog=$!
  wait $pid
  code=$?
  kill $dog 2>/dev/null
  [ $code = 0 ] || tail -n 3000 $T/trace >RESULTS/$name.ktrace 2>/dev/null
  # A failure with the emulator's signature: keep this attempt aside and let
  # the host run the check again on a fresh L1, as after L1's own death.
  why=$([ $code = 0 ] || suspect_why RESULTS/$name)
  if [ -n "$why" ]; then
    for f in stdout stderr trace ktrace; do
      [ -f RESULTS/$name.$f ] && mv RESULTS/$name.$f RESULTS/$name.suspect.$f
    done
    sync
    say "check $name suspect: $why"
    reboot -f
  fi
  echo $code >RESULTS/$name.code
  sync
  say "check $name ended $code"
}
"#,
    )
    .replace("SUSPECT_WHY", SUSPECT_WHY)
    .replace("HOLD_APIC_KEYS", &hold_apic_keys())
    .replace("MARK", MARK)
    .replace("MODULES", &MODULES.join(" "))
    .replace("INPUTS", INPUTS)
    .replace("RESULTS", RESULTS)
    .replace("HELD", super::hold::HELD)
    .replace("STUCK", &STUCK_AFTER.as_secs().to_string());
    for c in checks {
        let argv: Vec<String> = c.argv().iter().map(|a| quote(a)).collect();
        let _ = writeln!(s, "run_check {} {}", quote(c.name), argv.join(" "));
    }
    let _ = writeln!(s, "umount {RESULTS}\nsync\nsay done\nreboot -f");
    s
}

/// Single-quotes `arg` for sh.
fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// Fills `dir` with the inputs L1 mounts, and makes `image` (ext4) of it.
pub fn inputs_disk(inputs: &Inputs<'_>, dir: &Path, image: &Path) -> Result<()> {
    let k = inputs.kernel;
    let kdir = dir.join("kernel");
    std::fs::create_dir_all(&kdir)?;
    let bz = k
        .bzimage
        .as_ref()
        .context("the project kernel has no bzImage")?;
    let full = k
        .vmlinux
        .as_ref()
        .context("the project kernel has no vmlinux")?;
    link(bz, &kdir.join("bzImage"))?;
    // What boots through PVH (without debug info); symbols come from the full one.
    link(k.pvh_image.as_ref().unwrap_or(full), &kdir.join("vmlinux"))?;
    if let crate::kernel::ConfigSource::File(config) = &k.config {
        link(config, &kdir.join(".config"))?;
    }
    link(full, &dir.join("vmlinux"))?;
    link(&inputs.guest_init, &dir.join("schedtape-init"))?;
    if let Some(s) = &inputs.scheduler {
        link(s, &dir.join("schedtape-scx"))?;
    }
    for sub in [
        "fixtures/scenarios",
        "fixtures/kernel",
        "fixtures/thresholds",
    ] {
        copy_tree(&inputs.workspace.join(sub), &dir.join("tree").join(sub))?;
    }
    let inits = dir.join("inits");
    std::fs::create_dir_all(&inits)?;
    std::fs::write(inits.join("not-an-elf"), b"this is not a program\n")?;
    write_executable(&inits.join("hang"), &vmm::test_init::hanging())?;
    let mib = crate::dir_bytes(dir) / (1 << 20) * 5 / 4 + 64;
    mkfs(image, &format!("{mib}M"), Some(dir))
}

/// An empty ext4 image for the results.
pub fn results_disk(image: &Path) -> Result<()> {
    mkfs(image, "1G", None)
}

pub(super) fn mkfs(image: &Path, size: &str, from: Option<&Path>) -> Result<()> {
    let _ = std::fs::remove_file(image);
    let mut cmd = Command::new("mkfs.ext4");
    cmd.args(["-q", "-F", "-E", "root_owner=0:0"]);
    if let Some(dir) = from {
        cmd.arg("-d").arg(dir);
    }
    let out = cmd
        .arg(image)
        .arg(size)
        .output()
        .context("cannot run mkfs.ext4 (install e2fsprogs)")?;
    if !out.status.success() {
        bail!(
            "mkfs.ext4 {} failed: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Copies every file of the results image into `out` (with `debugfs`, no mount).
pub fn read_results(image: &Path, out: &Path) -> Result<()> {
    let listing = Command::new("debugfs")
        .args(["-R", "ls -p /"])
        .arg(image)
        .output()
        .context("cannot run debugfs (install e2fsprogs)")?;
    // `ls -p` lines: /inode/mode/uid/gid/name/size/
    for line in String::from_utf8_lossy(&listing.stdout).lines() {
        let fields: Vec<&str> = line.split('/').collect();
        let (Some(mode), Some(name)) = (fields.get(2), fields.get(5)) else {
            continue;
        };
        if !mode.starts_with("100") || name.is_empty() {
            continue;
        }
        let to = out.join(name);
        let status = Command::new("debugfs")
            .arg("-R")
            .arg(format!("dump /{name} {}", to.display()))
            .arg(image)
            .output()
            .context("cannot run debugfs")?;
        if !status.status.success() || !to.is_file() {
            bail!("debugfs could not copy {name} out of {}", image.display());
        }
    }
    Ok(())
}

/// Hard-links `from` at `to`, copying across file systems.
fn link(from: &Path, to: &Path) -> Result<()> {
    let _ = std::fs::remove_file(to);
    std::fs::hard_link(from, to)
        .or_else(|_| std::fs::copy(from, to).map(drop))
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))?
    {
        let entry = entry?;
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()))?;
        } else {
            std::fs::copy(&path, to.join(entry.file_name()))
                .with_context(|| format!("cannot copy {}", path.display()))?;
        }
    }
    Ok(())
}

fn write_executable(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_runs_each_check_and_powers_off() {
        let checks = super::super::checks::select(&["smoke".into()]).unwrap();
        let s = init_script(&checks);
        assert!(s.contains("insmod /modules/$m.ko"), "{s}");
        assert!(
            s.contains("for m in irqbypass kvm kvm-amd virtio_blk;"),
            "{s}"
        );
        assert!(
            s.contains("run_check 'smoke' 'run' 'scenario' 'smoke' '--backend' 'kvm'"),
            "{s}"
        );
        assert!(s.contains(&format!("echo \"{MARK} $*\"")), "{s}");
        assert!(s.trim_end().ends_with("reboot -f"), "{s}");
        // The APIC-key holder is up before the first check, and each boot
        // runs only the checks its command line names.
        let hold = s.find("/xtask nested hold-apic-keys").expect("holder");
        assert!(hold < s.find("run_check 'smoke'").unwrap(), "{s}");
        assert!(s.contains("until grep -q 'apic keys held'"), "{s}");
        assert!(s.contains("schedtape.checks=*) checks=${w#*=}"), "{s}");
        assert!(s.contains(r#"case ",$checks," in *",$name,"*) ;; *) return;; esac"#));
        assert_eq!(quote("it's"), r"'it'\''s'");
        // A stuck check is dumped and killed by L1, and a failed one leaves
        // L1's KVM trace beside its results.
        assert!(s.contains("( sleep 150; [ -d /proc/$pid ] && stuck $name $pid ) &"));
        assert!(
            s.contains("tail -n 3000 $T/trace >/results/$name.ktrace"),
            "{s}"
        );
        assert!(
            s.contains("why=$([ $code = 0 ] || suspect_why /results/$name)"),
            "{s}"
        );
        let syntax = Command::new("sh").args(["-n", "-c", &s]).output().unwrap();
        assert!(syntax.status.success(), "{syntax:?}");
    }

    /// Runs `suspect_why` on a check's files written into a temp dir.
    fn suspect_why(stderr: &str, ktrace: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.stderr"), stderr).unwrap();
        std::fs::write(dir.path().join("c.ktrace"), ktrace).unwrap();
        let script = format!("{SUSPECT_WHY}\nsuspect_why {}/c", dir.path().display());
        let out = Command::new("sh").args(["-c", &script]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn emulator_signatures_make_a_failed_check_suspect_and_others_do_not() {
        assert_eq!(
            suspect_why("x\nrun ended: vCPU 1 triple-faulted (RIP 0xfff0)\n", ""),
            "vCPU 1 triple-faulted in L2"
        );
        let npf = "  vcpu3-240 [001] d..1. 114.48: kvm_exit: vcpu 3 reason npf rip \
                   0xffffffffc04125c0 info1 0x000000020000000e info2 0x0000000100e20ff8 \
                   intr_info 0x80000b0e error_code 0x00000010\n  vcpu3-240 [001] ..... \
                   114.49: kvm_inj_exception: #PF (0x10)\n";
        assert_eq!(
            suspect_why("watchdog", &npf.repeat(250)),
            "L2's vCPU 3 hit the same nested page fault 250 times, looping inside L1's KVM \
             (RIP 0xffffffffc04125c0, GPA 0x0000000100e20ff8)"
        );
        // A few such exits are ordinary; a plain failure is our VMM's to answer for.
        assert_eq!(suspect_why("watchdog", &npf.repeat(20)), "");
        assert_eq!(suspect_why("a verdict failed", ""), "");
    }

    #[test]
    fn results_come_back_from_an_ext4_image() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("smoke.code"), "0\n").unwrap();
        let img = dir.path().join("r.img");
        mkfs(&img, "8M", Some(&src)).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        read_results(&img, &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("smoke.code")).unwrap(),
            "0\n"
        );
    }
}
