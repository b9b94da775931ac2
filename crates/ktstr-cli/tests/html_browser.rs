//! `ktstr render --html` in a real browser: headless Chromium (Debian's `chromium`, a
//! host package of the lab, so `cargo xtask provision` and CI install it) loads pages made
//! from real dumps of the lab and from hostile variants of them, and the test checks the
//! DOM Chromium dumps after the page's scripts ran:
//! - the page's script finished (`#ktstr-ready`) and nothing went wrong: no error in
//!   `#js-errors` (the page catches script errors and policy violations there) and no
//!   console message at all in Chromium's log;
//! - the summary is the text rendering's, on the page;
//! - the chart has one point per timeline sample on every line, and one tick per sample;
//! - the tables sort, the filter boxes filter, the buttons open the maps and the chart's
//!   read-out follows the mouse (a check script appended to a copy of the page drives
//!   them in the browser and writes what it saw into the DOM);
//! - no guest string became markup;
//! - the page is at most 2 MB and fetches nothing.
//!
//! Screenshots are kept under `target/tmp/html-browser/` (`CARGO_TARGET_TMPDIR`).
//!
//! The dumps are the real ones of the lab the text rendering is snapshot-tested on
//! (`crates/dump-schema/tests/data`, its README says how each was made): the stall run (a
//! dual report: early snapshot, 13-sample timeline, the kernel's debug dump, each runnable
//! task's wait), the error run, and `scx_layered`, the corpus' largest real scheduler (7 MB
//! of JSON: 30 maps); the error run's late snapshot also as a single report.
//!
//! Without Chromium the test prints why it skips (under `CI=true` it fails:
//! `guest_lab::testing`).

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dump_schema::{
    DegradedFailureDumpReport, FailureDumpReport, FailureDumpReportAny, VcpuRegSnapshot,
};
use guest_lab::testing::{ScratchDir, skip};
use support::ktstr;

/// The most a page may weigh (issue 14: a real scheduler's dump in at most 2 MB).
const MAX_PAGE: usize = 2 << 20;
/// How long Chromium may take for one page.
const BROWSER_DEADLINE: Duration = Duration::from_secs(120);

/// Drives the page's controls in the browser and writes `ok …` / `FAIL …` lines into
/// `<pre id="selftest">`. Appended to a copy of the page, after the page's own script.
const CHECK_SCRIPT: &str = r#"<script>
(function () {
  var out = [];
  function check(name, cond) { out.push((cond ? "ok " : "FAIL ") + name); }
  function rows(t) { return Array.prototype.slice.call(t.tBodies[0].rows); }
  function nums(t, col) { return rows(t).map(function (r) { return parseFloat(r.cells[col].getAttribute("data-v")); }); }
  var t = document.querySelector("section.tasks table.sortable");
  if (t) {
    var th = t.tHead.rows[0].cells[0];
    th.click();
    var a = nums(t, 0);
    check("tasks sort by pid ascending", a.every(function (v, i) { return i === 0 || a[i - 1] <= v; }));
    th.click();
    var d = nums(t, 0);
    check("tasks sort by pid descending", d.every(function (v, i) { return i === 0 || d[i - 1] >= v; }) && d[0] > d[d.length - 1]);
    var comm = t.tHead.rows[0].cells[2];
    comm.click();
    var c = rows(t).map(function (r) { return r.cells[2].textContent.toLowerCase(); });
    check("tasks sort by comm", c.every(function (v, i) { return i === 0 || c[i - 1] <= v; }));
    var box = document.querySelector("section.tasks input.filter");
    var first = rows(t)[0].cells[2].textContent;
    box.value = first;
    box.dispatchEvent(new Event("input"));
    var shown = rows(t).filter(function (r) { return !r.hidden; });
    check("task filter keeps the matching rows only", shown.length >= 1 && shown.length < rows(t).length &&
      shown.every(function (r) { return r.textContent.toLowerCase().indexOf(first.toLowerCase()) >= 0; }));
    box.value = "";
    box.dispatchEvent(new Event("input"));
    check("task filter cleared", rows(t).every(function (r) { return !r.hidden; }));
  }
  var sec = document.querySelector("section.maps");
  var maps = sec ? sec.querySelectorAll("details.map") : [];
  if (maps.length) {
    var mbox = sec.querySelector("input.filter");
    var name = maps[maps.length - 1].querySelector("summary").textContent.split(" ")[1];
    mbox.value = name;
    mbox.dispatchEvent(new Event("input"));
    var vis = Array.prototype.filter.call(maps, function (m) { return !m.hidden; });
    check("map filter finds " + name, vis.length >= 1 && vis.length < maps.length);
    sec.querySelector("button[data-open]").click();
    check("open all opens the maps shown", vis.every(function (m) { return m.open; }));
    mbox.value = "";
    mbox.dispatchEvent(new Event("input"));
  }
  var svg = document.querySelector("svg.timeline");
  if (svg && svg.querySelector("polyline")) {
    var r = svg.getBoundingClientRect();
    svg.dispatchEvent(new MouseEvent("mousemove", { clientX: r.left + r.width * 0.5, clientY: r.top + 20, bubbles: true }));
    var ro = document.querySelector(".readout").textContent;
    check("chart read-out: " + ro.slice(0, 60), /^at \d+ ms: /.test(ro));
  }
  var pre = document.createElement("pre");
  pre.id = "selftest";
  pre.textContent = out.join("\n");
  document.body.appendChild(pre);
})();
</script>"#;

