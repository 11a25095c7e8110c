//! Settings and secrets, read through the host's `config` import on every
//! request and validated here. Errors name the key, never its value.

use super::host::{Host, UPDATE_KINDS};
use super::ids::is_numeric_id;
use super::signing::SigningKey;
use std::fmt;

pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_GRAPH_API_VERSION: &str = "v25.0";
pub const DEFAULT_WEBHOOK_PATH: &str = "/webhooks/whatsapp";
pub const DEFAULT_API_PREFIX: &str = "/api";

/// A host may say which runtime it is through this reserved key
/// (keys without the `WATS_` prefix are the hosts' own).
pub const RUNTIME_KEY: &str = "wats.runtime";
/// A host may name its store backend (`sqlite`, `memory`, `durable-object`)
/// for `/status`.
pub const STORE_KEY: &str = "wats.store";
/// A host sets this to `1` when it is the only live writer of its store
/// (`wats serve` holds a lock on its state file; a Durable Object is one
/// instance by nature). A webhook claim made by an earlier life of such a
/// host (a crash, a restart) then died with it, and is taken over at once
/// instead of blocking Meta's retries until it expires.
pub const STORE_EXCLUSIVE_KEY: &str = "wats.store.exclusive";
/// A host sets this to `1` when its `send` delivers to a `queue:NAME`
/// URL, a Cloudflare Queue producer binding (the Worker); elsewhere a
/// `queue:` endpoint is a configuration error.
pub const QUEUES_KEY: &str = "wats.queues";
/// A host sets this to `1` when the embedder hands updates to its own
/// application seam (the JS package's `onUpdate`): then, as in the
/// reference, `WATS_LOG_WEBHOOK_EVENTS` and `WATS_ECHO_REPLY` do nothing.
pub const EMBEDDER_DISPATCH_KEY: &str = "wats.dispatch.embedder";
/// How an events endpoint names a Cloudflare Queue binding.
pub const QUEUE_SCHEME: &str = "queue:";

/// Every key the service reads, with whether it is a secret: the table that
/// docs/configuration.md and `/debug/diagnostics` describe.
pub const KEYS: &[(&str, bool)] = &[
    ("WATS_GRAPH_BASE_URL", false),
    ("WATS_GRAPH_API_VERSION", false),
    ("WATS_PHONE_NUMBER_ID", false),
    ("WATS_WABA_ID", false),
    ("WATS_WEBHOOK_PATH", false),
    ("WATS_API_PREFIX", false),
    ("WATS_ACCESS_TOKEN", true),
    ("WATS_APP_SECRET", true),
    ("WATS_VERIFY_TOKEN", true),
    ("WATS_SERVICE_BEARER_TOKEN", true),
    ("WATS_ENABLE_GROUP_ROUTES", false),
    ("WATS_LOG_WEBHOOK_EVENTS", false),
    ("WATS_ECHO_REPLY", false),
    // Endpoint URLs often carry a secret path (n8n, Zapier): never shown.
    ("WATS_EVENTS_ENDPOINTS", true),
    ("WATS_EVENTS_SIGNING_SECRET", true),
];

/// The one-endpoint form of `WATS_EVENTS_ENDPOINTS`, kept from before it.
pub const FORWARD_URL_KEY: &str = "WATS_EVENTS_FORWARD_URL";
const ENDPOINTS_KEY: &str = "WATS_EVENTS_ENDPOINTS";
const SIGNING_SECRET_KEY: &str = "WATS_EVENTS_SIGNING_SECRET";
/// Whether a request answered `status` may have queued work for the
/// drain: a send queued with `Prefer: respond-async` (202), or, with
/// endpoints set, a delivery's events (any POST answered 2xx). A host then
/// drains soon rather than at its next tick (or, without a timer, never).
pub fn work_queued(get: Lookup<'_>, method: &str, status: u16) -> bool {
    let events = setting(get, ENDPOINTS_KEY).is_some() || setting(get, FORWARD_URL_KEY).is_some();
    status == 202 || (events && method == "POST" && (200..300).contains(&status))
}

/// Endpoints one deployment may feed.
pub(crate) const MAX_ENDPOINTS: usize = 10;

/// Secrets a deployment may leave unset: the ones of the events feature.
pub const OPTIONAL_SECRETS: &[&str] = &[ENDPOINTS_KEY, SIGNING_SECRET_KEY];

/// Whether a key is one of the service's secrets.
pub fn is_secret(key: &str) -> bool {
    KEYS.iter().any(|(name, secret)| *name == key && *secret)
}

