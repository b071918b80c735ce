//! `taskdeck graph FILE --format text|dot|mermaid|json`: a workflow's levels, critical path and
//! topological order. Loading is thin; `render` is a pure function of the workflow and its
//! analysis so every format is tested without files.

use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;

use super::{GraphArgs, GraphFormat};
use crate::config::Config;
use crate::graph::{self, Analysis};
use crate::spec::{self, LoadError, TaskIdx, Workflow};

/// Text format without `--full`: ids shown per list (a level, the topological order).
const LIST_LIMIT: usize = 20;
/// Text format without `--full`: level lines shown.
const LEVELS_LIMIT: usize = 50;
/// Text format without `--full`: ids kept at each end of a long critical path.
const PATH_ENDS: usize = 10;
/// Text format: lines wrap before this many columns.
const WIDTH: usize = 100;
/// Critical path colour in dot and mermaid.
const CRITICAL: &str = "#d62728";

/// Returns the process exit code.
pub fn run(args: GraphArgs, config: &Config) -> color_eyre::Result<u8> {
    let workflow = match spec::load_path(&args.file, config) {
        Ok(w) => w,
        Err(LoadError::Read { path, source }) => {
            eprintln!("taskdeck: cannot read {}: {source}", path.display());
            return Ok(2);
        }
        Err(LoadError::Invalid(diags)) => {
            for d in &diags {
                eprintln!("{d}");
            }
            let s = if diags.len() == 1 { "" } else { "s" };
            eprintln!("{}: {} problem{s}", args.file.display(), diags.len());
            return Ok(1);
        }
    };
    let needs: Vec<Vec<TaskIdx>> = workflow.tasks.iter().map(|t| t.needs.clone()).collect();
    let analysis = graph::analyze(&needs);
    // A loaded workflow is acyclic; if that ever breaks, say so instead of drawing half a graph.
    if analysis.topo.len() != workflow.tasks.len() {
        let path = graph::find_cycle(&needs)
            .map(|c| join_ids(&workflow, &c, " -> "))
            .unwrap_or_default();
        eprintln!("taskdeck: {}: dependency cycle {path}", args.file.display());
        return Ok(1);
    }
    let out = render(&workflow, &analysis, args.format, args.full);
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(0),
        // `taskdeck graph big.json | head` closes the pipe early; that is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Renders the graph of `workflow` (whose `analysis` came from `graph::analyze` over its needs).
/// `full` only affects the text format, which otherwise shortens long lists with a count.
pub fn render(workflow: &Workflow, analysis: &Analysis, format: GraphFormat, full: bool) -> String {
    match format {
        GraphFormat::Text => text(workflow, analysis, full),
        GraphFormat::Dot => dot(workflow, analysis),
        GraphFormat::Mermaid => mermaid(workflow, analysis),
        GraphFormat::Json => json(workflow, analysis),
    }
}

fn id(workflow: &Workflow, t: TaskIdx) -> &str {
    workflow
        .tasks
        .get(t as usize)
        .map_or("?", |task| task.id.as_str())
}

fn join_ids(workflow: &Workflow, ts: &[TaskIdx], sep: &str) -> String {
    let mut out = String::new();
    for (i, &t) in ts.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(id(workflow, t));
    }
    out
}

