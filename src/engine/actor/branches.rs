//! Multi-agent attempts in the actor: start one branch per agent, journal each branch's end,
//! start the judge, and carry out `fanout::decide`'s verdict through the ordinary attempt
//! path (so retries, gates and dependents work as for any task).

use serde_json::{Map, Value};

use super::{Actor, AfterCommit};
use crate::engine::context::{self, Secrets};
use crate::engine::fanout::{self, Crew, Outcome, Verdict};
use crate::engine::llm;
use crate::exec::{AttemptKey, ExecRequest, ExecResult, Purpose, Work};
use crate::model::{AttemptOutcome, EventKind, RunId, TaskIdx};
use crate::spec::{Action, AgentKind, Resolve};
use crate::store::LogRecord;

fn branch_key(run: &RunId, t: TaskIdx, attempt: u32, branch: u32) -> AttemptKey {
    AttemptKey {
        run: run.clone(),
        task: t,
        attempt,
        purpose: Purpose::Branch { branch },
    }
}

impl Actor {
    /// Gives each agent of `crew` its branch (and the judge its reserved slot), then prepares
    /// the workers' processes; they start once the assignment is journaled.
    pub(super) fn start_branches(&mut self, run_id: &RunId, t: TaskIdx, attempt: u32, crew: Crew) {
        let n = crew.workers.len() as u32;
        for (i, agent) in crew.workers.iter().enumerate() {
            self.emit(
                run_id,
                EventKind::BranchAssigned {
                    task: t,
                    attempt,
                    branch: i as u32,
                    agent: agent.clone(),
                    judge: false,
                },
            );
        }
        if let Some(judge) = &crew.judge {
            self.emit(
                run_id,
                EventKind::BranchAssigned {
                    task: t,
                    attempt,
                    branch: n,
                    agent: judge.clone(),
                    judge: true,
                },
            );
        }
        let name = self.state.runs[run_id].task_id(t).to_string();
        let mut line = format!(
            "`{name}` attempt {attempt} runs on {n} agents: {}",
            crew.workers.join(", ")
        );
        if let Some(j) = &crew.judge {
            line.push_str(&format!("; `{j}` judges"));
        }
        self.system_log(run_id, line);
        for (i, agent) in crew.workers.iter().enumerate() {
            let key = branch_key(run_id, t, attempt, i as u32);
            match self.prepare(run_id, t, agent, attempt) {
                Ok(req) => self.spawn_branch(key, req, agent),
                Err(error) => self.emit(
                    run_id,
                    EventKind::BranchFinished {
                        task: t,
                        attempt,
                        branch: i as u32,
                        outcome: AttemptOutcome::Failed,
                        exit_code: None,
                        outputs: Map::new(),
                        error,
                    },
                ),
            }
        }
        // Every branch may have failed to prepare.
        self.resolve_branches(run_id, t, attempt);
    }

    fn spawn_branch(&mut self, key: AttemptKey, mut req: ExecRequest, agent: &str) {
        req.scratch_name = Self::scratch_name(&key);
        req.key = key.clone();
        self.logs.label_branch(&key, agent);
        self.after_commit
            .push(AfterCommit::Spawn(key, Box::new(req)));
    }

    /// The first branch to start starts the attempt.
    pub(super) fn branch_started(&mut self, key: &AttemptKey, pid: Option<u32>) {
        let first = self
            .state
            .runs
            .get(&key.run)
            .and_then(|r| r.tasks[key.task as usize].open_attempt())
            .is_some_and(|a| a.number == key.attempt && a.started_at.is_none());
        if first {
            self.emit(
                &key.run,
                EventKind::TaskStarted {
                    task: key.task,
                    attempt: key.attempt,
                    pid,
                },
            );
        }
    }

