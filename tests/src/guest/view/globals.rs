//! The scalars of a scheduler's global-data maps (`.rodata`, `.data`, `.data.*`) as the
//! guest's bpftool printed them ([`GuestCommand::bpftool_globals`]), against the dump's
//! rendering of the same maps.
//!
//! [`GuestCommand::bpftool_globals`]: guest_lab::GuestCommand::bpftool_globals

use std::collections::BTreeMap;

use dump_schema::{FailureDumpReport, RenderedValue};
use guest_lab::ConsoleLog;

use super::{BssRule, rendered_number};

/// One variable the guest printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// The map's name as bpftool shows it (`bpf_bpf.rodata`, `.data.LOCK`).
    pub map: String,
    pub var: String,
    /// Which variable of that name in the map (a section can hold several with one
    /// name, e.g. format strings of an inlined function): 0 for the first.
    pub nth: usize,
    pub value: i128,
}

/// The guest's `bpftool-globals` lines, parsed (`true`/`false` as 1/0, `0x…` as hex).
pub fn globals(log: &ConsoleLog) -> Vec<Global> {
    let text = log
        .output("bpftool-globals")
        .expect("guest printed no bpftool-globals");
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let (Some(map), Some(var), Some(v), None) = (w.next(), w.next(), w.next(), w.next()) else {
            panic!("bpftool-globals line {line:?}");
        };
        let value = match v {
            "true" => Some(1),
            "false" => Some(0),
            hex if hex.starts_with("0x") => i128::from_str_radix(&hex[2..], 16).ok(),
            n => n.parse().ok(),
        }
        .unwrap_or_else(|| panic!("bpftool-globals value {v:?} in {line:?}"));
        let n = seen.entry((map.into(), var.into())).or_default();
        out.push(Global {
            map: map.into(),
            var: var.into(),
            nth: *n,
            value,
        });
        *n += 1;
    }
    out
}

/// Every scalar the guest printed is a member of the dump's rendering of its map (the
/// `nth` member of that name), compared as `rule(map, var)` says (`.rodata` cannot
/// change: [`BssRule::Equal`]). Returns how many were compared; panics when the guest
/// printed none.
pub fn assert_globals_agree(
    log: &ConsoleLog,
    r: &FailureDumpReport,
    rule: &dyn Fn(&str, &str) -> BssRule,
) -> usize {
    let globals = globals(log);
    assert!(!globals.is_empty(), "the guest printed no global scalar");
    for g in &globals {
        let map = r
            .maps
            .iter()
            .find(|m| m.name == g.map)
            .unwrap_or_else(|| panic!("{} not in the dump", g.map));
        let Some(RenderedValue::Struct { members, .. }) = &map.value else {
            panic!(
                "{}: dump value is not a rendered section: {:?} (error {:?})",
                g.map, map.value, map.error
            );
        };
        let m = members
            .iter()
            .filter(|m| m.name == g.var)
            .nth(g.nth)
            .unwrap_or_else(|| panic!("{}: member {} #{} not rendered", g.map, g.var, g.nth));
        let dn = rendered_number(&m.value)
            .unwrap_or_else(|| panic!("{}.{}: not a number: {:?}", g.map, g.var, m.value));
        let gn = g.value;
        let what = format!("{}.{} (#{})", g.map, g.var, g.nth);
        match rule(&g.map, &g.var) {
            BssRule::Equal => assert_eq!(dn, gn, "{what}"),
            BssRule::Grows => assert!(dn >= gn, "{what}: dump {dn} < guest {gn}"),
            BssRule::SetOnce => assert!(gn == 0 || dn == gn, "{what}: guest {gn}, dump {dn}"),
            BssRule::Any => {}
        }
    }
    globals.len()
}
