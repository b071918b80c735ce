//! Subcommands over the journal: `runs`, `report`, `diff`, `resume`, `rerun`, `backup` and
//! `restore`. They read the store directly (no engine), except `resume` and `rerun`, which
//! start an engine session like `run`.

use std::collections::BTreeSet;
use std::io::Write;

use serde_json::Value;

use super::run::{Launch, execute};
use super::{
    BackupArgs, DiffArgs, ReportArgs, RerunArgs, RestoreArgs, ResumeArgs, RunsArgs, StoreArg,
};
use crate::config::Config;
use crate::engine::state::Run;
use crate::model::{EventKind, Millis, RunId, now_millis};
use crate::report::Report;
use crate::spec::Workflow;
use crate::store::{self, Backend, RunRecord, StoreUrl};

/// A failure with its exit code: 1 for "no such run" and the like, 2 for a store that cannot be
/// used.
struct Fail(u8, String);

impl From<store::StoreError> for Fail {
    fn from(e: store::StoreError) -> Self {
        let code = match e {
            store::StoreError::Invalid(_) => 1,
            _ => 2,
        };
        Fail(code, e.to_string())
    }
}

fn finish(result: Result<u8, Fail>) -> color_eyre::Result<u8> {
    Ok(match result {
        Ok(code) => code,
        Err(Fail(code, msg)) => {
            eprintln!("taskdeck: {msg}");
            code
        }
    })
}

fn open(arg: &StoreArg, config: &Config) -> Result<Box<dyn Backend>, Fail> {
    let url = StoreUrl::from_arg(arg.store.as_deref(), config)?;
    Ok(store::open(&url)?)
}

fn find(b: &mut dyn Backend, wanted: &str) -> Result<RunRecord, Fail> {
    let runs = b.runs()?;
    Ok(store::resolve_run(&runs, wanted)?)
}

/// The workflow a run used, exactly as journaled with its submission.
fn submission(b: &mut dyn Backend, run: &RunId) -> Result<(Workflow, Option<String>), Fail> {
    match b.submission(run)? {
        Some(ev) => match ev.kind {
            EventKind::RunSubmitted { workflow, source } => Ok(((*workflow).clone(), source)),
            _ => Err(Fail(
                2,
                format!("the journal of run {run} does not begin with its submission"),
            )),
        },
        None => Err(Fail(
            1,
            format!("the journal holds no events for run {run}"),
        )),
    }
}

// ----- runs -----

pub fn runs(args: RunsArgs, config: &Config) -> color_eyre::Result<u8> {
    finish((|| {
        let mut b = open(&args.store, config)?;
        let runs = b.runs()?;
        let now = now_millis();
        let shown = &runs[..runs.len().min(args.limit)];
        let mut out = std::io::BufWriter::new(std::io::stdout());
        if args.json {
            for r in shown {
                let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("state".into(), r.display_state(now).into());
                    o.remove("owner");
                    o.remove("heartbeat");
                }
                let _ = writeln!(out, "{v}");
            }
            return Ok(0);
        }
        if runs.is_empty() {
            let _ = writeln!(
                out,
                "no runs in {} yet; `taskdeck run FILE` starts one",
                b.location()
            );
            return Ok(0);
        }
        let name_w = shown
            .iter()
            .map(|r| r.row.workflow.chars().count())
            .max()
            .unwrap_or(8)
            .clamp(8, 28);
        let _ = writeln!(
            out,
            "{:<22} {:<name_w$} {:>4}  {:<11} {:<16} {:>8}  TASKS",
            "RUN", "WORKFLOW", "VER", "STATE", "STARTED", "TOOK"
        );
        for r in shown {
            let row = &r.row;
            let took = match row.finished_at {
                Some(f) => duration(f.saturating_sub(row.submitted_at)),
                None if r.is_orphaned(now) => "-".into(),
                None => duration(now.saturating_sub(row.submitted_at)),
            };
            let name: String = row.workflow.chars().take(name_w).collect();
            let _ = writeln!(
                out,
                "{:<22} {:<name_w$} {:>4}  {:<11} {:<16} {:>8}  {}",
                row.id.as_str(),
                name,
                format!("v{}", r.version_no),
                r.display_state(now),
                crate::history::local_datetime(row.submitted_at),
                took,
                counts(row.tasks, &row.counts),
            );
        }
        if runs.len() > shown.len() {
            let _ = writeln!(
                out,
                "… and {} older runs (-n N shows more)",
                runs.len() - shown.len()
            );
        }
        let orphans = runs.iter().filter(|r| r.is_orphaned(now)).count();
        if orphans > 0 {
            let _ = writeln!(
                out,
                "{orphans} interrupted run{} can be resumed: taskdeck resume RUN (or --last)",
                if orphans == 1 { "" } else { "s" }
            );
        }
        Ok(0)
    })())
}

