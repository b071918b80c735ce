//! Cross-checks over the whole file and assembly of the `Workflow`: task ids, matrix expansion,
//! `needs` resolution, cycles, agents, resources, templates, CEL, reads and gates.
//! Everything here is O(tasks + edges) with hashing; per-string work only where a string
//! actually contains template syntax.

use std::collections::{HashMap, HashSet};
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

/// Where each task id and matrix base lives in the expanded task list.
struct Index<'n> {
    /// Table key -> its instances (one for a plain task, contiguous for a matrix).
    base: HashMap<&'n str, Range<TaskIdx>>,
    /// Matrix instance id -> index.
    instance: HashMap<String, TaskIdx>,
}

impl Index<'_> {
    fn resolve(&self, name: &str) -> Option<Range<TaskIdx>> {
        self.base
            .get(name)
            .cloned()
            .or_else(|| self.instance.get(name).map(|&i| i..i + 1))
    }

    fn exists(&self, name: &str) -> bool {
        self.base.contains_key(name) || self.instance.contains_key(name)
    }

    /// A suggestion for a misspelled id (bounded work: only the first unknown names get one).
    fn suggest(&self, name: &str) -> Option<String> {
        suggest::did_you_mean(name, self.base.keys().copied())
    }
}

struct Instance {
    raw: usize,
    id: String,
    matrix: IndexMap<String, Value>,
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

    let (instances, index) = expand(&raw.tasks, problems);
    let mut suggestions = 0usize;
    let needs = resolve_needs(&raw.tasks, &instances, &index, problems, &mut suggestions);
    report_cycles(&raw.tasks, &instances, &index, &needs, problems);

    let all_agents = agents::effective(
        config,
        raw.agents
            .iter()
            .filter_map(|a| a.spec.as_ref().map(|s| (a.name, s))),
    );
    check_agents(&raw.tasks, &all_agents, problems);
    check_resources(&raw.tasks, config, problems);

    let mut cache = Cache::default();
    check_refs(
        &raw, &instances, &index, &needs, config, text, &mut cache, problems,
    );
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
    build(raw, instances, needs, gates, default_name)
}

/// Expands matrices in place and indexes every id.
fn expand<'n>(tasks: &[RawTask<'n>], problems: &mut Problems) -> (Vec<Instance>, Index<'n>) {
    let mut instances = Vec::with_capacity(tasks.len());
    let mut index = Index {
        base: HashMap::with_capacity(tasks.len()),
        instance: HashMap::new(),
    };
    for (i, t) in tasks.iter().enumerate() {
        let start = instances.len() as TaskIdx;
        match &t.matrix {
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
                    for combo in matrix::expand(axes) {
                        let id = matrix::instance_id(t.id, &combo);
                        index
                            .instance
                            .insert(id.clone(), instances.len() as TaskIdx);
                        instances.push(Instance {
                            raw: i,
                            id,
                            matrix: combo,
                        });
                    }
                }
            }
            _ => instances.push(Instance {
                raw: i,
                id: t.id.to_string(),
                matrix: IndexMap::new(),
            }),
        }
        let end = instances.len() as TaskIdx;
        // A JSON file can repeat a key (already reported); keep the first.
        index.base.entry(t.id).or_insert(start..end);
    }
    (instances, index)
}

