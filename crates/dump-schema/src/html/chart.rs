//! The event-counter timeline as an inline SVG chart: one row per counter that is non-zero
//! somewhere, each a line with one point per sample, scaled to its own range (counters
//! differ by orders of magnitude); vertical marks at the snapshots (early and late for a
//! dual report). The samples also go into the page as JSON for the hover read-out.

use std::fmt::Write;

use super::write::Page;
use crate::EventCounterSample;

/// Samples drawn at most (a run of ours keeps 600); a longer timeline is thinned evenly
/// and the chart says so.
pub const MAX_SAMPLES: usize = 2048;

/// SVG geometry, in viewBox units.
const LABEL_W: f64 = 230.0;
const PLOT_W: f64 = 600.0;
const LAST_W: f64 = 110.0;
const ROW_H: f64 = 30.0;
const LINE_H: f64 = 22.0;
const TOP: f64 = 18.0;
const AXIS_H: f64 = 22.0;

/// A vertical mark: a label at a time (ms since the scheduler attached).
pub(crate) struct Mark {
    pub(crate) label: &'static str,
    pub(crate) ms: u64,
}

/// The chart of `timeline` with `marks`, in a `<figure>`.
pub(crate) fn write(p: &mut Page, id: &str, timeline: &[EventCounterSample], marks: &[Mark]) {
    let (Some(first), Some(last)) = (timeline.first(), timeline.last()) else {
        return;
    };
    let shown = thin(timeline);
    let names = first.counters().map(|(n, _)| n);
    let series: Vec<(&str, Vec<i64>)> = names
        .iter()
        .enumerate()
        .map(|(c, name)| (*name, shown.iter().map(|s| s.counters()[c].1).collect()))
        .collect();
    let (drawn, zero): (Vec<_>, Vec<_>) = series
        .into_iter()
        .partition(|(_, v): &(&str, Vec<i64>)| v.iter().any(|&x| x != 0));
    let height = TOP + ROW_H * drawn.len().max(1) as f64 + AXIS_H;
    let width = LABEL_W + PLOT_W + LAST_W;
    let x = Scale::new(first.elapsed_ms, last.elapsed_ms);
    p.raw("<figure class=\"chart\">\n");
    p.fmt(format_args!(
        "<svg class=\"timeline\" id=\"{id}-chart\" viewBox=\"0 0 {width} {height}\" \
         data-samples=\"{}\" role=\"img\" aria-label=\"event counters over time\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n",
        shown.len()
    ));
    for (row, (name, values)) in drawn.iter().enumerate() {
        series_row(p, row, name, values, &shown, &x);
    }
    ticks(p, &shown, &x, height);
    axis(p, first.elapsed_ms, last.elapsed_ms, height);
    for m in marks {
        mark(p, m, &x, height);
    }
    p.fmt(format_args!(
        "<line class=\"cursor\" x1=\"0\" x2=\"0\" y1=\"{TOP}\" y2=\"{}\" visibility=\"hidden\"/>\n",
        height - AXIS_H
    ));
    p.raw("</svg>\n");
    caption(p, timeline.len(), shown.len(), &zero, drawn.is_empty());
    data(p, &shown, &drawn);
    p.raw("</figure>\n");
}

/// The samples drawn: all of them up to [`MAX_SAMPLES`], else that many evenly spread
/// (first and last included).
fn thin(t: &[EventCounterSample]) -> Vec<&EventCounterSample> {
    if t.len() <= MAX_SAMPLES {
        return t.iter().collect();
    }
    (0..MAX_SAMPLES)
        .map(|i| &t[i * (t.len() - 1) / (MAX_SAMPLES - 1)])
        .collect()
}

/// Milliseconds to x.
struct Scale {
    t0: u64,
    span: u64,
}

impl Scale {
    fn new(t0: u64, t1: u64) -> Self {
        Scale {
            t0,
            span: t1.saturating_sub(t0),
        }
    }

    fn x(&self, ms: u64) -> f64 {
        if self.span == 0 {
            return LABEL_W + PLOT_W / 2.0;
        }
        let f = ms.saturating_sub(self.t0) as f64 / self.span as f64;
        LABEL_W + f.min(1.0) * PLOT_W
    }
}

