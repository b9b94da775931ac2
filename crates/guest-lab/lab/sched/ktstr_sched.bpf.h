/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The project's test schedulers, written from scratch against the guest kernel's own
 * vmlinux.h, for every kernel line the lab runs (6.12 LTS to 7.3): the kfuncs renamed
 * in between go through the ktstr_* wrappers below.
 *
 * One source, three behaviours chosen by KTSTR_MODE before this header is included:
 *   KTSTR_OK     a correct global vtime scheduler (weighted fair, FIFO among equals);
 *   KTSTR_STALL  after after_ms, tasks named victim_comm are parked on STALL_DSQ, which
 *                is never consumed: the watchdog exits with SCX_EXIT_ERROR_STALL;
 *   KTSTR_ERROR  after after_ms, scx_bpf_error(): SCX_EXIT_ERROR_BPF.
 *
 * It keeps state of every kind a failure dump must render: .bss/.data/.rodata
 * variables, a hash map, an array, a per-CPU array, user DSQs with queued tasks, a
 * BPF arena, and (see "More map kinds" below) a ring buffer, a stack-trace map, task and
 * cgroup storage and a prog array. .rodata values can be changed per run by the loader
 * (--set name=value).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define KTSTR_OK 0
#define KTSTR_STALL 1
#define KTSTR_ERROR 2

#ifndef KTSTR_MODE
#error "define KTSTR_MODE"
#endif

char _license[] SEC("license") = "GPL";

/*
 * sched_ext kfuncs. Every kernel with sched_ext has the ones declared plainly. The insert
 * and move kfuncs were renamed in 6.13 (scx_bpf_dispatch -> scx_bpf_dsq_insert,
 * scx_bpf_dispatch_vtime -> scx_bpf_dsq_insert_vtime, scx_bpf_consume ->
 * scx_bpf_dsq_move_to_local) and the old names later removed, so both generations are
 * declared weak and the ktstr_* wrappers below call whichever this kernel has:
 * bpf_ksym_exists() is a load-time constant, the verifier drops the other branch, and a
 * weak kfunc the kernel lacks resolves to nothing instead of failing the load.
 */
void scx_bpf_dsq_insert(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __ksym __weak;
void scx_bpf_dsq_insert_vtime(struct task_struct *p, u64 dsq_id, u64 slice, u64 vtime,
			      u64 enq_flags) __ksym __weak;
bool scx_bpf_dsq_move_to_local(u64 dsq_id) __ksym __weak;
void scx_bpf_dispatch(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __ksym __weak;
void scx_bpf_dispatch_vtime(struct task_struct *p, u64 dsq_id, u64 slice, u64 vtime,
			    u64 enq_flags) __ksym __weak;
bool scx_bpf_consume(u64 dsq_id) __ksym __weak;
s32 scx_bpf_create_dsq(u64 dsq_id, s32 node) __ksym;
s32 scx_bpf_dsq_nr_queued(u64 dsq_id) __ksym;
s32 scx_bpf_select_cpu_dfl(struct task_struct *p, s32 prev_cpu, u64 wake_flags,
			   bool *is_idle) __ksym;
void scx_bpf_error_bstr(char *fmt, u64 *data, u32 data__sz) __ksym;
void scx_bpf_dump_bstr(char *fmt, u64 *data, u32 data__sz) __ksym;

static __always_inline void ktstr_dsq_insert(struct task_struct *p, u64 dsq_id, u64 slice,
					     u64 enq_flags)
{
	if (bpf_ksym_exists(scx_bpf_dsq_insert))
		scx_bpf_dsq_insert(p, dsq_id, slice, enq_flags);
	else
		scx_bpf_dispatch(p, dsq_id, slice, enq_flags);
}

static __always_inline void ktstr_dsq_insert_vtime(struct task_struct *p, u64 dsq_id,
						   u64 slice, u64 vtime, u64 enq_flags)
{
	if (bpf_ksym_exists(scx_bpf_dsq_insert_vtime))
		scx_bpf_dsq_insert_vtime(p, dsq_id, slice, vtime, enq_flags);
	else
		scx_bpf_dispatch_vtime(p, dsq_id, slice, vtime, enq_flags);
}

static __always_inline bool ktstr_dsq_move_to_local(u64 dsq_id)
{
	if (bpf_ksym_exists(scx_bpf_dsq_move_to_local))
		return scx_bpf_dsq_move_to_local(dsq_id);
	return scx_bpf_consume(dsq_id);
}

#define SHARED_DSQ 0x100
#define STALL_DSQ 0x101
#define MAX_CPUS 64

/* Per-run settings (the loader rewrites .rodata before loading). */
const volatile u32 after_ms = 3000;
const volatile char victim_comm[16] = "ktstr-victim";

/* .data: initialized, recognisable in a dump. */
u64 ktstr_magic = 0x6b7473747253434bULL; /* "KCSrtstk" little-endian: "ktstrSCK" */
char ktstr_label[16] = "ktstr-sched";
u32 ktstr_mode = KTSTR_MODE + 100; /* non-zero: stays in .data */
u64 attach_generation = 41; /* incremented by init: keeps .data referenced (and alive) */

/* .bss: counters the scheduler updates as it runs. */
u64 nr_enqueued;
u64 nr_direct;
u64 nr_dispatched;
u64 nr_stall_parked;
u64 nr_ticks;
u64 attach_ns;
u64 ktstr_magic_seen;
u64 vtime_now;
s32 victim_pid;
s32 error_raised;
s32 exit_kind;
s64 exit_code;

struct task_stat {
	u64 enqueues;
	u64 runs;
	u32 last_cpu;
	u32 weight;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, struct task_stat);
} task_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_CPUS);
	__type(key, u32);
	__type(value, u64);
} dispatch_by_cpu SEC(".maps");

