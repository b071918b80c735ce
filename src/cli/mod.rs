//! Command-line interface: one module per subcommand.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "taskdeck",
    version,
    about = "A terminal operations console for task-graph workflows"
)]
pub struct Cli {
    /// Config file (default: config.toml in the platform config dir).
    #[arg(long, global = true, env = "TASKDECK_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Run workflows.
    Run(RunArgs),
    /// Open the console with no new run: browse history, resume interrupted runs, :run FILE.
    Console(ConsoleArgs),
    /// Resume an unfinished run after the process running it died.
    Resume(ResumeArgs),
    /// Start a new run of exactly the workflow version an earlier run used.
    Rerun(RerunArgs),
    /// List past and running runs from the store.
    Runs(RunsArgs),
    /// Write the JSON report of any run in the store.
    Report(ReportArgs),
    /// Show what changed in the workflow between two runs.
    Diff(DiffArgs),
    /// Copy the whole store to a file, consistently, while runs go on.
    Backup(BackupArgs),
    /// Replace the store's content with a backup.
    Restore(RestoreArgs),
    /// Check workflow files and report every problem at once.
    Validate(ValidateArgs),
    /// Show a workflow's graph: levels, critical path, topological order.
    Graph(GraphArgs),
    /// Turn a request into a workflow file (built-in templates or an llm planner) and open it
    /// in the console for review before it runs.
    Plan(PlanArgs),
    /// Run the engine headless behind an HTTP API.
    Serve(ServeArgs),
    /// Open the console on a server: every view and key, over its API.
    Attach(AttachArgs),
    /// Submit a workflow file to a server (`--to URL`) and print the new run's id.
    Submit(SubmitArgs),
    /// A run's state on a server: counts, and the tasks that need attention.
    Status(StatusArgs),
    /// Retry a failed (or cancelled, blocked) task on a server.
    Retry(TaskActionArgs),
    /// Approve a task that waits for approval on a server.
    Approve(TaskActionArgs),
    /// Cancel a run, or one task of it, on a server.
    Cancel(ActionArgs),
    /// Pause a run, or one task of it, on a server.
    Pause(ActionArgs),
    /// Serve the Model Context Protocol over stdio, for AI assistants: submit workflows,
    /// follow, retry, approve and cancel runs (on the local store, or a server with --to).
    Mcp(McpArgs),
}

impl Commands {
    /// Whether the command runs an engine here, whose task process groups the guardian must
    /// kill if taskdeck dies.
    pub fn hosts_engine(&self) -> bool {
        match self {
            Commands::Run(_)
            | Commands::Resume(_)
            | Commands::Rerun(_)
            | Commands::Console(_)
            | Commands::Plan(_)
            | Commands::Serve(_) => true,
            Commands::Mcp(a) => a.to.is_none(),
            Commands::Runs(_)
            | Commands::Report(_)
            | Commands::Diff(_)
            | Commands::Backup(_)
            | Commands::Restore(_)
            | Commands::Validate(_)
            | Commands::Graph(_)
            | Commands::Attach(_)
            | Commands::Submit(_)
            | Commands::Status(_)
            | Commands::Retry(_)
            | Commands::Approve(_)
            | Commands::Cancel(_)
            | Commands::Pause(_) => false,
        }
    }

    /// Whether the command only prints and exits, so that, like any Unix tool, it may simply
    /// end when its reader goes away (`taskdeck runs | head`).
    pub fn prints_and_exits(&self) -> bool {
        match self {
            Commands::Runs(_)
            | Commands::Report(_)
            | Commands::Diff(_)
            | Commands::Validate(_)
            | Commands::Graph(_)
            | Commands::Backup(_)
            | Commands::Restore(_)
            | Commands::Submit(_)
            | Commands::Status(_)
            | Commands::Retry(_)
            | Commands::Approve(_)
            | Commands::Cancel(_)
            | Commands::Pause(_) => true,
            // Engines carry on without their reader; the console and MCP own their stdout.
            Commands::Run(_)
            | Commands::Console(_)
            | Commands::Resume(_)
            | Commands::Rerun(_)
            | Commands::Plan(_)
            | Commands::Serve(_)
            | Commands::Attach(_)
            | Commands::Mcp(_) => false,
        }
    }
}

/// `--store`, on every subcommand that touches runs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreArg {
    /// Where runs are journaled: sqlite://PATH (default: taskdeck.db in the data dir, or the
    /// config file's [store] url), postgres://USER@HOST/DB, or memory (keep nothing).
    #[arg(long, value_name = "URL", env = "TASKDECK_STORE")]
    pub store: Option<String>,
}