fn edge_count(workflow: &Workflow) -> usize {
    workflow.tasks.iter().map(|t| t.needs.len()).sum()
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Critical-path membership per task, and per task the dependent it leads to on the path.
fn critical_marks(workflow: &Workflow, analysis: &Analysis) -> (Vec<bool>, Vec<Option<TaskIdx>>) {
    let n = workflow.tasks.len();
    let mut on = vec![false; n];
    let mut next = vec![None; n];
    for (k, &t) in analysis.critical_path.iter().enumerate() {
        if let Some(slot) = on.get_mut(t as usize) {
            *slot = true;
        }
        if let (Some(slot), Some(&after)) =
            (next.get_mut(t as usize), analysis.critical_path.get(k + 1))
        {
            *slot = Some(after);
        }
    }
    (on, next)
}

// ---------------------------------------------------------------- text

/// Appends `items` after `prefix`, separated by `sep`, wrapping before `WIDTH` columns with
/// continuation lines indented to the prefix's width. `more` (if any) is appended as a last item.
fn wrapped(out: &mut String, prefix: &str, items: &[&str], sep: &str, more: Option<String>) {
    let indent = prefix.chars().count();
    out.push_str(prefix);
    let mut col = indent;
    let last = items.len() + usize::from(more.is_some());
    let mut emit = |out: &mut String, k: usize, item: &str| {
        let tail = if k + 1 < last { sep.trim_end() } else { "" };
        let w = item.chars().count() + tail.chars().count();
        if k > 0 {
            if col + 1 + w > WIDTH && col > indent {
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', indent));
                col = indent;
            } else {
                out.push(' ');
                col += 1;
            }
        }
        out.push_str(item);
        out.push_str(tail);
        col += w;
    };
    for (k, item) in items.iter().enumerate() {
        emit(out, k, item);
    }
    if let Some(m) = more {
        emit(out, items.len(), &m);
    }
    out.push('\n');
}

fn text(workflow: &Workflow, analysis: &Analysis, full: bool) -> String {
    let mut out = String::new();
    let n = workflow.tasks.len();
    let _ = writeln!(
        out,
        "{}: {}, {}, {}, critical path {}",
        workflow.name,
        plural(n, "task", "tasks"),
        plural(edge_count(workflow), "edge", "edges"),
        plural(analysis.levels.len(), "level", "levels"),
        plural(analysis.critical_path.len(), "task", "tasks"),
    );
    if n == 0 {
        return out;
    }

    out.push_str("\nlevels\n");
    let width = analysis.levels.len().saturating_sub(1).to_string().len();
    let shown_levels = if full {
        analysis.levels.len()
    } else {
        analysis.levels.len().min(LEVELS_LIMIT)
    };
    for (l, tasks) in analysis.levels.iter().take(shown_levels).enumerate() {
        let prefix = format!("  level {l:>width$}  ");
        list(&mut out, &prefix, workflow, tasks, full);
    }
    if shown_levels < analysis.levels.len() {
        let rest = analysis.levels.len() - shown_levels;
        let _ = writeln!(out, "  … and {rest} more levels (--full shows all)");
    }

    out.push_str("\ncritical path\n");
    let cp = &analysis.critical_path;
    if full || cp.len() <= 2 * PATH_ENDS {
        let ids: Vec<&str> = cp.iter().map(|&t| id(workflow, t)).collect();
        wrapped(&mut out, "  ", &ids, " ->", None);
    } else {
        let mut ids: Vec<&str> = cp[..PATH_ENDS].iter().map(|&t| id(workflow, t)).collect();
        let gap = format!("… {} more", cp.len() - 2 * PATH_ENDS);
        ids.push(&gap);
        ids.extend(cp[cp.len() - PATH_ENDS..].iter().map(|&t| id(workflow, t)));
        wrapped(&mut out, "  ", &ids, " ->", None);
    }

    out.push_str("\ntopological order\n");
    list(&mut out, "  ", workflow, &analysis.topo, full);
    out
}

/// One comma-separated list of ids, shortened to `LIST_LIMIT` and a count unless `full`.
fn list(out: &mut String, prefix: &str, workflow: &Workflow, tasks: &[TaskIdx], full: bool) {
    let shown = if full {
        tasks.len()
    } else {
        tasks.len().min(LIST_LIMIT)
    };
    let ids: Vec<&str> = tasks[..shown].iter().map(|&t| id(workflow, t)).collect();
    let more = (shown < tasks.len()).then(|| format!("… and {} more", tasks.len() - shown));
    wrapped(out, prefix, &ids, ", ", more);
}

// ---------------------------------------------------------------- dot

/// A DOT quoted string. Only `"` needs escaping for the lexer; `\` is doubled so that labels
/// (where `\n`, `\l`, `\N` are escapes) show the id as written.
fn dot_quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => {}
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn dot(workflow: &Workflow, analysis: &Analysis) -> String {
    let (on, next) = critical_marks(workflow, analysis);
    // Quote each id once: edges mention every task several times.
    let quoted: Vec<String> = workflow.tasks.iter().map(|t| dot_quote(&t.id)).collect();
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", dot_quote(&workflow.name));
    out.push_str("  // edges point from a dependency to the task that needs it\n");
    out.push_str("  node [shape=box, fontname=\"Helvetica\"];\n");
    for (i, q) in quoted.iter().enumerate() {
        if on[i] {
            let _ = writeln!(
                out,
                "  {q} [label={q}, style=bold, color=\"{CRITICAL}\", penwidth=2];"
            );
        } else {
            let _ = writeln!(out, "  {q} [label={q}];");
        }
    }
    for (i, task) in workflow.tasks.iter().enumerate() {
        let to = &quoted[i];
        for &dep in &task.needs {
            let Some(from) = quoted.get(dep as usize) else {
                continue;
            };
            if next.get(dep as usize).copied().flatten() == Some(i as TaskIdx) {
                let _ = writeln!(out, "  {from} -> {to} [color=\"{CRITICAL}\", penwidth=2];");
            } else {
                let _ = writeln!(out, "  {from} -> {to};");
            }
        }
    }
    out.push_str("}\n");
    out
}

// ---------------------------------------------------------------- mermaid

/// Text for a mermaid `["..."]` label: quotes and markup characters as entity codes, so ids
/// like `test[os="a b"]` or `<x>` cannot break the diagram.
fn mermaid_label(s: &str) -> String {
    let mut q = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '#' => q.push_str("#35;"),
            '"' => q.push_str("#quot;"),
            '<' => q.push_str("#lt;"),
            '>' => q.push_str("#gt;"),
            '&' => q.push_str("#amp;"),
            '`' => q.push_str("#96;"),
            '\n' | '\r' => q.push(' '),
            c => q.push(c),
        }
    }
    q
}

