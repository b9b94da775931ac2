//! The maps: one collapsible block each (`<details>`), its header line as the title and
//! the text rendering's block (folded as `ktstr render` folds it) as the body; a filter box
//! shows only the maps whose name or content holds the text typed.

use super::model::Snapshot;
use super::tables::filter_box;
use super::write::Page;
use crate::display::for_html;
use crate::{FailureDumpMap, FailureDumpReport};

/// Text of one map's block at most (bytes, before HTML escaping).
pub const MAP_TEXT_CAP: usize = 256 << 10;
/// Text of all the maps of the page at most: past it a map shows its header only.
pub const MAPS_BUDGET: usize = 1 << 20;
/// Enough for any header line (a longer map name is cut).
const HEADER_CAP: usize = 512;

/// The maps of `s`; `budget` is what is left of [`MAPS_BUDGET`] for the page.
pub(crate) fn write(p: &mut Page, s: &Snapshot<'_>, budget: &mut usize) {
    let maps = &s.r.maps;
    if maps.is_empty() {
        return;
    }
    p.raw("<section class=\"maps\" id=\"")
        .raw(s.id)
        .raw("-maps\">")
        .fmt(format_args!("<h3>Maps ({})</h3>\n", maps.len()));
    let blocks = format!("#{}-maps details.map", s.id);
    filter_box(p, &blocks, "maps");
    p.raw("<p class=\"buttons\"><button type=\"button\" data-open=\"")
        .text(&blocks)
        .raw("\">open all shown</button> <button type=\"button\" data-close=\"")
        .text(&blocks)
        .raw("\">close all</button></p>\n");
    for m in maps {
        one(p, s.r, m, budget);
    }
    p.raw("</section>\n");
}

fn one(p: &mut Page, r: &FailureDumpReport, m: &FailureDumpMap, budget: &mut usize) {
    let cap = MAP_TEXT_CAP.min(*budget).max(HEADER_CAP);
    let mut text = Page::default();
    let cut = {
        let mut w = text.sink(cap);
        for_html::map(r, m, &mut w).is_err() && w.cut()
    };
    *budget = budget.saturating_sub(text.len());
    let body = text.buf.trim_end_matches('\n');
    let (header, rest) = body.split_once('\n').unwrap_or((body, ""));
    p.raw("<details class=\"map");
    if m.error.is_some() {
        p.raw(" error");
    }
    p.raw("\"><summary>")
        .raw(header)
        .raw("</summary>\n<pre>")
        .raw(rest)
        .raw("</pre>\n");
    if cut && cap < MAP_TEXT_CAP {
        p.fmt(format_args!(
            "<p class=\"folded\">cut: the page's budget for map text ({} KiB) was spent; \
             ktstr render prints it whole</p>\n",
            MAPS_BUDGET >> 10
        ));
    } else if cut {
        p.fmt(format_args!(
            "<p class=\"folded\">cut after {} KiB, the most the page shows of one map; \
             ktstr render prints it whole</p>\n",
            MAP_TEXT_CAP >> 10
        ));
    }
    p.raw("</details>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FailureDumpArrayEntry, RenderedValue, map_type};

    fn big_map(name: &str, n: u32) -> FailureDumpMap {
        FailureDumpMap {
            name: name.into(),
            map_type: map_type::ARRAY,
            value_size: 8,
            max_entries: n,
            array_entries: (0..n)
                .map(|k| FailureDumpArrayEntry {
                    key: k,
                    value: Some(RenderedValue::Uint {
                        bits: 64,
                        value: u64::from(k) * 7919,
                    }),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn header_as_title_body_escaped_and_capped() {
        let mut p = Page::default();
        let mut budget = MAPS_BUDGET;
        one(
            &mut p,
            &FailureDumpReport::default(),
            &big_map("<evil>", 3),
            &mut budget,
        );
        assert!(
            p.buf.starts_with(
                "<details class=\"map\"><summary>map &lt;evil&gt; (type=array, value_size=8, max_entries=3)</summary>\n<pre>  key 0: 0\n  key 1: 7919\n  key 2: 15838</pre>"
            ),
            "{}",
            p.buf
        );
        assert!(!p.buf.contains("folded"));

        // A block longer than the cap is cut and says so.
        let mut p = Page::default();
        one(
            &mut p,
            &FailureDumpReport::default(),
            &big_map("big", 20_000),
            &mut budget,
        );
        assert!(
            p.buf.contains("cut after 256 KiB, the most"),
            "{}",
            &p.buf[p.buf.len() - 300..]
        );
        assert!(p.buf.len() < MAP_TEXT_CAP + 1024);

        // Once the budget is spent, a map shows little more than its header.
        let mut budget = 0;
        let mut p = Page::default();
        one(
            &mut p,
            &FailureDumpReport::default(),
            &big_map("late", 20_000),
            &mut budget,
        );
        assert!(p.buf.contains("budget for map text (1024 KiB) was spent"));
        assert!(p.buf.len() < 2 * HEADER_CAP, "{}", p.buf);
    }
}