/// How a run is shown and reported: shared by run, resume and rerun.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunOptions {
    /// Print progress lines instead of opening the console (automatic when stdout is not a terminal).
    #[arg(long)]
    pub headless: bool,
    /// Headless: print only the summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Write a JSON report of the run here when it ends.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Headless: approve tasks that wait for approval as soon as they do.
    #[arg(long)]
    pub auto_approve: bool,
    /// Console colour theme: dark, light, high-contrast, ansi16, or a file in the config
    /// dir's themes/ (default: the config file's [ui] theme, else dark).
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
    /// Console: close when the runs end and exit with their result (0 only if all succeeded).
    #[arg(long)]
    pub exit_on_finish: bool,
    #[command(flatten)]
    pub store: StoreArg,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Workflow files (TOML or JSON).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub opts: RunOptions,
}

#[derive(Debug, clap::Args)]
pub struct ConsoleArgs {
    /// Console colour theme: dark, light, high-contrast, ansi16, or a file in the config
    /// dir's themes/ (default: the config file's [ui] theme, else dark).
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
    #[command(flatten)]
    pub store: StoreArg,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The run's id (or a unique prefix of it); `taskdeck runs` lists them.
    #[arg(required_unless_present = "last", conflicts_with = "last")]
    pub run: Option<String>,
    /// With --to: resume this paused task of the run instead of the whole run.
    #[arg(requires = "to")]
    pub task: Option<String>,
    /// Resume the most recent unfinished run.
    #[arg(long)]
    pub last: bool,
    /// Resume a paused run (or task) on this server instead of taking over an interrupted
    /// run from the store.
    #[arg(long, value_name = "URL", conflicts_with = "last")]
    pub to: Option<String>,
    /// Bearer token for --to.
    #[arg(long, env = "TASKDECK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With --to over https: a PEM certificate to trust (a self-signed server).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    #[command(flatten)]
    pub opts: RunOptions,
}

#[derive(Debug, clap::Args)]
pub struct RerunArgs {
    /// The run whose workflow version to run again.
    pub run: String,
    #[command(flatten)]
    pub opts: RunOptions,
}

#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// One JSON object per run, for scripts.
    #[arg(long)]
    pub json: bool,
    /// Show at most this many runs (newest first).
    #[arg(long, short = 'n', default_value_t = 50)]
    pub limit: usize,
    #[command(flatten)]
    pub store: StoreArg,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The run's id (or a unique prefix of it).
    pub run: String,
    /// Write the report here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArg,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The older run.
    pub first: String,
    /// The newer run.
    pub second: String,
    #[command(flatten)]
    pub store: StoreArg,
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The backup file to create (an SQLite database; it must not exist yet).
    pub file: PathBuf,
    #[command(flatten)]
    pub store: StoreArg,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A file made by `taskdeck backup`.
    pub file: PathBuf,
    #[command(flatten)]
    pub store: StoreArg,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
    Mermaid,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// Workflow file (TOML or JSON).
    pub file: PathBuf,
    /// text: levels, critical path and topological order for people; dot (Graphviz) and mermaid:
    /// edges point from a dependency to its dependent, critical path in red; json: everything,
    /// per task its needs, level and rank.
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
    /// Text format: list every task. By default a level or the topological order shows its
    /// first 20 ids and "… and N more", at most 50 levels are listed, and a critical path over
    /// 20 tasks shows its first and last 10. Other formats always contain everything.
    #[arg(long)]
    pub full: bool,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default: the config file's [server] bind, else 127.0.0.1:7070).
    /// Listening beyond loopback needs tokens (or --insecure).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Bearer tokens: one `ROLE TOKEN` a line, roles viewer, operator, admin (also the config
    /// file's [server] tokens_file and [[server.tokens]]).
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Allow listening beyond loopback without tokens.
    #[arg(long)]
    pub insecure: bool,
    /// TLS certificate chain (PEM); with --tls-key the server speaks HTTPS.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Largest request body (a workflow file), in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 32 << 20)]
    pub max_body: usize,
    /// Longest time an ordinary request may take (event streams and followed logs are exempt).
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub request_timeout: humantime::Duration,
    /// Events queued for one streaming client before it is told it fell behind.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub event_buffer: usize,
    /// Time between heartbeats on idle event streams.
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub heartbeat: humantime::Duration,
    /// Leave the store's interrupted runs alone instead of taking them over at start.
    #[arg(long)]
    pub no_resume: bool,
    /// The URL http agents call back to (default: the listening address; give this when
    /// agents reach the server by another name, e.g. behind a proxy or on 0.0.0.0).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub store: StoreArg,
}

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// The server's address, e.g. http://127.0.0.1:7070 (also TASKDECK_URL).
    #[arg(value_name = "URL", env = "TASKDECK_URL")]
    pub url: String,
    /// Bearer token (also TASKDECK_TOKEN); a viewer's token looks, an operator's acts.
    #[arg(long, env = "TASKDECK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Over https: a PEM certificate to trust (a self-signed server).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Console colour theme (as for `taskdeck run`).
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  taskdeck plan --type bug_investigation --title \"Login answers 500\" --require \"users can log in\"
  taskdeck plan request.toml --agent-command 'claude -p {{ task.prompt | tojson }}' -o fix.toml
  taskdeck plan request.toml --planner planner     # an llm agent from the config file")]