/// The JSON of `crates/dump-schema/tests/data/{name}.json.zst`.
fn real_dump(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dump-schema/tests/data")
        .join(format!("{name}.json.zst"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut json = String::new();
    ruzstd::decoding::StreamingDecoder::new(bytes.as_slice())
        .expect("a zstd frame")
        .read_to_string(&mut json)
        .unwrap();
    json
}

/// `chromium` on PATH, or the reason it cannot run.
fn chromium() -> Result<PathBuf, String> {
    let o = Command::new("chromium")
        .arg("--version")
        .output()
        .map_err(|e| format!("chromium not installed ({e}); cargo xtask provision installs it"))?;
    if !o.status.success() {
        return Err(format!("chromium --version failed: {}", o.status));
    }
    Ok(PathBuf::from("chromium"))
}

/// What Chromium made of a page: the DOM after its scripts ran, and its console messages.
struct Loaded {
    dom: String,
    console: Vec<String>,
}

/// Loads `page` in headless Chromium (a profile of its own under `scratch`), dumps its DOM
/// and takes a screenshot into `shot`.
fn load(browser: &Path, scratch: &ScratchDir, page: &Path, shot: &Path) -> Loaded {
    let profile = scratch.p(&format!("profile-{}", std::process::id()));
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1400,2400",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium");
    // Read both pipes on threads so that neither fills up; the deadline bounds the wait.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let dom = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > BROWSER_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish {} within {BROWSER_DEADLINE:?}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = dom.join().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "chromium: {status}\n{log}");
    // Chromium logs every console message (console.*, uncaught errors, policy violations)
    // as `…:INFO:CONSOLE:<line>] "message", source: …`.
    let console = log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    Loaded { dom, console }
}

/// Text as Chromium serializes a text node in the DOM it dumps (`&`, `<`, `>` escaped).
fn dom_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The value of `attr="…"` in the first element of `dom` that has `marker` before it.
fn attr_after<'d>(dom: &'d str, marker: &str, attr: &str) -> Option<&'d str> {
    let at = dom.find(marker)?;
    let rest = &dom[at..];
    let start = rest.find(&format!("{attr}=\""))? + attr.len() + 2;
    let end = rest[start..].find('"')?;
    Some(&rest[start..start + end])
}

/// The chart of snapshot `id` has one point per sample on every line and one tick per
/// sample.
fn check_chart(dom: &str, id: &str, samples: usize) {
    let marker = format!("id=\"{id}-chart\"");
    let at = dom.find(&marker).unwrap_or_else(|| panic!("no chart {id}"));
    let svg = &dom[at..at + dom[at..].find("</svg>").unwrap()];
    assert_eq!(
        attr_after(dom, &marker, "data-samples"),
        Some(samples.to_string().as_str())
    );
    let lines: Vec<usize> = svg
        .split("points=\"")
        .skip(1)
        .map(|r| r[..r.find('"').unwrap()].split(' ').count())
        .collect();
    assert!(!lines.is_empty(), "no line in chart {id}");
    assert!(
        lines.iter().all(|&n| n == samples),
        "chart {id}: points per line {lines:?}, samples {samples}"
    );
    let ticks = attr_after(svg, "class=\"ticks\"", "d").expect("ticks");
    assert_eq!(ticks.matches('M').count(), samples, "ticks of chart {id}");
}

