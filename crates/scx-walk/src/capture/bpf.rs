//! Phases `maps` and `progs`: BPF maps, the active scheduler's object, and program
//! statistics, with what was lost noted.

use std::collections::{BTreeSet, HashMap};

use dump_schema::reasons as why;
use dump_schema::{FailureDumpMap, FailureDumpReport, map_type};
use guest_mem::Kva;

use super::{Run, SchedFound};
use crate::error::Result;
use crate::kernel::PerCpu;
use crate::lists::CoreOffsets;
use crate::maps::{MapCtx, MapOffsets, capture_all_after, map_kvas};
use crate::notes::Tally;
use crate::progs::{
    ProgOffsets, full_name, prog_btf, prog_kvas, prog_type, prog_type_name, runtime_stats,
    used_maps,
};

/// Programs enumerated from `prog_idr`.
const PROG_CAP: usize = 4096;
/// Maps named in the note on incomplete maps.
const NAMED_MAPS: usize = 4;

impl<'t, 'a> Run<'t, 'a> {
    /// Phases `scx_sched` to `tasks` (what `walk` does), `maps` (when the map offsets
    /// resolve) and `progs`. With a second thread, maps are captured there while this
    /// thread walks the rest (neither needs the other), and on this thread too once it is
    /// done; the notes come in the same order as with one thread.
    pub(super) fn walk_maps_and_progs(
        &mut self,
        core: &CoreOffsets,
        pc: &PerCpu,
        walk: impl FnOnce(&mut Self) -> SchedFound,
    ) {
        let mo = MapOffsets::resolve(self.k.types);
        let po = ProgOffsets::resolve(self.k.types);
        let cap = self.opts.caps.maps.maps;
        let list = mo.as_ref().ok().map(|_| map_kvas(&self.k, core, cap));
        let (k, renderer, caps) = (self.k, self.target.renderer, self.opts.caps.maps);
        let cx_of = |o| MapCtx {
            k,
            c: core,
            o,
            pc,
            renderer,
            caps,
        };
        let (captured, found) = match (&mo, &list) {
            (Ok(mo), Some(Ok((maps, _)))) => {
                let cx = cx_of(mo);
                let (second, deadline) = (self.target.second_thread, self.clock.deadline_at());
                capture_all_after(&cx, second, maps, deadline, || walk(self))
            }
            _ => (Vec::new(), walk(self)),
        };
        let mo = match &mo {
            Ok(mo) => Some(mo),
            Err(e) => {
                self.lost(format!("maps: not walked ({e})"));
                None
            }
        };
        if let (Some(mo), Some(list)) = (mo, list) {
            self.maps(list, captured);
            self.phase("maps");
            if let Some(s) = &found.sch_ref {
                let cx = cx_of(mo);
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
        self.phase("progs");
    }

    /// Every map on `map_idr` (`list`), of which `captured` were captured before the
    /// deadline (`maps_truncated` counts the rest).
    fn maps(&mut self, list: Result<(Vec<Kva>, bool)>, captured: Vec<FailureDumpMap>) {
        let cap = self.opts.caps.maps.maps;
        let maps = match list {
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
        let missed = maps.len() - captured.len();
        self.r.maps.extend(captured);
        if missed > 0 {
            self.r.maps_truncated = missed as u32;
            self.truncated_at.get_or_insert(self.clock.elapsed_us());
            self.lost(format!(
                "maps: {missed} of {} not captured (the deadline passed)",
                maps.len()
            ));
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

    /// Runtime statistics of the struct_ops programs (the scheduler's callbacks), then of
    /// the scheduler's other programs (`aux_prog_runtime_stats`: those sharing a
    /// struct_ops program's BTF object, or using one of the scheduler's maps), each with
    /// its full name from its BTF `func_info` where there is one.
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
        let mut names = Names::default();
        let mut sched_btfs = BTreeSet::new();
        let mut others = Vec::new();
        for p in progs {
            match prog_type(&self.k, po, p) {
                Ok(ty) if ty == po.struct_ops_type => {
                    types.ok();
                    match runtime_stats(&self.k, po, pc, p) {
                        Ok(mut s) => {
                            stats.ok();
                            if let Some(b) = prog_btf(&self.k, po, p) {
                                sched_btfs.insert(b.0);
                            }
                            names.full(self, po, p, &mut s.name);
                            self.r.prog_runtime_stats.push(s);
                        }
                        Err(e) => stats.failed(format_args!("program {p}: {e}")),
                    }
                }
                Ok(ty) => {
                    types.ok();
                    others.push((p, ty));
                }
                Err(e) => types.failed(format_args!("program {p}: {e}")),
            }
        }
        self.aux_progs(po, pc, &others, &sched_btfs, &mut names);
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

    /// `aux_prog_runtime_stats`: the programs in `others` that belong to the scheduler.
    fn aux_progs(
        &mut self,
        po: &ProgOffsets,
        pc: &PerCpu,
        others: &[(Kva, u32)],
        sched_btfs: &BTreeSet<u64>,
        names: &mut Names,
    ) {
        // The scheduler's own maps, its struct_ops map aside (every struct_ops program
        // uses that one).
        let maps: BTreeSet<u64> = self
            .r
            .active_map_kvas
            .iter()
            .copied()
            .filter(|kva| {
                !self
                    .r
                    .maps
                    .iter()
                    .any(|m| m.map_kva == *kva && m.map_type == map_type::STRUCT_OPS)
            })
            .collect();
        let mut t = Tally::new("the scheduler's other programs");
        for &(p, ty) in others {
            let same_btf = prog_btf(&self.k, po, p).is_some_and(|b| sched_btfs.contains(&b.0));
            let uses_maps = !maps.is_empty()
                && used_maps(&self.k, po, p).is_ok_and(|ms| ms.iter().any(|m| maps.contains(&m.0)));
            if !same_btf && !uses_maps {
                continue;
            }
            match runtime_stats(&self.k, po, pc, p) {
                Ok(mut s) => {
                    t.ok();
                    names.full(self, po, p, &mut s.name);
                    s.prog_type = prog_type_name(self.k.types, ty);
                    self.r.aux_prog_runtime_stats.push(s);
                }
                Err(e) => t.failed(format_args!("program {p}: {e}")),
            }
        }
        if let Some(n) = t.note() {
            self.lost(n);
        }
    }
}

/// Program BTF objects loaded for names, by address (the scheduler's programs share one).
#[derive(Default)]
struct Names {
    btfs: HashMap<u64, Option<btf_walk::Btf>>,
}

/// Distinct program BTF objects loaded for names in one capture.
const NAME_BTFS: usize = 64;

impl Names {
    /// Replaces the kernel's 15-character `name` with the program's full name from its
    /// BTF `func_info`, when it has one that extends it.
    fn full(&mut self, run: &Run<'_, '_>, po: &ProgOffsets, p: Kva, name: &mut String) {
        let (Some(renderer), Some(b)) = (run.target.renderer, prog_btf(&run.k, po, p)) else {
            return;
        };
        if !self.btfs.contains_key(&b.0) && self.btfs.len() >= NAME_BTFS {
            return;
        }
        let btf = self
            .btfs
            .entry(b.0)
            .or_insert_with(|| renderer.program_btf(b, run.k.mem));
        if let Some(btf) = btf
            && let Some(full) = full_name(&run.k, po, p, btf)
            && full.starts_with(name.as_str())
        {
            *name = full;
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
