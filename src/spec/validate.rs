//! Cross-checks over the whole file and assembly of the `Workflow`: task ids, matrix expansion,
//! `needs` resolution, cycles, agents, resources, templates, CEL, reads and gates.
//! Everything here is O(tasks + edges) with hashing; per-string work only where a string
//! actually contains template syntax.

use std::collections::{HashMap, HashSet};

use foldhash::HashMapExt;
use std::ops::Range;

use indexmap::IndexMap;
use serde_json::Value;

use super::agents::{self, DEFAULT_AGENT};
use super::matrix;
use super::node::Span;
use super::problem::Problems;
use super::raw::{RawGate, RawWorkflow};
use super::reads::{self, Read};
use super::refs::{Cache, Scope};
use super::scalars;
use super::suggest;
use super::task::RawTask;
use super::{AgentSpec, GateSpec, TaskIdx, TaskSpec, Workflow};
use crate::config::Config;

/// A matrix instance: its id and its values.
type Combo = (String, IndexMap<String, Value>);

/// Where each task id and matrix base lives in the expanded task list.
struct Index<'n> {
    /// Table key -> its instances (one for a plain task, contiguous for a matrix). Hashed
    /// with foldhash: SipHash was a measurable part of loading 100,000 tasks.
    base: foldhash::HashMap<&'n str, Range<TaskIdx>>,
    /// Matrix instance id -> index.
    instance: foldhash::HashMap<String, TaskIdx>,
    /// Per table (file order): its instances.
    ranges: Vec<Range<TaskIdx>>,
    /// Per matrix table: its instances' ids and values.
    combos: HashMap<usize, Vec<Combo>>,
}

impl Index<'_> {
    fn resolve(&self, name: &str) -> Option<Range<TaskIdx>> {
        match self.base.get(name) {
            Some(r) => Some(r.clone()),
            None if self.instance.is_empty() => None,
            None => self.instance.get(name).map(|&i| i..i + 1),
        }
    }

    fn exists(&self, name: &str) -> bool {
        self.base.contains_key(name) || self.instance.contains_key(name)
    }

    /// A suggestion for a misspelled id: the closest task id, the first in file order on a tie
    /// (so the hint does not depend on hashing).
    fn suggest(&self, name: &str, tasks: &[RawTask<'_>]) -> Option<String> {
        suggest::did_you_mean(name, tasks.iter().map(|t| t.id))
    }

    /// The table an instance comes from.
    fn raw_of(&self, idx: TaskIdx) -> usize {
        self.ranges.partition_point(|r| r.end <= idx)
    }

    /// The id of an instance.
    fn id<'t>(&'t self, idx: TaskIdx, tasks: &'t [RawTask<'_>]) -> &'t str {
        let raw = self.raw_of(idx);
        match (self.combos.get(&raw), self.ranges.get(raw)) {
            (Some(c), Some(r)) => c.get((idx - r.start) as usize).map_or("?", |(id, _)| id),
            _ => tasks.get(raw).map_or("?", |t| t.id),
        }
    }

    fn total(&self) -> usize {
        self.ranges.last().map_or(0, |r| r.end as usize)
    }
}

/// At most this many "did you mean" searches over all ids (each is a scan of every id).
const MAX_ID_SUGGESTIONS: usize = 32;