    /// Journals a branch's end (outputs and error redacted) and sees whether that decides the
    /// attempt.
    pub(super) fn branch_finished(&mut self, key: &AttemptKey, branch: u32, result: ExecResult) {
        let open = self
            .state
            .runs
            .get(&key.run)
            .and_then(|r| r.tasks[key.task as usize].open_attempt())
            .filter(|a| a.number == key.attempt)
            .and_then(|a| a.branches.get(branch as usize))
            .filter(|b| b.outcome.is_none())
            .map(|b| b.agent.clone());
        let Some(agent) = open else {
            return; // a loser cancelled after the attempt was decided, or a stale report
        };
        let redactor = self
            .extras
            .get(&key.run)
            .map(|e| e.redactor.clone())
            .unwrap_or_default();
        let mut outputs = Value::Object(result.outputs);
        redactor.redact_json(&mut outputs);
        let outputs = match outputs {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let error = redactor.redact(&result.error).into_owned();
        let name = self.state.runs[&key.run].task_id(key.task).to_string();
        self.system_log(
            &key.run,
            match result.outcome {
                AttemptOutcome::Succeeded => format!("`{name}` on `{agent}` succeeded"),
                other => format!("`{name}` on `{agent}` ended {other:?}: {error}").to_lowercase(),
            },
        );
        self.emit(
            &key.run,
            EventKind::BranchFinished {
                task: key.task,
                attempt: key.attempt,
                branch,
                outcome: result.outcome,
                exit_code: result.exit_code,
                outputs,
                error,
            },
        );
        self.resolve_branches(&key.run, key.task, key.attempt);
    }

    /// Applies `fanout::decide` to the attempt's branches as they stand.
    fn resolve_branches(&mut self, run_id: &RunId, t: TaskIdx, attempt: u32) {
        let Some(run) = self.state.runs.get(run_id) else {
            return;
        };
        let Some(att) = run.tasks[t as usize]
            .open_attempt()
            .filter(|a| a.number == attempt)
        else {
            return;
        };
        let Some(fanout) = &run.workflow.tasks[t as usize].fanout else {
            return;
        };
        let judge = att.branches.iter().position(|b| b.judge).map(|j| j as u32);
        let judge_started = judge.is_some_and(|j| {
            self.extras
                .get(run_id)
                .is_some_and(|e| e.judging.contains(&(t, attempt, j)))
        });
        match fanout::decide(&fanout.resolve, &att.branches, judge_started) {
            Verdict::Wait => {}
            Verdict::StartJudge => {
                if let Some(j) = judge {
                    self.start_judge(run_id, t, attempt, j);
                }
            }
            Verdict::Done {
                resolution,
                outcome,
            } => {
                // The losers of `first` still run: stop them (their slots are freed with the
                // attempt's end, their late reports are ignored).
                for (k, h) in &self.handles {
                    if &k.run == run_id
                        && k.task == t
                        && k.attempt == attempt
                        && matches!(k.purpose, Purpose::Branch { .. })
                    {
                        h.send(crate::exec::Control::Resume);
                        h.send(crate::exec::Control::Cancel);
                    }
                }
                if let Some(e) = self.extras.get_mut(run_id) {
                    e.judging.retain(|(x, a, _)| !(*x == t && *a == attempt));
                }
                if let Some(r) = resolution {
                    let name = self.state.runs[run_id].task_id(t).to_string();
                    let mut line = format!("`{name}` resolved by {}: {}", r.strategy, r.summary);
                    for c in &r.conflicts {
                        let values: Vec<String> = c
                            .values
                            .iter()
                            .map(|v| format!("{}={}", v.agent, v.value))
                            .collect();
                        line.push_str(&format!(
                            "\n  conflict on `{}`: {}{}",
                            c.field,
                            values.join(", "),
                            match &c.kept {
                                Some(a) => format!(" (kept `{a}`)"),
                                None => " (none kept)".into(),
                            }
                        ));
                    }
                    self.system_log(run_id, line);
                    self.emit(
                        run_id,
                        EventKind::TaskResolved {
                            task: t,
                            attempt,
                            resolution: r,
                        },
                    );
                }
                let task_key = AttemptKey {
                    run: run_id.clone(),
                    task: t,
                    attempt,
                    purpose: Purpose::Task,
                };
                self.logs.finish(&task_key);
                if self.opts.journal.is_some()
                    && let Some(path) = self.logs.file(&task_key)
                {
                    self.new_logs.push(LogRecord {
                        run: run_id.clone(),
                        task: self.state.runs[run_id].task_id(t).to_string(),
                        attempt,
                        path: path.to_string_lossy().into_owned(),
                    });
                }
                let result = match outcome {
                    Outcome::Succeeded(outputs) => ExecResult::succeeded(None, outputs),
                    Outcome::Failed(error) => {
                        ExecResult::failed(AttemptOutcome::Failed, None, error)
                    }
                    Outcome::Cancelled => {
                        ExecResult::failed(AttemptOutcome::Cancelled, None, "cancelled".into())
                    }
                };
                self.finish_task_attempt(&task_key, result);
            }
        }
    }

    fn start_judge(&mut self, run_id: &RunId, t: TaskIdx, attempt: u32, j: u32) {
        if let Some(e) = self.extras.get_mut(run_id) {
            e.judging.insert((t, attempt, j));
        }
        let run = &self.state.runs[run_id];
        let Some(att) = run.tasks[t as usize].open_attempt() else {
            return;
        };
        let agent = att.branches[j as usize].agent.clone();
        let candidates = fanout::candidates(&att.branches);
        let name = run.task_id(t).to_string();
        self.system_log(
            run_id,
            format!(
                "`{name}`: `{agent}` judges {} candidates",
                candidates.as_array().map_or(0, Vec::len)
            ),
        );
        match self.prepare_judge(run_id, t, attempt, &agent, candidates) {
            Ok(req) => self.spawn_branch(branch_key(run_id, t, attempt, j), req, &agent),
            Err(error) => {
                self.emit(
                    run_id,
                    EventKind::BranchFinished {
                        task: t,
                        attempt,
                        branch: j,
                        outcome: AttemptOutcome::Failed,
                        exit_code: None,
                        outputs: Map::new(),
                        error,
                    },
                );
                self.resolve_branches(run_id, t, attempt);
            }
        }
    }

    /// The judge's request: the task's context plus `candidates`, and a prompt (the task's
    /// `resolve.prompt` or the default) that shows them.
    fn prepare_judge(
        &self,
        run_id: &RunId,
        t: TaskIdx,
        attempt: u32,
        agent: &str,
        candidates: Value,
    ) -> Result<ExecRequest, String> {
        let run = &self.state.runs[run_id];
        let spec = &run.workflow.tasks[t as usize];
        let extras = self.extras.get(run_id);
        let empty = Secrets::new();
        let secrets = extras.map(|e| &e.secrets).unwrap_or(&empty);
        let defaults = &self.opts.config.defaults;
        let doc = context::task_context(&self.opts.config.context, run, t, agent, attempt, secrets)
            .map_err(|e| e.to_string())?;
        doc.to_json(defaults.max_context_bytes)
            .map_err(|e| e.to_string())?;
        let mut ctx = doc.to_value();
        let render = |what: &str, src: &str, ctx: &Value| {
            crate::template::render(src, ctx).map_err(|e| format!("cannot render {what}: {e}"))
        };
        if let Some(m) = ctx.as_object_mut() {
            m.insert("candidates".into(), candidates);
        }
        // `task.prompt` is the task's own work while the judge's prompt is rendered, then the
        // judge's prompt (what a command agent's template passes on).
        let work_text = match &spec.action {
            Action::Prompt(p) => render("`prompt`", p, &ctx)?,
            Action::Run(cmd) => render("`run`", cmd, &ctx)?,
            Action::Builtin(b) => format!("{b:?}"),
        };
        set_task_prompt(&mut ctx, work_text);
        let template = match &spec.fanout.as_ref().map(|f| &f.resolve) {
            Some(Resolve::Judge {
                prompt: Some(p), ..
            }) => p.as_str(),
            _ => fanout::DEFAULT_JUDGE_PROMPT,
        };
        let prompt = render("the judge's prompt", template, &ctx)?;
        set_task_prompt(&mut ctx, prompt.clone());
        let agent_spec = self
            .state
            .agents
            .get(agent)
            .map(|a| a.spec.clone())
            .ok_or_else(|| format!("judge `{agent}` is gone"))?;
        let work = match agent_spec.kind {
            AgentKind::Command => {
                let template = agent_spec
                    .command
                    .as_deref()
                    .ok_or_else(|| format!("judge `{agent}` has no `command`"))?;
                Work::Command(render(
                    &format!("judge `{agent}`'s command"),
                    template,
                    &ctx,
                )?)
            }
            AgentKind::Llm => Work::Llm(Box::new(llm::call(
                agent,
                &agent_spec,
                spec,
                prompt,
                secrets,
                &ctx,
            )?)),
            kind => {
                return Err(format!(
                    "judge `{agent}` is a {} agent; a judge must be a command or llm agent",
                    kind.as_str()
                ));
            }
        };
        let json = serde_json::to_vec(&ctx).map_err(|e| e.to_string())?;
        self.exec_request(run_id, t, attempt, &agent_spec, work, &ctx, json)
    }

    /// Handles of the open attempt of `t`: its process, or its branches' processes.
    pub(super) fn attempt_handles(
        &self,
        run: &RunId,
        t: TaskIdx,
        attempt: u32,
    ) -> Vec<&crate::exec::ExecHandle> {
        let single = AttemptKey {
            run: run.clone(),
            task: t,
            attempt,
            purpose: Purpose::Task,
        };
        if let Some(h) = self.handles.get(&single) {
            return vec![h];
        }
        let branched = self.state.runs.get(run).is_some_and(|r| {
            r.tasks[t as usize]
                .open_attempt()
                .is_some_and(|a| !a.branches.is_empty())
        });
        if !branched {
            return Vec::new();
        }
        self.handles
            .iter()
            .filter(|(k, _)| {
                &k.run == run
                    && k.task == t
                    && k.attempt == attempt
                    && matches!(k.purpose, Purpose::Branch { .. })
            })
            .map(|(_, h)| h)
            .collect()
    }
}

fn set_task_prompt(ctx: &mut Value, prompt: String) {
    if let Some(task) = ctx.get_mut("task").and_then(Value::as_object_mut) {
        task.insert("prompt".into(), Value::String(prompt));
    }
}