fn mermaid(workflow: &Workflow, analysis: &Analysis) -> String {
    let (on, next) = critical_marks(workflow, analysis);
    let mut out = String::from("flowchart TD\n");
    let _ = writeln!(out, "  %% {}", mermaid_label(&workflow.name));
    for (i, task) in workflow.tasks.iter().enumerate() {
        let _ = writeln!(out, "  n{i}[\"{}\"]", mermaid_label(&task.id));
    }
    // linkStyle addresses edges by declaration order, so count them as they are written.
    let mut link = 0usize;
    let mut critical_links = Vec::new();
    for (i, task) in workflow.tasks.iter().enumerate() {
        for &dep in &task.needs {
            let _ = writeln!(out, "  n{dep} --> n{i}");
            if next.get(dep as usize).copied().flatten() == Some(i as TaskIdx) {
                critical_links.push(link.to_string());
            }
            link += 1;
        }
    }
    let _ = writeln!(
        out,
        "  classDef critical stroke:{CRITICAL},stroke-width:3px,font-weight:bold"
    );
    let nodes: Vec<String> = (0..workflow.tasks.len())
        .filter(|&i| on[i])
        .map(|i| format!("n{i}"))
        .collect();
    if !nodes.is_empty() {
        let _ = writeln!(out, "  class {} critical", nodes.join(","));
    }
    if !critical_links.is_empty() {
        let _ = writeln!(
            out,
            "  linkStyle {} stroke:{CRITICAL},stroke-width:3px",
            critical_links.join(",")
        );
    }
    out
}

// ---------------------------------------------------------------- json

#[derive(Serialize)]
struct JsonGraph<'a> {
    name: &'a str,
    tasks: Vec<JsonTask<'a>>,
    levels: Vec<Vec<&'a str>>,
    critical_path: Vec<&'a str>,
    topo: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonTask<'a> {
    id: &'a str,
    needs: Vec<&'a str>,
    level: u32,
    rank: u32,
}

