//! `wats`: the command line of the wasmtime host.

mod serve;
mod spin_up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wats",
    version,
    about = "WhatsApp Cloud API webhook and messaging service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the wats component on 127.0.0.1 (dry-run unless --live --yes-live).
    Serve(serve::ServeArgs),
    /// Serve the Spin app's component (hosts/spin) on 127.0.0.1 as Spin would.
    Spin(spin_up::SpinArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Spin(args) => spin_up::run(args),
    };
    if let Err(error) = result {
        // Messages are ours: they name settings and flags, never values.
        eprintln!("wats: error: {error}");
        std::process::exit(2);
    }
}