struct pcpu_stat {
	u64 dispatches;
	u64 ticks;
	u64 last_pid;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct pcpu_stat);
} pcpu_stats SEC(".maps");

#if defined(__BPF_FEATURE_ADDR_SPACE_CAST) && !defined(KTSTR_NO_ARENA)
#define KTSTR_HAVE_ARENA 1
#define __arena __attribute__((address_space(1)))
struct {
	__uint(type, BPF_MAP_TYPE_ARENA);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2); /* pages */
} ktstr_arena SEC(".maps");

struct arena_state {
	u64 magic;
	u64 enqueues;
	u64 last_enqueue_ns;
	u32 last_pid;
	u32 pad;
};

/* libbpf places __arena globals in the arena's first page. */
struct arena_state __arena arena_state;
#endif

/*
 * More map kinds, each with contents the scheduler also counts in .bss, so a test can
 * hold a dump against the scheduler's own view. None of them changes scheduling.
 *   ktstr_events    RINGBUF: one record per enabled task. Nobody consumes it, so the
 *                   producer position is nr_rb_records * KTSTR_RB_SLOT (header + record,
 *                   8-byte aligned) and, once the ring is full, nr_rb_full counts refusals.
 *   ktstr_stacks    STACK_TRACE: kernel stacks at sched_switch (tp_btf program below), for
 *                   the first KTSTR_STACK_TRIES switches; up to KTSTR_STACK_DEPTH frames.
 *   ktstr_task_ctx  TASK_STORAGE: per task {pid, tgid, runs}, created in init_task; runs
 *                   counts ops.running calls exactly like task_stats' runs.
 *   ktstr_cgrp_ctx  CGRP_STORAGE: per default-hierarchy cgroup of a switched-in task
 *                   {cgroup id, switches in}.
 *   ktstr_tail      PROG_ARRAY: slot KTSTR_TAIL_SLOT holds ktstr_switch_tail, which the
 *                   sched_switch program tail-calls. Pinned by name (/sys/fs/bpf/ktstr_tail):
 *                   the kernel empties a prog array when its last user reference goes, and
 *                   the loader exits after attaching.
 * The tracing programs are attached (and their links pinned) by the project's loader.
 */
