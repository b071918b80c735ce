//! `Console::Remote` against the real server (axum on 127.0.0.1:0, an in-process engine): the
//! snapshot folds on like the engine's own state, commands work, a viewer is refused, and the
//! event feed resumes after the server goes away and comes back, with no gap and no duplicate.

use std::sync::Arc;
use std::time::Duration;

use taskdeck::client::Client;
use taskdeck::config::Config;
use taskdeck::console::{Console, ConsoleError, EventFeed, FeedItem, LinkState, Remote};
use taskdeck::engine::state::EngineState;
use taskdeck::engine::{EngineHandle, EngineOptions};
use taskdeck::model::{Command, RunId, RunState, TaskState};
use taskdeck::server::{AppState, Role, ServeOptions, Tokens};
use tokio::net::TcpListener;

const OPERATOR: &str = "operator-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789ab";
const ADMIN: &str = "admin-token-0123456789abc";

fn engine(home: &std::path::Path) -> EngineHandle {
    let mut opts = EngineOptions::from_config(Config::default());
    opts.log_dir = home.join("logs");
    opts.work_dir = home.join("work");
    EngineHandle::start(opts)
}

/// Serves `engine` on `addr` (port 0: any) until the returned state is closed.
async fn serve(engine: &EngineHandle, addr: &str) -> (AppState, String) {
    let mut tokens = Tokens::default();
    tokens.add(Role::Admin, ADMIN);
    tokens.add(Role::Operator, OPERATOR);
    tokens.add(Role::Viewer, VIEWER);
    let app = AppState::new(
        engine.clone(),
        Arc::new(Config::default()),
        tokens,
        ServeOptions::default(),
    );
    let listener = bind(addr).await;
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let a = app.clone();
    tokio::spawn(async move { taskdeck::server::run(listener, a, Duration::from_secs(2)).await });
    (app, url)
}

