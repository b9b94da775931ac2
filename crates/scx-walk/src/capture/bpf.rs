//! Phases `maps` and `progs`: BPF maps, the active scheduler's object, and program
//! statistics, with what was lost noted.

use std::collections::BTreeSet;

use dump_schema::reasons as why;
use dump_schema::{FailureDumpReport, map_type};
use guest_mem::Kva;

use super::{Run, SchedFound};
use crate::error::Result;
use crate::kernel::PerCpu;
use crate::lists::CoreOffsets;
use crate::maps::{MapCtx, MapOffsets, map_kvas};
use crate::notes::Tally;
use crate::progs::{ProgOffsets, is_struct_ops, prog_kvas, runtime_stats, used_maps};

/// Programs enumerated from `prog_idr`.
const PROG_CAP: usize = 4096;
/// Maps named in the note on incomplete maps.
const NAMED_MAPS: usize = 4;

impl Run<'_, '_> {
    /// Phases `maps` (when the map offsets resolve) and `progs`.
    pub(super) fn maps_and_progs(&mut self, core: &CoreOffsets, pc: &PerCpu, found: &SchedFound) {
        let mo = match MapOffsets::resolve(self.k.types) {
            Ok(mo) => Some(mo),
            Err(e) => {
                self.lost(format!("maps: not walked ({e})"));
                None
            }
        };
        let po = ProgOffsets::resolve(self.k.types);
        if let Some(mo) = &mo {
            let cx = MapCtx {
                k: self.k,
                c: core,
                o: mo,
                pc,
                renderer: self.target.renderer,
                caps: self.opts.caps.maps,
            };
            self.maps(&cx);
            self.clock.phase("maps");
            if let Some(s) = &found.sch_ref {
                let mut problems = Vec::new();
                active_scheduler(
                    &cx,
                    po.as_ref().ok(),
                    &s.ops_name,
                    &mut self.r,
                    &mut problems,
                );
                for p in problems {
                    self.lost(p);
                }
            }
        }
        self.progs(core, pc, &po);
        self.clock.phase("progs");
    }

    /// Every map on `map_idr`, until the deadline (`maps_truncated` counts the rest).
    fn maps(&mut self, cx: &MapCtx<'_>) {
        let cap = self.opts.caps.maps.maps;
        let maps = match map_kvas(&self.k, cx.c, cap) {
            Ok((maps, trunc)) => {
                if trunc {
                    self.lost(format!("maps: map list truncated at {cap}"));
                }
                maps
            }
            Err(e) => {
                self.lost(format!("maps: map_idr unreadable ({e}); no map captured"));
                return;
            }
        };
        for (i, m) in maps.iter().enumerate() {
            if self.clock.passed() {
                self.r.maps_truncated = (maps.len() - i) as u32;
                self.truncated_at.get_or_insert(self.clock.elapsed_us());
                self.lost(format!(
                    "maps: {} of {} not captured (the deadline passed)",
                    maps.len() - i,
                    maps.len()
                ));
                break;
            }
            self.r.maps.push(cx.capture(*m));
        }
        self.note_incomplete_maps();
    }

    /// One note for the maps whose `error` says something was lost (a value shown as
    /// hex because the map has no BTF is not a loss).
    fn note_incomplete_maps(&mut self) {
        let bad: Vec<(String, String)> = self
            .r
            .maps
            .iter()
            .filter_map(|m| {
                let e = m.error.as_deref()?;
                let lost = e.split("; ").any(|p| !p.starts_with("rendered as hex"));
                lost.then(|| {
                    let name = if m.name.is_empty() {
                        format!("{:#x}", m.map_kva)
                    } else {
                        m.name.clone()
                    };
                    (name, e.to_string())
                })
            })
            .collect();
        if bad.is_empty() {
            return;
        }
        let named: Vec<String> = bad
            .iter()
            .take(NAMED_MAPS)
            .map(|(n, e)| format!("{n}: {e}"))
            .collect();
        let more = bad.len().saturating_sub(NAMED_MAPS);
        self.lost(format!(
            "maps: {} of {} incomplete ({}{})",
            bad.len(),
            self.r.maps.len(),
            named.join("; "),
            if more > 0 {
                format!("; {more} more")
            } else {
                String::new()
            }
        ));
    }

