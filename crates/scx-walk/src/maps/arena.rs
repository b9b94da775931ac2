//! ARENA maps: the pages the scheduler populated, found through the page tables of the
//! arena's kernel window, the first [`super::MapCaps::arena_pages`] captured and the
//! rest counted.

use dump_schema::{ArenaPage, ArenaSnapshot};
use guest_mem::Kva;

use super::MapCtx;
use super::kinds::{Fill, arena_bounds};
use crate::error::Result;

const PAGE: u64 = 4096;
/// The arena's kernel window: BPF programs address it with 32-bit offsets.
const WINDOW: u64 = 1 << 32;

pub(super) fn arena(f: &mut Fill<'_>) -> Result<()> {
    let (cx, info, notes) = (f.cx, f.info, &mut *f.notes);
    let (kern_vm_start, user_vm_start) = arena_bounds(cx, info.kva)?;
    let declared = u64::from(info.max_entries);
    let mut snap = ArenaSnapshot {
        declared_pages: declared,
        kern_vm_start,
        user_vm_start,
        ..Default::default()
    };
    let cap = cx.caps.arena_pages;
    // The kernel maps the page of user address `u` at `kern_vm_start + (u32)u`;
    // unpopulated pages are not mapped there.
    let user_of = |kva: Kva| -> u64 {
        let low = kva.0.wrapping_sub(kern_vm_start) & (WINDOW - 1);
        let start_low = user_vm_start & (WINDOW - 1);
        let base = user_vm_start & !(WINDOW - 1);
        base.wrapping_add(low)
            .wrapping_add(if low < start_low { WINDOW } else { 0 })
    };
    match cx.k.mem.present_pages(Kva(kern_vm_start), WINDOW, cap) {
        Some(Ok(pp)) => {
            let mut buf = vec![0u8; PAGE as usize];
            let mut unreadable = 0u64;
            for kva in pp.pages {
                if cx.k.mem.read_kva(kva, &mut buf).is_err() {
                    unreadable += 1;
                    continue;
                }
                snap.pages.push(ArenaPage {
                    user_addr: user_of(kva),
                    bytes: buf.clone(),
                });
            }
            snap.pages.sort_by_key(|p| p.user_addr);
            let captured = snap.pages.len() as u64;
            if pp.total > captured + unreadable {
                snap.truncated = true;
                notes.push(format!(
                    "arena: {} of {} pages not captured (cap {cap} pages, {} KiB)",
                    pp.total - captured - unreadable,
                    pp.total,
                    cap as u64 * PAGE / 1024
                ));
            }
            if unreadable > 0 {
                notes.push(format!(
                    "arena: {unreadable} of {} mapped pages unreadable",
                    pp.total
                ));
            }
            if pp.unreadable_tables > 0 || pp.truncated {
                notes.push(format!(
                    "arena: page tables of the window partly unreadable ({} tables){}; pages there not counted",
                    pp.unreadable_tables,
                    if pp.truncated { ", table cap reached" } else { "" }
                ));
            }
        }
        res => {
            if let Some(Err(e)) = res {
                notes.push(format!(
                    "arena: its page tables could not be walked ({e}); pages probed one by one"
                ));
            }
            probe(cx, &mut snap, declared, notes);
        }
    }
    f.out.arena = Some(snap);
    Ok(())
}

/// Probes each page slot of the declared span (capped at `arena_span_pages`).
fn probe(cx: &MapCtx<'_>, snap: &mut ArenaSnapshot, declared: u64, notes: &mut Vec<String>) {
    let span = declared.min(cx.caps.arena_span_pages);
    snap.span_capped = span < declared;
    let mut buf = vec![0u8; PAGE as usize];
    let mut found = 0u64;
    for pg in 0..span {
        let user = snap.user_vm_start.wrapping_add(pg * PAGE);
        let kva = Kva(snap.kern_vm_start.wrapping_add(user & (WINDOW - 1)));
        if cx.k.mem.read_kva(kva, &mut buf).is_err() {
            continue;
        }
        found += 1;
        if snap.pages.len() >= cx.caps.arena_pages {
            snap.truncated = true;
            continue;
        }
        snap.pages.push(ArenaPage {
            user_addr: user,
            bytes: buf.clone(),
        });
    }
    if snap.truncated {
        notes.push(format!(
            "arena: {} of {found} pages found not captured (cap {} pages)",
            found - snap.pages.len() as u64,
            cx.caps.arena_pages
        ));
    }
    if snap.span_capped {
        notes.push(format!(
            "arena: only the first {span} of {declared} page slots probed; pages beyond not looked for"
        ));
    }
}