struct rb_record {
	u32 pid;
	u32 cpu;
	u64 seq;
};
#define KTSTR_RB_SLOT 24 /* 8-byte ring header + sizeof(struct rb_record) */
#define KTSTR_STACK_DEPTH 16
#define KTSTR_STACK_TRIES 2000
#define KTSTR_TAIL_SLOT 1

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} ktstr_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 256);
	__uint(key_size, sizeof(u32));
	__uint(value_size, KTSTR_STACK_DEPTH * sizeof(u64));
} ktstr_stacks SEC(".maps");

struct task_ctx {
	u32 pid;
	u32 tgid;
	u64 runs;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} ktstr_task_ctx SEC(".maps");

struct cgrp_ctx {
	u64 id;
	u64 switches;
};

struct {
	__uint(type, BPF_MAP_TYPE_CGRP_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct cgrp_ctx);
} ktstr_cgrp_ctx SEC(".maps");

/* .bss counters of those maps. */
u64 nr_rb_records;
u64 nr_rb_full;
u64 nr_stack_tries;
u64 nr_stackids;
u64 nr_stackid_errors;
u64 nr_tail_calls;
u64 nr_task_ctx;

SEC("tp_btf/sched_switch")
int BPF_PROG(ktstr_switch_tail, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	__sync_fetch_and_add(&nr_tail_calls, 1);
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(u32));
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, int (void *));
} ktstr_tail SEC(".maps") = {
	.values = { [KTSTR_TAIL_SLOT] = (void *)&ktstr_switch_tail },
};

SEC("tp_btf/sched_switch")
int BPF_PROG(ktstr_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct cgrp_ctx *cc;
	long id;

	cc = bpf_cgrp_storage_get(&ktstr_cgrp_ctx, next->cgroups->dfl_cgrp, 0,
				  BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (cc) {
		cc->id = next->cgroups->dfl_cgrp->kn->id;
		__sync_fetch_and_add(&cc->switches, 1);
	}
	if (__sync_fetch_and_add(&nr_stack_tries, 1) < KTSTR_STACK_TRIES) {
		id = bpf_get_stackid(ctx, &ktstr_stacks, 0);
		if (id >= 0)
			__sync_fetch_and_add(&nr_stackids, 1);
		else
			__sync_fetch_and_add(&nr_stackid_errors, 1);
	}
	bpf_tail_call(ctx, &ktstr_tail, KTSTR_TAIL_SLOT);
	return 0;
}

static __always_inline void note_enabled(struct task_struct *p)
{
	struct rb_record *r = bpf_ringbuf_reserve(&ktstr_events, sizeof(*r), 0);

	if (!r) {
		__sync_fetch_and_add(&nr_rb_full, 1);
		return;
	}
	r->pid = p->pid;
	r->cpu = bpf_get_smp_processor_id();
	r->seq = nr_rb_records;
	/* No consumer waits: do not wake anyone. */
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	__sync_fetch_and_add(&nr_rb_records, 1);
}

static __always_inline bool is_victim(struct task_struct *p)
{
	if (KTSTR_MODE != KTSTR_STALL)
		return false;
	for (int i = 0; i < 16; i++) {
		if (p->comm[i] != victim_comm[i])
			return false;
		if (!victim_comm[i])
			break;
	}
	return true;
}

static __always_inline bool failure_due(void)
{
	return attach_ns && bpf_ktime_get_ns() - attach_ns >= (u64)after_ms * 1000000ULL;
}

static __always_inline void maybe_error(void)
{
	if (KTSTR_MODE != KTSTR_ERROR || error_raised || !failure_due())
		return;
	error_raised = 1;
	char fmt[] = "ktstr error scheduler: scx_bpf_error() after %u ms as asked";
	u64 args[1] = { after_ms };
	scx_bpf_error_bstr(fmt, args, sizeof(args));
}

static __always_inline void note_task(struct task_struct *p, bool run)
{
	u32 pid = p->pid;
	struct task_stat *st = bpf_map_lookup_elem(&task_stats, &pid);

	if (!st) {
		struct task_stat init = {};

		bpf_probe_read_kernel_str(init.comm, sizeof(init.comm), p->comm);
		bpf_map_update_elem(&task_stats, &pid, &init, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&task_stats, &pid);
		if (!st)
			return;
	}
	if (run) {
		struct task_ctx *tc = bpf_task_storage_get(&ktstr_task_ctx, p, 0, 0);

		if (tc)
			tc->runs++;
		st->runs++;
		st->last_cpu = bpf_get_smp_processor_id();
	} else {
		st->enqueues++;
	}
	st->weight = p->scx.weight;
}

SEC("struct_ops/ktstr_select_cpu")
s32 BPF_PROG(ktstr_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu;

	if (is_victim(p) && failure_due())
		return prev_cpu; /* keep it away from the local DSQ */
	cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);
	if (is_idle) {
		__sync_fetch_and_add(&nr_direct, 1);
		ktstr_dsq_insert(p, SCX_DSQ_LOCAL, SCX_SLICE_DFL, 0);
	}
	return cpu;
}

