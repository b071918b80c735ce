//! The CLI clients of a server: `submit`, `status`, `retry`, `approve`, `cancel`, `pause` and
//! `resume --to`. For scripts: what was asked for goes to stdout (a run id, a status), messages
//! to stderr; exit 0 done, 1 refused by the server (no such run or task, not possible now, an
//! invalid workflow, or with `--wait` a run that did not succeed), 2 the server cannot be
//! reached, 3 the token is missing or lacks the role.

use std::path::Path;

use serde_json::Value;

use super::{ActionArgs, RemoteArg, StatusArgs, SubmitArgs, TaskActionArgs};
use crate::client::{Client, ClientError, StreamItem};
use crate::model::EventKind;

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs one client call and turns its failure into a message and an exit code.
fn call<F>(remote: &RemoteArg, f: impl FnOnce(Client) -> F) -> color_eyre::Result<u8>
where
    F: std::future::Future<Output = Result<u8, ClientError>>,
{
    let client = match Client::new(&remote.to, remote.token.clone(), remote.cacert.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("taskdeck: {e}");
            return Ok(2);
        }
    };
    match runtime()?.block_on(f(client)) {
        Ok(code) => Ok(code),
        Err(e) => {
            report(&e, remote);
            Ok(e.exit_code())
        }
    }
}

fn report(e: &ClientError, remote: &RemoteArg) {
    eprintln!("taskdeck: {e}");
    match e {
        ClientError::Api { problems, .. } => {
            for p in problems {
                eprintln!("{p}");
            }
        }
        ClientError::Denied { status: 401, .. } if remote.token.is_none() => {
            eprintln!("  hint: give a token with --token TOKEN or TASKDECK_TOKEN")
        }
        ClientError::Connect { .. } => {
            eprintln!("  hint: is `taskdeck serve` running there? (check --to and the port)")
        }
        _ => {}
    }
}

pub fn submit(args: SubmitArgs) -> color_eyre::Result<u8> {
    let text = match crate::spec::read_text(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("taskdeck: {e}");
            return Ok(2);
        }
    };
    let json = crate::spec::Format::from_path(&args.file) == crate::spec::Format::Json;
    let file = args.file.clone();
    call(&args.remote, |client| async move {
        let from = if args.wait {
            Some(client.stats().await?.last_seq)
        } else {
            None
        };
        let done = client.submit(text, json).await?;
        println!("{}", done.id);
        eprintln!(
            "submitted {}: run {} of `{}` ({} tasks) on {}",
            file.display(),
            done.id,
            done.workflow,
            done.tasks,
            client.base()
        );
        match from {
            Some(seq) => wait(&client, &done.id, seq).await,
            None => Ok(0),
        }
    })
}

/// Follows the run's events until it ends: 0 if it succeeded, 1 otherwise.
async fn wait(client: &Client, run: &str, since: u64) -> Result<u8, ClientError> {
    let mut since = since;
    loop {
        let mut events = client.events(Some(since), Some(run)).await?;
        while let Some(item) = events.next().await {
            match item? {
                StreamItem::Event(ev) => {
                    since = ev.seq;
                    if let EventKind::RunFinished { state } = ev.kind {
                        eprintln!("run {run} {state}");
                        return Ok(u8::from(state != crate::model::RunState::Succeeded));
                    }
                }
                StreamItem::Notice(_) => break,
            }
        }
        // The stream ended (fell behind, or the server restarted): look at the run itself.
        let snap = client.run(run).await?;
        let state = snap["run"]["state"].as_str().unwrap_or("").to_string();
        if crate::store::is_terminal_state(&state) {
            eprintln!("run {run} {state}");
            return Ok(u8::from(state != "succeeded"));
        }
        since = snap["seq"].as_u64().unwrap_or(since);
    }
}

pub fn status(args: StatusArgs) -> color_eyre::Result<u8> {
    call(&args.remote, |client| async move {
        let snap = client.run(&args.run).await?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&snap).unwrap_or_default()
            );
        } else {
            print!("{}", describe(&snap));
        }
        Ok(0)
    })
}

/// A run's snapshot for people: its state, counts, and the tasks worth a look.
fn describe(snap: &Value) -> String {
    let run = &snap["run"];
    let str_of = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let mut out = format!(
        "run {} of `{}`: {}{}\n",
        str_of(&run["id"]),
        str_of(&run["workflow"]["name"]),
        str_of(&run["state"]),
        if snap["live"].as_bool() == Some(false) {
            " (from the store)"
        } else {
            ""
        }
    );
    let specs = run["workflow"]["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let tasks = run["tasks"].as_array().cloned().unwrap_or_default();
    let mut counts: indexmap::IndexMap<String, u32> = indexmap::IndexMap::new();
    let mut notes = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        let state = str_of(&t["state"]);
        *counts.entry(state.clone()).or_insert(0) += 1;
        let id = specs.get(i).map_or("?".to_string(), |s| str_of(&s["id"]));
        let last = t["attempts"].as_array().and_then(|a| a.last());
        match state.as_str() {
            "failed" => {
                let err = last.map_or(String::new(), |a| str_of(&a["error"]));
                let n = last.map_or(0, |a| a["number"].as_u64().unwrap_or(0));
                notes.push(format!("  failed            {id} (attempt {n}: {err})"));
            }
            "waiting_approval" => notes.push(format!("  waiting approval  {id}")),
            "running" | "paused" | "retry_wait" => {
                notes.push(format!("  {state:<17} {id}"));
            }
            _ => {}
        }
    }
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    out.push_str(&format!("{} tasks: {}\n", tasks.len(), summary.join(", ")));
    for n in notes {
        out.push_str(&n);
        out.push('\n');
    }
    out
}

fn action(
    remote: &RemoteArg,
    run: String,
    task: Option<String>,
    verb: &'static str,
) -> color_eyre::Result<u8> {
    call(remote, |client| async move {
        client.command(&run, task.as_deref(), verb).await?;
        match &task {
            Some(t) => eprintln!("{verb}: task `{t}` of run {run}"),
            None => eprintln!("{verb}: run {run}"),
        }
        Ok(0)
    })
}

pub fn retry(args: TaskActionArgs) -> color_eyre::Result<u8> {
    action(&args.remote, args.run, Some(args.task), "retry")
}

pub fn approve(args: TaskActionArgs) -> color_eyre::Result<u8> {
    action(&args.remote, args.run, Some(args.task), "approve")
}

pub fn cancel(args: ActionArgs) -> color_eyre::Result<u8> {
    action(&args.remote, args.run, args.task, "cancel")
}

pub fn pause(args: ActionArgs) -> color_eyre::Result<u8> {
    action(&args.remote, args.run, args.task, "pause")
}

/// `taskdeck resume RUN [TASK] --to URL`.
pub fn resume(
    url: String,
    token: Option<String>,
    cacert: Option<&Path>,
    run: String,
    task: Option<String>,
) -> color_eyre::Result<u8> {
    let remote = RemoteArg {
        to: url,
        token,
        cacert: cacert.map(Path::to_path_buf),
    };
    action(&remote, run, task, "resume")
}
