//! Introspection of a running VM: attaching to its kernel, snapshots under a
//! freeze, and kernel variable accesses (hot: live; cold: inside a freeze).
use std::sync::Arc;
use std::time::Duration;

use trace_format::record::{AccessKind, CpuRow, Snapshot, SnapshotTrigger};

use super::layout::Layout;
use super::snapshot::{read_rows, read_target, write_target};
use super::translate::{AttachError, Kernel};
use crate::backend::Vm;

/// One kernel variable access requested by the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub kind: AccessKind,
    /// `symbol` or `symbol+offset`.
    pub target: String,
    pub cpu: Option<u16>,
    pub width: u8,
    /// The value to write (ignored for reads).
    pub value: u64,
}

/// Where attaching to the kernel stands.
#[derive(Debug)]
enum State {
    /// Not tried yet (or failed transiently).
    Pending {
        layout: Arc<Layout>,
        tries: u32,
    },
    Ready(Box<Kernel>),
    /// Gave up; the reason is the error every request gets.
    Failed(String),
}

/// Introspection of one running VM.
#[derive(Debug)]
pub struct Live {
    state: State,
    rows: Vec<CpuRow>,
}

/// Attach attempts before introspection is given up for the run.
const MAX_TRIES: u32 = 3;

impl Live {
    /// Introspection with `layout`, or disabled with `reason`.
    pub fn new(layout: Result<Arc<Layout>, String>) -> Self {
        let state = match layout {
            Ok(layout) => State::Pending { layout, tries: 0 },
            Err(why) => State::Failed(why),
        };
        Live {
            state,
            rows: Vec::new(),
        }
    }

    /// The attached kernel, if any.
    pub fn kernel(&self) -> Option<&Kernel> {
        match &self.state {
            State::Ready(k) => Some(k),
            _ => None,
        }
    }

    /// True when snapshots can be taken (attached, and the layout has `struct rq`).
    pub fn can_snapshot(&self) -> bool {
        self.kernel()
            .is_some_and(|k| k.layout().snapshots_off.is_none())
    }

    /// Finds the kernel in guest memory (once). A wrong vmlinux is an `Err`
    /// the caller must treat as fatal; other failures disable introspection.
    pub fn attach<V: Vm + ?Sized>(&mut self, vm: &mut V) -> Result<(), AttachError> {
        let State::Pending { layout, tries } = &mut self.state else {
            return Ok(());
        };
        *tries += 1;
        let tries = *tries;
        let layout = Arc::clone(layout);
        let Some(mem) = vm.guest_memory() else {
            self.state = State::Failed("this backend does not share guest memory".into());
            return Ok(());
        };
        let cr3 = match vm.cr3(0) {
            Ok(c) => c,
            Err(e) => {
                self.give_up_after(tries, format!("cannot read CR3: {e}"));
                return Ok(());
            }
        };
        match Kernel::attach(layout, mem, cr3) {
            Ok(k) => self.state = State::Ready(Box::new(k)),
            Err(e @ AttachError::WrongVmlinux { .. }) => {
                self.state = State::Failed(e.to_string());
                return Err(e);
            }
            Err(e) => self.give_up_after(tries, e.to_string()),
        }
        Ok(())
    }

    fn give_up_after(&mut self, tries: u32, why: String) {
        if tries >= MAX_TRIES {
            self.state = State::Failed(why);
        }
    }

    fn ready<V: Vm + ?Sized>(&mut self, vm: &mut V) -> Result<&Kernel, String> {
        if matches!(self.state, State::Pending { .. }) {
            self.attach(vm).map_err(|e| e.to_string())?;
        }
        match &self.state {
            State::Ready(k) => Ok(k),
            State::Failed(why) => Err(format!("kernel introspection is unavailable: {why}")),
            State::Pending { .. } => Err("the kernel was not found in guest memory yet".into()),
        }
    }

    /// Freezes, reads every CPU's run queue, thaws.
    pub fn snapshot<V: Vm + ?Sized>(
        &mut self,
        vm: &mut V,
        trigger: SnapshotTrigger,
    ) -> Result<Snapshot, String> {
        let k = self.ready(vm)?;
        if let Some(why) = &k.layout().snapshots_off {
            return Err(format!("run-queue snapshots are off: {why}"));
        }
        let k = k.clone();
        let rendezvous = vm.freeze().map_err(|e| format!("freeze failed: {e}"))?;
        let read = read_rows(&k, &mut self.rows);
        let frozen = vm.thaw().map_err(|e| format!("thaw failed: {e}"))?;
        let fields = read?;
        Ok(Snapshot {
            trigger,
            rendezvous_ns: nanos(rendezvous),
            frozen_ns: nanos(frozen),
            fields,
            rows: self.rows.clone(),
        })
    }

    /// Applies `batch` in order; all cold accesses share one freeze. Returns
    /// one result per access: the value read, or the value written.
    pub fn access<V: Vm + ?Sized>(
        &mut self,
        vm: &mut V,
        batch: &[Access],
    ) -> Vec<Result<u64, String>> {
        let k = match self.ready(vm) {
            Ok(k) => k.clone(),
            Err(e) => return vec![Err(e); batch.len()],
        };
        let cold = batch
            .iter()
            .any(|a| matches!(a.kind, AccessKind::ReadCold | AccessKind::WriteCold));
        let frozen = if cold {
            match vm.freeze() {
                Ok(_) => true,
                Err(e) => return vec![Err(format!("freeze failed: {e}")); batch.len()],
            }
        } else {
            false
        };
        let results = batch.iter().map(|a| apply(&k, a)).collect();
        if frozen && let Err(e) = vm.thaw() {
            return vec![Err(format!("thaw failed: {e}")); batch.len()];
        }
        results
    }
}

fn apply(k: &Kernel, a: &Access) -> Result<u64, String> {
    let cpu = a.cpu.map(u32::from);
    match a.kind {
        AccessKind::ReadHot | AccessKind::ReadCold => read_target(k, &a.target, cpu, a.width),
        AccessKind::WriteHot | AccessKind::WriteCold => {
            write_target(k, &a.target, cpu, a.width, a.value).map(|()| a.value)
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