SEC("struct_ops/ktstr_enqueue")
void BPF_PROG(ktstr_enqueue, struct task_struct *p, u64 enq_flags)
{
	u64 vtime = p->scx.dsq_vtime;

	__sync_fetch_and_add(&nr_enqueued, 1);
	note_task(p, false);
#ifdef KTSTR_HAVE_ARENA
	arena_state.magic = 0x6b74737472415245ULL;
	arena_state.enqueues++;
	arena_state.last_enqueue_ns = bpf_ktime_get_ns();
	arena_state.last_pid = p->pid;
#endif
	if (is_victim(p) && failure_due()) {
		victim_pid = p->pid;
		__sync_fetch_and_add(&nr_stall_parked, 1);
		ktstr_dsq_insert(p, STALL_DSQ, SCX_SLICE_DFL, enq_flags);
		return;
	}
	/* A task that slept long does not bank more than one slice of credit. */
	if ((s64)(vtime - (vtime_now - SCX_SLICE_DFL)) < 0)
		vtime = vtime_now - SCX_SLICE_DFL;
	ktstr_dsq_insert_vtime(p, SHARED_DSQ, SCX_SLICE_DFL, vtime, enq_flags);
}

SEC("struct_ops/ktstr_dispatch")
void BPF_PROG(ktstr_dispatch, s32 cpu, struct task_struct *prev)
{
	u32 key = 0, c = cpu;
	struct pcpu_stat *ps;
	u64 *slot;

	maybe_error();
	if (!ktstr_dsq_move_to_local(SHARED_DSQ))
		return;
	__sync_fetch_and_add(&nr_dispatched, 1);
	ps = bpf_map_lookup_elem(&pcpu_stats, &key);
	if (ps)
		ps->dispatches++;
	slot = bpf_map_lookup_elem(&dispatch_by_cpu, &c);
	if (slot)
		__sync_fetch_and_add(slot, 1);
}

SEC("struct_ops/ktstr_running")
void BPF_PROG(ktstr_running, struct task_struct *p)
{
	u32 key = 0;
	struct pcpu_stat *ps;

	if ((s64)(p->scx.dsq_vtime - vtime_now) > 0)
		vtime_now = p->scx.dsq_vtime;
	note_task(p, true);
	ps = bpf_map_lookup_elem(&pcpu_stats, &key);
	if (ps)
		ps->last_pid = p->pid;
}

SEC("struct_ops/ktstr_stopping")
void BPF_PROG(ktstr_stopping, struct task_struct *p, bool runnable)
{
	u32 weight = p->scx.weight ? p->scx.weight : 100;

	/* Charge the used part of the slice, scaled by the inverse of the weight. */
	p->scx.dsq_vtime += (SCX_SLICE_DFL - p->scx.slice) * 100 / weight;
}

SEC("struct_ops/ktstr_tick")
void BPF_PROG(ktstr_tick, struct task_struct *p)
{
	u32 key = 0;
	struct pcpu_stat *ps;

	__sync_fetch_and_add(&nr_ticks, 1);
	ps = bpf_map_lookup_elem(&pcpu_stats, &key);
	if (ps)
		ps->ticks++;
	maybe_error();
}

SEC("struct_ops/ktstr_enable")
void BPF_PROG(ktstr_enable, struct task_struct *p)
{
	p->scx.dsq_vtime = vtime_now;
	note_enabled(p);
}

