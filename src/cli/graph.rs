//! `taskdeck graph`.

use crate::config::Config;

/// Returns the process exit code.
pub fn run(args: super::GraphArgs, config: &Config) -> color_eyre::Result<u8> {
    let _ = (args, config);
    todo!("taskdeck graph")
}
