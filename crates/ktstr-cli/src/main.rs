//! `ktstr`: run a sched_ext guest and capture, render, compare and validate failure dumps.
//!
//! A thin layer over `ktstr_cli` (the library half): it parses arguments, prints, and
//! turns outcomes into exit codes: 0 no failure, 1 failure captured (or an invalid
//! document for `validate`), 2 usage or unusable input, 3 infrastructure error, 4 capture
//! incomplete (a dump was written, but its core — the scheduler's state, the runqueues
//! or the tasks — could not be read at all: `ktstr_cli::report_core_unread`).

mod cli;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use dump_schema::{FailureDumpReportAny, SchemaKind};
use ktstr_cli::{Error, ErrorClass};

use cli::{CaptureArgs, Cli, Command, ExportArgs, RunArgs};

const EXIT_OK: u8 = 0;
const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_INFRA: u8 = 3;
const EXIT_INCOMPLETE: u8 = 4;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let verbose = cli.verbose;
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line for people; the library's messages already carry their context.
            let msg = e.to_string();
            let mut lines = msg.lines();
            eprintln!("ktstr: error: {}", lines.next().unwrap_or_default());
            if verbose > 0 {
                for l in lines {
                    eprintln!("  {l}");
                }
            }
            ExitCode::from(match e.class() {
                ErrorClass::Input => EXIT_USAGE,
                ErrorClass::Infrastructure => EXIT_INFRA,
            })
        }
    }
}

