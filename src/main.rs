use clap::Parser;
use taskdeck::cli::Cli;

fn main() -> color_eyre::Result<()> {
    color_eyre::install()?;
    let cli = Cli::parse();
    let _ = cli;
    Ok(())
}