    /// Runtime statistics of the struct_ops programs (the scheduler's callbacks).
    fn progs(&mut self, core: &CoreOffsets, pc: &PerCpu, po: &Result<ProgOffsets>) {
        let po = match po {
            Ok(po) => po,
            Err(e) => {
                self.lost(format!("programs: not walked ({e})"));
                self.r.prog_runtime_stats_unavailable = Some(why::PROG_ACCESSOR_UNAVAILABLE.into());
                return;
            }
        };
        let progs = match prog_kvas(&self.k, core, PROG_CAP) {
            Ok(progs) => progs,
            Err(e) => {
                self.lost(format!("programs: prog_idr unreadable ({e})"));
                self.r.prog_runtime_stats_unavailable = Some(why::PROG_ACCESSOR_UNAVAILABLE.into());
                return;
            }
        };
        // A program whose type cannot be read may be a struct_ops one: counted, so that
        // "no struct_ops programs loaded" is said only when it is known.
        let mut types = Tally::new("programs");
        let mut stats = Tally::new("struct_ops program statistics");
        for p in progs {
            match is_struct_ops(&self.k, po, p) {
                Ok(false) => types.ok(),
                Ok(true) => {
                    types.ok();
                    match runtime_stats(&self.k, po, pc, p) {
                        Ok(s) => {
                            stats.ok();
                            self.r.prog_runtime_stats.push(s);
                        }
                        Err(e) => stats.failed(format_args!("program {p}: {e}")),
                    }
                }
                Err(e) => types.failed(format_args!("program {p}: {e}")),
            }
        }
        for t in [&types, &stats] {
            if let Some(n) = t.note() {
                self.lost(n);
            }
        }
        if self.r.prog_runtime_stats.is_empty() {
            self.r.prog_runtime_stats_unavailable =
                Some(if types.failures() > 0 || stats.failures() > 0 {
                    why::PROG_ACCESSOR_UNAVAILABLE.into()
                } else {
                    why::NO_STRUCT_OPS_PROGRAMS.into()
                });
        }
    }
}

/// `active_obj_name` / `active_map_kvas`: the struct_ops map whose `sched_ext_ops.name`
/// is the attached scheduler's, and the maps its programs use. What could not be found
/// goes into `problems`.
fn active_scheduler(
    cx: &MapCtx<'_>,
    po: Option<&ProgOffsets>,
    ops_name: &str,
    r: &mut FailureDumpReport,
    problems: &mut Vec<String>,
) {
    let Some(so) = cx.o.struct_ops else {
        problems
            .push("active scheduler: struct_ops offsets missing; active_obj_name absent".into());
        return;
    };
    let name_off =
        cx.k.types
            .offset_of("bpf_struct_ops_value", "data")
            .zip(cx.k.types.offset_of("sched_ext_ops", "name"));
    let Some((data, name)) = name_off else {
        problems.push(
            "active scheduler: sched_ext_ops.name offset missing; active_obj_name absent".into(),
        );
        return;
    };
    // The newest struct_ops map carrying this ops name is the attached one.
    let found = r.maps.iter().rev().find(|m| {
        m.map_type == map_type::STRUCT_OPS
            && cx
                .k
                .cstr(
                    Kva(m.map_kva.wrapping_add(so.kvalue + data + name)),
                    128,
                    "ops.name",
                )
                .is_ok_and(|n| n == ops_name)
    });
    let Some(m) = found else {
        problems.push(format!(
            "active scheduler: no struct_ops map named ops `{ops_name}`; active_obj_name absent"
        ));
        return;
    };
    r.active_obj_name = Some(m.name.clone());
    let mut kvas = BTreeSet::new();
    kvas.insert(m.map_kva);
    let progs = crate::maps::struct_ops_progs(cx, Kva(m.map_kva)).unwrap_or_else(|e| {
        problems.push(format!(
            "active scheduler: its programs unreadable ({e}); active_map_kvas has its struct_ops map only"
        ));
        Vec::new()
    });
    if let Some(po) = po {
        let mut t = Tally::new("active scheduler: used_maps of its programs");
        for p in progs {
            match used_maps(&cx.k, po, p) {
                Ok(ms) => {
                    t.ok();
                    kvas.extend(ms.into_iter().map(|m| m.0));
                }
                Err(e) => t.failed(format_args!("program {p}: {e}")),
            }
        }
        problems.extend(t.note());
    }
    r.active_map_kvas = kvas.into_iter().collect();
}
