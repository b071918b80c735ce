//! taskdeck: a terminal operations console for task-graph workflows.
//!
//! The engine side (`model`, `spec`, `graph`, `engine`, `exec`) never imports the UI; the
//! console (`tui`) reaches the engine only through `console::Console`.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod engine;
pub mod exec;
pub mod expr;
pub mod graph;
pub mod history;
pub mod logs;
pub mod mcp;
pub mod model;
pub mod paths;
pub mod plan;
pub mod report;
pub mod server;
pub mod spec;
pub mod store;
pub mod template;
pub mod tui;
