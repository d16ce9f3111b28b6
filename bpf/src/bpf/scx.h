/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The few kernel types and sched_ext kfuncs schedtape's scheduler uses, as of
 * Linux 6.12 (where the insert kfuncs are still named scx_bpf_dispatch and
 * scx_bpf_consume). Written for this project instead of a vmlinux.h: struct
 * layouts are relocated against the running kernel's BTF (CO-RE), and libbpf
 * matches struct_ops members by name, so partial definitions suffice.
 */
#ifndef SCHEDTAPE_SCX_H
#define SCHEDTAPE_SCX_H

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

typedef __u8 u8;
typedef __u32 u32;
typedef __s32 s32;
typedef __u64 u64;
typedef __s64 s64;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
};

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define CORE __attribute__((preserve_access_index))

struct sched_ext_entity {
	u32 weight;
	u64 slice;
	u64 dsq_vtime;
} CORE;

struct task_struct {
	struct sched_ext_entity scx;
} CORE;

/* The kernel's enum is 4 bytes wide; CO-RE wants an enum here, not an int. */
enum scx_exit_kind {
	SCX_EXIT_NONE,
};

struct scx_exit_info {
	enum scx_exit_kind kind;
	s64 exit_code;
	const char *reason;
	char *msg;
	char *dump;
} CORE;

/* Function-pointer members are filled with the programs placed in them. */
struct sched_ext_ops {
	s32 (*select_cpu)(struct task_struct *p, s32 prev_cpu, u64 wake_flags);
	void (*enqueue)(struct task_struct *p, u64 enq_flags);
	void (*dispatch)(s32 cpu, struct task_struct *prev);
	s32 (*init)(void);
	void (*exit)(struct scx_exit_info *info);
	u64 flags;
	u32 timeout_ms;
	u32 exit_dump_len;
	char name[128];
};

/* Built-in dispatch queues and limits (include/linux/sched/ext.h). */
#define SCX_DSQ_FLAG_BUILTIN (1ULL << 63)
#define SCX_DSQ_LOCAL (SCX_DSQ_FLAG_BUILTIN | 2)
#define SCX_SLICE_DFL (20ULL * 1000 * 1000)

s32 scx_bpf_create_dsq(u64 dsq_id, s32 node) __ksym;
void scx_bpf_dispatch(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __ksym;
bool scx_bpf_consume(u64 dsq_id) __ksym;
/* Ends the scheduler with SCX_EXIT_ERROR_BPF; `fmt` is a bstr format with
 * `data__sz` bytes of arguments in `data` (none here). */
void scx_bpf_error_bstr(char *fmt, unsigned long long *data, u32 data__sz) __ksym;
s32 scx_bpf_select_cpu_dfl(struct task_struct *p, s32 prev_cpu, u64 wake_flags,
			   bool *is_idle) __ksym;

#endif
