//! The run manifest: written outside the repository before any mutation,
//! updated as resources are created and cleaned up, so that an interrupted
//! run leaves a list of exactly what to clean by hand. It holds real ids
//! (cleanup needs them) and is never printed.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Call,
    Media,
    Template,
    Flow,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Call => "call",
            Kind::Media => "media",
            Kind::Template => "template",
            Kind::Flow => "flow",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cleanup {
    Pending,
    Done,
    Failed,
    /// Cannot be undone by the harness (a published Flow).
    Manual,
}

#[derive(Clone, Debug)]
pub struct Resource {
    pub kind: Kind,
    pub id: String,
    pub name: Option<String>,
    pub created_at: u64,
    pub endpoint: &'static str,
    pub cleanup_action: &'static str,
    pub cleanup: Cleanup,
}

pub struct Manifest {
    path: PathBuf,
    run_id: String,
    prefix: String,
    started_at: u64,
    pub resources: Vec<Resource>,
}

pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why no manifest could be written.
#[derive(Debug, PartialEq, Eq)]
pub enum ManifestError {
    InsideRepository,
    Unwritable,
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestError::InsideRepository => f.write_str(
                "WATS_LIVE_OUT_DIR is inside a git repository; the manifest must live outside it",
            ),
            ManifestError::Unwritable => f.write_str("the run manifest cannot be written"),
        }
    }
}

fn inside_repository(dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    dir.ancestors().any(|dir| dir.join(".git").exists())
}

impl Manifest {
    /// Creates `wats-live-<run-id>.json` in `dir`, which must not be in a
    /// repository.
    pub fn create(dir: &Path, run_id: &str, prefix: &str) -> Result<Manifest, ManifestError> {
        if inside_repository(dir) {
            return Err(ManifestError::InsideRepository);
        }
        let manifest = Manifest {
            path: dir.join(format!("wats-live-{run_id}.json")),
            run_id: run_id.into(),
            prefix: prefix.into(),
            started_at: now_seconds(),
            resources: Vec::new(),
        };
        manifest.save()?;
        Ok(manifest)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn to_json(&self) -> Value {
        let resources: Vec<Value> = self
            .resources
            .iter()
            .map(|r| {
                json!({
                    "type": r.kind.name(),
                    "id": r.id,
                    "name": r.name,
                    "createdAt": r.created_at,
                    "endpoint": r.endpoint,
                    "cleanupAction": r.cleanup_action,
                    "cleanupStatus": format!("{:?}", r.cleanup).to_lowercase(),
                })
            })
            .collect();
        json!({
            "runId": self.run_id,
            "resourcePrefix": self.prefix,
            "startedAt": self.started_at,
            "resources": resources,
        })
    }

    /// Writes the whole manifest (to a temporary file, then renamed, so a
    /// crash never leaves half a manifest).
    pub fn save(&self) -> Result<(), ManifestError> {
        let temporary = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|_| ManifestError::Unwritable)
    }

    /// Records a resource the moment it exists.
    pub fn created(&mut self, resource: Resource) -> Result<(), ManifestError> {
        self.resources.push(resource);
        self.save()
    }

    pub fn set_cleanup(&mut self, index: usize, cleanup: Cleanup) -> Result<(), ManifestError> {
        self.resources[index].cleanup = cleanup;
        self.save()
    }
}
