//! HTTP client of the taskdeck API (used by the CLI clients and remote consoles).