/// Where settings come from: a key in, its value out.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Names the setting whose path collides with another route's, if any. The
/// route table lives above this module, so its check is passed in.
pub(crate) type PathCheck = fn(&Paths) -> Option<&'static str>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    Missing(&'static str),
    Invalid {
        key: &'static str,
        expected: &'static str,
    },
}

impl ConfigError {
    pub fn key(&self) -> &'static str {
        match self {
            ConfigError::Missing(key) | ConfigError::Invalid { key, .. } => key,
        }
    }

    /// The reference's construction code for this fault: `invalid_secret`
    /// for a secret, `invalid_path` for a route path, `invalid_config`
    /// for any other setting.
    pub fn construction_code(&self) -> &'static str {
        match self.key() {
            key if is_secret(key) => "invalid_secret",
            "WATS_WEBHOOK_PATH" | "WATS_API_PREFIX" => "invalid_path",
            _ => "invalid_config",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing(key) => write!(f, "Missing required setting {key}."),
            ConfigError::Invalid { key, expected } => {
                write!(f, "Invalid setting {key}: expected {expected}.")
            }
        }
    }
}

/// A secret value; its Debug output is redacted so it cannot leak by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// The paths at which the configurable routes live; known even when the rest
/// of the configuration is invalid, so that routing still works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub webhook: String,
    pub api_prefix: String,
    /// `WATS_ENABLE_GROUP_ROUTES`: without it the Groups routes do not exist.
    pub group_routes: bool,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub paths: Paths,
    pub graph_base_url: String,
    pub graph_api_version: String,
    /// Every number this deployment serves (`WATS_PHONE_NUMBER_ID`, a
    /// comma-separated list): one Meta app has one callback URL.
    pub phone_number_ids: Vec<String>,
    pub waba_id: Option<String>,
    pub access_token: Secret,
    pub app_secret: Secret,
    pub verify_token: Secret,
    pub service_bearer_token: Secret,
    pub log_webhook_events: bool,
    pub echo_reply: bool,
    pub events: Events,
}

/// Where updates go besides the host's own application seam: the
/// application's endpoints, each event signed (docs/events.md).
#[derive(Clone, Debug, Default)]
pub struct Events {
    pub endpoints: Vec<Endpoint>,
    /// Present whenever there are endpoints.
    pub signing_key: Option<SigningKey>,
}

#[derive(Clone, Debug)]
pub struct Endpoint {
    /// May hold a secret path or query: never logged or shown.
    pub url: Secret,
    /// The update kinds it takes; empty for all.
    pub kinds: Vec<&'static str>,
}

impl Endpoint {
    pub fn wants(&self, kind: &str) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }

    /// The binding name of a Cloudflare Queue endpoint (`queue:NAME`).
    pub fn queue(&self) -> Option<&str> {
        self.url.expose().strip_prefix(QUEUE_SCHEME)
    }

    /// The URL's host (and port), or `queue:NAME`, which operator routes
    /// may show.
    pub fn host(&self) -> &str {
        let url = self.url.expose();
        if self.queue().is_some() {
            return url;
        }
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        rest.split(['/', '?']).next().unwrap_or_default()
    }
}

