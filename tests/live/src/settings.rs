//! What a run may do, read from the environment: the live flag, the
//! per-domain opt-ins, the run id and resource prefix, the assets and the
//! media caps. Errors name the variable, never its value.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// Where the harness sends its Graph calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Meta's Graph API: only with `WATS_LIVE_ENABLE=1`.
    Live,
    /// A fake Graph on loopback (the credential-free run of `cargo xtask
    /// test`): the live flag is not needed, every other gate still applies.
    Fake,
}

/// A side-effecting domain and the flag that opts into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    Sends,
    Commerce,
    Templates,
    Flows,
    FlowPublish,
    Calling,
}

impl Domain {
    pub fn flag(self) -> &'static str {
        match self {
            Domain::Sends => "WATS_ENABLE_SENDS",
            Domain::Commerce => "WATS_ENABLE_COMMERCE_MESSAGES",
            Domain::Templates => "WATS_ENABLE_TEMPLATE_MUTATIONS",
            Domain::Flows => "WATS_ENABLE_FLOW_MUTATIONS",
            Domain::FlowPublish => "WATS_ENABLE_FLOW_PUBLISH",
            Domain::Calling => "WATS_ENABLE_CALLING_LIVE",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum SettingsError {
    /// Not an error: the live flag is off, so nothing runs.
    NotEnabled,
    Missing(&'static str),
    Invalid(&'static str, &'static str),
    /// The fake target must be on loopback.
    NotLoopback,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::NotEnabled => f.write_str("WATS_LIVE_ENABLE is not 1"),
            SettingsError::Missing(key) => write!(f, "{key} is required"),
            SettingsError::Invalid(key, expected) => write!(f, "{key} must be {expected}"),
            SettingsError::NotLoopback => {
                f.write_str("the fake Graph must be on 127.0.0.1 or [::1]")
            }
        }
    }
}

/// A secret or id: its Debug output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(pub String);

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[derive(Debug)]
pub struct Settings {
    pub target: Target,
    pub run_id: String,
    pub prefix: String,
    pub base_url: String,
    pub version: String,
    pub access_token: Sensitive,
    pub waba_id: Sensitive,
    pub phone_number_id: Sensitive,
    pub recipient: Option<Sensitive>,
    pub app_secret: Option<Sensitive>,
    pub verify_token: Option<Sensitive>,
    pub webhook_url: Option<Sensitive>,
    /// An approved template of the account to send (name, language).
    pub template: Option<(String, String)>,
    /// An inbound message of the test recipient, for read and typing.
    pub inbound_message_id: Option<Sensitive>,
    pub max_upload_bytes: Option<u64>,
    pub max_download_bytes: Option<u64>,
    pub media_file: Option<PathBuf>,
    pub out_dir: PathBuf,
    flags: Vec<Domain>,
}

pub type Env = HashMap<String, String>;

fn get(env: &Env, key: &str) -> Option<String> {
    env.get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn required(env: &Env, key: &'static str) -> Result<String, SettingsError> {
    get(env, key).ok_or(SettingsError::Missing(key))
}

fn is_on(env: &Env, key: &str) -> bool {
    get(env, key).as_deref() == Some("1")
}

fn bytes_cap(env: &Env, key: &'static str) -> Result<Option<u64>, SettingsError> {
    get(env, key)
        .map(|v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| (1..=100 * 1024 * 1024).contains(n))
                .ok_or(SettingsError::Invalid(
                    key,
                    "a byte count from 1 to 104857600",
                ))
        })
        .transpose()
}

fn numeric(env: &Env, key: &'static str) -> Result<Sensitive, SettingsError> {
    let value = required(env, key)?;
    if wats::config::is_numeric_id(&value) {
        Ok(Sensitive(value))
    } else {
        Err(SettingsError::Invalid(key, "a numeric id"))
    }
}

fn is_loopback(url: &str) -> bool {
    ["http://127.0.0.1:", "http://[::1]:", "http://localhost:"]
        .iter()
        .any(|start| url.starts_with(start))
}

