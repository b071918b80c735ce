//! `taskdeck mcp`: a Model Context Protocol server, so AI assistants can submit workflows and
//! follow, retry, approve and cancel their runs. The tools (`server`) work on a `Console`, so
//! one implementation serves an embedded engine and a remote `taskdeck serve` alike; `view`
//! shapes what they answer and `params` what they take.

pub mod params;
pub mod server;
pub mod view;

pub use server::TaskdeckMcp;