impl Events {
    /// `WATS_EVENTS_ENDPOINTS`: endpoints separated by commas, each a URL
    /// optionally followed by the update kinds it takes, separated by
    /// spaces (`https://crm.example/wa message status, https://audit.example/all`),
    /// or on the Worker `queue:NAME`, a Queue producer binding.
    /// `WATS_EVENTS_FORWARD_URL` is one endpoint taking every kind.
    fn from_settings(get: Lookup<'_>) -> Result<Events, ConfigError> {
        let (key, list) = match setting(get, ENDPOINTS_KEY) {
            Some(list) => (ENDPOINTS_KEY, list),
            None => match setting(get, FORWARD_URL_KEY) {
                Some(url) => (FORWARD_URL_KEY, url),
                None => return Ok(Events::default()),
            },
        };
        let expected = "http(s) URLs separated by commas, each optionally followed by update kinds";
        let mut endpoints = Vec::new();
        for entry in list.split(',') {
            let mut words = entry.split_whitespace();
            let Some(url) = words.next() else { continue };
            if let Some(name) = url.strip_prefix(QUEUE_SCHEME) {
                if get(QUEUES_KEY).as_deref() != Some("1") || !is_binding_name(name) {
                    return Err(invalid(
                        key,
                        "queue:NAME only on the Cloudflare Worker, NAME a Queue producer binding",
                    ));
                }
            } else if !is_endpoint_url(url)
                || (key == FORWARD_URL_KEY && words.clone().next().is_some())
            {
                return Err(invalid(key, expected));
            }
            let kinds = words
                .map(|kind| UPDATE_KINDS.iter().find(|known| **known == kind).copied())
                .collect::<Option<Vec<_>>>()
                .ok_or(invalid(key, expected))?;
            endpoints.push(Endpoint {
                url: Secret(url.to_owned()),
                kinds,
            });
        }
        if endpoints.is_empty() || endpoints.len() > MAX_ENDPOINTS {
            return Err(invalid(key, "1 to 10 endpoints"));
        }
        let secret = get(SIGNING_SECRET_KEY)
            .filter(|value| !value.is_empty())
            .ok_or(ConfigError::Missing(SIGNING_SECRET_KEY))?;
        let signing_key = SigningKey::parse(secret.trim()).ok_or(invalid(
            SIGNING_SECRET_KEY,
            "whsec_ followed by the base64 of 16 to 128 bytes",
        ))?;
        Ok(Events {
            endpoints,
            signing_key: Some(signing_key),
        })
    }
}

fn setting(get: Lookup<'_>, key: &str) -> Option<String> {
    get(key).filter(|value| !value.trim().is_empty())
}

impl Paths {
    pub fn load(host: &impl Host) -> Result<Paths, ConfigError> {
        Paths::from_settings(&|key| host.config(key))
    }

    /// The paths from any source of settings (a CLI checking a profile).
    pub fn from_settings(get: Lookup<'_>) -> Result<Paths, ConfigError> {
        let webhook = setting(get, "WATS_WEBHOOK_PATH").unwrap_or(DEFAULT_WEBHOOK_PATH.into());
        let api_prefix = setting(get, "WATS_API_PREFIX").unwrap_or(DEFAULT_API_PREFIX.into());
        if !is_route_path(&webhook) {
            return Err(invalid(
                "WATS_WEBHOOK_PATH",
                "a path such as /webhooks/whatsapp",
            ));
        }
        let api_prefix = api_prefix.trim_end_matches('/').to_owned();
        if !api_prefix.is_empty() && !is_route_path(&api_prefix) {
            return Err(invalid("WATS_API_PREFIX", "a path such as /api"));
        }
        Ok(Paths {
            webhook: webhook.trim_end_matches('/').to_owned(),
            api_prefix,
            group_routes: flag(get, "WATS_ENABLE_GROUP_ROUTES")?,
        })
    }
}

impl Default for Paths {
    fn default() -> Paths {
        Paths {
            webhook: DEFAULT_WEBHOOK_PATH.into(),
            api_prefix: DEFAULT_API_PREFIX.into(),
            group_routes: false,
        }
    }
}

impl Config {
    pub fn load(host: &impl Host, colliding: PathCheck) -> Result<Config, ConfigError> {
        Config::from_settings(&|key| host.config(key), colliding)
    }