fn counts(tasks: u32, counts: &std::collections::BTreeMap<String, u32>) -> String {
    let order = [
        "succeeded",
        "failed",
        "running",
        "ready",
        "pending",
        "waiting_approval",
        "paused",
        "retry_wait",
        "skipped",
        "blocked",
        "cancelled",
    ];
    let mut parts: Vec<String> = order
        .iter()
        .filter_map(|s| {
            counts
                .get(*s)
                .map(|n| format!("{n} {}", s.replace('_', " ")))
        })
        .collect();
    for (s, n) in counts {
        if !order.contains(&s.as_str()) {
            parts.push(format!("{n} {}", s.replace('_', " ")));
        }
    }
    format!("{tasks}: {}", parts.join(", "))
}

fn duration(ms: Millis) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{:.1}s", ms as f64 / 1000.0),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

// ----- report -----

/// Folds a run's journaled events into its state, as any client would.
fn fold(b: &mut dyn Backend, id: &RunId) -> Result<(Run, usize), Fail> {
    let events = b.run_events(id)?.into_iter().map(|e| e.event.ok());
    let past = crate::history::fold_run(id, events, false)
        .ok_or_else(|| Fail(1, format!("the journal holds no events for run {id}")))?;
    Ok((*past.run, past.damaged))
}

pub fn report(args: ReportArgs, config: &Config) -> color_eyre::Result<u8> {
    finish((|| {
        let mut b = open(&args.store, config)?;
        let rec = find(b.as_mut(), &args.run)?;
        let (run, damaged) = fold(b.as_mut(), &rec.row.id)?;
        if damaged > 0 {
            eprintln!(
                "taskdeck: warning: the journal of run {} is damaged; the report stops at the last good event",
                rec.row.id
            );
        }
        let mut report = serde_json::to_value(Report::of(&run))
            .map_err(|e| Fail(2, format!("cannot encode the report: {e}")))?;
        if rec.is_orphaned(now_millis())
            && let Some(o) = report.as_object_mut()
        {
            o.insert("state".into(), "interrupted".into());
        }
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Fail(2, format!("cannot encode the report: {e}")))?;
        match &args.output {
            Some(path) => {
                std::fs::write(path, json + "\n").map_err(|e| {
                    Fail(
                        2,
                        format!("cannot write the report to {}: {e}", path.display()),
                    )
                })?;
                println!("report of run {} written to {}", rec.row.id, path.display());
            }
            None => println!("{json}"),
        }
        Ok(0)
    })())
}

// ----- diff -----

pub fn diff(args: DiffArgs, config: &Config) -> color_eyre::Result<u8> {
    finish((|| {
        let mut b = open(&args.store, config)?;
        let a = find(b.as_mut(), &args.first)?;
        let z = find(b.as_mut(), &args.second)?;
        let (wa, sa) = submission(b.as_mut(), &a.row.id)?;
        let (wz, sz) = submission(b.as_mut(), &z.row.id)?;
        let mut out = std::io::BufWriter::new(std::io::stdout());
        let label = |r: &RunRecord| {
            format!(
                "run {} ({} v{}, version {})",
                r.row.id, r.row.workflow, r.version_no, r.row.version
            )
        };
        let _ = writeln!(out, "--- {}", label(&a));
        let _ = writeln!(out, "+++ {}", label(&z));
        if a.row.version == z.row.version {
            let _ = writeln!(out, "same workflow version: nothing changed");
            return Ok(0);
        }
        for line in task_changes(&wa, &wz) {
            let _ = writeln!(out, "{line}");
        }
        let text = |w: &Workflow, s: Option<String>| {
            s.unwrap_or_else(|| serde_json::to_string_pretty(w).unwrap_or_default())
        };
        let (ta, tz) = (text(&wa, sa), text(&wz, sz));
        let diff = similar::TextDiff::from_lines(&ta, &tz);
        let _ = write!(
            out,
            "{}",
            diff.unified_diff()
                .context_radius(3)
                .header(a.row.id.as_str(), z.row.id.as_str())
        );
        Ok(0)
    })())
}

