//! The `synscope` binary: parses arguments, decides colour once, runs, and maps the result to an exit code.

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use clap::Parser;

use synscope::app::{self, Status};
use synscope::cli::{Cli, ColorChoice};
use synscope::render::text::Style;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    colored::control::set_override(color);
    // Unlocked, so that a replay can write from the thread that words the attempts.
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout());
    match app::run(&cli, &mut out, Style { color }) {
        Ok(Status::Clean) => ExitCode::SUCCESS,
        Ok(Status::Failed) => ExitCode::from(1),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if err.is::<synscope::interrupt::Interrupted>() => {
            eprintln!("synscope: {err}");
            ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("synscope: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// `synscope replay big.pcap | head` must end quietly.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe))
}
