//! `cargo run -p wats-live`: the live campaign against Meta's Graph API.
//! Does nothing unless WATS_LIVE_ENABLE=1; docs/live-testing.md is the
//! runbook.

use wats_live::settings::Target;
use wats_live::transport::Http;
use wats_live::Verdict;

fn main() {
    let env = std::env::vars()
        .filter(|(key, _)| key.starts_with("WATS_"))
        .collect();
    let report = wats_live::run(
        &env,
        Target::Live,
        &Http::new(),
        Box::new(std::io::stdout()),
    );
    std::process::exit(match report.verdict {
        Verdict::Skipped | Verdict::Passed => 0,
        Verdict::Failed | Verdict::Aborted => 1,
        Verdict::Refused => 2,
    });
}
