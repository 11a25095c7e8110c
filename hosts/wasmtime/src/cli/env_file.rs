//! `--env-file`: `KEY=VALUE` lines (`#` comments, blank lines, `export ` and
//! quotes allowed), as `.env.local` files are written. Its `WATS_*` keys are
//! settings; any key may also hold a secret that a profile references
//! (`{"env": "PROD_WA_APP_SECRET"}`). The process environment wins over it.

use anyhow::{anyhow, bail, Result};
use std::path::Path;

#[derive(Debug, Default, PartialEq)]
pub struct EnvFile(Vec<(String, String)>);

impl EnvFile {
    /// The file at `path`, or an empty one when none was given.
    pub fn read(path: Option<&Path>) -> Result<EnvFile> {
        let Some(path) = path else {
            return Ok(EnvFile::default());
        };
        let text =
            std::fs::read_to_string(path).map_err(|_| anyhow!("cannot read the --env-file"))?;
        EnvFile::parse(&text)
    }

    fn parse(text: &str) -> Result<EnvFile> {
        let mut pairs = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((key, value)) = line.split_once('=') else {
                bail!("line {} of the env file is not KEY=VALUE", number + 1);
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            pairs.push((key.trim().to_owned(), value.to_owned()));
        }
        Ok(EnvFile(pairs))
    }

    /// Its `WATS_*` settings.
    pub fn settings(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.0
            .iter()
            .filter(|(key, _)| key.starts_with("WATS_"))
            .cloned()
    }

    /// The variable a profile reference names: the environment's, else this
    /// file's (its last line for the name).
    pub fn lookup(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().or_else(|| {
            self.0
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_accept_common_forms_and_name_bad_lines_by_number() {
        let file = EnvFile::parse(
            "# c\nexport WATS_A=\"x y\"\nWATS_B='z'\nPROD_SECRET_X=1\n\nWATS_C=plain\n",
        )
        .unwrap();
        let settings: Vec<(String, String)> = file.settings().collect();
        assert_eq!(
            settings,
            [
                ("WATS_A".into(), "x y".into()),
                ("WATS_B".into(), "z".into()),
                ("WATS_C".into(), "plain".into())
            ]
        );
        // Any key can answer a profile reference.
        assert_eq!(file.lookup("PROD_SECRET_X").as_deref(), Some("1"));
        assert_eq!(file.lookup("WATS_TEST_NOT_IN_FILE_OR_ENV"), None);
        let error = EnvFile::parse("WATS_A=1\nsecret-canary-line\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 2") && !error.contains("canary"));
    }
}
