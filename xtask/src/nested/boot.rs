//! Boots L1 under QEMU TCG (`-cpu max`: AMD with SVM and NPT), streams its
//! console to a log, follows `/init`'s marks as progress lines, and kills it
//! at the deadline. QEMU is tied to this process: it dies with us.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::root::MARK;

/// What L1 needs from the host.
#[derive(Debug)]
pub struct Boot {
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
    pub inputs_disk: PathBuf,
    pub results_disk: PathBuf,
    pub console_log: PathBuf,
    pub timeout: Duration,
    /// The checks this boot runs (the rest of the lane after L1 died).
    pub checks: Vec<String>,
    /// A check to crash L1 in (sysrq), to exercise resuming the lane.
    pub crash: Option<String>,
}

/// How L1 ended, and which checks it ran to their end.
#[derive(Debug)]
pub struct Outcome {
    pub ending: Ending,
    pub ended: Vec<String>,
    /// The check that had started and not ended when L1 ended.
    pub running: Option<String>,
}

/// How L1 ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// `/init` ran every check and powered off.
    Done,
    /// `/init` said why it gave up (no /dev/kvm, a disk that did not mount…).
    Failed(String),
    /// Killed at the deadline.
    TimedOut,
    /// QEMU exited before `/init` said it was done.
    Exited(String),
    /// The running check did not end within [`CHECK_LIMIT`]: L1 was killed
    /// (a hung L1 or L2 costs one check, which the lane retries).
    CheckHung(Duration),
}

/// How long one check may run in L1 (they take 8–25 s there; minutes mean
/// L1 or the guest under it hangs).
pub const CHECK_LIMIT: Duration = Duration::from_secs(240);
// L1 reports and kills a stuck check itself while it can; the host's limit is
// for an L1 that cannot.
const _: () = assert!(super::root::STUCK_AFTER.as_secs() + 30 < CHECK_LIMIT.as_secs());

/// L1's QEMU command line.
pub fn command(b: &Boot) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    // Multi-threaded TCG: with `thread=single` the lane's checks ran 7x
    // slower (smoke 69 s against 10 s) and hit their watchdogs.
    cmd.args([
        "-accel", "tcg", "-cpu", "max", "-machine", "q35", "-smp", "2",
    ])
    .args([
        "-m",
        "6144",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
    ])
    .args(["-serial", "stdio", "-monitor", "none", "-no-reboot"])
    // How an L1 that resets itself died (QEMU logs "Triple fault" and the
    // CPU's state at each reset); its console says nothing then.
    .args(["-d", "cpu_reset,guest_errors", "-D"])
    .arg(qemu_log(&b.console_log))
    .arg("-kernel")
    .arg(&b.vmlinuz)
    .arg("-initrd")
    .arg(&b.initrd)
    .arg("-append")
    .arg(cmdline(b))
    .arg("-drive")
    .arg(drive(&b.inputs_disk, "inputs", true))
    .arg("-drive")
    .arg(drive(&b.results_disk, "results", false))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// Where QEMU's own log of L1 goes: beside its console log.
pub fn qemu_log(console_log: &Path) -> PathBuf {
    console_log.with_extension("qemu.log")
}

/// What QEMU's log says about how L1 died: a triple fault (with the RIP of
/// the first CPU state QEMU dumped after it), or `None`.
pub fn triple_fault(qemu_log: &str) -> Option<String> {
    let at = qemu_log.rfind("Triple fault")?;
    let rip = qemu_log[at..]
        .lines()
        .find_map(|l| l.strip_prefix("RIP="))
        .and_then(|r| r.split_whitespace().next());
    Some(match rip {
        Some(rip) => format!("L1 triple-faulted (QEMU's log; a CPU at RIP {rip})"),
        None => "L1 triple-faulted (QEMU's log)".to_string(),
    })
}

/// L1's kernel command line: an oops ends L1 at once (`oops=panic`, and
/// `panic=-1` with QEMU's `-no-reboot`), so does a CPU stuck in the kernel
/// (`softlockup_panic`: seen on our VMM's vCPU thread inside L1's KVM, which
/// otherwise wedged L1 until the host's limit), with every backtrace on the
/// console (`loglevel=7`); `/init` reads its checks here.
fn cmdline(b: &Boot) -> String {
    let mut line = format!(
        "console=ttyS0 panic=-1 oops=panic softlockup_panic=1 loglevel=7 rdinit=/init schedtape.checks={}",
        b.checks.join(",")
    );
    if let Some(c) = &b.crash {
        line.push_str(&format!(" schedtape.crash={c}"));
    }
    line
}

