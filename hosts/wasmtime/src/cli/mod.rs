//! The operator commands besides `serve` and `spin`: all credential-free,
//! none touches the network, none prints a secret it did not create.

pub mod doctor;
pub mod env_file;
pub mod events;
pub mod onboarding;
pub mod profile;
pub mod serve;
pub mod spin_up;
pub mod webhook;

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct InitArgs {
    /// Where to write the profile.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PROFILE)]
    profile: PathBuf,
    /// The business phone number's id (numeric, from Meta's app dashboard).
    #[arg(long, value_name = "ID")]
    phone_number_id: Option<String>,
    /// The WhatsApp Business Account id (numeric).
    #[arg(long, value_name = "ID")]
    waba_id: Option<String>,
    /// Replace an existing profile.
    #[arg(long)]
    force: bool,
}

pub fn init(args: InitArgs) -> Result<()> {
    for (flag, id) in [
        ("--phone-number-id", &args.phone_number_id),
        ("--waba-id", &args.waba_id),
    ] {
        if id
            .as_deref()
            .is_some_and(|id| !wats::config::is_numeric_id(id))
        {
            bail!("{flag} must be a numeric id");
        }
    }
    if args.profile.exists() && !args.force {
        bail!("a profile already exists there; pass --force to replace it");
    }
    let profile = profile::template(args.phone_number_id.as_deref(), args.waba_id.as_deref());
    let text = serde_json::to_string_pretty(&profile)? + "\n";
    std::fs::write(&args.profile, text).map_err(|_| anyhow::anyhow!("cannot write the profile"))?;
    let secrets = profile["secrets"].as_object().map_or(0, |s| s.len());
    let settings = profile["settings"].as_object().map_or(0, |s| s.len());
    println!(
        "wats: wrote a profile: {settings} settings, {secrets} secret references, no secret values"
    );
    println!("wats: next, export the {secrets} referenced environment variables (`wats webhook token` makes a verify token), then run `wats doctor`");
    Ok(())
}

#[derive(Args)]
pub struct OpenApiArgs {
    /// Take WATS_WEBHOOK_PATH, WATS_API_PREFIX and WATS_ENABLE_GROUP_ROUTES from this profile (the environment wins).
    #[arg(long, value_name = "PATH")]
    profile: Option<PathBuf>,
}

/// Prints the OpenAPI document of the routes as configured.
pub fn openapi(args: OpenApiArgs) -> Result<()> {
    let mut settings = match &args.profile {
        Some(path) => profile::Profile::read(path)?.resolve(|_| None).0,
        None => Default::default(),
    };
    settings.extend(std::env::vars().filter(|(key, _)| key.starts_with("WATS_")));
    let paths = wats::config::Paths::from_settings(&|key| settings.get(key).cloned())
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let text = serde_json::to_string_pretty(&wats::openapi_document(&paths))? + "\n";
    // A reader that stops early (`| head`) is not an error.
    match std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}