pub fn validate(
    raw: RawWorkflow<'_>,
    config: &Config,
    default_name: &str,
    text: &str,
    problems: &mut Problems,
) -> Option<Workflow> {
    if let Some(span) = &raw.no_tasks_at {
        problems.push(
            span.clone(),
            "the workflow has no tasks",
            "add a task, e.g. [tasks.hello] with builtin = \"echo hello\"",
        );
    } else if raw.tasks.is_empty() {
        problems.push(
            0..1,
            "the workflow has no tasks",
            "add a task, e.g. [tasks.hello] with builtin = \"echo hello\"",
        );
    }
    for t in &raw.tasks {
        if !scalars::is_valid_id(t.id) {
            problems.push(
                t.id_span.clone(),
                format!("invalid task id `{}`", t.id),
                format!(
                    "ids start with a letter or `_` and contain only letters, digits, `_` and `-` (no dots); e.g. `{}`",
                    scalars::fix_id(t.id)
                ),
            );
        }
    }

    let index = expand(&raw.tasks, problems);
    let mut suggestions = 0usize;
    let needs = resolve_needs(&raw.tasks, &raw.needs, &index, problems, &mut suggestions);
    report_cycles(&raw.tasks, &raw.needs, &index, &needs, problems);

    let all_agents = agents::effective(
        config,
        raw.agents
            .iter()
            .filter_map(|a| a.spec.as_ref().map(|s| (a.name, s))),
    );
    check_agents(&raw.tasks, &raw.specs, &all_agents, problems);
    check_fanout(&raw.tasks, &raw.specs, &all_agents, problems);
    check_fallbacks(&raw.agents, &all_agents, problems);
    check_resources(&raw.tasks, &raw.specs, config, problems);

    let mut cache = Cache::default();
    check_refs(&raw, &index, &needs, config, text, &mut cache, problems);
    let gates = resolve_gates(
        &raw.gates,
        &index,
        &raw,
        text,
        &mut cache,
        problems,
        &mut suggestions,
    );

    if !problems.is_empty() {
        return None;
    }
    build(raw, index, needs, gates, default_name)
}

/// Expands matrices in place and indexes every id.
fn expand<'n>(tasks: &[RawTask<'n>], problems: &mut Problems) -> Index<'n> {
    let mut index = Index {
        base: foldhash::HashMap::with_capacity(tasks.len()),
        instance: foldhash::HashMap::default(),
        ranges: Vec::with_capacity(tasks.len()),
        combos: HashMap::new(),
    };
    let mut next: TaskIdx = 0;
    for (i, t) in tasks.iter().enumerate() {
        let start = next;
        match t.extra.as_ref().and_then(|x| x.matrix.as_ref()) {
            Some((axes, span)) if !axes.is_empty() => {
                let n = matrix::count(axes);
                if n > matrix::MAX_INSTANCES {
                    problems.push(
                        span.clone(),
                        format!(
                            "the matrix of `{}` makes {n} tasks, more than the limit of {}",
                            t.id,
                            matrix::MAX_INSTANCES
                        ),
                        "use fewer values, or split the work into separate tasks",
                    );
                } else {
                    let combos: Vec<Combo> = matrix::expand(axes)
                        .into_iter()
                        .map(|c| (matrix::instance_id(t.id, &c), c))
                        .collect();
                    for (id, _) in &combos {
                        index.instance.insert(id.clone(), next);
                        next += 1;
                    }
                    index.combos.insert(i, combos);
                }
            }
            _ => next += 1,
        }
        index.ranges.push(start..next);
        // A JSON file can repeat a key (already reported); keep the first.
        index.base.entry(t.id).or_insert(start..next);
    }
    index
}