impl Settings {
    pub fn from_env(env: &Env, target: Target) -> Result<Settings, SettingsError> {
        if target == Target::Live && !is_on(env, "WATS_LIVE_ENABLE") {
            return Err(SettingsError::NotEnabled);
        }
        let run_id = required(env, "WATS_TEST_RUN_ID")?;
        let run_id_ok = (4..=40).contains(&run_id.len())
            && run_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !run_id_ok {
            return Err(SettingsError::Invalid(
                "WATS_TEST_RUN_ID",
                "4 to 40 lowercase letters, digits and dashes",
            ));
        }
        let prefix = required(env, "WATS_TEST_RESOURCE_PREFIX")?;
        if prefix != format!("wats-live-{run_id}") {
            return Err(SettingsError::Invalid(
                "WATS_TEST_RESOURCE_PREFIX",
                "wats-live-<WATS_TEST_RUN_ID>",
            ));
        }
        let base_url = get(env, "WATS_GRAPH_BASE_URL")
            .unwrap_or(wats::config::DEFAULT_GRAPH_BASE_URL.into())
            .trim_end_matches('/')
            .to_owned();
        if target == Target::Fake && !is_loopback(&base_url) {
            return Err(SettingsError::NotLoopback);
        }
        let flags = [
            Domain::Sends,
            Domain::Commerce,
            Domain::Templates,
            Domain::Flows,
            Domain::FlowPublish,
            Domain::Calling,
        ]
        .into_iter()
        .filter(|domain| is_on(env, domain.flag()))
        .collect();
        let template = match (
            get(env, "WATS_TEST_TEMPLATE_NAME"),
            get(env, "WATS_TEST_TEMPLATE_LANGUAGE"),
        ) {
            (Some(name), language) => Some((name, language.unwrap_or("en_US".into()))),
            (None, _) => None,
        };
        Ok(Settings {
            target,
            prefix,
            base_url,
            version: get(env, "WATS_GRAPH_API_VERSION")
                .unwrap_or(wats::config::DEFAULT_GRAPH_API_VERSION.into()),
            access_token: Sensitive(required(env, "WATS_ACCESS_TOKEN")?),
            waba_id: numeric(env, "WATS_WABA_ID")?,
            phone_number_id: numeric(env, "WATS_PHONE_NUMBER_ID")?,
            recipient: get(env, "WATS_TEST_RECIPIENT_E164").map(Sensitive),
            app_secret: get(env, "WATS_APP_SECRET").map(Sensitive),
            verify_token: get(env, "WATS_VERIFY_TOKEN").map(Sensitive),
            webhook_url: get(env, "WATS_PUBLIC_WEBHOOK_URL").map(Sensitive),
            template,
            inbound_message_id: get(env, "WATS_TEST_INBOUND_MESSAGE_ID").map(Sensitive),
            max_upload_bytes: bytes_cap(env, "WATS_MAX_UPLOAD_BYTES")?,
            max_download_bytes: bytes_cap(env, "WATS_MAX_DOWNLOAD_BYTES")?,
            media_file: get(env, "WATS_TEST_MEDIA_FILE").map(PathBuf::from),
            out_dir: get(env, "WATS_LIVE_OUT_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            run_id,
            flags,
        })
    }

    pub fn allows(&self, domain: Domain) -> bool {
        self.flags.contains(&domain)
    }

    /// Values that must never be printed.
    pub fn sensitive_values(&self) -> Vec<&str> {
        let mut values = vec![
            self.access_token.0.as_str(),
            self.waba_id.0.as_str(),
            self.phone_number_id.0.as_str(),
        ];
        for value in [
            &self.recipient,
            &self.app_secret,
            &self.verify_token,
            &self.webhook_url,
            &self.inbound_message_id,
        ]
        .into_iter()
        .flatten()
        {
            values.push(value.0.as_str());
        }
        values
    }
}