/// Renders `report` with `ktstr render --html`, loads it with the check script in
/// Chromium, and checks what every page must satisfy; returns the DOM.
fn render_and_load(
    browser: &Path,
    scratch: &ScratchDir,
    name: &str,
    report: &FailureDumpReportAny,
) -> String {
    let json_path = scratch.write(&format!("{name}.json"), &report.to_json().unwrap());
    let page_path = scratch.p(&format!("{name}.html"));
    let o = ktstr(
        &[
            "render",
            "--html",
            page_path.to_str().unwrap(),
            json_path.to_str().unwrap(),
        ],
        scratch.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{name}");
    let page = std::fs::read_to_string(&page_path).unwrap();
    assert!(page.len() <= MAX_PAGE, "{name}: {} bytes", page.len());
    // Nothing is fetched: no resource outside the page (the SVG namespace is a name).
    for needle in ["src=\"http", "href=\"http", "url(", "@import"] {
        assert!(!page.contains(needle), "{name}: {needle}");
    }
    let checked = page.replace("</body>", &format!("{CHECK_SCRIPT}</body>"));
    let checked_path = scratch.write(&format!("{name}.checked.html"), &checked);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&shot);
    let loaded = load(browser, scratch, &checked_path, &shot);
    let dom = loaded.dom;
    assert!(
        dom.contains("id=\"ktstr-ready\""),
        "{name}: the page's script did not finish"
    );
    assert!(
        !dom.contains("<p class=\"js-error\">"),
        "{name}: script errors on the page: {}",
        &dom[dom.find("js-error\">").unwrap_or(0)..][..400.min(dom.len())]
    );
    assert!(dom.contains("<div id=\"js-errors\" class=\"js-errors\" hidden=\"\">"));
    assert!(
        loaded.console.is_empty(),
        "{name}: console messages: {:#?}",
        loaded.console
    );
    let selftest = dom
        .split("<pre id=\"selftest\">")
        .nth(1)
        .map(|s| &s[..s.find("</pre>").unwrap()])
        .expect("the check script ran");
    assert!(!selftest.contains("FAIL"), "{name}:\n{selftest}");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{name}: screenshot"
    );
    eprintln!(
        "{name}: page {} bytes, screenshot {}\n{selftest}",
        page.len(),
        shot.display()
    );
    dom
}

/// The text summary's lines, as they are in the DOM.
fn summary_lines(report: &FailureDumpReportAny) -> Vec<String> {
    let text = report.to_string();
    text.lines()
        .take_while(|l| !l.is_empty())
        .map(dom_text)
        .collect()
}

#[test]
fn pages_of_real_dumps_load_in_chromium() {
    let browser = match chromium() {
        Ok(b) => b,
        Err(why) => return skip(why),
    };
    let scratch = ScratchDir::new("html-browser");

    // The stall run: a dual report, with the early and late snapshots marked on the chart.
    let stall = FailureDumpReportAny::from_json(&real_dump("stall")).unwrap();
    let dom = render_and_load(&browser, &scratch, "stall-dual", &stall);
    let lines = summary_lines(&stall);
    assert!(lines[0].starts_with("scheduler ktstr_ops: SCX_EXIT_ERROR_STALL (1026)"));
    for l in &lines {
        assert!(dom.contains(l.as_str()), "summary line missing: {l}");
    }
    let d = support::dual(&stall);
    check_chart(&dom, "late", d.late.event_counter_timeline.len());
    let early = d.early.as_ref().expect("an early snapshot");
    check_chart(&dom, "early", early.event_counter_timeline.len());
    // The late chart marks both snapshots at their freezes.
    let late_chart = &dom[dom.find("id=\"late-chart\"").unwrap()..];
    let late_chart = &late_chart[..late_chart.find("</svg>").unwrap()];
    for (label, r) in [("early", early), ("late", &d.late)] {
        let ms = r.event_counter_timeline.last().unwrap().elapsed_ms;
        assert!(
            late_chart.contains(&format!(">{label} ({ms} ms)<")),
            "{label} mark"
        );
    }
    // The victim waits on DSQ 0x101, by name, with its wait (past half the watchdog
    // timeout: it stands out), and is marked as the task the exit message names.
    let victim = d
        .late
        .task_enrichments
        .iter()
        .find(|t| t.comm == "ktstr-victim")
        .expect("the victim");
    let wait = victim.runnable_age_jiffies.expect("the victim's wait");
    let dsq = dom.split("<td>0x101</td>").nth(1).expect("DSQ 0x101 drawn");
    let dsq = &dsq[..dsq.find("</tr>").unwrap()];
    assert!(
        dsq.contains(&format!(
            "ktstr-victim[{}] <span class=\"age long\">+{wait}j</span>",
            victim.pid
        )),
        "{dsq}"
    );
    assert!(dsq.contains("<li class=\"chip named\""), "{dsq}");
    assert!(dom.contains(&format!("<td data-v=\"{wait}\">{wait}</td>")));

    // The error run (a dual report without an early snapshot), and its late snapshot as a
    // single report.
    let error = FailureDumpReportAny::from_json(&real_dump("error")).unwrap();
    let dom = render_and_load(&browser, &scratch, "error-dual", &error);
    assert!(dom.contains("<h2>Early snapshot</h2><p>absent: "));
    check_chart(
        &dom,
        "late",
        support::late(&error).event_counter_timeline.len(),
    );
    let single = FailureDumpReportAny::Single(support::late(&error).clone());
    let dom = render_and_load(&browser, &scratch, "error-single", &single);
    let lines = summary_lines(&single);
    assert!(lines[0].contains("SCX_EXIT_ERROR_BPF"), "{}", lines[0]);
    for l in &lines {
        assert!(dom.contains(l.as_str()), "summary line missing: {l}");
    }
    check_chart(
        &dom,
        "dump",
        support::late(&single).event_counter_timeline.len(),
    );

    // The corpus' largest real scheduler: everything fits, nothing is cut.
    let layered = FailureDumpReportAny::from_json(&real_dump("scx_layered")).unwrap();
    let dom = render_and_load(&browser, &scratch, "scx_layered", &layered);
    let r = support::late(&layered);
    assert!(summary_lines(&layered)[0].starts_with("scheduler layered:"));
    assert_eq!(
        dom.matches("<details class=\"map").count(),
        r.maps.len(),
        "one block per map"
    );
    assert!(!dom.contains("class=\"folded\""), "something was cut");
    check_chart(&dom, "late", r.event_counter_timeline.len());
    for t in &r.task_enrichments {
        assert!(dom.contains(&format!("<td data-v=\"{}\">{}</td>", t.pid, t.pid)));
    }
}