pub struct PlanArgs {
    /// Request file (TOML or JSON) in the seeds' shape: request_type, title, priority,
    /// complexity_level, [context], [requirements], [preferences].
    #[arg(required_unless_present = "request_type")]
    pub request: Option<PathBuf>,
    /// What kind of work (without a request file, or to override it).
    #[arg(long = "type", value_name = "TYPE", value_enum)]
    pub request_type: Option<crate::plan::RequestType>,
    /// One line saying what the work is about (names the workflow).
    #[arg(long, requires = "request_type")]
    pub title: Option<String>,
    /// A functional requirement (repeatable).
    #[arg(long = "require", value_name = "TEXT")]
    pub requirements: Vec<String>,
    /// A quality gate command that must pass after the main work (repeatable).
    #[arg(long = "gate", value_name = "COMMAND")]
    pub gates: Vec<String>,
    #[arg(long, value_enum)]
    pub strategy: Option<crate::plan::Strategy>,
    #[arg(long, value_enum)]
    pub priority: Option<crate::plan::RequestPriority>,
    /// 1 to 10; from 6 on, several functional requirements become parallel tracks.
    #[arg(long, value_name = "N")]
    pub complexity: Option<u8>,
    /// Write the workflow here (default: a name from the title, in the current directory).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// The roles are `command` agents running this template ({role} is the role's name),
    /// e.g. 'claude -p {{ task.prompt | tojson }}'. Default: agents that print their prompts.
    #[arg(long, value_name = "TEMPLATE", conflicts_with = "llm_endpoint")]
    pub agent_command: Option<String>,
    /// The roles are `llm` agents on this OpenAI-compatible endpoint (with --model).
    #[arg(long, value_name = "URL", requires = "model")]
    pub llm_endpoint: Option<String>,
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// With --llm-endpoint: the environment variable holding the API key.
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Plan with this `llm` agent from the config file instead of a built-in template; its
    /// graph must pass `taskdeck validate` (it is shown the problems and asked again).
    #[arg(long, value_name = "AGENT")]
    pub planner: Option<String>,
    /// How many times the planner may answer before giving up.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub planner_attempts: u32,
    /// Only write the file: no console review.
    #[arg(long)]
    pub no_review: bool,
    /// Console colour theme for the review.
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
    #[command(flatten)]
    pub store: StoreArg,
}

/// Where a CLI client sends its request.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArg {
    /// The server's address, e.g. http://127.0.0.1:7070 (also TASKDECK_URL).
    #[arg(long, value_name = "URL", env = "TASKDECK_URL")]
    pub to: String,
    /// Bearer token (also TASKDECK_TOKEN).
    #[arg(long, env = "TASKDECK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Over https: a PEM certificate to trust (a self-signed server).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Workflow file (TOML, or JSON when it ends in .json).
    pub file: PathBuf,
    /// Wait until the run ends; exit 0 only if it succeeded.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub remote: RemoteArg,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The run's id.
    pub run: String,
    /// Print the run's snapshot as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: RemoteArg,
}

#[derive(Debug, clap::Args)]
pub struct TaskActionArgs {
    pub run: String,
    pub task: String,
    #[command(flatten)]
    pub remote: RemoteArg,
}

#[derive(Debug, clap::Args)]
pub struct ActionArgs {
    pub run: String,
    /// One task of the run (default: the whole run).
    pub task: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArg,
}

#[derive(Debug, clap::Args)]
pub struct McpArgs {
    /// Drive a `taskdeck serve` at this address (e.g. http://127.0.0.1:7070) instead of an
    /// engine embedded on the store.
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// Bearer token for --to (also TASKDECK_TOKEN); approving, retrying and cancelling need
    /// an operator's.
    #[arg(long, env = "TASKDECK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With --to over https: a PEM certificate to trust (a self-signed server).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArg,
}

pub mod attach;
pub mod graph;
pub mod history;
pub mod mcp;
pub mod plan;
pub mod remote;
pub mod run;
pub mod serve;
pub mod validate;