/// Help and version print as clap formats them; argument errors become one line.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK })
        }
        _ => {
            eprintln!(
                "ktstr: error: {} (see --help)",
                usage_line(&e.render().to_string())
            );
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// clap's message up to its usage block, on one line: "the following required arguments
/// were not provided: <FILE>" names what is missing.
fn usage_line(text: &str) -> String {
    let body: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = body.join(" ");
    joined
        .strip_prefix("error: ")
        .unwrap_or(&joined)
        .to_string()
}

fn dispatch(cli: Cli) -> Result<u8, Error> {
    let v = cli.verbose;
    // A run handles its signals itself (the first Ctrl-C captures); every other command
    // ends on a signal, leaving no temporary file behind.
    if !matches!(cli.command, Command::Run(_)) {
        ktstr_cli::install_signal_cleanup(None)?;
    }
    match cli.command {
        Command::Render {
            file,
            json,
            pretty,
            full,
            width,
            sections,
            maps,
            tasks,
            html,
        } => {
            let report = read_report(&file)?;
            if let Some(path) = html {
                ktstr_cli::write_html(&path, &report)?;
            } else if json {
                let out = ktstr_cli::OutTarget::Stdout;
                ktstr_cli::write_report(&out, &report, cli::style(pretty))?;
            } else {
                let opts = dump_schema::DisplayOptions {
                    full,
                    width: width.unwrap_or(dump_schema::DisplayOptions::DEFAULT_WIDTH),
                };
                let filter = dump_schema::Filter {
                    sections,
                    maps,
                    tasks,
                };
                filter.check(&report).map_err(Error::Usage)?;
                print_out(&report.display_filtered(&opts, &filter).to_string())?;
            }
            Ok(EXIT_OK)
        }
        Command::Validate { file, json } => validate(&file, json),
        Command::Schema { kind } => {
            let kind = SchemaKind::from_name(&kind).ok_or_else(|| {
                Error::Usage(format!(
                    "unknown schema {kind:?}: expected single, dual, degraded, any or diff"
                ))
            })?;
            print_out(kind.schema_text().trim_end())?;
            Ok(EXIT_OK)
        }
        Command::Capture(args) => {
            ktstr_cli::heap::prefault_for_capture();
            capture(args, v)
        }
        Command::ExportVmcore(args) => export(args),
        Command::Diff(args) => diff(args),
        Command::Run(args) => run(*args, v),
    }
}

/// Writes to stdout; a closed pipe (`ktstr render x | head`) is not an error.
fn print_out(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Write {
            path: "<stdout>".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn read_report(path: &std::path::Path) -> Result<FailureDumpReportAny, Error> {
    ktstr_cli::input::read_report(path)
}

fn validate(path: &std::path::Path, json: bool) -> Result<u8, Error> {
    let bytes = ktstr_cli::input::read_json(path)?;
    let result = FailureDumpReportAny::from_slice(&bytes);
    let code = if result.is_ok() {
        EXIT_OK
    } else {
        EXIT_FAILURE
    };
    if json {
        let v = match &result {
            Ok(r) => serde_json::json!({ "valid": true, "schema": r.schema() }),
            Err(e) => {
                let path = match e {
                    dump_schema::Error::Invalid { path, .. } => Some(path.clone()),
                    _ => None,
                };
                serde_json::json!({ "valid": false, "error": e.to_string(), "path": path })
            }
        };
        print_out(&v.to_string())?;
    } else {
        match &result {
            Ok(r) => print_out(&format!("{}: valid {} report", path.display(), r.schema()))?,
            Err(e) => eprintln!("{}: {e}", path.display()),
        }
    }
    Ok(code)
}

/// The first SIGINT or SIGTERM of a run means "capture now"; a second one (or SIGHUP)
/// ends the process at once, removing any temporary file being written (QEMU dies with
/// it: it is tied to this process).
fn interrupt_flag() -> Result<Arc<AtomicBool>, Error> {
    let flag = Arc::new(AtomicBool::new(false));
    ktstr_cli::install_signal_cleanup(Some(flag.clone()))?;
    Ok(flag)
}

fn emit_report(
    report: &FailureDumpReportAny,
    json: bool,
    style: ktstr_cli::JsonStyle,
) -> Result<(), Error> {
    if json {
        ktstr_cli::write_report(&ktstr_cli::OutTarget::Stdout, report, style)
    } else {
        print_out(report.to_string().trim_end())
    }
}

fn capture(args: CaptureArgs, verbose: u8) -> Result<u8, Error> {
    // Checked before any work: a bad --out is a usage error, not a lost capture.
    let out_target = args
        .out
        .as_deref()
        .map(ktstr_cli::OutTarget::parse)
        .transpose()?;
    let style = cli::style(args.pretty);
    let sources = args.sources();
    let opts = scx_walk::CaptureOptions::default();
    let out = match (&args.vmcore, &args.qmp, &args.ram) {
        (Some(core), None, None) => {
            if args.vmcore_out.is_some() {
                return Err(Error::Usage(
                    "--vmcore-out needs a live guest (--qmp/--ram), not --vmcore".into(),
                ));
            }
            ktstr_cli::capture_vmcore(core, &sources, &opts)?
        }
        (None, Some(qmp), Some(ram)) => {
            let q = ktstr_cli::QmpAttachOptions {
                qmp: qmp.clone(),
                ram: ram.clone(),
                machine: args.machine.into(),
                sources,
                vmcore_out: args.vmcore_out.clone(),
            };
            ktstr_cli::capture_qmp(&q, &opts)?
        }
        _ => {
            return Err(Error::Usage(
                "capture needs either --vmcore FILE, or --qmp SOCKET with --ram FILE".into(),
            ));
        }
    };
    if verbose > 0 {
        for p in &out.phases {
            eprintln!(
                "ktstr: capture phase {:<16} {:>8.2} ms",
                p.name,
                p.elapsed.as_secs_f64() * 1e3
            );
        }
        for l in &out.log {
            eprintln!("ktstr: {l}");
        }
    }
    let report = FailureDumpReportAny::Single(out.report);
    let timed = |name: &str, t: std::time::Instant| {
        if verbose > 0 {
            let ms = t.elapsed().as_secs_f64() * 1e3;
            eprintln!("ktstr: capture phase {name:<16} {ms:>8.2} ms");
        }
    };
    let t = std::time::Instant::now();
    match &out_target {
        Some(t_out @ ktstr_cli::OutTarget::File(p)) if !args.json => {
            // The rendering is made on a second core while the file is written; it is
            // printed after the file is safely written, as before.
            let text = std::thread::scope(|s| {
                let render = s.spawn(|| {
                    let t = std::time::Instant::now();
                    (report.to_string(), t.elapsed())
                });
                let written = ktstr_cli::write_report(t_out, &report, style);
                timed("write", t);
                let rendered = render.join();
                written.map(|()| rendered)
            })?;
            eprintln!("ktstr: wrote {}", p.display());
            let t = std::time::Instant::now();
            let text = match text {
                Ok((text, made)) => {
                    if verbose > 0 {
                        let ms = made.as_secs_f64() * 1e3;
                        eprintln!(
                            "ktstr: capture phase {:<16} {ms:>8.2} ms (beside write)",
                            "render"
                        );
                    }
                    text
                }
                // A panic of the rendering thread (a bug; the dump is written): rendering
                // again here ends the process as any panic does.
                Err(_) => report.to_string(),
            };
            print_out(text.trim_end())?;
            timed("print", t);
            let code = exit_code_of(&report);
            std::mem::forget(report);
            return Ok(code);
        }
        Some(t_out @ ktstr_cli::OutTarget::File(p)) => {
            ktstr_cli::write_report(t_out, &report, style)?;
            timed("write", t);
            eprintln!("ktstr: wrote {}", p.display());
        }
        Some(t_out @ ktstr_cli::OutTarget::Stdout) => {
            // The dump is standard output: nothing else is printed there.
            ktstr_cli::write_report(t_out, &report, style)?;
            timed("write", t);
            return Ok(exit_code_of(&report));
        }
        None => {}
    }
    let t = std::time::Instant::now();
    emit_report(&report, args.json, style)?;
    timed(if args.json { "json" } else { "render" }, t);
    let code = exit_code_of(&report);
    // The process ends next: freeing a real scheduler's report value by value (hundreds
    // of thousands of them) would only cost time.
    std::mem::forget(report);
    Ok(code)
}

/// 1 when the dump shows a scheduler error exit, 4 when its core could not be read
/// (said on stderr), else 0.
fn exit_code_of(report: &FailureDumpReportAny) -> u8 {
    if ktstr_cli::report_has_error_exit(report) {
        EXIT_FAILURE
    } else if incomplete(report) {
        EXIT_INCOMPLETE
    } else {
        EXIT_OK
    }
}

/// Whether the dump's core is unread; if so, one line on stderr naming what.
fn incomplete(report: &FailureDumpReportAny) -> bool {
    match ktstr_cli::report_core_unread(report) {
        Some(lost) => {
            eprintln!(
                "ktstr: capture incomplete: {} could not be read (the dump's capture_notes say why)",
                lost.join(", ")
            );
            true
        }
        None => false,
    }
}

fn export(args: ExportArgs) -> Result<u8, Error> {
    // Exporting is a capture whose product is the vmcore: freeze, write, thaw.
    let q = ktstr_cli::QmpAttachOptions {
        qmp: args.qmp,
        ram: args.ram,
        machine: args.machine.into(),
        sources: Default::default(),
        vmcore_out: Some(args.out.clone()),
    };
    ktstr_cli::capture_qmp(&q, &scx_walk::CaptureOptions::default())?;
    eprintln!("ktstr: wrote {}", args.out.display());
    Ok(EXIT_OK)
}

fn run(args: RunArgs, verbose: u8) -> Result<u8, Error> {
    let json = args.json;
    let style = cli::style(args.pretty);
    let mut opts = args.into_options();
    opts.interrupt = interrupt_flag()?;
    let result = ktstr_cli::run(&opts)?;
    if verbose > 0 {
        for l in &result.log {
            eprintln!("ktstr: {l}");
        }
    }
    emit_report(&result.report, json, style)?;
    if let ktstr_cli::RunOutcome::GuestSetupFailed { what } = &result.outcome {
        eprintln!(
            "ktstr: the guest failed before a capture was possible: {what}; wrote a placeholder report with guest_setup_failure to {}",
            result.json_path.display()
        );
    } else if let ktstr_cli::RunOutcome::EngineFailed { what } = &result.outcome {
        eprintln!(
            "ktstr: error: the engine could not run the guest ({what}); wrote a placeholder report with guest_setup_failure to {}; use --engine qemu",
            result.json_path.display()
        );
    } else {
        eprintln!(
            "ktstr: {}; wrote {}",
            result.outcome,
            result.json_path.display()
        );
    }
    if let Some(p) = &result.vmcore {
        eprintln!("ktstr: wrote {}", p.display());
    }
    Ok(if result.infrastructure_failure() {
        EXIT_INFRA
    } else if result.failure() {
        EXIT_FAILURE
    } else if incomplete(&result.report) {
        EXIT_INCOMPLETE
    } else {
        EXIT_OK
    })
}

/// `ktstr diff`: 0 when nothing changed, 1 when something did.
fn diff(args: cli::DiffArgs) -> Result<u8, Error> {
    let d = ktstr_cli::diff_files(&args.a, args.b.as_deref())?;
    let text = if args.json {
        let json = if args.pretty {
            d.to_json_pretty()
        } else {
            d.to_json()
        };
        json?
    } else {
        let opts = dump_schema::DisplayOptions {
            full: args.full,
            width: args
                .width
                .unwrap_or(dump_schema::DisplayOptions::DEFAULT_WIDTH),
        };
        d.display_with(&opts).to_string()
    };
    print_out(&text)?;
    Ok(if d.is_empty() { EXIT_OK } else { EXIT_FAILURE })
}
