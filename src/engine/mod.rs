//! The engine: a pure fold of events (`state`), pure scheduling decisions (`scheduler`,
//! `assign`, `retry`), context building (`context`), and the actor that owns them and drives
//! executors (`actor`).

pub mod actor;
pub mod assign;
pub mod context;
pub mod fanout;
pub mod llm;
pub mod retry;
pub mod scheduler;
pub mod state;

pub use actor::{EngineError, EngineHandle, EngineOptions, Recovered, Subscription};
