// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * schedtape_fifo: a global FIFO sched_ext scheduler for tests.
 *
 * A waking task whose CPU is idle goes straight to that CPU's local queue;
 * every other task joins one shared FIFO queue that each CPU consumes from
 * when it runs dry. The loader can set `stall`, after which nothing more is
 * dispatched, so the kernel's watchdog ejects the scheduler. On exit the
 * kernel's exit info (kind, reason, message, debug dump) is kept in `.bss`
 * for the loader to print.
 */
#include "scx.h"

char _license[] SEC("license") = "Dual MIT/GPL";

#define SHARED_DSQ 0
#define DUMP_LEN 16384
#define TEXT_LEN 1024

/* Counter indices; the loader names them in the same order. */
enum stat {
	STAT_ENQUEUED,
	STAT_DISPATCHED,
	STAT_DIRECT,
	STAT_FALLBACKS,
	NR_STATS,
};

const volatile u64 slice_ns = SCX_SLICE_DFL;
/* Set by the loader (--fail-init): ops.init raises an error. */
const volatile bool fail_init;

/* Written by the loader at run time. */
volatile bool stall;

/* Filled by fifo_exit. */
volatile bool exited;
s32 exit_kind;
s64 exit_code;
char exit_reason[TEXT_LEN] __attribute__((aligned(8)));
char exit_msg[TEXT_LEN] __attribute__((aligned(8)));
char exit_dump[DUMP_LEN] __attribute__((aligned(8)));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u64));
	__uint(max_entries, NR_STATS);
} stats SEC(".maps");

static void count(u32 idx)
{
	u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		(*v)++;
}

SEC("struct_ops/fifo_select_cpu")
s32 BPF_PROG(fifo_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool idle = false;
	s32 cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &idle);

	if (idle && !stall) {
		scx_bpf_dispatch(p, SCX_DSQ_LOCAL, slice_ns, 0);
		count(STAT_DIRECT);
		count(STAT_DISPATCHED);
	}
	return cpu;
}

SEC("struct_ops/fifo_enqueue")
void BPF_PROG(fifo_enqueue, struct task_struct *p, u64 enq_flags)
{
	count(STAT_ENQUEUED);
	scx_bpf_dispatch(p, SHARED_DSQ, slice_ns, enq_flags);
}

SEC("struct_ops/fifo_dispatch")
void BPF_PROG(fifo_dispatch, s32 cpu, struct task_struct *prev)
{
	if (stall)
		return;
	if (scx_bpf_consume(SHARED_DSQ))
		count(STAT_DISPATCHED);
	else
		count(STAT_FALLBACKS);
}

SEC("struct_ops.s/fifo_init")
s32 BPF_PROG(fifo_init)
{
	if (fail_init) {
		static char msg[] = "failing ops.init on request (--fail-init)";
		unsigned long long no_args[1] = {};

		scx_bpf_error_bstr(msg, no_args, sizeof(no_args));
		return -22; /* -EINVAL */
	}
	return scx_bpf_create_dsq(SHARED_DSQ, -1);
}

/* Like UEI_RECORD in scx's headers: the kernel strings are copied with
 * bpf_probe_read_kernel_str, so loading this scheduler also checks that the
 * kernel offers the helper (CONFIG_BPF_EVENTS). */
SEC("struct_ops/fifo_exit")
void BPF_PROG(fifo_exit, struct scx_exit_info *ei)
{
	exit_kind = ei->kind;
	exit_code = ei->exit_code;
	bpf_probe_read_kernel_str(exit_reason, sizeof(exit_reason), ei->reason);
	bpf_probe_read_kernel_str(exit_msg, sizeof(exit_msg), ei->msg);
	bpf_probe_read_kernel_str(exit_dump, sizeof(exit_dump), ei->dump);
	exited = true;
}

SEC(".struct_ops.link")
struct sched_ext_ops fifo_ops = {
	.select_cpu = (void *)fifo_select_cpu,
	.enqueue = (void *)fifo_enqueue,
	.dispatch = (void *)fifo_dispatch,
	.init = (void *)fifo_init,
	.exit = (void *)fifo_exit,
	.timeout_ms = 5000,
	.exit_dump_len = DUMP_LEN,
	.name = "schedtape_fifo",
};
