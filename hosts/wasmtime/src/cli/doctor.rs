//! `wats doctor`: checks a profile and the environment the way `wats serve
//! --live --profile` would read them, without the network and without
//! printing a value, a path or the name of a secret's variable.

use super::env_file::EnvFile;
use super::profile::{Profile, DEFAULT_PROFILE};
use crate::cli::serve::{is_dry_run_secret, DRY_RUN_SETTINGS};
use anyhow::Result;
use clap::Args;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use wats::config::{ConfigError, KEYS};

#[derive(Args)]
pub struct DoctorArgs {
    /// The profile to check [default: ./wats.profile.json if it exists, else only the environment].
    #[arg(long, visible_alias = "config", value_name = "PATH")]
    profile: Option<PathBuf>,
    /// The env file `wats serve --env-file` would read: its WATS_* settings,
    /// and the variables the profile references.
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
}

/// Shorter shared secrets than this get a warning.
const STRONG_SECRET_CHARS: usize = 24;

/// What the checks found: their lines (`ok` / `warn` / `FAIL` / `--`, never
/// a value), the counts, and the settings as `wats serve --live` would read
/// them.
#[derive(Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub problems: usize,
    pub warnings: usize,
    /// Whether a profile was given or found, and read.
    pub profile_read: bool,
    pub settings: HashMap<String, String>,
}

impl Report {
    fn note(&mut self, text: &str) {
        self.lines.push(format!("  --    {text}"));
    }
    fn ok(&mut self, text: &str) {
        self.lines.push(format!("  ok    {text}"));
    }
    fn warn(&mut self, text: &str) {
        self.warnings += 1;
        self.lines.push(format!("  warn  {text}"));
    }
    fn fail(&mut self, text: &str) {
        self.problems += 1;
        self.lines.push(format!("  FAIL  {text}"));
    }
}

/// Prints the checks; Ok(false) when a problem was found.
pub fn run(args: DoctorArgs) -> Result<bool> {
    println!("wats doctor: checking the configuration `wats serve --live` would use (no network)");
    let report = check(args.profile, args.env_file.as_deref());
    for line in &report.lines {
        println!("{line}");
    }
    println!(
        "wats doctor: {} problem(s), {} warning(s){}",
        report.problems,
        report.warnings,
        if report.problems == 0 {
            "; ready for `wats serve --live --yes-live`"
        } else {
            ""
        }
    );
    Ok(report.problems == 0)
}

/// Runs every check of the profile (given, else `./wats.profile.json` if
/// present) and the environment, printing nothing.
pub fn check(profile: Option<PathBuf>, env_file: Option<&Path>) -> Report {
    let mut report = Report::default();
    let path = profile.or_else(|| {
        let default = PathBuf::from(DEFAULT_PROFILE);
        default.is_file().then_some(default)
    });
    let env_file = match EnvFile::read(env_file) {
        Ok(file) => file,
        Err(error) => {
            report.fail(&format!("env file: {error}"));
            EnvFile::default()
        }
    };
    let mut settings = HashMap::new();
    let mut unset_secrets = Vec::new();
    match path.as_deref().map(Profile::read) {
        None => report.note("no profile given or found; checking WATS_* in the environment"),
        Some(Err(error)) => report.fail(&format!("profile: {error}")),
        Some(Ok(profile)) => {
            report.profile_read = true;
            report.ok(&format!(
                "profile: {} settings, {} secret references, no secret values",
                profile.settings.len(),
                profile.secrets.len()
            ));
            let (resolved, missing) = profile.resolve(|name| env_file.lookup(name));
            settings = resolved;
            unset_secrets = missing;
        }
    }
    // The env file's settings, then the environment's, as `wats serve` reads them.
    let from_env: Vec<(String, String)> = env_file
        .settings()
        .chain(std::env::vars().filter(|(key, _)| key.starts_with("WATS_")))
        .collect();
    // A reference to the variable of the same name is no override.
    let overrides = from_env
        .iter()
        .filter(|(key, value)| settings.get(key).is_some_and(|v| v != value))
        .count();
    if overrides > 0 {
        report.note(&format!(
            "{overrides} setting(s) of the environment take precedence over the profile"
        ));
    }
    settings.extend(from_env);
    unset_secrets.retain(|key| !settings.contains_key(*key));
    for key in &unset_secrets {
        report.fail(&format!(
            "{key}: the variable its reference names is not set (environment or env file)"
        ));
    }
    check_config(&settings, &unset_secrets, &mut report);
    check_secrets(&settings, &mut report);
    report.settings = settings;
    report
}

