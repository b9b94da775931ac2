/* SPDX-License-Identifier: GPL-2.0 */
/* ktstr_stall: after after_ms, never dispatches tasks named victim_comm again; the
 * watchdog (timeout_ms, 2 s here) exits it with SCX_EXIT_ERROR_STALL. */
#define KTSTR_MODE KTSTR_STALL
#define KTSTR_NAME "ktstr_stall"
#define KTSTR_TIMEOUT_MS 2000
#include "ktstr_sched.bpf.h"