/// Resolves `needs` of every task to indices, once per table (matrix instances share them).
fn resolve_needs(
    tasks: &[RawTask<'_>],
    instances: &[Instance],
    index: &Index<'_>,
    problems: &mut Problems,
    suggestions: &mut usize,
) -> Vec<Vec<TaskIdx>> {
    let per_raw: Vec<Vec<TaskIdx>> = tasks
        .iter()
        .enumerate()
        .map(|(ri, t)| {
            let mut out: Vec<TaskIdx> = Vec::with_capacity(t.needs.len());
            for (name, span) in &t.needs {
                let own_instance = index
                    .instance
                    .get(*name)
                    .is_some_and(|&i| instances[i as usize].raw == ri);
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
                            index.suggest(name)
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
            out
        })
        .collect();
    instances
        .iter()
        .map(|inst| per_raw[inst.raw].clone())
        .collect()
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
    instances: &[Instance],
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
        let names: Vec<&str> = path
            .iter()
            .map(|&i| instances[i as usize].id.as_str())
            .collect();
        let from_raw = &tasks[instances[from as usize].raw];
        let span = from_raw
            .needs
            .iter()
            .find(|(n, _)| index.resolve(n).is_some_and(|r| r.contains(&to)))
            .map_or(from_raw.id_span.clone(), |(_, s)| s.clone());
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

fn check_agents(tasks: &[RawTask<'_>], all: &IndexMap<String, AgentSpec>, problems: &mut Problems) {
    for t in tasks {
        let Some(action) = &t.action else {
            continue;
        };
        match &t.agent {
            Some((name, span)) => match all.get(*name) {
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
                Some(a) if !agents::can_run(a, action, &t.requires) => {
                    let (msg, hint) = agents::explain_pinned(name, a, t.id, action, &t.requires);
                    problems.push(span.clone(), msg, hint);
                }
                Some(_) => {}
            },
            None => {
                // The default agent runs most tasks: try it first.
                let default_ok = all
                    .get(DEFAULT_AGENT)
                    .is_some_and(|a| agents::can_run(a, action, &t.requires));
                if !default_ok
                    && !all
                        .values()
                        .any(|a| agents::can_run(a, action, &t.requires))
                {
                    let (msg, hint) = agents::explain_none(all, t.id, action, &t.requires);
                    problems.push(t.id_span.clone(), msg, hint);
                }
            }
        }
    }
}

/// A task asking for more than the whole pool could never start.
fn check_resources(tasks: &[RawTask<'_>], config: &Config, problems: &mut Problems) {
    let pool = &config.defaults.resources;
    for t in tasks {
        let Some((r, span)) = &t.resources else {
            continue;
        };
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
        // memory_mb = 0 in the pool means memory is not tracked.
        if pool.memory_mb > 0 && r.memory_mb > pool.memory_mb {
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
#[allow(clippy::too_many_arguments)]
fn check_refs<'n>(
    raw: &RawWorkflow<'n>,
    instances: &[Instance],
    index: &Index<'_>,
    needs: &[Vec<TaskIdx>],
    config: &Config,
    text: &str,
    cache: &mut Cache<'n>,
    problems: &mut Problems,
) {
    let exists = |id: &str| index.exists(id);
    let first_instance: HashMap<usize, TaskIdx> = instances
        .iter()
        .enumerate()
        .rev()
        .map(|(i, inst)| (inst.raw, i as TaskIdx))
        .collect();
    for (ri, t) in raw.tasks.iter().enumerate() {
        if t.templates.is_empty() && t.when.is_none() && t.reads.is_none() {
            continue;
        }
        let Some(&first) = first_instance.get(&ri) else {
            continue;
        };
        let anc = ancestors(first, needs);
        let upstream = |id: &str| {
            id == "*"
                || index
                    .resolve(id)
                    .is_some_and(|mut r| r.any(|i| anc.contains(&i)))
        };
        let keys: Vec<&str> = match &t.matrix {
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
        for tr in &t.templates {
            cache.check_template(tr, &scope, problems);
        }
        if let Some((src, span)) = &t.when {
            cache.check_expr(src, span, "when", &scope, text, problems);
        }
        for (pattern, span) in t.reads.iter().flatten() {
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
                    .suggest(id)
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
                            index.suggest(name)
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

/// Assembles the workflow; only called when no problem was found.
fn build(
    raw: RawWorkflow<'_>,
    instances: Vec<Instance>,
    needs: Vec<Vec<TaskIdx>>,
    gates: Vec<GateSpec>,
    default_name: &str,
) -> Option<Workflow> {
    let mut tasks = Vec::with_capacity(instances.len());
    for (inst, needs) in instances.into_iter().zip(needs) {
        let t = raw.tasks.get(inst.raw)?;
        tasks.push(TaskSpec {
            id: inst.id,
            base: t.id.to_string(),
            matrix: inst.matrix,
            action: t.action.clone()?,
            needs,
            requires: t.requires.clone(),
            agent: t.agent.as_ref().map(|(a, _)| a.to_string()),
            priority: t.priority,
            timeout: t.timeout,
            retry: t.retry.clone(),
            resources: t.resources.as_ref().map(|(r, _)| *r).unwrap_or_default(),
            locks: t.locks.clone(),
            when: t.when.as_ref().map(|(w, _)| w.to_string()),
            approval: t.approval,
            reads: t
                .reads
                .as_ref()
                .map(|r| r.iter().map(|(p, _)| p.to_string()).collect()),
            env: t.env.clone(),
            cwd: t.cwd.clone(),
            continue_on_failure: t.continue_on_failure,
            compensate: t.compensate.clone(),
        });
    }
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
