//! `wats webhook token` and `wats webhook sign`: helpers for setting up and
//! testing a webhook; neither touches the network.

use super::profile::Profile;
use crate::cli::serve::DRY_RUN_SETTINGS;
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use std::io::Read;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Print a new random verify token (256 bits, hex) for WATS_VERIFY_TOKEN.
    Token,
    /// Print the X-Hub-Signature-256 value of a payload, as Meta would sign it.
    Sign(SignArgs),
}

#[derive(Args)]
pub struct SignArgs {
    /// The payload file (`-` reads standard input). Its exact bytes are signed.
    file: PathBuf,
    /// Sign with WATS_APP_SECRET as this profile references it (the environment wins).
    #[arg(long, value_name = "PATH", conflicts_with = "dry_run")]
    profile: Option<PathBuf>,
    /// Sign with the dry-run app secret of `wats serve` without --live.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(command: WebhookCommand) -> Result<()> {
    match command {
        WebhookCommand::Token => {
            let mut bytes = [0u8; 32];
            getrandom::getrandom(&mut bytes)
                .map_err(|_| anyhow!("the system's random number generator is unavailable"))?;
            println!("{}", hex::encode(bytes));
            eprintln!("wats: a new verify token (256 bits); set it as WATS_VERIFY_TOKEN and in Meta's webhook settings");
            Ok(())
        }
        WebhookCommand::Sign(args) => {
            let secret = app_secret(&args)?;
            let mut body = Vec::new();
            let read = if args.file.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut body).map(drop)
            } else {
                std::fs::read(&args.file).map(|bytes| body = bytes)
            };
            read.map_err(|_| anyhow!("cannot read the payload file"))?;
            println!("{}", wats::sign(&secret, &body));
            eprintln!(
                "wats: signed {} bytes; send them unchanged with this as X-Hub-Signature-256",
                body.len()
            );
            Ok(())
        }
    }
}

fn app_secret(args: &SignArgs) -> Result<String> {
    const KEY: &str = "WATS_APP_SECRET";
    if args.dry_run {
        let (_, value) = DRY_RUN_SETTINGS
            .iter()
            .find(|(key, _)| *key == KEY)
            .expect("listed");
        return Ok((*value).to_owned());
    }
    if let Some(value) = std::env::var(KEY).ok().filter(|v| !v.is_empty()) {
        return Ok(value);
    }
    if let Some(path) = &args.profile {
        let profile = Profile::read(path)?;
        let (settings, _) = profile.resolve(|name| std::env::var(name).ok());
        if let Some(value) = settings.get(KEY) {
            return Ok(value.clone());
        }
        bail!("the profile's {KEY} reference names an environment variable that is not set");
    }
    bail!("no app secret: set {KEY}, pass --profile PATH, or --dry-run for `wats serve`'s dry-run secret")
}
