//! What one request's (or one drain's) code shares: the host, the
//! configuration, loaded on first use (`/healthz` needs none of it), and the
//! request's metric samples.

use crate::core::config::{Config, ConfigError, PathCheck};
use crate::core::error::ApiError;
use crate::core::host::Host;
use crate::core::host::Level;
use crate::core::metrics::Recorder;
use crate::graph::GraphClient;
use std::cell::OnceCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this instance has logged its configuration's fault: a host that
/// cannot refuse to start (a Worker, a Spin app) says once which setting is
/// wrong, on the first request that needs it, and `/readyz` keeps saying it.
static FAULT_REPORTED: AtomicBool = AtomicBool::new(false);

fn report_once(host: &impl Host, fault: &ConfigError) {
    if !FAULT_REPORTED.swap(true, Ordering::Relaxed) {
        let fields = [
            ("key", fault.key().into()),
            ("code", fault.construction_code().into()),
        ];
        host.log(Level::Error, "wats.config.invalid", &fields);
    }
}

pub(crate) struct Context<'a, H: Host> {
    pub(crate) host: &'a H,
    config: OnceCell<Result<Config, ConfigError>>,
    colliding: PathCheck,
    pub(crate) recorder: Recorder,
}

impl<'a, H: Host> Context<'a, H> {
    /// `colliding` is the route table's check of configured paths.
    pub(crate) fn new(host: &'a H, colliding: PathCheck) -> Self {
        Context {
            host,
            config: OnceCell::new(),
            colliding,
            recorder: Recorder::default(),
        }
    }

    /// The configuration, or the `invalid_config` error naming the bad key.
    pub(crate) fn config(&self) -> Result<&Config, ApiError> {
        self.loaded()
            .as_ref()
            .map_err(|error| ApiError::InvalidConfig(error.clone()))
    }

    /// What is wrong with the settings, if anything.
    pub(crate) fn config_fault(&self) -> Option<ConfigError> {
        self.loaded().as_ref().err().cloned()
    }

    fn loaded(&self) -> &Result<Config, ConfigError> {
        self.config.get_or_init(|| {
            let loaded = Config::load(self.host, self.colliding);
            if let Err(fault) = &loaded {
                report_once(self.host, fault);
            }
            loaded
        })
    }

    /// The Graph client of this request: its host, settings and metrics.
    pub(crate) fn graph(&self) -> Result<GraphClient<'_, H>, ApiError> {
        Ok(GraphClient::new(self.host, self.config()?, &self.recorder))
    }
}
