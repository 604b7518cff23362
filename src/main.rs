//! `kubectl-mesh_why`: explains why Istio traffic for a service is not landing where expected.
//! A thin shell over the `mesh_why` library: parse arguments, gather, analyze, render, exit.

use clap::Parser;
use mesh_why::{cli, diagnose, error, gather, render};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &cli::Cli) -> error::Result<ExitCode> {
    let question = cli.question()?;
    let Some(path) = &cli.snapshot else {
        return Err(error::Error::new("no --snapshot given, and this build only analyzes saved snapshots")
            .help("pass --snapshot DIR (or a .tar.gz), e.g. --snapshot testdata/scenarios/healthy-canary"));
    };
    let snapshot = gather::files::read_snapshot(path)?;
    let report = diagnose::analyze(&snapshot, &question)?;
    let color = cli.output == render::Format::Table
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let text = render::render(&report, cli.output, color);
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(if report.has_errors() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
