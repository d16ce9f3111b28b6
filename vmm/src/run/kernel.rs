//! The recorder's kernel side: periodic and watchpoint snapshots, and the
//! guest's requests for kernel reads and writes, served from the host's
//! introspection (cold writes batched into one freeze).
use super::*;

impl<V: Vm> Session<V> {
    pub(super) fn periodic_snapshot<S: trace_format::file::Sink>(
        &mut self,
        writer: &mut TraceWriter<S>,
    ) -> Result<(), WriteError> {
        let Some(due) = self.next_snapshot else {
            return Ok(());
        };
        let now = Instant::now();
        if now < due {
            return Ok(());
        }
        // Skip missed ticks rather than bursting after a stall.
        let mut next = due + self.snapshot_interval;
        if next <= now {
            next = now + self.snapshot_interval;
        }
        self.next_snapshot = Some(next);
        let ts = self.host_ts();
        match self.live.snapshot(&mut self.vm, SnapshotTrigger::Periodic) {
            Ok(s) => writer.append(ts, &Record::Snapshot(s)),
            Err(e) if !self.snapshot_failed => {
                self.snapshot_failed = true;
                self.note(writer, &format!("periodic snapshot failed: {e}"))
            }
            Err(_) => Ok(()),
        }
    }

    /// Serves a guest request; cold writes are queued to share one freeze.
    pub(super) fn request<S: trace_format::file::Sink>(
        &mut self,
        writer: &mut TraceWriter<S>,
        id: u32,
        request: HostRequest,
    ) -> Result<(), WriteError> {
        match request {
            HostRequest::Snapshot { step, op } => {
                let ts = self.host_ts();
                let trigger = SnapshotTrigger::Op { step, op };
                let result = match self.live.snapshot(&mut self.vm, trigger) {
                    Ok(s) => {
                        writer.append(ts, &Record::Snapshot(s))?;
                        Ok(0)
                    }
                    Err(e) => Err(e),
                };
                self.send(&HostMsg::Reply { id, result });
            }
            HostRequest::KernelAccess {
                step,
                op,
                kind,
                symbol,
                cpu,
                width,
                value,
            } => {
                let access = Access {
                    kind,
                    target: symbol,
                    cpu,
                    width,
                    value,
                };
                if kind == AccessKind::WriteCold {
                    self.cold_writes.push((id, step, op, access));
                } else {
                    let result = self
                        .live
                        .access(&mut self.vm, std::slice::from_ref(&access));
                    let result = result.into_iter().next().unwrap_or(Err("no result".into()));
                    self.access_done(writer, id, step, op, access, result)?;
                }
            }
            HostRequest::Watch { step, op, symbol } => {
                let result = self.watch(step, op, &symbol);
                self.send(&HostMsg::Reply { id, result });
            }
        }
        Ok(())
    }

    /// Registers a write watchpoint on a kernel symbol; replies with its id.
    pub(super) fn watch(&mut self, step: StepRef, op: u16, symbol: &str) -> Result<u64, String> {
        let kernel = self
            .live
            .kernel()
            .ok_or("kernel introspection is unavailable in this run")?;
        let gva = kernel.symbol_addr(symbol, None)?;
        if gva % 4 != 0 {
            return Err(format!("{symbol} at {gva:#x} is not 4-byte aligned"));
        }
        let id = self.vm.watch(gva).map_err(|e| e.to_string())?;
        self.watches.push((id, step, op));
        Ok(u64::from(id.0))
    }

    /// One snapshot per watch that fired since the last poll.
    pub(super) fn watch_snapshots<S: trace_format::file::Sink>(
        &mut self,
        writer: &mut TraceWriter<S>,
    ) -> Result<(), WriteError> {
        if self.watches.is_empty() {
            return Ok(());
        }
        self.watch_hits.clear();
        self.vm.poll_watch_hits(&mut self.watch_hits);
        let mut fired: Vec<(StepRef, u16)> = Vec::new();
        for hit in &self.watch_hits {
            if let Some(&(_, step, op)) = self.watches.iter().find(|(id, ..)| *id == hit.id)
                && !fired.contains(&(step, op))
            {
                fired.push((step, op));
            }
        }
        for (step, op) in fired {
            let ts = self.host_ts();
            if let Ok(s) = self
                .live
                .snapshot(&mut self.vm, SnapshotTrigger::Op { step, op })
            {
                writer.append(ts, &Record::Snapshot(s))?;
            }
        }
        Ok(())
    }

    /// Applies queued cold writes inside one freeze and answers each.
    pub(super) fn flush_cold_writes<S: trace_format::file::Sink>(
        &mut self,
        writer: &mut TraceWriter<S>,
    ) -> Result<(), WriteError> {
        if self.cold_writes.is_empty() {
            return Ok(());
        }
        let queued = std::mem::take(&mut self.cold_writes);
        let batch: Vec<Access> = queued.iter().map(|(.., a)| a.clone()).collect();
        let results = self.live.access(&mut self.vm, &batch);
        for ((id, step, op, access), result) in queued.into_iter().zip(results) {
            self.access_done(writer, id, step, op, access, result)?;
        }
        Ok(())
    }

    pub(super) fn access_done<S: trace_format::file::Sink>(
        &mut self,
        writer: &mut TraceWriter<S>,
        id: u32,
        step: StepRef,
        op: u16,
        access: Access,
        result: Result<u64, String>,
    ) -> Result<(), WriteError> {
        let record = Record::KernelAccess(KernelAccess {
            step,
            op,
            kind: access.kind,
            symbol: access.target,
            cpu: access.cpu,
            width: access.width,
            value: result.as_ref().map_or(access.value, |v| *v),
            error: result.as_ref().err().cloned(),
        });
        writer.append(self.host_ts(), &record)?;
        self.send(&HostMsg::Reply { id, result });
        Ok(())
    }
}