/// Binds `addr`, waiting while a server that was closed still holds it: its graceful
/// shutdown lets open connections finish before the listener goes.
async fn bind(addr: &str) -> TcpListener {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

fn remote(url: &str, token: &str) -> Remote {
    Remote::new(Client::new(url, Some(token.to_string()), None).expect("client"))
}

/// Folds the feed into `mirror` until `done` says so; returns the sequence numbers delivered.
async fn follow(
    feed: &mut EventFeed,
    mirror: &mut EngineState,
    done: impl Fn(&EngineState) -> bool,
) -> Vec<u64> {
    let mut seqs = Vec::new();
    while !done(mirror) {
        match tokio::time::timeout(Duration::from_secs(60), feed.next()).await {
            Ok(Some(FeedItem::Event(ev))) => {
                seqs.push(ev.seq);
                mirror.apply(&ev);
            }
            Ok(Some(FeedItem::Reset(st))) => *mirror = *st,
            Ok(None) => panic!("the feed ended"),
            Err(_) => panic!("no event for a minute"),
        }
    }
    seqs
}

fn runs_json(st: &EngineState) -> serde_json::Value {
    serde_json::to_value(&st.runs).expect("json")
}

const FLAKY: &str = r#"
name = "flaky"
[tasks.first]
builtin = "sleep 300ms"
[tasks.flaky]
needs = ["first"]
builtin = "fail"
[tasks.last]
needs = ["flaky"]
builtin = "echo done"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_console_follows_acts_and_is_refused_as_a_viewer() {
    let home = tempfile::tempdir().expect("tmp");
    let engine = engine(home.path());
    let (_app, url) = serve(&engine, "127.0.0.1:0").await;
    let console = Console::Remote(remote(&url, OPERATOR));
    let admin = remote(&url, ADMIN);

    let mut mirror = *console.snapshot().await.expect("snapshot");
    let mut feed = console.events(mirror.last_seq).await.expect("feed");
    let run = admin
        .submit(Some(FLAKY.to_string()), false)
        .await
        .expect("submit");
    follow(&mut feed, &mut mirror, |m| {
        m.run(&run).is_some_and(|r| r.state.is_terminal())
    })
    .await;
    let r = mirror.run(&run).expect("run");
    assert_eq!(r.state, RunState::Failed);
    assert_eq!(r.tasks[1].state, TaskState::Failed);
    assert_eq!(r.tasks[2].state, TaskState::Blocked);

    // A viewer looks but may not act: the refusal says so.
    let viewer = Console::Remote(remote(&url, VIEWER));
    let retry = Command::RetryTask {
        run: run.clone(),
        task: "flaky".into(),
    };
    match viewer.command(retry.clone()).await {
        Err(ConsoleError::Refused(why)) => {
            assert!(why.contains("needs an operator token"), "{why}")
        }
        other => panic!("a viewer's retry was not refused: {other:?}"),
    }
    assert!(viewer.snapshot().await.is_ok());

    // The operator's retry: the task fails again (builtin `fail`), on a second attempt.
    console.command(retry).await.expect("retry");
    follow(&mut feed, &mut mirror, |m| {
        m.run(&run)
            .is_some_and(|r| r.tasks[1].attempts.len() == 2 && r.state.is_terminal())
    })
    .await;

    // The mirror folded from the snapshot plus the feed is the engine's state.
    let engine_state = engine.snapshot().await.expect("engine");
    assert_eq!(runs_json(&mirror), runs_json(&engine_state));

    // The engine log of the run and the run in the history.
    let lines = console.engine_log(&run, 0).await.expect("engine log");
    assert!(!lines.is_empty());
    let history = console.history().await.expect("history");
    assert!(history.iter().any(|h| h.id == run));

    // A sequence number the server cannot resume from (another server's): the feed reads the
    // snapshot again and hands it over whole, then follows on from it.
    let mut stale = console.events(mirror.last_seq + 1000).await.expect("feed");
    match tokio::time::timeout(Duration::from_secs(60), stale.next()).await {
        Ok(Some(FeedItem::Reset(st))) => {
            assert_eq!(st.last_seq, engine_state.last_seq);
            assert_eq!(runs_json(&st), runs_json(&engine_state));
        }
        other => panic!("expected a fresh snapshot, got {other:?}"),
    }
}

const SLOW: &str = r#"
name = "slow"
[tasks.a]
builtin = "sleep 400ms"
[tasks.b]
needs = ["a"]
builtin = "sleep 400ms"
[tasks.c]
needs = ["b"]
builtin = "sleep 400ms"
[tasks.d]
needs = ["c"]
builtin = "sleep 400ms"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_resumes_after_the_server_goes_away_with_no_gap_and_no_duplicate() {
    let home = tempfile::tempdir().expect("tmp");
    let engine = engine(home.path());
    let (app, url) = serve(&engine, "127.0.0.1:0").await;
    let addr = url.trim_start_matches("http://").to_string();
    let r = remote(&url, OPERATOR);
    let mut link = r.link();
    let console = Console::Remote(r);
    let mut mirror = *console.snapshot().await.expect("snapshot");
    let from = mirror.last_seq;
    let mut feed = console.events(from).await.expect("feed");
    let run: RunId = remote(&url, ADMIN)
        .submit(Some(SLOW.to_string()), false)
        .await
        .expect("submit");

    // Some events arrive, then the server goes away (the engine runs on).
    let mut seqs = follow(&mut feed, &mut mirror, |m| {
        m.run(&run)
            .is_some_and(|r| r.tasks[0].state == TaskState::Running)
    })
    .await;
    // A second console starts mid-run: the snapshot read back from JSON folds on exactly.
    let mut mid = *console.snapshot().await.expect("snapshot mid-run");
    assert!(mid.run(&run).is_some());
    let mut mid_feed = console.events(mid.last_seq).await.expect("feed");
    app.close();
    link.wait_for(|l| matches!(l.state, LinkState::Reconnecting { .. }))
        .await
        .expect("the link says it reconnects");

    // A new server for the same engine on the same address: the feed finds it by itself.
    let (_app2, _) = serve(&engine, &addr).await;
    seqs.extend(
        follow(&mut feed, &mut mirror, |m| {
            m.run(&run).is_some_and(|r| r.state.is_terminal())
        })
        .await,
    );
    assert!(link.borrow().healthy());
    assert_eq!(mirror.run(&run).map(|r| r.state), Some(RunState::Succeeded));
    let expected: Vec<u64> = (from + 1..=mirror.last_seq).collect();
    assert_eq!(seqs, expected, "every event once, in order");
    let engine_state = engine.snapshot().await.expect("engine");
    assert_eq!(runs_json(&mirror), runs_json(&engine_state));
    follow(&mut mid_feed, &mut mid, |m| {
        m.run(&run).is_some_and(|r| r.state.is_terminal())
    })
    .await;
    assert_eq!(runs_json(&mid), runs_json(&engine_state));
}

fn engine_with_store(home: &std::path::Path) -> EngineHandle {
    let store = taskdeck::store::open(&taskdeck::store::StoreUrl::Sqlite(home.join("journal.db")))
        .expect("store");
    let mut opts = EngineOptions::from_config(Config::default());
    opts.log_dir = home.join("logs");
    opts.work_dir = home.join("work");
    opts.journal = Some(taskdeck::store::Journal::spawn(store).expect("journal"));
    EngineHandle::start(opts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_past_run_opens_remotely_with_its_task_log_and_reruns() {
    let home = tempfile::tempdir().expect("tmp");
    // A run finished by an earlier engine on the same store.
    let first = engine_with_store(home.path());
    let wf = "name = \"past\"\n[tasks.say]\nrun = \"echo hello from the past\"\n";
    let (_app, url) = serve(&first, "127.0.0.1:0").await;
    let console = Console::Remote(remote(&url, ADMIN));
    let mut mirror = *console.snapshot().await.expect("snapshot");
    let mut feed = console.events(mirror.last_seq).await.expect("feed");
    let run = remote(&url, ADMIN)
        .submit(Some(wf.to_string()), false)
        .await
        .expect("submit");
    follow(&mut feed, &mut mirror, |m| {
        m.run(&run).is_some_and(|r| r.state.is_terminal())
    })
    .await;
    first.shutdown().await.expect("shutdown");

    let second = engine_with_store(home.path());
    let (_app2, url) = serve(&second, "127.0.0.1:0").await;
    let console = Console::Remote(remote(&url, ADMIN));
    assert!(console.snapshot().await.expect("snapshot").runs.is_empty());
    let history = console.history().await.expect("history");
    assert!(
        history
            .iter()
            .any(|h| h.id == run && h.state == "succeeded")
    );
    let past = console.open_past(&run).await.expect("open past");
    assert_eq!(past.run.tasks[0].state, TaskState::Succeeded);
    let lines = console
        .past_log(&run, Some((0, "say".into())), 1, 0)
        .await
        .expect("past log");
    assert!(
        lines
            .iter()
            .any(|l| l.line.contains("hello from the past") && l.task == Some(0)),
        "{lines:?}"
    );
    // Its engine log too, from the file the earlier engine wrote.
    let engine_lines = console
        .past_log(&run, None, 0, 0)
        .await
        .expect("engine log");
    assert!(!engine_lines.is_empty(), "the engine log of a past run");
    // Re-run: the recorded workflow text goes back to the server as a new run.
    let again = console.rerun(&run).await.expect("rerun");
    assert_ne!(again, run);
    // A changed file is a new version, numbered in the remote history as in the local one.
    let changed = wf.replace("hello from the past", "hello again");
    let newer = remote(&url, ADMIN)
        .submit(Some(changed), false)
        .await
        .expect("submit changed");
    let version_of = |h: &[taskdeck::history::HistoryEntry], id: &RunId| {
        h.iter().find(|e| &e.id == id).map(|e| e.version_no)
    };
    let history = console.history().await.expect("history");
    assert_eq!(version_of(&history, &run), Some(1));
    assert_eq!(version_of(&history, &again), Some(1));
    assert_eq!(version_of(&history, &newer), Some(2));
}
