//! `wats events secret`: a new signing secret for the application's
//! endpoints (docs/events.md); no network.

use anyhow::{anyhow, Result};
use clap::Subcommand;
use wats::config::SigningKey;

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Print a new WATS_EVENTS_SIGNING_SECRET (`whsec_` and 32 random bytes, base64).
    Secret,
}

/// Key bytes of a new secret: the Standard Webhooks specification asks for
/// 24 to 64.
const SECRET_BYTES: usize = 32;

pub fn run(command: EventsCommand) -> Result<()> {
    match command {
        EventsCommand::Secret => {
            let mut bytes = [0u8; SECRET_BYTES];
            getrandom::getrandom(&mut bytes)
                .map_err(|_| anyhow!("the system's random number generator is unavailable"))?;
            println!("{}", SigningKey::encode(&bytes));
            eprintln!("wats: a new signing secret; set it as WATS_EVENTS_SIGNING_SECRET and give it to the application that verifies the events");
            Ok(())
        }
    }
}