    /// The configuration from any source of settings (a CLI checking a
    /// profile without running the service).
    pub fn from_settings(get: Lookup<'_>, colliding: PathCheck) -> Result<Config, ConfigError> {
        let paths = Paths::from_settings(get)?;
        // Checked here rather than in routing, which runs on every request:
        // colliding paths still route (the earlier-declared route wins),
        // and every route that needs the configuration reports the key.
        if paths != Paths::default() {
            if let Some(key) = colliding(&paths) {
                return Err(invalid(key, "a path that no other route uses"));
            }
        }
        let graph_base_url = setting(get, "WATS_GRAPH_BASE_URL")
            .unwrap_or(DEFAULT_GRAPH_BASE_URL.into())
            .trim_end_matches('/')
            .to_owned();
        if !is_base_url(&graph_base_url) {
            return Err(invalid(
                "WATS_GRAPH_BASE_URL",
                "an http or https URL with no query",
            ));
        }
        let graph_api_version =
            setting(get, "WATS_GRAPH_API_VERSION").unwrap_or(DEFAULT_GRAPH_API_VERSION.into());
        if !is_api_version(&graph_api_version) {
            return Err(invalid("WATS_GRAPH_API_VERSION", "a version such as v25.0"));
        }
        let phone_number_ids: Vec<String> = required(get, "WATS_PHONE_NUMBER_ID")?
            .split(',')
            .map(|id| id.trim().to_owned())
            .collect();
        let expected = "numeric ids separated by commas (the first is the default sender)";
        if phone_number_ids.len() > MAX_PHONE_NUMBERS
            || phone_number_ids.iter().any(|id| !is_numeric_id(id))
        {
            return Err(invalid("WATS_PHONE_NUMBER_ID", expected));
        }
        let waba_id = setting(get, "WATS_WABA_ID");
        let embedder_dispatch = get(EMBEDDER_DISPATCH_KEY).as_deref() == Some("1");
        if waba_id.as_deref().is_some_and(|id| !is_numeric_id(id)) {
            return Err(invalid("WATS_WABA_ID", "a numeric id"));
        }
        Ok(Config {
            paths,
            graph_base_url,
            graph_api_version,
            phone_number_ids,
            waba_id,
            access_token: secret(get, "WATS_ACCESS_TOKEN")?,
            app_secret: secret(get, "WATS_APP_SECRET")?,
            verify_token: secret(get, "WATS_VERIFY_TOKEN")?,
            service_bearer_token: secret(get, "WATS_SERVICE_BEARER_TOKEN")?,
            log_webhook_events: flag(get, "WATS_LOG_WEBHOOK_EVENTS")? && !embedder_dispatch,
            echo_reply: flag(get, "WATS_ECHO_REPLY")? && !embedder_dispatch,
            events: Events::from_settings(get)?,
        })
    }
}

/// A number that is not one of `WATS_PHONE_NUMBER_ID`'s.
#[derive(Debug)]
pub struct NotServed;

/// Numbers one deployment may serve.
const MAX_PHONE_NUMBERS: usize = 20;

impl Config {
    /// The default sender: the first configured number.
    pub fn phone_number_id(&self) -> &str {
        &self.phone_number_ids[0]
    }

    /// A send's sender for a number: `Ok(None)` for the default one (which
    /// a send uses unless told otherwise), `Ok(Some)` for another that this
    /// deployment serves, `Err` for one it does not.
    pub fn sender(&self, phone_number_id: &str) -> Result<Option<String>, NotServed> {
        match self
            .phone_number_ids
            .iter()
            .position(|id| id == phone_number_id)
        {
            Some(0) => Ok(None),
            Some(_) => Ok(Some(phone_number_id.to_owned())),
            None => Err(NotServed),
        }
    }
}

fn invalid(key: &'static str, expected: &'static str) -> ConfigError {
    ConfigError::Invalid { key, expected }
}

fn required(get: Lookup<'_>, key: &'static str) -> Result<String, ConfigError> {
    setting(get, key)
        .map(|value| value.trim().to_owned())
        .ok_or(ConfigError::Missing(key))
}

fn secret(get: Lookup<'_>, key: &'static str) -> Result<Secret, ConfigError> {
    let value = get(key)
        .filter(|value| !value.is_empty())
        .ok_or(ConfigError::Missing(key))?;
    // Secrets end up in headers and HMAC keys; whitespace around them is a
    // copy-paste accident that would otherwise fail every request silently.
    if value.trim() != value || value.chars().any(char::is_control) {
        return Err(invalid(
            key,
            "a value without surrounding whitespace or control characters",
        ));
    }
    Ok(Secret(value))
}

fn flag(get: Lookup<'_>, key: &'static str) -> Result<bool, ConfigError> {
    match setting(get, key).as_deref().map(str::trim) {
        None | Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(_) => Err(invalid(key, "1, 0, true or false")),
    }
}

fn is_route_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() > 1
        && path.len() <= 128
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b))
}

fn is_base_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|rest| {
        !rest.is_empty()
            && !rest.contains(['?', '#', ' ', '@'])
            && !rest.chars().any(char::is_control)
    })
}

/// An absolute http(s) URL with a host, no fragment and no credentials.
/// A name wrangler.toml can give a binding: a JavaScript identifier.
fn is_binding_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && name.len() <= 64
}

fn is_endpoint_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|rest| {
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        !host.is_empty()
            && !host.contains('@')
            && !rest.contains('#')
            && url.len() <= 2048
            && !rest.chars().any(|c| c.is_control() || c.is_whitespace())
    })
}