/// Tasks added, removed and changed (with the fields that changed), for people.
fn task_changes(a: &Workflow, z: &Workflow) -> Vec<String> {
    let ids = |w: &Workflow| -> BTreeSet<String> { w.tasks.iter().map(|t| t.id.clone()).collect() };
    let (ia, iz) = (ids(a), ids(z));
    let mut lines = Vec::new();
    let added: Vec<&String> = iz.difference(&ia).collect();
    let removed: Vec<&String> = ia.difference(&iz).collect();
    if !added.is_empty() {
        lines.push(format!("tasks added: {}", join(&added)));
    }
    if !removed.is_empty() {
        lines.push(format!("tasks removed: {}", join(&removed)));
    }
    let mut changed = Vec::new();
    for id in ia.intersection(&iz) {
        let ta = a.tasks.iter().find(|t| &t.id == id);
        let tz = z.tasks.iter().find(|t| &t.id == id);
        let (Some(ta), Some(tz)) = (ta, tz) else {
            continue;
        };
        let (va, vz) = (
            serde_json::to_value(ta).unwrap_or(Value::Null),
            serde_json::to_value(tz).unwrap_or(Value::Null),
        );
        if va == vz {
            continue;
        }
        let fields: BTreeSet<String> = match (va.as_object(), vz.as_object()) {
            (Some(oa), Some(oz)) => oa
                .keys()
                .chain(oz.keys())
                .filter(|k| oa.get(*k) != oz.get(*k))
                .cloned()
                .collect(),
            _ => BTreeSet::new(),
        };
        changed.push(format!(
            "{id} ({})",
            fields.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if !changed.is_empty() {
        lines.push(format!("tasks changed: {}", changed.join("; ")));
    }
    if lines.is_empty() {
        lines.push("tasks: the same (the change is elsewhere in the file)".into());
    }
    lines
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

// ----- resume and rerun -----

pub fn resume(args: ResumeArgs, config: Config) -> color_eyre::Result<u8> {
    let target = (|| {
        let mut b = open(&args.opts.store, &config)?;
        let now = now_millis();
        if args.last {
            let runs = b.runs()?;
            return runs
                .into_iter()
                .find(|r| r.is_orphaned(now))
                .map(|r| r.row.id)
                .ok_or_else(|| {
                    Fail(
                        1,
                        format!(
                            "no interrupted run to resume in {}; `taskdeck runs` lists them",
                            b.location()
                        ),
                    )
                });
        }
        let wanted = args.run.as_deref().unwrap_or_default();
        Ok(find(b.as_mut(), wanted)?.row.id)
    })();
    match target {
        Ok(id) => execute(vec![Launch::Resume(id)], args.opts, config),
        Err(f) => finish(Err(f)),
    }
}

pub fn rerun(args: RerunArgs, config: Config) -> color_eyre::Result<u8> {
    let found = (|| {
        let mut b = open(&args.opts.store, &config)?;
        let rec = find(b.as_mut(), &args.run)?;
        let (workflow, source) = submission(b.as_mut(), &rec.row.id)?;
        Ok::<_, Fail>((rec, workflow, source))
    })();
    match found {
        Ok((rec, workflow, source)) => {
            if !super::run::opens_console(&args.opts) && !args.opts.quiet {
                println!(
                    "re-running `{}` v{} (version {}) as run {} used it",
                    rec.row.workflow, rec.version_no, rec.row.version, rec.row.id
                );
            }
            execute(
                vec![Launch::Submit {
                    workflow: Box::new(workflow),
                    source,
                }],
                args.opts,
                config,
            )
        }
        Err(f) => finish(Err(f)),
    }
}

// ----- backup and restore -----

pub fn backup(args: BackupArgs, config: &Config) -> color_eyre::Result<u8> {
    finish((|| {
        if args.file.exists() {
            return Err(Fail(
                1,
                format!(
                    "{} already exists; give a new file name (a backup never overwrites)",
                    args.file.display()
                ),
            ));
        }
        let mut b = open(&args.store, config)?;
        let n = b.runs()?.len();
        b.backup_to(&args.file)?;
        println!(
            "backed up {} ({n} runs) to {}",
            b.location(),
            args.file.display()
        );
        Ok(0)
    })())
}

pub fn restore(args: RestoreArgs, config: &Config) -> color_eyre::Result<u8> {
    finish((|| {
        let mut b = open(&args.store, config)?;
        let now = now_millis();
        if let Some(live) = b.runs()?.iter().find(|r| {
            !store::is_terminal_state(&r.row.state)
                && store::owner_alive(r.row.owner.as_deref(), r.row.heartbeat, now)
        }) {
            return Err(Fail(
                1,
                format!(
                    "run {} is executing on this store ({}); stop it before restoring over it",
                    live.row.id,
                    live.row.owner.as_deref().unwrap_or("another process")
                ),
            ));
        }
        b.restore_from(&args.file)?;
        let n = b.runs()?.len();
        println!(
            "restored {} from {} ({n} runs)",
            b.location(),
            args.file.display()
        );
        Ok(0)
    })())
}