#[test]
fn hostile_strings_stay_text_in_chromium() {
    let browser = match chromium() {
        Ok(b) => b,
        Err(why) => return skip(why),
    };
    let scratch = ScratchDir::new("html-hostile");
    let mut stall = FailureDumpReportAny::from_json(&real_dump("stall")).unwrap();
    let FailureDumpReportAny::Dual(d) = &mut stall else {
        panic!("dual expected")
    };
    let evil = [
        "<script>document.title='pwned'</script>",
        "\"'><img src=x id=injected>",
        "a\x1b[31m\n\r\x07b",
        "</pre></details><h1 id=injected2>",
    ];
    hostile(&mut d.late, &evil);
    if let Some(e) = &mut d.early {
        hostile(e, &evil);
    }
    let dom = render_and_load(&browser, &scratch, "hostile", &stall);
    assert!(!dom.contains("<title>pwned"), "an injected script ran");
    assert!(!dom.contains("id=\"injected\"") && !dom.contains("id=injected>"));
    assert!(!dom.contains("<h1 id=\"injected2\">"));
    assert!(dom.contains("&lt;script&gt;document.title="));
    // Control characters are shown escaped, as the text rendering shows them.
    assert!(dom.contains("a\\x1b[31m\\n\\r\\x07b"));

    // A degraded report: its few facts.
    let degraded = FailureDumpReportAny::Degraded(DegradedFailureDumpReport {
        reason:
            "vCPU rendezvous timed out before parked acknowledgement: 5000ms; 1/2 vCPUs parked <b>"
                .into(),
        vcpu_regs: vec![Some(VcpuRegSnapshot::default()), None],
        ..Default::default()
    });
    let dom = render_and_load(&browser, &scratch, "degraded", &degraded);
    assert!(dom.contains("degraded failure dump:"));
    assert!(dom.contains("1/2 vCPUs parked &lt;b&gt;"));
}

/// Puts `evil` strings where the guest's strings go: comms, a map name, the exit message.
fn hostile(r: &mut FailureDumpReport, evil: &[&str]) {
    for (t, e) in r.task_enrichments.iter_mut().zip(evil.iter().cycle()) {
        t.comm = e.to_string();
    }
    for (q, e) in r.rq_scx_states.iter_mut().zip(evil.iter().cycle()) {
        q.curr_comm = e.to_string();
    }
    if let Some(m) = r.maps.first_mut() {
        m.name = evil[0].to_string();
    }
    if let Some(x) = &mut r.exit_info {
        x.msg = Some(format!("{}[1] failed to run", evil[3]));
    }
}

#[test]
fn render_html_to_stdout_and_refused_paths() {
    let scratch = ScratchDir::new("html-cli");
    let json = real_dump("error");
    let report = FailureDumpReportAny::from_json(&json).unwrap();
    scratch.write("d.json", &json);
    // `-`: the page on standard output, the same as the library makes.
    let o = ktstr(&["render", "--html", "-", "d.json"], scratch.path());
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        dump_schema::html::page(&report)
    );
    // A directory, or a file in one that does not exist: a usage error naming --html.
    for bad in [".", "nowhere/x.html"] {
        let o = ktstr(&["render", "--html", bad, "d.json"], scratch.path());
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("--html {bad}:")), "{err}");
    }
    // --html and --json are two different outputs.
    let o = ktstr(
        &["render", "--html", "x.html", "--json", "d.json"],
        scratch.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!scratch.p("x.html").exists());
}