/// Resolves `needs` of every task to indices, once per table (matrix instances share them).
fn resolve_needs(
    tasks: &[RawTask<'_>],
    all_needs: &[(&str, Span)],
    index: &Index<'_>,
    problems: &mut Problems,
    suggestions: &mut usize,
) -> Vec<Vec<TaskIdx>> {
    let mut all: Vec<Vec<TaskIdx>> = Vec::with_capacity(index.total());
    for (ri, t) in tasks.iter().enumerate() {
        let needs = &all_needs[t.needs.clone()];
        let mut out: Vec<TaskIdx> = Vec::with_capacity(needs.len());
        for (name, span) in needs {
            let own_instance = !index.instance.is_empty()
                && index
                    .instance
                    .get(*name)
                    .is_some_and(|&i| index.raw_of(i) == ri);
            if *name == t.id || own_instance {
                problems.push(
                    span.clone(),
                    format!("task `{}` needs itself", t.id),
                    format!("remove \"{name}\" from `needs`"),
                );
                continue;
            }
            match index.resolve(name) {
                Some(range) => out.extend(range),
                None => {
                    let hint = if *suggestions < MAX_ID_SUGGESTIONS {
                        *suggestions += 1;
                        index.suggest(name, tasks)
                    } else {
                        None
                    };
                    problems.push(
                        span.clone(),
                        format!("task `{}` needs unknown task `{name}`", t.id),
                        hint.unwrap_or_else(|| {
                            "use the id of a task defined in this file ([tasks.ID])".into()
                        }),
                    );
                }
            }
        }
        dedup(&mut out);
        let n = index.ranges.get(ri).map_or(0, |r| r.len());
        for _ in 1..n {
            all.push(out.clone());
        }
        if n > 0 {
            all.push(out);
        }
    }
    all
}

/// Removes repeats, keeping first occurrences in order.
fn dedup(v: &mut Vec<TaskIdx>) {
    if v.len() <= 16 {
        let mut i = 0;
        while i < v.len() {
            if v[..i].contains(&v[i]) {
                v.remove(i);
            } else {
                i += 1;
            }
        }
    } else {
        let mut seen = HashSet::with_capacity(v.len());
        v.retain(|x| seen.insert(*x));
    }
}

/// Reports dependency cycles with their full path. After each one, the edge that closes it is
/// set aside and the search repeats, so several independent cycles are all reported.
fn report_cycles(
    tasks: &[RawTask<'_>],
    all_needs: &[(&str, Span)],
    index: &Index<'_>,
    needs: &[Vec<TaskIdx>],
    problems: &mut Problems,
) {
    const MAX_CYCLES: usize = 8;
    let Some(first) = crate::graph::find_cycle(needs) else {
        return;
    };
    let mut needs = needs.to_vec();
    let mut cycle = Some(first);
    let mut seen_spans: HashSet<usize> = HashSet::new();
    for _ in 0..MAX_CYCLES {
        let Some(mut path) = cycle.take() else {
            break;
        };
        if path.len() < 2 {
            break;
        }
        // Orient the path so each arrow reads "needs".
        if !needs[path[0] as usize].contains(&path[1]) {
            path.reverse();
        }
        let (from, to) = (path[0], path[1]);
        let names: Vec<&str> = path.iter().map(|&i| index.id(i, tasks)).collect();
        let span = tasks.get(index.raw_of(from)).map_or(0..0, |t| {
            all_needs[t.needs.clone()]
                .iter()
                .find(|(n, _)| index.resolve(n).is_some_and(|r| r.contains(&to)))
                .map_or(t.id_span.clone(), |(_, s)| s.clone())
        });
        if seen_spans.insert(span.start) {
            problems.push(
                span,
                format!("dependency cycle: {}", names.join(" -> ")),
                "a task cannot (even indirectly) need itself: remove one of these dependencies",
            );
        }
        needs[from as usize].retain(|&n| n != to);
        cycle = crate::graph::find_cycle(&needs);
    }
}

fn check_agents(
    tasks: &[RawTask<'_>],
    specs: &[TaskSpec],
    all: &IndexMap<String, AgentSpec>,
    problems: &mut Problems,
) {
    let default_agent = all.get(DEFAULT_AGENT);
    for (t, spec) in tasks.iter().zip(specs) {
        if !t.has_action {
            continue;
        }
        let (action, requires) = (&spec.action, &spec.requires);
        let pinned = spec
            .agent
            .as_deref()
            .zip(t.extra.as_ref().and_then(|x| x.agent_span.clone()));
        match pinned {
            Some((name, span)) => match all.get(name) {
                None => {
                    let hint = match suggest::did_you_mean(name, all.keys().map(String::as_str)) {
                        Some(s) => s,
                        None => format!(
                            "declare [agents.{name}] or use one of: {}",
                            all.keys()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    problems.push(
                        span.clone(),
                        format!("task `{}` is pinned to unknown agent `{name}`", t.id),
                        hint,
                    );
                }
                Some(a) if !agents::can_run(a, action, requires) => {
                    let (msg, hint) = agents::explain_pinned(name, a, t.id, action, requires);
                    problems.push(span.clone(), msg, hint);
                }
                Some(_) => {}
            },
            None => {
                // The default agent runs most tasks: try it first.
                let default_ok =
                    default_agent.is_some_and(|a| agents::can_run(a, action, requires));
                if !default_ok && !all.values().any(|a| agents::can_run(a, action, requires)) {
                    let (msg, hint) = agents::explain_none(all, t.id, action, requires);
                    problems.push(t.id_span.clone(), msg, hint);
                }
            }
        }
    }
}

/// Multi-agent tasks: named agents exist and can run the task, enough agents can for
/// `agents = N`, and a judge exists and can answer a prompt.
fn check_fanout(
    tasks: &[RawTask<'_>],
    specs: &[TaskSpec],
    all: &IndexMap<String, AgentSpec>,
    problems: &mut Problems,
) {
    let known = |name: &str| {
        suggest::did_you_mean(name, all.keys().map(String::as_str)).unwrap_or_else(|| {
            format!(
                "declare [agents.{name}] or use one of: {}",
                all.keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    };
    for (t, spec) in tasks.iter().zip(specs) {
        // Checked even when a sibling key was invalid, so every problem shows at once.
        let Some(raw) = t.extra.as_ref().map(|x| &x.fanout) else {
            continue;
        };
        let (action, requires) = (&spec.action, &spec.requires);
        for (name, span) in &raw.names {
            match all.get(*name) {
                None => problems.push(
                    span.clone(),
                    format!("task `{}` names unknown agent `{name}` in `agents`", t.id),
                    known(name),
                ),
                Some(a) if t.has_action && !agents::can_run(a, action, requires) => {
                    let (msg, hint) = agents::explain_pinned(name, a, t.id, action, requires);
                    problems.push(span.clone(), msg, hint);
                }
                Some(_) => {}
            }
        }
        if let Some((super::FanoutAgents::Count(n), span)) = &raw.agents
            && t.has_action
        {
            let able: Vec<&str> = all
                .iter()
                .filter(|(_, a)| agents::can_run(a, action, requires))
                .map(|(n, _)| n.as_str())
                .collect();
            if able.len() < *n as usize {
                let which = if able.is_empty() {
                    "none can".to_string()
                } else {
                    format!(
                        "only {} can ({})",
                        able.len(),
                        able.iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                problems.push(
                    span.clone(),
                    format!(
                        "task `{}` asks for {n} agents, but {which} run {}{}",
                        t.id,
                        agents::action_name(action),
                        if requires.is_empty() {
                            String::new()
                        } else {
                            format!(" with capabilities {}", requires.join(", "))
                        }
                    ),
                    "lower `agents`, or declare more agents able to run it",
                );
            }
        }
        if let (Some(super::Resolve::Judge { agent, .. }), Some(span)) =
            (raw.resolve.as_ref().map(|(r, _)| r), &raw.judge_span)
        {
            let prompt = super::Action::Prompt(String::new());
            match all.get(agent) {
                None => problems.push(
                    span.clone(),
                    format!("task `{}` is judged by unknown agent `{agent}`", t.id),
                    known(agent),
                ),
                Some(a) if !a.kind.can_run(&prompt) => problems.push(
                    span.clone(),
                    format!(
                        "judge `{agent}` of task `{}` is a {} agent, which cannot answer a prompt",
                        t.id,
                        a.kind.as_str()
                    ),
                    "use a command or llm agent as the judge",
                ),
                Some(_) => {}
            }
        }
    }
}

/// An agent's `fallback` names another agent that exists.
fn check_fallbacks(
    raw: &[super::raw::RawAgent<'_>],
    all: &IndexMap<String, AgentSpec>,
    problems: &mut Problems,
) {
    for a in raw {
        let (Some(spec), Some(span)) = (&a.spec, &a.fallback_span) else {
            continue;
        };
        let Some(fallback) = spec.fallback.as_deref() else {
            continue;
        };
        if fallback == a.name {
            problems.push(
                span.clone(),
                format!("agent `{}` names itself as its fallback", a.name),
                "name another agent, or remove `fallback`",
            );
        } else if !all.contains_key(fallback) {
            let hint = suggest::did_you_mean(fallback, all.keys().map(String::as_str))
                .unwrap_or_else(|| format!("declare [agents.{fallback}] or remove `fallback`"));
            problems.push(
                span.clone(),
                format!(
                    "agent `{}` falls back to unknown agent `{fallback}`",
                    a.name
                ),
                hint,
            );
        }
    }
}

/// A task asking for more than the whole pool could never start.
fn check_resources(
    tasks: &[RawTask<'_>],
    specs: &[TaskSpec],
    config: &Config,
    problems: &mut Problems,
) {
    let pool = &config.defaults.resources;
    for (t, spec) in tasks.iter().zip(specs) {
        let Some(span) = t.extra.as_ref().and_then(|x| x.resources_span.as_ref()) else {
            continue;
        };
        let r = &spec.resources;
        let hint = "lower the request, or raise `defaults.resources` in the config file";
        if r.cpu > pool.cpu {
            problems.push(
                span.clone(),
                format!(
                    "task `{}` asks for {} cpu, but the pool has {}",
                    t.id, r.cpu, pool.cpu
                ),
                hint,
            );
        }
        if r.memory_mb > pool.memory_mb {
            problems.push(
                span.clone(),
                format!(
                    "task `{}` asks for {} MB of memory, but the pool has {} MB",
                    t.id, r.memory_mb, pool.memory_mb
                ),
                hint,
            );
        }
        if r.gpu > pool.gpu {
            problems.push(
                span.clone(),
                format!(
                    "task `{}` asks for {} gpu, but the pool has {}",
                    t.id, r.gpu, pool.gpu
                ),
                hint,
            );
        }
    }
}

/// Every task at or above `start` in the graph (its transitive upstreams).
fn ancestors(start: TaskIdx, needs: &[Vec<TaskIdx>]) -> HashSet<TaskIdx> {
    let mut seen = HashSet::new();
    let mut stack: Vec<TaskIdx> = needs[start as usize].clone();
    while let Some(n) = stack.pop() {
        if seen.insert(n) {
            stack.extend(needs[n as usize].iter().copied());
        }
    }
    seen
}

/// Templates, `when` and `reads` of tasks; templates of agents.
fn check_refs<'n>(
    raw: &RawWorkflow<'n>,
    index: &Index<'_>,
    needs: &[Vec<TaskIdx>],
    config: &Config,
    text: &str,
    cache: &mut Cache<'n>,
    problems: &mut Problems,
) {
    let exists = |id: &str| index.exists(id);
    for (ri, t) in raw.tasks.iter().enumerate() {
        let Some(extra) = &t.extra else {
            continue;
        };
        if extra.templates.is_empty() && extra.when.is_none() && extra.reads.is_empty() {
            continue;
        }
        let Some(first) = index
            .ranges
            .get(ri)
            .filter(|r| !r.is_empty())
            .map(|r| r.start)
        else {
            continue;
        };
        let anc = ancestors(first, needs);
        let upstream = |id: &str| {
            id == "*"
                || index
                    .resolve(id)
                    .is_some_and(|mut r| r.any(|i| anc.contains(&i)))
        };
        let keys: Vec<&str> = match &extra.matrix {
            Some((axes, _)) => axes.iter().map(|a| a.key).collect(),
            None => Vec::new(),
        };
        let owner = format!("task `{}`", t.id);
        let scope = Scope {
            owner: &owner,
            secrets: &raw.secrets,
            matrix_keys: Some(&keys),
            task_exists: &exists,
            is_upstream: Some(&upstream),
        };
        for tr in &extra.templates {
            cache.check_template(tr, &scope, problems);
        }
        if let Some((src, span)) = &extra.when {
            cache.check_expr(src, span, "when", &scope, text, problems);
        }
        for (pattern, span) in &extra.reads {
            check_read(pattern, span, t.id, &upstream, index, raw, config, problems);
        }
    }
    for a in &raw.agents {
        let owner = format!("agent `{}`", a.name);
        let scope = Scope {
            owner: &owner,
            secrets: &raw.secrets,
            matrix_keys: None,
            task_exists: &exists,
            is_upstream: None,
        };
        for tr in &a.templates {
            cache.check_template(tr, &scope, problems);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_read(
    pattern: &str,
    span: &Span,
    task: &str,
    upstream: &dyn Fn(&str) -> bool,
    index: &Index<'_>,
    raw: &RawWorkflow<'_>,
    config: &Config,
    problems: &mut Problems,
) {
    match reads::parse(pattern) {
        Err(b) => problems.push(span.clone(), b.message, b.hint),
        Ok(Read::Context(key)) => {
            if key != "*" && !raw.context.contains_key(key) && !config.context.contains_key(key) {
                let keys = raw
                    .context
                    .keys()
                    .chain(config.context.keys())
                    .map(String::as_str);
                let hint = match suggest::did_you_mean(key, keys) {
                    Some(s) => s,
                    None => format!("add `{key}` to [context], or remove this read"),
                };
                problems.push(
                    span.clone(),
                    format!("task `{task}` reads context key `{key}`, which is not defined"),
                    hint,
                );
            }
        }
        Ok(Read::Outputs { id }) => {
            if id != "*" && !index.exists(id) {
                let hint = index
                    .suggest(id, &raw.tasks)
                    .unwrap_or_else(|| "use the id of a task in this file".into());
                problems.push(
                    span.clone(),
                    format!("task `{task}` reads outputs of unknown task `{id}`"),
                    hint,
                );
            } else if !upstream(id) {
                problems.push(
                    span.clone(),
                    format!("task `{task}` reads outputs of `{id}`, which is not upstream of it"),
                    format!("add \"{id}\" to `needs` (directly or through another task), or remove this read"),
                );
            }
        }
        Ok(Read::Secret(name)) => {
            if !raw.secrets.contains_key(name) {
                problems.push(
                    span.clone(),
                    format!("task `{task}` reads undeclared secret `{name}`"),
                    format!("declare it: [secrets] {name} = {{ env = \"VARIABLE\" }}"),
                );
            }
        }
        Ok(Read::AgentMemory) => {}
    }
}

fn resolve_gates<'n>(
    gates: &[RawGate<'n>],
    index: &Index<'_>,
    raw: &RawWorkflow<'n>,
    text: &str,
    cache: &mut Cache<'n>,
    problems: &mut Problems,
    suggestions: &mut usize,
) -> Vec<GateSpec> {
    let exists = |id: &str| index.exists(id);
    gates
        .iter()
        .map(|g| {
            let mut after = Vec::with_capacity(g.after.len());
            for (name, span) in &g.after {
                match index.resolve(name) {
                    Some(r) => after.extend(r),
                    None => {
                        let hint = if *suggestions < MAX_ID_SUGGESTIONS {
                            *suggestions += 1;
                            index.suggest(name, &raw.tasks)
                        } else {
                            None
                        };
                        problems.push(
                            span.clone(),
                            format!("gate `{}` is after unknown task `{name}`", g.id),
                            hint.unwrap_or_else(|| {
                                "use the id of a task defined in this file".into()
                            }),
                        );
                    }
                }
            }
            dedup(&mut after);
            let owner = format!("gate `{}`", g.id);
            let scope = Scope {
                owner: &owner,
                secrets: &raw.secrets,
                matrix_keys: None,
                task_exists: &exists,
                is_upstream: None,
            };
            for (src, span) in &g.exprs {
                cache.check_expr(src, span, "expr", &scope, text, problems);
            }
            for tr in &g.templates {
                cache.check_template(tr, &scope, problems);
            }
            GateSpec {
                id: g.id.to_string(),
                after,
                level: g.level,
                checks: g.checks.clone(),
                on_fail: g.on_fail,
            }
        })
        .collect()
}

/// Assembles the workflow; only called when no problem was found. Without matrices the
/// decoded specs are the tasks, completed in place; matrix tasks are cloned per instance.
fn build(
    raw: RawWorkflow<'_>,
    index: Index<'_>,
    needs: Vec<Vec<TaskIdx>>,
    gates: Vec<GateSpec>,
    default_name: &str,
) -> Option<Workflow> {
    let mut index = index;
    let mut specs = raw.specs;
    let tasks = if index.combos.is_empty() {
        for (spec, needs) in specs.iter_mut().zip(needs) {
            spec.base = spec.id.clone();
            spec.needs = needs;
        }
        specs
    } else {
        let mut needs = needs.into_iter();
        let mut tasks = Vec::with_capacity(index.total());
        for (ri, mut spec) in specs.into_iter().enumerate() {
            match index.combos.remove(&ri) {
                None => {
                    spec.base = spec.id.clone();
                    spec.needs = needs.next()?;
                    tasks.push(spec);
                }
                Some(combos) => {
                    spec.base = std::mem::take(&mut spec.id);
                    for (id, values) in combos {
                        let mut inst = spec.clone();
                        inst.id = id;
                        inst.matrix = values;
                        inst.needs = needs.next()?;
                        tasks.push(inst);
                    }
                }
            }
        }
        tasks
    };
    let mut agents = IndexMap::with_capacity(raw.agents.len());
    for a in raw.agents {
        agents.insert(a.name.to_string(), a.spec?);
    }
    Some(Workflow {
        name: raw.name.unwrap_or_else(|| default_name.to_string()),
        description: raw.description,
        max_parallel: raw.max_parallel,
        context: raw.context,
        secrets: raw.secrets,
        agents,
        tasks,
        gates,
    })
}