fn drive(path: &Path, id: &str, readonly: bool) -> String {
    let ro = if readonly { ",readonly=on" } else { "" };
    format!("file={},format=raw,if=virtio,id={id}{ro}", path.display())
}

/// Boots L1 and follows it to its end.
pub fn run(b: &Boot) -> Result<Outcome> {
    let mut child = vmm::child::spawn_tied(command(b))
        .context("cannot start qemu-system-x86_64 (install qemu-system-x86)")?;
    let mut log = std::fs::File::create(&b.console_log)
        .with_context(|| format!("cannot create {}", b.console_log.display()))?;
    let (tx, lines) = mpsc::channel();
    let streams: [Box<dyn std::io::Read + Send>; 2] = [
        Box::new(child.stdout.take().context("QEMU's stdout")?),
        Box::new(child.stderr.take().context("QEMU's stderr")?),
    ];
    for stream in streams {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                if tx.send(text).is_err() {
                    break;
                }
                line.clear();
            }
        });
    }
    drop(tx);
    let start = Instant::now();
    let deadline = start + b.timeout;
    let mut follow = Follow::new(b.checks.len(), start);
    let mut ending = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(hung) = follow.hung(CHECK_LIMIT) {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "nested: check {} did not end within {} s; L1 killed",
                follow.running.as_deref().unwrap_or("?"),
                hung.as_secs()
            );
            return Ok(follow.outcome(Ending::CheckHung(hung)));
        }
        match lines.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(line) => {
                let _ = writeln!(log, "{line}");
                if let Some(e) = follow.line(&line) {
                    ending = Some(e);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().context("waiting for QEMU")?;
                let ending = ending.unwrap_or(Ending::Exited(status.to_string()));
                return Ok(follow.outcome(ending));
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "nested: L1 killed at its {} s deadline",
        b.timeout.as_secs()
    );
    Ok(follow.outcome(Ending::TimedOut))
}

/// Turns `/init`'s marks into progress lines on stderr.
#[derive(Debug)]
struct Follow {
    checks: usize,
    started: usize,
    running: Option<String>,
    ended: Vec<String>,
    boot: Instant,
    check_start: Instant,
}

impl Follow {
    fn new(checks: usize, boot: Instant) -> Follow {
        Follow {
            checks,
            started: 0,
            running: None,
            ended: Vec::new(),
            boot,
            check_start: boot,
        }
    }

    fn outcome(self, ending: Ending) -> Outcome {
        Outcome {
            ending,
            ended: self.ended,
            running: self.running,
        }
    }

    /// How long the running check has run, once that exceeds `limit`.
    fn hung(&self, limit: Duration) -> Option<Duration> {
        let ran = self.check_start.elapsed();
        (self.running.is_some() && ran > limit).then_some(ran)
    }

