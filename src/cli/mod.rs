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
    /// Check workflow files and report every problem at once.
    Validate(ValidateArgs),
    /// Show a workflow's graph: levels, critical path, topological order.
    Graph(GraphArgs),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Workflow files (TOML or JSON).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
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

pub mod graph;
pub mod run;
pub mod validate;