SEC("struct_ops/ktstr_init_task")
s32 BPF_PROG(ktstr_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	struct task_ctx *tc;

	tc = bpf_task_storage_get(&ktstr_task_ctx, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (tc) {
		tc->pid = p->pid;
		tc->tgid = p->tgid;
		__sync_fetch_and_add(&nr_task_ctx, 1);
	}
	/* Never refuse a task: storage is for the dump, not for scheduling. */
	return 0;
}

SEC("struct_ops.s/ktstr_init")
s32 BPF_PROG(ktstr_init)
{
	s32 ret;

	ret = scx_bpf_create_dsq(SHARED_DSQ, -1);
	if (ret)
		return ret;
	ret = scx_bpf_create_dsq(STALL_DSQ, -1);
	if (ret)
		return ret;
	attach_ns = bpf_ktime_get_ns();
	/* A map no program uses is freed when the loader exits; keep .data in use. */
	__sync_fetch_and_add(&attach_generation, 1);
	ktstr_magic_seen = ktstr_magic;
	return 0;
}

SEC("struct_ops/ktstr_exit")
void BPF_PROG(ktstr_exit, struct scx_exit_info *ei)
{
	exit_kind = BPF_CORE_READ(ei, kind);
	exit_code = BPF_CORE_READ(ei, exit_code);
}

/*
 * The kernel's debug dump (scx_dump_state, written into exit_info->dump on an error exit)
 * calls these: one line of the scheduler's own, one per CPU, one per runnable task. The
 * tests find them in the dump a capture reads from guest memory.
 */
SEC("struct_ops/ktstr_dump")
void BPF_PROG(ktstr_dump, struct scx_dump_ctx *dctx)
{
	char fmt[] = "ktstr-dump: mode=%u nr_enqueued=%llu stall_dsq_queued=%d";
	u64 args[3] = { KTSTR_MODE, nr_enqueued, scx_bpf_dsq_nr_queued(STALL_DSQ) };

	scx_bpf_dump_bstr(fmt, args, sizeof(args));
}

SEC("struct_ops/ktstr_dump_cpu")
void BPF_PROG(ktstr_dump_cpu, struct scx_dump_ctx *dctx, s32 cpu, bool idle)
{
	char fmt[] = "ktstr-dump-cpu: cpu=%d idle=%d dispatches=%llu";
	u32 c = cpu;
	u64 *slot = bpf_map_lookup_elem(&dispatch_by_cpu, &c);
	u64 args[3] = { cpu, idle, slot ? *slot : 0 };

	scx_bpf_dump_bstr(fmt, args, sizeof(args));
}

SEC("struct_ops/ktstr_dump_task")
void BPF_PROG(ktstr_dump_task, struct scx_dump_ctx *dctx, struct task_struct *p)
{
	char fmt[] = "ktstr-dump-task: pid=%d runs=%llu";
	struct task_ctx *tc = bpf_task_storage_get(&ktstr_task_ctx, p, 0, 0);
	u64 args[2] = { p->pid, tc ? tc->runs : 0 };

	scx_bpf_dump_bstr(fmt, args, sizeof(args));
}

#ifndef KTSTR_TIMEOUT_MS
#define KTSTR_TIMEOUT_MS 0 /* the kernel's default (30 s) */
#endif

SEC(".struct_ops.link")
struct sched_ext_ops ktstr_ops = {
	.select_cpu = (void *)ktstr_select_cpu,
	.enqueue = (void *)ktstr_enqueue,
	.dispatch = (void *)ktstr_dispatch,
	.running = (void *)ktstr_running,
	.stopping = (void *)ktstr_stopping,
	.tick = (void *)ktstr_tick,
	.enable = (void *)ktstr_enable,
	.init_task = (void *)ktstr_init_task,
	.init = (void *)ktstr_init,
	.exit = (void *)ktstr_exit,
	.dump = (void *)ktstr_dump,
	.dump_cpu = (void *)ktstr_dump_cpu,
	.dump_task = (void *)ktstr_dump_task,
	.timeout_ms = KTSTR_TIMEOUT_MS,
	.name = KTSTR_NAME,
};
