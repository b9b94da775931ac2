/* SPDX-License-Identifier: GPL-2.0 */
/* ktstr_ok: a correct vtime scheduler that never fails on its own. */
#define KTSTR_MODE KTSTR_OK
#define KTSTR_NAME "ktstr_ok"
#include "ktstr_sched.bpf.h"
