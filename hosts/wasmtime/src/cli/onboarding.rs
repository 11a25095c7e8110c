//! `wats onboarding`: the way from nothing to a verified webhook, as a
//! checklist of five steps, each with its state. It reads the profile and
//! the environment as `wats doctor` does, and its one request is a signed
//! test delivery to the operator's own `wats serve` (`--url`); it never
//! calls Meta, and prints no value, path or URL.

use super::doctor;
use crate::cli::serve::is_dry_run_secret;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct OnboardingArgs {
    /// The profile [default: ./wats.profile.json if it exists].
    #[arg(long, visible_alias = "config", value_name = "PATH")]
    profile: Option<PathBuf>,
    /// The env file `wats serve --env-file` would read.
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
    /// The running `wats serve` that the test delivery goes to.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8787")]
    url: String,
}

/// A delivery with no update: the server verifies it and dispatches nothing.
const TEST_DELIVERY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[]}"#;

/// Where a step stands; `Info` is what to do outside (Meta's dashboard),
/// which no check here can see.
enum Step {
    Done(String),
    Todo(String),
    Failed(String),
    Info(String),
}

impl Step {
    fn print(&self, number: usize, name: &str) {
        let (state, text) = match self {
            Step::Done(text) => ("done", text),
            Step::Todo(text) => ("todo", text),
            Step::Failed(text) => ("FAIL", text),
            Step::Info(text) => ("info", text),
        };
        println!("  {number}. [{state}] {name}: {text}");
    }
}

/// Prints the checklist; Ok(false) while a step is not done.
pub fn run(args: OnboardingArgs) -> Result<bool> {
    println!("wats onboarding: from a profile to a verified webhook (no call to Meta)");
    let report = doctor::check(args.profile, args.env_file.as_deref());
    let settings = &report.settings;
    let setting = |key: &str| settings.get(key).filter(|value| !value.is_empty());
    let webhook_path = wats::config::Paths::from_settings(&|key| setting(key).cloned())
        .map(|paths| paths.webhook)
        .unwrap_or_else(|_| wats::config::DEFAULT_WEBHOOK_PATH.to_owned());

    let steps = [
        (
            "profile",
            if report.profile_read {
                Step::Done("read; its secrets are references, not values".into())
            } else {
                Step::Todo(
                    "run `wats init --phone-number-id ID --waba-id ID` (writes wats.profile.json)"
                        .into(),
                )
            },
        ),
        (
            "doctor",
            if report.problems == 0 {
                Step::Done(format!("no problem ({} warning(s))", report.warnings))
            } else {
                Step::Todo(format!(
                    "{} problem(s); `wats doctor` names each key",
                    report.problems
                ))
            },
        ),
        (
            "verify token",
            if setting("WATS_VERIFY_TOKEN")
                .is_some_and(|token| !is_dry_run_secret("WATS_VERIFY_TOKEN", token))
            {
                Step::Done("set; enter the same value as the Verify token in Meta's dashboard".into())
            } else {
                Step::Todo(
                    "`wats webhook token` makes one: set it as WATS_VERIFY_TOKEN and as the Verify token in Meta's dashboard"
                        .into(),
                )
            },
        ),
        (
            "callback URL",
            Step::Info(format!(
                "in Meta's dashboard (WhatsApp > Configuration) set https://YOUR-PUBLIC-HOST{webhook_path} (Meta calls HTTPS only: a tunnel in front of `wats serve`), then subscribe the field `messages` (and `message_template_status_update`, `phone_number_quality_update`, `account_update` if you want them)"
            )),
        ),
        (
            "test delivery",
            match setting("WATS_APP_SECRET") {
                None => Step::Todo("set WATS_APP_SECRET (the app secret of Meta's dashboard) first".into()),
                Some(secret) => test_delivery(&args.url, &webhook_path, secret),
            },
        ),
    ];
    for (index, (name, step)) in steps.iter().enumerate() {
        step.print(index + 1, name);
    }
    // What to do in Meta's dashboard is said, not checked.
    let checked: Vec<&Step> = steps
        .iter()
        .map(|(_, step)| step)
        .filter(|step| !matches!(step, Step::Info(_)))
        .collect();
    let done = checked
        .iter()
        .filter(|step| matches!(step, Step::Done(_)))
        .count();
    println!("wats onboarding: {done} of {} steps done", checked.len());
    Ok(done == checked.len())
}

/// Posts the signed test delivery to the server at `url`.
fn test_delivery(url: &str, webhook_path: &str, app_secret: &str) -> Step {
    let Ok(base) = reqwest::Url::parse(url) else {
        return Step::Failed("--url is not a URL".into());
    };
    if !matches!(base.scheme(), "http" | "https") {
        return Step::Failed("--url must be an http or https URL".into());
    }
    let target = format!("{}{webhook_path}", url.trim_end_matches('/'));
    let signature = wats::sign(app_secret, TEST_DELIVERY);
    let sent = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|_| ())
        .and_then(|runtime| {
            runtime.block_on(async {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|_| ())?;
                client
                    .post(target)
                    .header("content-type", "application/json")
                    .header("x-hub-signature-256", signature)
                    .body(TEST_DELIVERY)
                    .send()
                    .await
                    .map(|response| response.status().as_u16())
                    .map_err(|_| ())
            })
        });
    match sent {
        Ok(200) => Step::Done("a signed delivery was verified and answered 200 by the server at --url".into()),
        Ok(401) => Step::Failed("the server at --url refused the signature: it runs with another WATS_APP_SECRET".into()),
        Ok(404) => Step::Failed("the server at --url has no route at the webhook path: check WATS_WEBHOOK_PATH".into()),
        Ok(status) => Step::Failed(format!("the server at --url answered {status}")),
        Err(()) => Step::Todo("no server answered at --url: start `wats serve --live --yes-live --config PROFILE` (or pass --url)".into()),
    }
}