fn series_row(
    p: &mut Page,
    row: usize,
    name: &str,
    values: &[i64],
    shown: &[&EventCounterSample],
    x: &Scale,
) {
    let top = TOP + ROW_H * row as f64;
    let min = values.iter().copied().min().unwrap_or(0);
    let max = values.iter().copied().max().unwrap_or(0);
    let span = max as f64 - min as f64;
    let mut points = String::with_capacity(values.len() * 12);
    let mut dot = String::new();
    for (s, &v) in shown.iter().zip(values) {
        let y = if span > 0.0 {
            top + LINE_H - (v as f64 - min as f64) / span * LINE_H
        } else {
            top + LINE_H / 2.0
        };
        if !points.is_empty() {
            points.push(' ');
        }
        let at = x.x(s.elapsed_ms);
        let _ = write!(points, "{at:.1},{y:.1}");
        if values.len() == 1 {
            // A line of one point draws nothing: a dot instead.
            dot = format!("<circle class=\"dot\" cx=\"{at:.1}\" cy=\"{y:.1}\" r=\"3\"/>");
        }
    }
    p.fmt(format_args!(
        "<g class=\"series\" data-counter=\"{name}\"><text class=\"name\" x=\"{}\" y=\"{}\">{name}</text>\
         <rect class=\"band\" x=\"{LABEL_W}\" y=\"{top}\" width=\"{PLOT_W}\" height=\"{LINE_H}\"/>\
         <polyline class=\"line\" points=\"{points}\"/>{dot}\
         <text class=\"last\" x=\"{}\" y=\"{}\">{}</text></g>\n",
        LABEL_W - 8.0,
        top + LINE_H * 0.7,
        LABEL_W + PLOT_W + 8.0,
        top + LINE_H * 0.7,
        values.last().copied().unwrap_or(0)
    ));
}

/// One tick under the plot per sample drawn.
fn ticks(p: &mut Page, shown: &[&EventCounterSample], x: &Scale, height: f64) {
    let y = height - AXIS_H;
    let mut d = String::with_capacity(shown.len() * 16);
    for s in shown {
        let _ = write!(d, "M{:.1} {y:.1}v4", x.x(s.elapsed_ms));
    }
    p.raw("<path class=\"ticks\" d=\"").raw(&d).raw("\"/>\n");
}

fn axis(p: &mut Page, t0: u64, t1: u64, height: f64) {
    let y = height - 6.0;
    p.fmt(format_args!(
        "<g class=\"axis\"><text x=\"{LABEL_W}\" y=\"{y}\">{t0} ms</text>\
         <text class=\"end\" x=\"{}\" y=\"{y}\">{t1} ms since attach</text></g>\n",
        LABEL_W + PLOT_W
    ));
}

fn mark(p: &mut Page, m: &Mark, x: &Scale, height: f64) {
    let at = x.x(m.ms);
    p.fmt(format_args!(
        "<g class=\"mark {label}\"><line x1=\"{at:.1}\" x2=\"{at:.1}\" y1=\"{}\" y2=\"{}\"/>\
         <text x=\"{at:.1}\" dx=\"{dx}\" y=\"{}\">{label} ({ms} ms)</text></g>\n",
        TOP - 4.0,
        height - AXIS_H,
        TOP - 6.0,
        label = m.label,
        ms = m.ms,
        // The early mark's label goes left of its line, the others' right: close marks
        // do not overlap.
        dx = if m.label == "early" { -3 } else { 3 },
    ));
}

fn caption(p: &mut Page, total: usize, shown: usize, zero: &[(&str, Vec<i64>)], none: bool) {
    p.fmt(format_args!(
        "<figcaption>{total} sample{}",
        if total == 1 { "" } else { "s" }
    ));
    if shown < total {
        p.fmt(format_args!(
            " (<span class=\"folded\">{shown} drawn, evenly spread</span>)"
        ));
    }
    p.raw("; each line is scaled to its own range, the number at its end is the last value");
    if none {
        p.raw("; every counter is zero throughout");
    } else if !zero.is_empty() {
        p.raw("; zero throughout: ");
        let names: Vec<&str> = zero.iter().map(|(n, _)| *n).collect();
        p.text(&names.join(", "));
    }
    p.raw(". <span class=\"readout\"></span></figcaption>\n");
}

