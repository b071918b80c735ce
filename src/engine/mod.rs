//! The engine: a pure fold of events (`state`), pure scheduling decisions (`scheduler`,
//! `assign`, `retry`), and the actor that owns them and drives executors (`actor`).
