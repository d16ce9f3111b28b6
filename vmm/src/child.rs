//! Child processes that die with this process, however it ends: a QEMU left
//! behind by a killed run keeps burning CPU and holding guest RAM.
//!
//! Linux's `PR_SET_PDEATHSIG` fires when the *thread* that forked the child
//! exits, not the process. So children are spawned from one thread that lives
//! as long as the process: a child started by a short-lived thread survives
//! that thread, and dies (SIGKILL) when the process does.
use std::io;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};

/// A command to spawn and where to send the result.
type Job = (Command, Sender<io::Result<Child>>);

/// Spawns `cmd` so that it is killed (SIGKILL) when this process exits, even
/// when it is killed with SIGKILL itself.
pub fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    die_with_parent(&mut cmd);
    let Some(spawner) = spawner() else {
        // No spawner thread: the child dies with the calling thread instead.
        return cmd.spawn();
    };
    let (tx, rx) = mpsc::channel();
    let gone = || io::Error::other("the child-spawner thread is gone");
    spawner.send((cmd, tx)).map_err(|_| gone())?;
    rx.recv().map_err(|_| gone())?
}

/// The long-lived thread that forks every tied child, if it could be started.
fn spawner() -> Option<&'static Sender<Job>> {
    static SPAWNER: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            // The sender lives in a static, so `rx` never disconnects and the
            // thread runs until the process exits.
            std::thread::Builder::new()
                .name("child-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .map_err(|e| eprintln!("warning: cannot start the child-spawner thread: {e}"))
                .ok()?;
            Some(tx)
        })
        .as_ref()
}

/// Asks the kernel to SIGKILL the child when the spawning thread exits.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let hook = move || {
        // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid are plain system calls,
        // async-signal-safe, and allocate nothing: fine between fork and exec.
        unsafe {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died before the prctl: nobody is left to kill us.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe system calls (see above).
    unsafe {
        cmd.pre_exec(hook);
    }
}