/// The drawn samples as JSON (numbers and our counter names only) for the read-out.
fn data(p: &mut Page, shown: &[&EventCounterSample], drawn: &[(&str, Vec<i64>)]) {
    let mut s = String::from("{\"ms\":[");
    for (i, x) in shown.iter().enumerate() {
        let _ = write!(s, "{}{}", if i > 0 { "," } else { "" }, x.elapsed_ms);
    }
    s.push_str("],\"series\":[");
    for (i, (name, values)) in drawn.iter().enumerate() {
        let _ = write!(s, "{}[\"{name}\",[", if i > 0 { "," } else { "" });
        for (k, v) in values.iter().enumerate() {
            let _ = write!(s, "{}{v}", if k > 0 { "," } else { "" });
        }
        s.push_str("]]");
    }
    s.push_str("]}");
    p.raw("<script type=\"application/json\" class=\"chart-data\">")
        .raw(&s)
        .raw("</script>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n: u64) -> Vec<EventCounterSample> {
        (0..n)
            .map(|i| EventCounterSample {
                elapsed_ms: 17 + 1000 * i,
                dispatch_keep_last: i as i64 * 3,
                bypass_duration: 57_920_070,
                ..Default::default()
            })
            .collect()
    }

    fn points_per_line(html: &str) -> Vec<usize> {
        html.split("points=\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].split(' ').count())
            .collect()
    }

    #[test]
    fn one_point_per_sample_and_the_marks() {
        let t = samples(14);
        let mut p = Page::default();
        let marks = [
            Mark {
                label: "early",
                ms: 10_848,
            },
            Mark {
                label: "late",
                ms: 13_017,
            },
        ];
        write(&mut p, "late", &t, &marks);
        let html = &p.buf;
        // Two counters are non-zero: two lines of 14 points each.
        assert_eq!(points_per_line(html), [14, 14], "{html}");
        let ticks = html.split("class=\"ticks\" d=\"").nth(1).unwrap();
        assert_eq!(ticks[..ticks.find('"').unwrap()].matches('M').count(), 14);
        assert!(html.contains("data-samples=\"14\""));
        assert!(html.contains("early (10848 ms)") && html.contains("late (13017 ms)"));
        assert!(html.contains("zero throughout: select_cpu_fallback"));
        // The data for the read-out is valid JSON with the drawn series.
        let json = html.split("class=\"chart-data\">").nth(1).unwrap();
        let json = &json[..json.find("</script>").unwrap()];
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["ms"].as_array().unwrap().len(), 14);
        assert_eq!(v["series"][0][0], "dispatch_keep_last");
    }

    #[test]
    fn a_long_timeline_is_thinned_and_says_so() {
        let t = samples(5000);
        let mut p = Page::default();
        write(&mut p, "x", &t, &[]);
        assert_eq!(points_per_line(&p.buf), [MAX_SAMPLES, MAX_SAMPLES]);
        assert!(
            p.buf
                .contains("5000 samples (<span class=\"folded\">2048 drawn")
        );
        // First and last samples are among those drawn.
        assert!(p.buf.contains("\"ms\":[17,") && p.buf.contains(",4999017]"));
    }

    #[test]
    fn one_sample_and_all_zero() {
        let t = vec![EventCounterSample::default()];
        let mut p = Page::default();
        write(&mut p, "x", &t, &[]);
        assert!(p.buf.contains("1 sample;"));
        assert!(p.buf.contains("every counter is zero throughout"));
        assert!(points_per_line(&p.buf).is_empty());
        // One sample of a non-zero counter: a line of one point, drawn as a dot.
        let t = vec![EventCounterSample {
            bypass_activate: 1,
            ..Default::default()
        }];
        let mut p = Page::default();
        write(&mut p, "x", &t, &[]);
        assert_eq!(points_per_line(&p.buf), [1]);
        assert_eq!(p.buf.matches("<circle class=\"dot\"").count(), 1);
    }
}