/// Runs the service's own validation, and keeps going past each bad key
/// (with a stand-in value) so that one run lists every problem.
fn check_config(
    settings: &HashMap<String, String>,
    already_reported: &[&'static str],
    report: &mut Report,
) {
    let mut stand_ins: HashMap<&'static str, &'static str> = already_reported
        .iter()
        .map(|key| (*key, stand_in(key)))
        .collect();
    for _ in 0..=KEYS.len() {
        let lookup = |key: &str| match stand_ins.get(key) {
            Some(value) => Some((*value).to_owned()),
            None => settings.get(key).cloned(),
        };
        let key = match wats::config::from_settings(&lookup) {
            Ok(_) => {
                if stand_ins.len() == already_reported.len() {
                    let otherwise = if stand_ins.is_empty() {
                        ""
                    } else {
                        "otherwise "
                    };
                    report.ok(&format!("settings: {otherwise}valid for the service"));
                }
                return;
            }
            Err(ConfigError::Missing(key)) => {
                report.fail(&format!("{key}: missing (required)"));
                key
            }
            Err(error @ ConfigError::Invalid { key, .. }) => {
                report.fail(&error.to_string());
                key
            }
        };
        stand_ins.insert(key, stand_in(key));
    }
}

fn stand_in(key: &str) -> &'static str {
    match key {
        "WATS_PHONE_NUMBER_ID" | "WATS_WABA_ID" => "1",
        "WATS_GRAPH_BASE_URL" => wats::config::DEFAULT_GRAPH_BASE_URL,
        "WATS_GRAPH_API_VERSION" => wats::config::DEFAULT_GRAPH_API_VERSION,
        "WATS_WEBHOOK_PATH" => wats::config::DEFAULT_WEBHOOK_PATH,
        "WATS_API_PREFIX" => wats::config::DEFAULT_API_PREFIX,
        "WATS_ENABLE_GROUP_ROUTES" | "WATS_LOG_WEBHOOK_EVENTS" | "WATS_ECHO_REPLY" => "0",
        _ => "stand-in-secret",
    }
}

/// Checks a validator cannot: public dry-run values, weak shared secrets,
/// an app secret that does not look like Meta's.
fn check_secrets(settings: &HashMap<String, String>, report: &mut Report) {
    for (key, _) in DRY_RUN_SETTINGS {
        if settings
            .get(*key)
            .is_some_and(|value| is_dry_run_secret(key, value))
        {
            report.fail(&format!(
                "{key}: is the public dry-run value; use a secret of your own"
            ));
        }
    }
    for key in ["WATS_VERIFY_TOKEN", "WATS_SERVICE_BEARER_TOKEN"] {
        if settings
            .get(key)
            .is_some_and(|value| value.chars().count() < STRONG_SECRET_CHARS)
        {
            report.warn(&format!(
                "{key}: shorter than {STRONG_SECRET_CHARS} characters; `wats webhook token` makes a strong one"
            ));
        }
    }
    if let Some(secret) = settings.get("WATS_APP_SECRET") {
        if secret.len() != 32 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            report.warn("WATS_APP_SECRET: not 32 hex characters, the form of a Meta app secret");
        }
    }
}