fn is_api_version(version: &str) -> bool {
    version
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| {
            let digits =
                |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
            digits(major) && digits(minor)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators() {
        assert!(is_route_path("/webhooks/whatsapp"));
        assert!(!is_route_path("webhooks"));
        assert!(!is_route_path("/a b"));
        assert!(!is_route_path("/a//b"));
        assert!(is_base_url("http://127.0.0.1:9000"));
        assert!(!is_base_url("ftp://x"));
        assert!(!is_base_url("https://user@host"));
        assert!(is_api_version("v25.0"));
        assert!(!is_api_version("25.0"));
        assert!(!is_api_version("v25"));
    }

    fn events(settings: &[(&str, &str)]) -> Result<Events, ConfigError> {
        let get = |key: &str| {
            settings
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, value)| value.to_string())
        };
        Events::from_settings(&get)
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn queue_endpoints_are_bindings_on_a_host_that_sends_to_queues() {
        let list = "queue:WATS_EVENTS message, https://crm.example/wa";
        let on_worker = events(&[
            (ENDPOINTS_KEY, list),
            (SIGNING_SECRET_KEY, SECRET),
            (QUEUES_KEY, "1"),
        ])
        .unwrap();
        let queue = &on_worker.endpoints[0];
        assert_eq!(queue.queue(), Some("WATS_EVENTS"));
        assert_eq!(queue.host(), "queue:WATS_EVENTS");
        assert!(queue.wants("message") && !queue.wants("status"));
        assert_eq!(on_worker.endpoints[1].queue(), None);
        for (settings, what) in [
            (vec![(ENDPOINTS_KEY, list)], "a host without queues"),
            (
                vec![(ENDPOINTS_KEY, "queue:9lives"), (QUEUES_KEY, "1")],
                "a bad name",
            ),
            (
                vec![(ENDPOINTS_KEY, "queue:"), (QUEUES_KEY, "1")],
                "no name",
            ),
        ] {
            let mut settings = settings;
            settings.push((SIGNING_SECRET_KEY, SECRET));
            let error = events(&settings).unwrap_err();
            assert!(
                matches!(
                    error,
                    ConfigError::Invalid {
                        key: ENDPOINTS_KEY,
                        ..
                    }
                ),
                "{what}"
            );
        }
    }

    #[test]
    fn endpoints_are_urls_with_optional_kinds_and_need_a_secret() {
        let parsed = events(&[
            (
                ENDPOINTS_KEY,
                "https://crm.example/wa/s3cret message status, http://127.0.0.1:9/all",
            ),
            (SIGNING_SECRET_KEY, SECRET),
        ])
        .unwrap();
        let [crm, all] = &parsed.endpoints[..] else {
            panic!("two endpoints")
        };
        assert_eq!(
            (crm.host(), crm.kinds.clone()),
            ("crm.example", vec!["message", "status"])
        );
        assert!(crm.wants("status") && !crm.wants("call"));
        assert!(all.wants("call") && all.host() == "127.0.0.1:9");
        assert!(events(&[]).unwrap().endpoints.is_empty());
        let forward = events(&[
            (FORWARD_URL_KEY, "https://app.example/hook"),
            (SIGNING_SECRET_KEY, SECRET),
        ]);
        assert_eq!(
            forward.unwrap().endpoints.len(),
            1,
            "the old key is one endpoint"
        );
        assert_eq!(
            events(&[(ENDPOINTS_KEY, "https://app.example/hook")]).unwrap_err(),
            ConfigError::Missing(SIGNING_SECRET_KEY)
        );
        for bad in [
            "ftp://x",
            "https://a.example/x teleport",
            "https://user@a.example",
            "https://a.example/#x",
        ] {
            let error = events(&[(ENDPOINTS_KEY, bad), (SIGNING_SECRET_KEY, SECRET)]).unwrap_err();
            assert!(
                matches!(
                    error,
                    ConfigError::Invalid {
                        key: ENDPOINTS_KEY,
                        ..
                    }
                ),
                "{bad}"
            );
            assert!(!error.to_string().contains(bad));
        }
        let weak = events(&[
            (ENDPOINTS_KEY, "https://a.example"),
            (SIGNING_SECRET_KEY, "whsec_c2hvcnQ="),
        ]);
        assert!(matches!(
            weak.unwrap_err(),
            ConfigError::Invalid {
                key: SIGNING_SECRET_KEY,
                ..
            }
        ));
    }

    #[test]
    fn errors_name_the_key_not_the_value() {
        let message = invalid("WATS_APP_SECRET", "x").to_string();
        assert!(message.contains("WATS_APP_SECRET"));
        assert_eq!(format!("{:?}", Secret("canary".into())), "[REDACTED]");
    }
}
