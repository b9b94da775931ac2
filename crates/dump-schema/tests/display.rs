//! The human rendering's "values that fit" (`shared/spec/display-format.md`): `char` arrays as
//! escaped strings, folded runs, data-section columns, per-CPU common/differs, escaped guest
//! strings, and `DisplayOptions` (`full`, `width`).

mod common;

use common::{chars, dsq, int, m, map, rq, uint};
use dump_schema::*;

fn full() -> DisplayOptions {
    DisplayOptions {
        full: true,
        ..DisplayOptions::default()
    }
}

fn array(elements: Vec<RenderedValue>) -> RenderedValue {
    RenderedValue::Array {
        len: elements.len(),
        elements,
    }
}

fn u32s(values: &[u64]) -> RenderedValue {
    array(values.iter().map(|&v| uint(32, v)).collect())
}

fn char_bytes(bytes: &[u8]) -> RenderedValue {
    array(
        bytes
            .iter()
            .map(|&b| RenderedValue::Char { value: b })
            .collect(),
    )
}

fn report_with(maps: Vec<FailureDumpMap>) -> FailureDumpReport {
    FailureDumpReport {
        maps,
        ..FailureDumpReport::default()
    }
}

// ---------------------------------------------------------------------------------------------
// char arrays

#[test]
fn char_arrays_are_one_escaped_string() {
    assert_eq!(chars("sched_ext\n", 16).to_string(), r#""sched_ext\n""#);
    assert_eq!(
        chars("\t\x1b[31mred\x1b[0m\r\x07\"q\" \\", 32).to_string(),
        r#""\t\x1b[31mred\x1b[0m\r\x07\"q\" \\""#
    );
    // Not UTF-8, DEL, and bytes above 0x7f: two hex digits each.
    assert_eq!(
        char_bytes(&[b'a', 0x7f, 0xff, 0xc3, b'b']).to_string(),
        r#""a\x7f\xff\xc3b""#
    );
    // Only NULs: the empty string.
    assert_eq!(chars("", 8).to_string(), r#""""#);
}

#[test]
fn a_nul_inside_a_char_array_is_shown_and_trailing_nuls_are_not() {
    assert_eq!(
        char_bytes(b"sh\0ker/0:1\0\0\0\0\0").to_string(),
        r#""sh\x00ker/0:1""#
    );
    assert_eq!(char_bytes(b"\0\0x").to_string(), r#""\x00\x00x""#);
}

#[test]
fn a_char_array_longer_than_the_line_stays_one_line() {
    let text = "load balance: llc=%d from_dsq=%llx to_dsq=%llx nr_queued=%u load=%llu pick2=%d \
                reason=%s (slack %d%%) interactive=%d\n";
    let v = RenderedValue::named_struct(
        ".rodata",
        vec![m("fmt", chars(text, 256)), m("nr", uint(32, 1))],
    );
    let out = v.to_string();
    assert_eq!(
        out,
        format!(
            ".rodata:\n  nr=1\n  fmt=\"{}\\n\"",
            text.trim_end_matches('\n')
        )
    );
}

#[test]
fn a_char_array_says_what_was_not_rendered() {
    let mut v = chars("abc", 8);
    if let RenderedValue::Array { len, .. } = &mut v {
        *len = 100;
    }
    assert_eq!(v.to_string(), r#""abc" …+92 not rendered"#);
}

#[test]
fn byte_arrays_that_are_not_char_print_as_numbers() {
    // `unsigned char`/`u8`: btf-walk renders them as 8-bit integers, not as `char`.
    let v = array(b"hi\n".iter().map(|&b| uint(8, u64::from(b))).collect());
    assert_eq!(v.to_string(), "[104, 105, 10]");
}

// ---------------------------------------------------------------------------------------------
// folding

#[test]
fn runs_of_equal_elements_fold_inline_from_length_two() {
    assert_eq!(u32s(&[1, 2, 3]).to_string(), "[1, 2, 3]");
    assert_eq!(u32s(&[7, 7, 1]).to_string(), "[7 ×2, 1]");
    assert_eq!(u32s(&[1, 7, 7]).to_string(), "[1, 7 ×2]");
    assert_eq!(u32s(&[5, 5, 5, 0, 0, 9]).to_string(), "[5 ×3, 0 ×2, 9]");
    let mut hist = vec![812, 77, 3];
    hist.resize(4096, 0);
    assert_eq!(u32s(&hist).to_string(), "[812, 77, 3, 0 ×4093]");
    assert_eq!(u32s(&[0; 8]).to_string(), "[all 8 zero]");
}

#[test]
fn full_folds_nothing() {
    let v = u32s(&[7, 7, 1, 0, 0]);
    assert_eq!(v.display_with(&full()).to_string(), "[7, 7, 1, 0, 0]");
    assert_eq!(u32s(&[0; 3]).display_with(&full()).to_string(), "[0, 0, 0]");
    // Zero members are shown too.
    let s = RenderedValue::named_struct("s", vec![m("a", uint(32, 0)), m("b", uint(32, 1))]);
    assert_eq!(s.to_string(), "s{b=1}");
    assert_eq!(s.display_with(&full()).to_string(), "s{a=0, b=1}");
}

/// A struct too wide for a line, so that an array of them takes the block form.
fn wide(k: u64) -> RenderedValue {
    RenderedValue::named_struct(
        "wide",
        (0..8)
            .map(|i| m(&format!("field_{i}"), uint(64, 1_000_000 + k)))
            .collect(),
    )
}

#[test]
fn runs_of_equal_elements_fold_in_block_form_from_length_two() {
    let mut elements = vec![wide(1), wide(2), wide(2), wide(3)];
    elements.extend(std::iter::repeat_n(wide(0), 4092));
    let out = array(elements).to_string();
    let heads: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim_start().split_once('=').map(|(h, _)| h))
        .filter(|h| h.starts_with('['))
        .collect();
    assert_eq!(heads, ["[0]", "[1..2]", "[3]", "[4..4095]"], "{out}");
    assert!(out.starts_with("[4096]:\n  [0]=wide:\n"), "{out}");
    assert_eq!(out.lines().count(), 1 + 4 * 9, "{out}");

    let unfolded = array(vec![wide(2), wide(2)])
        .display_with(&full())
        .to_string();
    assert!(unfolded.contains("\n  [0]=wide:") && unfolded.contains("\n  [1]=wide:"));
}

#[test]
fn array_map_keys_with_equal_values_fold() {
    let entry = |key: u32, v: Option<u64>| FailureDumpArrayEntry {
        key,
        value: v.map(|v| uint(64, v)),
    };
    let m = FailureDumpMap {
        array_entries: vec![
            entry(0, Some(5)),
            entry(1, Some(5)),
            entry(2, Some(6)),
            entry(3, Some(0)),
            entry(4, Some(0)),
            entry(5, Some(0)),
            entry(6, None),
            entry(7, None),
            entry(9, Some(6)),
        ],
        ..map("counters", map_type::ARRAY)
    };
    let r = report_with(vec![m]);
    assert_eq!(
        r.to_string(),
        "map counters (type=array, value_size=16, max_entries=64)\n  keys 0-1: 5\n  key 2: 6\n  \
         keys 3-5: zero\n  key 6: <unreadable>\n  key 7: <unreadable>\n  key 9: 6"
    );
    let all = r.display_with(&full()).to_string();
    assert_eq!(all.lines().count(), 1 + 9, "{all}");
}

// ---------------------------------------------------------------------------------------------
// data sections in columns

fn bss(n: u64) -> RenderedValue {
    RenderedValue::named_struct(
        ".bss",
        (0..n)
            .map(|i| {
                m(
                    &format!("nr_counter_{i}"),
                    uint(64, 10u64.pow((i % 8) as u32)),
                )
            })
            .chain([m("name", chars("scx_p2dq", 16))])
            .collect(),
    )
}

/// Byte offsets (char columns) where each `name=` cell starts on a grid line.
fn cell_starts(line: &str) -> Vec<usize> {
    let chars: Vec<char> = line.chars().collect();
    (0..chars.len())
        .filter(|&i| chars[i] == 'n' && (i == 0 || chars[i - 1] == ' '))
        .collect()
}

#[test]
fn data_section_scalars_fill_aligned_columns_up_to_the_width() {
    for width in [60, 100, 120, 200] {
        let opts = DisplayOptions {
            width,
            ..DisplayOptions::default()
        };
        let out = bss(30).display_with(&opts).to_string();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], ".bss:");
        assert_eq!(*lines.last().unwrap(), "  name=\"scx_p2dq\"");
        let grid = &lines[1..lines.len() - 1];
        assert!(grid.iter().all(|l| l.chars().count() <= width), "{out}");
        let per_line = cell_starts(grid[0]).len();
        // Several per line: at least as many as fit if every column were as wide as the
        // widest cell (`nr_counter_NN=10000000`, 22) plus the gap of 2.
        assert!(per_line >= width / 24, "{width}: {out}");
        assert_eq!(grid.len(), 30_usize.div_ceil(per_line), "{out}");
        // Every line's cells start at the same columns as the first line's.
        for l in grid {
            let starts = cell_starts(l);
            assert_eq!(starts, cell_starts(grid[0])[..starts.len()], "{out}");
        }
    }
}

#[test]
fn data_section_columns_exact() {
    let v = RenderedValue::named_struct(
        ".data",
        vec![
            m("a", uint(32, 1)),
            m("bbbbbbbb", uint(32, 22)),
            m("c", RenderedValue::Bool { value: true }),
            m("dd", int(32, -4)),
            m("zero", uint(32, 0)),
            m("arr", u32s(&[3, 3])),
        ],
    );
    let opts = DisplayOptions {
        width: 30,
        ..DisplayOptions::default()
    };
    assert_eq!(
        v.display_with(&opts).to_string(),
        // 3 columns fit in 28: `a=1`/`dd=-4` make the first 5 wide.
        ".data:\n  a=1    bbbbbbbb=22  c=true\n  dd=-4\n  arr=[3 ×2]"
    );
}

#[test]
fn a_struct_that_is_not_a_data_section_keeps_one_member_per_line() {
    let v = RenderedValue::named_struct(
        "task_ctx",
        (0..20)
            .map(|i| m(&format!("counter_{i}"), uint(64, 1_000_000 + i)))
            .collect(),
    );
    assert_eq!(v.to_string().lines().count(), 21);
}

// ---------------------------------------------------------------------------------------------
// per-CPU values

fn cpu_ctx(cpu: u64, dispatched: u64) -> RenderedValue {
    RenderedValue::named_struct(
        "cpu_ctx",
        vec![
            m("id", uint(32, cpu)),
            m("slice_ns", uint(64, 20_000_000)),
            m(
                "layer",
                RenderedValue::named_struct(
                    "layer_ref",
                    vec![m("weight", uint(32, 100)), m("name", chars("batch", 8))],
                ),
            ),
            m("nr_dispatched", uint(64, dispatched)),
            m("dsq_load", u32s(&[3, 3, 0, 0])),
        ],
    )
}

fn percpu(per_cpu: Vec<Option<RenderedValue>>) -> FailureDumpReport {
    report_with(vec![FailureDumpMap {
        percpu_entries: vec![FailureDumpPercpuEntry { key: 0, per_cpu }],
        ..map("pcpu", map_type::PERCPU_ARRAY)
    }])
}

#[test]
fn per_cpu_structs_print_what_is_common_once_and_a_table_of_what_differs() {
    let r = percpu(vec![
        Some(cpu_ctx(0, 10)),
        Some(cpu_ctx(1, 10)),
        None,
        Some(cpu_ctx(3, 12)),
    ]);
    let want = [
        "map pcpu (type=percpu_array, value_size=16, max_entries=64)",
        "  key 0:",
        "    common: cpu_ctx{slice_ns=20000000, layer.weight=100, layer.name=\"batch\", \
         dsq_load=[3 ×2, 0 ×2]}",
        "    per-cpu:",
        "      cpus | id  nr_dispatched",
        "         0 |  0             10",
        "         1 |  1             10",
        "         3 |  3             12",
        "    cpu 2: <unreadable>",
    ];
    assert_eq!(r.to_string(), want.join("\n"));
}

#[test]
fn per_cpu_identical_values_are_said_once() {
    let r = percpu(vec![Some(cpu_ctx(0, 1)); 32]);
    let out = r.to_string();
    // Header, `all CPUs` and the 4 non-zero members of the one value.
    assert_eq!(out.lines().count(), 6, "{out}");
    assert!(out.contains("\n  key 0: all CPUs: cpu_ctx:\n"), "{out}");
}

#[test]
fn per_cpu_table_wraps_at_the_width() {
    let many = |cpu: u64| {
        RenderedValue::named_struct(
            "stats",
            (0..12)
                .map(|i| m(&format!("counter_number_{i}"), uint(64, 1_000 * cpu + i)))
                .collect(),
        )
    };
    let r = percpu((0..4).map(|c| Some(many(c))).collect());
    let opts = DisplayOptions {
        width: 80,
        ..DisplayOptions::default()
    };
    let out = r.display_with(&opts).to_string();
    assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
    let tables = out
        .lines()
        .filter(|l| l.trim_start().starts_with("cpus |"))
        .count();
    assert!(tables >= 3, "{out}");
    for i in 0..12 {
        assert!(out.contains(&format!("counter_number_{i}")), "{out}");
    }
}

#[test]
fn full_prints_every_cpu() {
    let r = percpu(vec![Some(cpu_ctx(0, 1)), Some(cpu_ctx(0, 1))]);
    let out = r.display_with(&full()).to_string();
    assert!(
        out.contains("\n    cpu 0: cpu_ctx") && out.contains("\n    cpu 1: cpu_ctx"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// guest strings

fn task(pid: i32, comm: &str) -> TaskEnrichment {
    TaskEnrichment {
        pid,
        tgid: pid,
        comm: comm.into(),
        sched_class: "ext".into(),
        ..TaskEnrichment::default()
    }
}

#[test]
fn a_comm_with_control_characters_cannot_break_the_table_or_reach_the_terminal() {
    let r = FailureDumpReport {
        task_enrichments: vec![
            task(1, "init"),
            task(131, "ktstr-victim\n"),
            task(140, "bell\x07\x1b[1mbold\r"),
        ],
        rq_scx_states: vec![rq(1, (131, "ktstr-victim\n"), vec![])],
        ..FailureDumpReport::default()
    };
    let out = r.to_string();
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
    let rows: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("tasks:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(rows.iter().all(|l| l.len() == rows[0].len()), "{out}");
    assert!(rows[2].contains(r"ktstr-victim\n"), "{out}");
    assert!(rows[3].contains(r"bell\x07\x1b[1mbold\r"), "{out}");
    assert!(out.contains(r"curr=ktstr-victim\n[131]"), "{out}");
}

#[test]
fn every_guest_string_is_escaped() {
    let evil = "x\x1b[2J\ny\r\x07";
    let escaped = r"x\x1b[2J\ny\r\x07";
    let value = RenderedValue::Struct {
        type_name: Some(evil.into()),
        members: vec![
            m(evil, uint(32, 1)),
            m(
                "e",
                RenderedValue::Enum {
                    bits: 32,
                    value: 1,
                    variant: Some(evil.into()),
                    is_signed: false,
                },
            ),
            m("u", RenderedValue::unsupported(evil)),
            m(
                "p",
                RenderedValue::Ptr {
                    value: 1,
                    deref: None,
                    deref_skipped_reason: Some(evil.into()),
                    cast_annotation: Some(evil.into()),
                },
            ),
        ],
    };
    let single = FailureDumpReport {
        maps: vec![FailureDumpMap {
            value: Some(value),
            error: Some(evil.into()),
            ..map(evil, map_type::ARRAY)
        }],
        prog_runtime_stats: vec![ProgRuntimeStats {
            name: evil.into(),
            ..ProgRuntimeStats::default()
        }],
        active_obj_name: Some(evil.into()),
        scx_walker_unavailable: Some(evil.into()),
        guest_setup_failure: Some(GuestSetupFailureContext {
            init_stage: evil.into(),
            // A log tail is lines: `\n` and `\r\n` end them; the rest is escaped.
            console_tail: "one \x1b[2J\rx\x07\r\nline two".into(),
            ..GuestSetupFailureContext::default()
        }),
        ..FailureDumpReport::default()
    };
    let dual = DualFailureDumpReport {
        early_skipped_reason: Some(evil.into()),
        ..DualFailureDumpReport::new(single.clone())
    };
    let degraded = DegradedFailureDumpReport {
        reason: evil.into(),
        bss_latch_state: evil.into(),
        ..DegradedFailureDumpReport::default()
    };
    for (name, out) in [
        ("single", single.to_string()),
        ("dual", dual.to_string()),
        ("degraded", degraded.to_string()),
    ] {
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "{name}: {out:?}"
        );
        assert!(out.contains(escaped), "{name}: {out}");
    }
    let out = single.to_string();
    assert!(
        out.contains("\n    one \\x1b[2J\\rx\\x07\n    line two"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// options

#[test]
fn display_is_display_with_the_default_options() {
    assert_eq!(DisplayOptions::default().width, 120);
    assert!(!DisplayOptions::default().full);
    let reports: Vec<FailureDumpReportAny> = vec![
        common::scheduler_report().into(),
        common::dual_with_early().into(),
        common::degraded().into(),
    ];
    for r in reports {
        assert_eq!(
            r.to_string(),
            r.display_with(&DisplayOptions::default()).to_string()
        );
    }
}

#[test]
fn any_width_renders_without_panicking() {
    let r = common::full_report();
    for width in [0, 1, 5, 40, 1000] {
        for full in [false, true] {
            let out = r.display_with(&DisplayOptions { full, width }).to_string();
            assert!(out.contains("map sched.bss"));
        }
    }
}

#[test]
fn full_lists_every_task_run_queue_and_dsq() {
    let r = FailureDumpReport {
        task_enrichments: (0..40).map(|p| task(p, "w")).collect(),
        rq_scx_states: vec![RqScxState::default(); 2],
        dsq_states: vec![DsqState::default(); 3],
        ..FailureDumpReport::default()
    };
    let short = r.to_string();
    let all = r.display_with(&full()).to_string();
    assert!(short.contains("… 8 more (--section tasks)"), "{short}");
    assert!(!all.contains("more") && !all.contains("--section"), "{all}");
    // The default view folds the idle CPUs into one line and the empty DSQs into another.
    assert!(short.contains("CPUs 0,0: nr_run=0, no task"), "{short}");
    assert!(short.contains("3 empty DSQs: 0x0, 0x0, 0x0"), "{short}");
    // And ends with a blank line and one saying that it cut parts short.
    assert!(
        short.ends_with("--full shows everything unfolded)"),
        "{short}"
    );
    assert_eq!(
        all.lines().count(),
        short.lines().count() - 2 - 1 + 8 + (2 - 1) + (3 - 1),
        "{all}"
    );
}

// ---------------------------------------------------------------------------------------------
// tasks by name, filters

const VICTIM: u64 = 0xffff_8880_0000_1000;

fn named_report() -> FailureDumpReport {
    let ptr = |value| RenderedValue::Ptr {
        value,
        deref: None,
        deref_skipped_reason: None,
        cast_annotation: None,
    };
    let mut storage = map("task_ctx_stor", map_type::TASK_STORAGE);
    storage.entries = [(VICTIM, 5), (0xffff_8880_0000_9000, 6)]
        .into_iter()
        .map(|(owner, runs)| FailureDumpEntry {
            key_hex: hex(&u64::to_le_bytes(owner)),
            value: Some(RenderedValue::named_struct(
                "task_ctx",
                vec![m("runs", uint(64, runs)), m("comm", chars("x", 4))],
            )),
            ..FailureDumpEntry::default()
        })
        .collect();
    let mut bss = map("sched.bss", map_type::ARRAY);
    bss.value = Some(RenderedValue::named_struct(
        ".bss",
        vec![
            m("last_task", ptr(VICTIM)),
            m("last_task_u64", uint(64, VICTIM)),
            m("last_task_s64", int(64, VICTIM as i64)),
            m("not_a_task", ptr(0xffff_8880_0000_2000)),
            m(
                "buf",
                RenderedValue::Bytes {
                    hex: hex(b"ab\0\0\0\0\0\0"),
                },
            ),
        ],
    ));
    let mut victim = task(131, "ktstr-victim");
    victim.task_kva = VICTIM;
    FailureDumpReport {
        maps: vec![storage, bss],
        task_enrichments: vec![task(1, "init"), victim],
        rq_scx_states: vec![rq(1, (1, "init"), vec![VICTIM])],
        dsq_states: vec![dsq(0x101, vec![VICTIM])],
        ..FailureDumpReport::default()
    }
}

#[test]
fn addresses_of_captured_tasks_print_as_their_names() {
    let out = named_report().to_string();
    // Pointers, u64 and s64 values holding the task's address; an address that is not a task
    // stays an address.
    assert!(out.contains("last_task=ktstr-victim[131]"), "{out}");
    assert!(out.contains("last_task_u64=ktstr-victim[131]"), "{out}");
    assert!(out.contains("last_task_s64=ktstr-victim[131]"), "{out}");
    assert!(out.contains("not_a_task=0xffff888000002000"), "{out}");
    // Storage keys as their owners, in a table with the char[] member.
    assert!(out.contains("              owner | runs  comm"), "{out}");
    assert!(out.contains("   ktstr-victim[131] |    5   \"x\""), "{out}");
    assert!(
        out.contains("task 0xffff888000009000 |    6   \"x\""),
        "{out}"
    );
    // Runqueue states name the task on its CPU and on its DSQ.
    assert!(out.contains("  CPU 1: nr_run=2 flags=0x0 cpu_rel=0 ops_qseq=0 kick_sync=0 curr=init[1]\n   *R init[1] weight=0 prio=0\n    R ktstr-victim[131] dsq=0x101 weight=0 prio=0\n"), "{out}");
    assert!(
        out.contains("  DSQ 0x101 (user): nr=1 seq=0: ktstr-victim[131]\n"),
        "{out}"
    );
    // The task's address is nowhere else.
    assert!(!out.contains("0xffff888000001000"), "{out}");
    // Trailing zero bytes fold (not with `full`).
    assert!(out.contains("buf=61 62 00 ×6"), "{out}");
    let full = named_report().display_with(&full()).to_string();
    assert!(full.contains("buf=61 62 00 00 00 00 00 00"), "{full}");
    // `full` lists every field of the tasks, their addresses too.
    assert!(full.contains("  0xffff888000001000  "), "{full}");
}

fn filtered(r: &FailureDumpReport, f: &Filter) -> String {
    f.check(&r.clone().into()).unwrap();
    r.display_filtered(&DisplayOptions::default(), f)
        .to_string()
}

#[test]
fn filters_print_only_what_they_select() {
    let r = named_report();
    let sections = Filter {
        sections: vec!["runqueues".into()],
        ..Filter::default()
    };
    let out = filtered(&r, &sections);
    assert!(
        out.starts_with("runqueue states: 1 CPUs, 1 DSQs\n"),
        "{out}"
    );
    assert!(!out.contains("map ") && !out.contains("tasks:"), "{out}");
    // A map name matches by substring, and a selected map shows its address.
    let maps = Filter {
        maps: vec!["bss".into()],
        ..Filter::default()
    };
    let out = filtered(&r, &maps);
    assert!(
        out.starts_with(
            "map sched.bss (type=array, value_size=16, max_entries=64) kva=0xffffc90000010000\n"
        ),
        "{out}"
    );
    assert!(!out.contains("task_ctx_stor"), "{out}");
    // A task: every field, where it waits, its storage entry, the values holding its address.
    let task = Filter {
        tasks: vec!["ktstr-victim".into()],
        ..Filter::default()
    };
    let out = filtered(&r, &task);
    assert!(out.starts_with("task ktstr-victim[131]:\n"), "{out}");
    assert!(out.contains("task_kva=0xffff888000001000"), "{out}");
    for want in [
        "runnable on CPU 1 (1 of 1)",
        "queued on DSQ 0x101 (user): 1 of 1",
        "map task_ctx_stor entry: task_ctx{runs=5, comm=\"x\"}",
        "its address is in map sched.bss value.last_task",
        "its address is in map sched.bss value.last_task_u64",
        "its address is in map sched.bss value.last_task_s64",
    ] {
        assert!(out.lines().any(|l| l.trim() == want), "{want}: {out}");
    }
    assert!(!out.contains("init[1]:"), "{out}");
    // By pid too; the union of two filters.
    let both = Filter {
        sections: vec!["tasks".into()],
        tasks: vec!["1".into()],
        ..Filter::default()
    };
    let out = filtered(&r, &both);
    assert!(
        out.contains("tasks: 2 captured") && out.contains("task init[1]:"),
        "{out}"
    );
}

#[test]
fn a_filter_with_unknown_names_is_refused() {
    let r: FailureDumpReportAny = named_report().into();
    let check = |f: Filter| f.check(&r).unwrap_err();
    let e = check(Filter {
        sections: vec!["mapz".into()],
        ..Filter::default()
    });
    assert!(
        e.contains("unknown section \"mapz\"") && e.contains("runqueues"),
        "{e}"
    );
    let e = check(Filter {
        maps: vec!["nope".into()],
        ..Filter::default()
    });
    assert!(e.contains("sched.bss, task_ctx_stor"), "{e}");
    let e = check(Filter {
        tasks: vec!["999".into()],
        ..Filter::default()
    });
    assert!(e.contains("no task with pid or comm \"999\""), "{e}");
    // Every section name is known, and selecting one with nothing in it says so.
    for (name, _) in Filter::SECTIONS {
        let f = Filter {
            sections: vec![name.into()],
            ..Filter::default()
        };
        assert!(f.check(&r).is_ok(), "{name}");
    }
    let f = Filter {
        sections: vec!["vcpu_perf".into()],
        ..Filter::default()
    };
    assert_eq!(filtered(&named_report(), &f), "(nothing selected)");
}

/// The early snapshot's summary line names the task that waited longest and its DSQ when
/// the report has runnable ages, else the first queued task.
#[test]
fn early_summary_names_the_longest_waiter() {
    let task = |pid: i32, comm: &str, kva: u64, age: Option<u64>| TaskEnrichment {
        pid,
        comm: comm.into(),
        task_kva: kva,
        runnable_age_jiffies: age,
        ..Default::default()
    };
    let mut early = FailureDumpReport {
        active_obj_name: Some("s".into()),
        dsq_states: vec![dsq(0x100, vec![0xa0]), dsq(0x101, vec![0xb0])],
        task_enrichments: vec![
            task(10, "first", 0xa0, Some(3)),
            task(11, "victim", 0xb0, Some(251)),
        ],
        ..Default::default()
    };
    let dual = |early: &FailureDumpReport| DualFailureDumpReport {
        early: Some(early.clone()),
        early_max_age_jiffies: 251,
        early_threshold_jiffies: 250,
        ..DualFailureDumpReport::new(early.clone())
    };
    let out = dual(&early).to_string();
    assert!(
        out.contains(
            "early snapshot: victim[11] on dsq 0x101 waited longest: 251j (threshold 250j)"
        ),
        "{out}"
    );
    for t in &mut early.task_enrichments {
        t.runnable_age_jiffies = None;
    }
    let out = dual(&early).to_string();
    assert!(
        out.contains(
            "early snapshot: the oldest runnable task had waited 251j (threshold 250j); dsq 0x100 held first[10]"
        ),
        "{out}"
    );
}
