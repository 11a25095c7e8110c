//! Profiles: a JSON file of settings in which every secret is a reference
//! to an environment variable, never a value, so the file can be committed
//! or shared. `wats init` writes one; `wats doctor`, `wats serve --profile`
//! and `wats webhook sign --profile` read one.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use wats::config::KEYS;

pub const DEFAULT_PROFILE: &str = "wats.profile.json";
const FORMAT: &str = "wats-profile/1";

/// Why a profile cannot be used. Messages name our keys, never a value,
/// a path or a key the file made up.
#[derive(Debug, PartialEq)]
pub enum ProfileError {
    Unreadable,
    NotJson,
    NotAProfile,
    /// `settings` holds keys that are not among the service's settings.
    UnknownKeys(usize),
    /// A secret's value is written in the file.
    LiteralSecret(&'static str),
    /// A secret is not `{"env": "NAME"}`.
    NotAReference(&'static str),
    NotText(&'static str),
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileError::Unreadable => f.write_str("cannot read the profile"),
            ProfileError::NotJson => f.write_str("the profile is not valid JSON"),
            ProfileError::NotAProfile => write!(f, "the file is not a wats profile (expected \"format\": \"{FORMAT}\"; `wats init` writes one)"),
            ProfileError::UnknownKeys(count) => write!(f, "the profile has {count} unknown setting(s); docs/configuration.md lists the keys"),
            ProfileError::LiteralSecret(key) => write!(f, "{key} is written in the profile as a value; profiles hold only environment references for secrets: \"secrets\": {{\"{key}\": {{\"env\": \"NAME\"}}}}"),
            ProfileError::NotAReference(key) => write!(f, "{key} must be {{\"env\": \"NAME\"}} with NAME an environment variable name"),
            ProfileError::NotText(key) => write!(f, "{key} must be a string"),
        }
    }
}

impl std::error::Error for ProfileError {}

#[derive(Debug, Default, PartialEq)]
pub struct Profile {
    pub settings: BTreeMap<&'static str, String>,
    /// Secret key → the environment variable that holds its value.
    pub secrets: BTreeMap<&'static str, String>,
}

fn known(key: &str) -> Option<(&'static str, bool)> {
    KEYS.iter().copied().find(|(name, _)| *name == key)
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl Profile {
    pub fn read(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|_| ProfileError::Unreadable)?;
        Profile::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let root: Value = serde_json::from_str(text).map_err(|_| ProfileError::NotJson)?;
        if root["format"] != FORMAT {
            return Err(ProfileError::NotAProfile);
        }
        let empty = Map::new();
        let section = |name: &str| match &root[name] {
            Value::Null => Ok(&empty),
            Value::Object(map) => Ok(map),
            _ => Err(ProfileError::NotAProfile),
        };
        let mut profile = Profile::default();
        let mut unknown = 0;
        for (key, value) in section("settings")? {
            match known(key) {
                Some((key, true)) => return Err(ProfileError::LiteralSecret(key)),
                Some((key, false)) => {
                    let text = value.as_str().ok_or(ProfileError::NotText(key))?;
                    profile.settings.insert(key, text.to_owned());
                }
                None => unknown += 1,
            }
        }
        for (key, value) in section("secrets")? {
            match known(key) {
                Some((key, true)) => {
                    let name = value["env"].as_str().filter(|name| is_env_name(name));
                    let name = name.ok_or(ProfileError::NotAReference(key))?;
                    profile.secrets.insert(key, name.to_owned());
                }
                _ => unknown += 1,
            }
        }
        if unknown > 0 {
            return Err(ProfileError::UnknownKeys(unknown));
        }
        Ok(profile)
    }

    /// The settings with every secret resolved from `env`, and the secret
    /// keys whose variable is unset or empty.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> (HashMap<String, String>, Vec<&'static str>) {
        let mut settings: HashMap<String, String> = self
            .settings
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect();
        let mut missing = Vec::new();
        for (key, name) in &self.secrets {
            match env(name).filter(|value| !value.is_empty()) {
                Some(value) => {
                    settings.insert((*key).to_owned(), value);
                }
                None => missing.push(*key),
            }
        }
        (settings, missing)
    }
}

/// The profile `wats init` writes: every setting with its default (ids as
/// given, or empty for `wats doctor` to point out), every required secret
/// a reference to the variable of the same name (the events' secrets are
/// added by hand when used).
pub fn template(phone_number_id: Option<&str>, waba_id: Option<&str>) -> Value {
    use wats::config::*;
    let mut secrets = Map::new();
    for (key, secret) in KEYS {
        if *secret && !OPTIONAL_SECRETS.contains(key) {
            secrets.insert((*key).into(), json!({ "env": key }));
        }
    }
    json!({
        "format": FORMAT,
        "settings": {
            "WATS_GRAPH_BASE_URL": DEFAULT_GRAPH_BASE_URL,
            "WATS_GRAPH_API_VERSION": DEFAULT_GRAPH_API_VERSION,
            "WATS_PHONE_NUMBER_ID": phone_number_id.unwrap_or_default(),
            "WATS_WABA_ID": waba_id.unwrap_or_default(),
            "WATS_WEBHOOK_PATH": DEFAULT_WEBHOOK_PATH,
            "WATS_API_PREFIX": DEFAULT_API_PREFIX,
        },
        "secrets": secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wats::config::OPTIONAL_SECRETS;

    #[test]
    fn the_template_parses_and_references_every_secret() {
        let text = template(Some("1"), None).to_string();
        let profile = Profile::parse(&text).unwrap();
        assert_eq!(
            profile.secrets.len(),
            KEYS.iter()
                .filter(|(key, secret)| *secret && !OPTIONAL_SECRETS.contains(key))
                .count()
        );
        let (settings, missing) =
            profile.resolve(|name| (name == "WATS_APP_SECRET").then(|| "v".into()));
        assert_eq!(settings["WATS_APP_SECRET"], "v");
        assert_eq!(settings["WATS_PHONE_NUMBER_ID"], "1");
        assert!(!settings.contains_key("WATS_WABA_ID"));
        assert_eq!(
            missing,
            [
                "WATS_ACCESS_TOKEN",
                "WATS_SERVICE_BEARER_TOKEN",
                "WATS_VERIFY_TOKEN"
            ]
        );
    }

    #[test]
    fn literal_secrets_and_invented_keys_are_refused_without_echoing_them() {
        let literal =
            r#"{"format":"wats-profile/1","settings":{"WATS_APP_SECRET":"canary-secret"}}"#;
        let error = Profile::parse(literal).unwrap_err();
        assert_eq!(error, ProfileError::LiteralSecret("WATS_APP_SECRET"));
        assert!(!error.to_string().contains("canary"));
        let invented = r#"{"format":"wats-profile/1","settings":{"CANARY_KEY":"x"},"secrets":{"WATS_PHONE_NUMBER_ID":{"env":"X"}}}"#;
        let error = Profile::parse(invented).unwrap_err();
        assert_eq!(error, ProfileError::UnknownKeys(2));
        assert!(!error.to_string().contains("CANARY"));
        let bad_ref =
            r#"{"format":"wats-profile/1","secrets":{"WATS_ACCESS_TOKEN":{"env":"lower case"}}}"#;
        assert_eq!(
            Profile::parse(bad_ref).unwrap_err(),
            ProfileError::NotAReference("WATS_ACCESS_TOKEN")
        );
        assert_eq!(Profile::parse("{}").unwrap_err(), ProfileError::NotAProfile);
        assert_eq!(
            Profile::parse("canary{").unwrap_err(),
            ProfileError::NotJson
        );
    }
}