    /// The ending a mark announces, if any.
    fn line(&mut self, line: &str) -> Option<Ending> {
        let mark = line.split_once(MARK)?.1.trim();
        let secs = |since: Instant| since.elapsed().as_secs_f64();
        if mark == "L1 up" {
            eprintln!("nested: L1 booted to /init after {:.1} s", secs(self.boot));
        } else if mark == "ready" {
            eprintln!(
                "nested: kvm_amd loaded, disks mounted after {:.1} s",
                secs(self.boot)
            );
        } else if let Some(name) = mark
            .strip_prefix("check ")
            .and_then(|r| r.strip_suffix(" started"))
        {
            self.started += 1;
            self.running = Some(name.to_string());
            self.check_start = Instant::now();
            eprintln!(
                "nested: check {} of {} ({name}) started",
                self.started, self.checks
            );
        } else if let Some(rest) = mark.strip_prefix("check ") {
            if let Some((name, why)) = rest.split_once(" suspect: ") {
                eprintln!("nested: check {name}: {why}");
            } else if let Some((name, _)) = rest.split_once(" stuck after ") {
                eprintln!(
                    "nested: L1 says check {name} is stuck: its threads and L1's CPUs are in \
                     the console log, and L1 kills it"
                );
            } else if let Some((name, code)) = rest.split_once(" ended ") {
                self.running = None;
                self.ended.push(name.to_string());
                eprintln!(
                    "nested: check {} of {} ({name}) ended with exit code {code} after {:.1} s",
                    self.started,
                    self.checks,
                    secs(self.check_start)
                );
            }
        } else if mark == "done" {
            eprintln!("nested: L1 ran every check in {:.1} s", secs(self.boot));
            return Some(Ending::Done);
        } else if let Some(warning) = mark.strip_prefix("warning: ") {
            eprintln!("nested: L1 warns: {warning}");
        } else if let Some(why) = mark.strip_prefix("failed: ") {
            eprintln!("nested: L1 gave up: {why}");
            return Some(Ending::Failed(why.to_string()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_running_past_the_limit_is_hung() {
        let long_ago = Instant::now() - Duration::from_secs(300);
        let mut f = Follow::new(2, long_ago);
        assert_eq!(f.hung(CHECK_LIMIT), None, "no check running yet");
        f.line(&format!("{MARK} check smoke started"));
        assert_eq!(f.hung(CHECK_LIMIT), None, "just started");
        f.check_start = long_ago;
        assert!(
            f.hung(CHECK_LIMIT)
                .is_some_and(|d| d >= Duration::from_secs(300))
        );
        f.line(&format!("{MARK} check smoke ended 0"));
        assert_eq!(f.hung(CHECK_LIMIT), None, "between checks");
    }

    #[test]
    fn marks_end_the_lane_and_other_lines_do_not() {
        let mut f = Follow::new(2, Instant::now());
        assert_eq!(f.line("[    1.0] random kernel line"), None);
        assert_eq!(f.line(&format!("{MARK} L1 up")), None);
        assert_eq!(f.line(&format!("{MARK} check smoke started")), None);
        assert_eq!(f.started, 1);
        assert_eq!(f.running.as_deref(), Some("smoke"));
        assert_eq!(f.line(&format!("{MARK} check smoke ended 0")), None);
        assert_eq!(
            (f.running.as_deref(), &f.ended[..]),
            (None, &["smoke".to_string()][..])
        );
        assert_eq!(f.line(&format!("{MARK} check hang started")), None);
        let o = f.outcome(Ending::Exited("signal: 9".into()));
        assert_eq!((o.running.as_deref(), o.ended.len()), (Some("hang"), 1));
        let mut f = Follow::new(2, Instant::now());
        assert_eq!(
            f.line(&format!("{MARK} failed: no /dev/kvm")),
            Some(Ending::Failed("no /dev/kvm".into()))
        );
        assert_eq!(f.line(&format!("junk {MARK} done")), Some(Ending::Done));
    }

    #[test]
    fn qemu_log_tells_a_triple_fault() {
        assert_eq!(
            triple_fault("CPU Reset (CPU 0)\nRAX=0\nRIP=fff0 RFL=2\n"),
            None
        );
        let log = "CPU Reset (CPU 0)\nRIP=0000fff0 x\nTriple fault\nCPU Reset (CPU 0)\n\
                   RAX=1 RBX=2\nRIP=ffffffff81234567 RFL=00000046 [---Z-P-] CPL=0\n";
        assert_eq!(
            triple_fault(log).as_deref(),
            Some("L1 triple-faulted (QEMU's log; a CPU at RIP ffffffff81234567)")
        );
        assert_eq!(
            triple_fault("Triple fault\n").as_deref(),
            Some("L1 triple-faulted (QEMU's log)")
        );
    }

    #[test]
    fn l1_is_an_emulated_amd_with_both_disks() {
        let b = Boot {
            vmlinuz: "/k".into(),
            initrd: "/i".into(),
            inputs_disk: "/in.img".into(),
            results_disk: "/out.img".into(),
            console_log: "/log".into(),
            timeout: Duration::from_secs(1),
            checks: vec!["smoke".into(), "hang".into()],
            crash: Some("hang".into()),
        };
        let cmd = command(&b);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(
            joined.contains("-accel tcg -cpu max -machine q35"),
            "{joined}"
        );
        assert!(joined.contains("-no-reboot"), "{joined}");
        assert!(
            joined.contains("-d cpu_reset,guest_errors -D /log.qemu.log"),
            "{joined}"
        );
        assert!(
            joined.contains("panic=-1 oops=panic softlockup_panic=1 loglevel=7 rdinit=/init schedtape.checks=smoke,hang schedtape.crash=hang -drive"),
            "{joined}"
        );
        assert!(joined.contains("file=/in.img,format=raw,if=virtio,id=inputs,readonly=on"));
        assert!(
            joined.ends_with("file=/out.img,format=raw,if=virtio,id=results"),
            "{joined}"
        );
    }
}