fn json(workflow: &Workflow, analysis: &Analysis) -> String {
    let level = analysis.level_of();
    let ids = |ts: &[TaskIdx]| ts.iter().map(|&t| id(workflow, t)).collect::<Vec<_>>();
    let doc = JsonGraph {
        name: &workflow.name,
        tasks: workflow
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| JsonTask {
                id: &t.id,
                needs: ids(&t.needs),
                level: level.get(i).copied().unwrap_or(0),
                rank: analysis.rank.get(i).copied().unwrap_or(0),
            })
            .collect(),
        levels: analysis.levels.iter().map(|l| ids(l)).collect(),
        critical_path: ids(&analysis.critical_path),
        topo: ids(&analysis.topo),
    };
    // Serialising plain strings and numbers cannot fail; fall back to an empty object anyway.
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Action, Builtin, RetryPolicy, TaskSpec};

    fn task(id: &str, needs: &[TaskIdx]) -> TaskSpec {
        TaskSpec {
            id: id.into(),
            base: id.into(),
            matrix: Default::default(),
            action: Action::Builtin(Builtin::Noop),
            needs: needs.to_vec(),
            requires: Vec::new(),
            agent: None,
            priority: 5,
            timeout: None,
            retry: RetryPolicy::default(),
            resources: Default::default(),
            locks: Vec::new(),
            when: None,
            approval: false,
            reads: None,
            env: Default::default(),
            cwd: None,
            continue_on_failure: false,
            compensate: None,
            format: Default::default(),
            schema: None,
            fanout: None,
        }
    }

    fn workflow(name: &str, tasks: Vec<TaskSpec>) -> (Workflow, Analysis) {
        let wf = Workflow {
            name: name.into(),
            description: None,
            max_parallel: None,
            context: Default::default(),
            secrets: Default::default(),
            agents: Default::default(),
            tasks,
            gates: Vec::new(),
        };
        let needs: Vec<Vec<TaskIdx>> = wf.tasks.iter().map(|t| t.needs.clone()).collect();
        let a = graph::analyze(&needs);
        (wf, a)
    }

    /// fetch, lint; build <- fetch; test[os=linux] <- build; docs <- fetch; release <- test, docs, lint
    fn small() -> (Workflow, Analysis) {
        workflow(
            "feature-x",
            vec![
                task("fetch", &[]),
                task("lint", &[]),
                task("build", &[0]),
                task("test[os=linux]", &[2]),
                task("docs", &[0]),
                task("release", &[3, 4, 1]),
            ],
        )
    }

    #[test]
    fn text_small() {
        let (wf, a) = small();
        insta::assert_snapshot!(render(&wf, &a, GraphFormat::Text, false));
    }

    #[test]
    fn dot_small() {
        let (wf, a) = small();
        insta::assert_snapshot!(render(&wf, &a, GraphFormat::Dot, false));
    }

    #[test]
    fn mermaid_small() {
        let (wf, a) = small();
        insta::assert_snapshot!(render(&wf, &a, GraphFormat::Mermaid, false));
    }

    #[test]
    fn json_small() {
        let (wf, a) = small();
        let out = render(&wf, &a, GraphFormat::Json, false);
        insta::assert_snapshot!(out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["tasks"][5]["needs"],
            serde_json::json!(["test[os=linux]", "docs", "lint"])
        );
        assert_eq!(v["tasks"][5]["level"], 3);
        assert_eq!(v["tasks"][0]["rank"], 4);
        assert_eq!(
            v["critical_path"],
            serde_json::json!(["fetch", "build", "test[os=linux]", "release"])
        );
    }

    #[test]
    fn empty_workflow() {
        let (wf, a) = workflow("nothing", vec![]);
        assert_eq!(
            render(&wf, &a, GraphFormat::Text, false),
            "nothing: 0 tasks, 0 edges, 0 levels, critical path 0 tasks\n"
        );
        assert_eq!(
            render(&wf, &a, GraphFormat::Dot, false),
            "digraph \"nothing\" {\n  // edges point from a dependency to the task that needs it\n  node [shape=box, fontname=\"Helvetica\"];\n}\n"
        );
        let m = render(&wf, &a, GraphFormat::Mermaid, false);
        assert!(!m.contains("class ") && !m.contains("linkStyle"));
        let j: serde_json::Value =
            serde_json::from_str(&render(&wf, &a, GraphFormat::Json, false)).unwrap();
        assert_eq!(j["tasks"], serde_json::json!([]));
    }

    #[test]
    fn awkward_ids_are_quoted() {
        let (wf, a) = workflow(
            "q\"uote",
            vec![
                task(r#"a"b\c"#, &[]),
                task("t[os=linux, arch=\"x86\"]", &[0]),
                task("<b>#1 & `x`", &[1]),
            ],
        );
        let d = render(&wf, &a, GraphFormat::Dot, false);
        assert!(d.starts_with("digraph \"q\\\"uote\" {"));
        assert!(
            d.contains(r#""a\"b\\c" -> "t[os=linux, arch=\"x86\"]""#),
            "{d}"
        );
        let m = render(&wf, &a, GraphFormat::Mermaid, false);
        assert!(m.contains(r##"n0["a#quot;b\c"]"##), "{m}");
        assert!(
            m.contains(r##"n1["t[os=linux, arch=#quot;x86#quot;]"]"##),
            "{m}"
        );
        assert!(
            m.contains(r##"n2["#lt;b#gt;#35;1 #amp; #96;x#96;"]"##),
            "{m}"
        );
        // Every label line has exactly two quotes: nothing leaks out of a label.
        for line in m.lines().filter(|l| l.contains('[')) {
            assert_eq!(line.matches('"').count(), 2, "{line}");
        }
    }

    /// One root fanning out to 50,000 tasks, then a chain of 60: long levels, many levels and a
    /// long critical path all at once.
    fn huge() -> (Workflow, Analysis) {
        let mut tasks = vec![task("root", &[])];
        for i in 0..50_000 {
            tasks.push(task(&format!("wide-{i}"), &[0]));
        }
        for i in 0..60u32 {
            let prev = if i == 0 { 1 } else { 50_000 + i };
            tasks.push(task(&format!("chain-{i}"), &[prev]));
        }
        workflow("huge", tasks)
    }

    #[test]
    fn text_shortens_huge_graphs() {
        let (wf, a) = huge();
        let out = render(&wf, &a, GraphFormat::Text, false);
        assert!(
            out.starts_with("huge: 50061 tasks, 50060 edges, 62 levels, critical path 62 tasks\n")
        );
        assert!(out.contains("… and 49980 more"), "{out}");
        assert!(
            out.contains("… and 12 more levels (--full shows all)"),
            "{out}"
        );
        assert!(out.contains("-> … 42 more ->"), "{out}");
        assert!(out.lines().count() < 150, "{} lines", out.lines().count());
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH), "{out}");
        insta::assert_snapshot!(out);
    }

    #[test]
    fn text_full_lists_everything() {
        let (wf, a) = huge();
        let out = render(&wf, &a, GraphFormat::Text, true);
        assert!(!out.contains('…'));
        assert!(out.contains("wide-49999"));
        assert!(out.contains("level 61  chain-59"));
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH));
    }

    #[test]
    fn machine_formats_are_never_shortened() {
        let (wf, a) = huge();
        let j: serde_json::Value =
            serde_json::from_str(&render(&wf, &a, GraphFormat::Json, false)).unwrap();
        assert_eq!(j["tasks"].as_array().unwrap().len(), 50_061);
        assert_eq!(j["levels"][1].as_array().unwrap().len(), 50_000);
        let d = render(&wf, &a, GraphFormat::Dot, false);
        assert_eq!(d.matches(" -> ").count(), 50_060);
        let m = render(&wf, &a, GraphFormat::Mermaid, false);
        assert_eq!(m.matches(" --> ").count(), 50_060);
    }
}
