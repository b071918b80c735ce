//! `taskdeck validate`.

use crate::config::Config;

/// Returns the process exit code.
pub fn run(args: super::ValidateArgs, config: &Config) -> color_eyre::Result<u8> {
    let _ = (args, config);
    todo!("taskdeck validate")
}
