/* SPDX-License-Identifier: GPL-2.0 */
/* ktstr_error: calls scx_bpf_error() after after_ms: SCX_EXIT_ERROR_BPF. */
#define KTSTR_MODE KTSTR_ERROR
#define KTSTR_NAME "ktstr_error"
#include "ktstr_sched.bpf.h"
