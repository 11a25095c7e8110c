//! `wats`: the command line of the wasmtime host.

mod cli;

use clap::error::{ContextKind, ContextValue, ErrorKind};
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
    Serve(cli::serve::ServeArgs),
    /// Serve the Spin app's component (hosts/spin) on 127.0.0.1 as Spin would.
    Spin(cli::spin_up::SpinArgs),
    /// Write a profile whose secrets are environment references, never values.
    Init(cli::InitArgs),
    /// Check a profile and the environment without the network or printing values.
    Doctor(cli::doctor::DoctorArgs),
    /// The steps from a profile to a verified webhook, each with its state (no call to Meta).
    Onboarding(cli::onboarding::OnboardingArgs),
    /// Print the OpenAPI 3.1 document of the service's routes.
    Openapi(cli::OpenApiArgs),
    /// Webhook helpers: a verify token, a payload's signature.
    #[command(subcommand)]
    Webhook(cli::webhook::WebhookCommand),
    /// Events for the application's endpoints: a new signing secret.
    #[command(subcommand)]
    Events(cli::events::EventsCommand),
}

fn main() {
    // No stack traces and no panic message (it could quote a value): where
    // it happened is enough for a bug report.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("wats: internal error{at}; please report it");
    }));
    let cli = Cli::try_parse().unwrap_or_else(|error| exit_on_usage_error(error));
    let result = match cli.command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Spin(args) => cli::spin_up::run(args),
        Command::Init(args) => cli::init(args),
        Command::Doctor(args) => match cli::doctor::run(args) {
            Ok(true) => Ok(()),
            Ok(false) => std::process::exit(1),
            Err(error) => Err(error),
        },
        Command::Onboarding(args) => match cli::onboarding::run(args) {
            Ok(true) => Ok(()),
            Ok(false) => std::process::exit(1),
            Err(error) => Err(error),
        },
        Command::Openapi(args) => cli::openapi(args),
        Command::Webhook(command) => cli::webhook::run(command),
        Command::Events(command) => cli::events::run(command),
    };
    if let Err(error) = result {
        // Messages are ours: they name settings and flags, never values.
        eprintln!("wats: error: {error}");
        std::process::exit(2);
    }
}

/// Help and version print as clap writes them. Usage errors name a flag
/// only when it looks like one: anything else typed on the command line (a
/// token, a path, a mistyped subcommand that may be a secret) is not echoed.
fn exit_on_usage_error(error: clap::Error) -> ! {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit();
    }
    let what = error.kind().as_str().unwrap_or("invalid command line");
    // Missing and conflicting arguments are named as declared here; an
    // unexpected one only if it is flag-shaped.
    let flag_like = |name: &&str| {
        let name = name.split([' ', '=']).next().unwrap_or_default();
        (name.starts_with("--")
            && name.len() <= 40
            && name[2..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-'))
            || (name.starts_with('<') && name.ends_with('>') && name.len() <= 40)
    };
    let names: Vec<&str> = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(text)) => vec![text.as_str()],
        Some(ContextValue::Strings(texts)) => texts.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    };
    let names: Vec<&str> = names.into_iter().filter(flag_like).collect();
    let named = if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    };
    eprintln!("wats: error: {what}{named}; see `wats --help`");
    std::process::exit(2);
}
