//! One run: the phases in the campaign's order, each behind its gate, every
//! Graph call logged redacted, every created resource in the manifest
//! before anything else happens to it, and cleanup of exactly those.

use crate::ledger::Ledger;
use crate::manifest::{Cleanup, Kind, Manifest, Resource};
use crate::settings::{Domain, Settings};
use crate::transport::Transport;
use serde_json::{json, Map, Value};
use wats::OutgoingRequest;
use wats::{manage::ManageError, GraphCall, Risk};
use wats::{parse_reply, GraphError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    ReadOnly,
    WebhookPassive,
    LowImpactSends,
    MediaLifecycle,
    TemplateMutations,
    FlowDrafts,
    Calling,
    Cleanup,
}

impl Phase {
    pub const ORDER: [Phase; 8] = [
        Phase::ReadOnly,
        Phase::WebhookPassive,
        Phase::LowImpactSends,
        Phase::MediaLifecycle,
        Phase::TemplateMutations,
        Phase::FlowDrafts,
        Phase::Calling,
        Phase::Cleanup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::ReadOnly => "read-only",
            Phase::WebhookPassive => "webhook-passive",
            Phase::LowImpactSends => "low-impact-sends",
            Phase::MediaLifecycle => "media-lifecycle",
            Phase::TemplateMutations => "template-mutations",
            Phase::FlowDrafts => "flow-drafts",
            Phase::Calling => "calling",
            Phase::Cleanup => "cleanup",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhaseResult {
    Passed,
    /// Nothing to do with the given settings (not a side effect refused).
    Skipped(&'static str),
    /// A side-effecting phase without its opt-in: not run.
    Refused(&'static str),
    Failed(String),
    Aborted(String),
}

impl PhaseResult {
    pub fn label(&self) -> &'static str {
        match self {
            PhaseResult::Passed => "passed",
            PhaseResult::Skipped(_) => "skipped",
            PhaseResult::Refused(_) => "refused",
            PhaseResult::Failed(_) => "failed",
            PhaseResult::Aborted(_) => "aborted",
        }
    }
}

/// Why a phase stopped early.
pub enum Stop {
    Fail(String),
    /// One of the campaign's abort criteria: no further phase runs, cleanup
    /// still does.
    Abort(String),
}

impl From<ManageError> for Stop {
    fn from(error: ManageError) -> Stop {
        Stop::Fail(error.to_string())
    }
}

/// Meta codes that end a run: the token (190), permissions (10, 200–299),
/// policy or integrity blocks (368, 131031).
fn abort_reason(error: &GraphError) -> Option<&'static str> {
    if error.is_rate_limit() {
        return Some("Meta rate-limited the run");
    }
    match error.meta().and_then(|meta| meta.code) {
        Some(190 | 10 | 200..=299) => Some("the token is invalid or its scope is wrong"),
        Some(368 | 131031) => Some("Meta reported an account, integrity or policy block"),
        _ => None,
    }
}

pub struct Campaign<'a> {
    pub settings: &'a Settings,
    pub transport: &'a dyn Transport,
    pub ledger: Ledger,
    pub manifest: Manifest,
    pub phase: Phase,
    /// The text message this run sent, for the reaction to point at.
    pub sent_message: Option<String>,
    pub messages_sent: usize,
}

impl Campaign<'_> {
    /// Logs a line of the current phase.
    pub fn note(&mut self, step: &str, mut fields: Map<String, Value>) {
        fields.insert("phase".into(), self.phase.name().into());
        fields.insert("step".into(), step.into());
        self.ledger.write(fields);
    }

    /// Runs one Graph call and logs it. `about` is the id the call concerns
    /// (logged as a salted hash).
    pub fn graph(
        &mut self,
        step: &str,
        call: Result<GraphCall, ManageError>,
        about: Option<&str>,
    ) -> Result<Value, Stop> {
        let call = call?;
        if !self.risk_allowed(call.risk) {
            return Err(Stop::Abort(format!(
                "{step} is {:?} and the {} phase may not make such calls",
                call.risk,
                self.phase.name()
            )));
        }
        let s = self.settings;
        let mut line = Map::new();
        line.insert("method".into(), call.method.into());
        line.insert("group".into(), call.family.label().into());
        let method = call.method;
        let request = call.into_request(&s.base_url, &s.version, &s.access_token.0);
        if let Some(id) = about {
            line.insert("ref".into(), self.ledger.hash(id).into());
        }
        let reply = match self.transport.send(request) {
            Ok(response) => {
                line.insert("status".into(), response.status.into());
                parse_reply(&response)
            }
            Err(reason) => {
                line.insert("transport".into(), reason.into());
                Err(GraphError::Unreachable)
            }
        };
        match &reply {
            Ok(value) if method == "POST" => {
                if let Some(id) = value["id"].as_str() {
                    line.insert("created".into(), self.ledger.hash(id).into());
                }
            }
            Ok(_) => {}
            Err(error) => {
                line.insert("class".into(), error.outcome().into());
                if let Some(meta) = error.meta() {
                    line.insert("metaCode".into(), json!(meta.code));
                    line.insert("metaSubcode".into(), json!(meta.subcode));
                }
            }
        }
        self.note(step, line);
        reply.map_err(|error| match abort_reason(&error) {
            Some(reason) => Stop::Abort(reason.into()),
            None => Stop::Fail(format!("{step}: Graph answered {}", error.outcome())),
        })
    }

    /// Read-only before side-effecting before destructive: the read-only
    /// phase only reads, and deletes (or publishing, with its flag) happen
    /// only where the campaign allows them.
    fn risk_allowed(&self, risk: Risk) -> bool {
        match (self.phase, risk) {
            (_, Risk::ReadOnly) | (Phase::Cleanup, _) => true,
            (Phase::ReadOnly, _) => false,
            (Phase::FlowDrafts, Risk::Destructive) => self.settings.allows(Domain::FlowPublish),
            (_, Risk::Destructive) => false,
            (_, Risk::SideEffect) => true,
        }
    }

    /// A non-Graph request (the webhook, a media download), logged by step
    /// and status only.
    pub fn fetch(
        &mut self,
        step: &str,
        group: &str,
        request: OutgoingRequest,
    ) -> Result<wats::Response, Stop> {
        let mut line = Map::new();
        line.insert("method".into(), request.method.clone().into());
        line.insert("group".into(), group.into());
        let response = self.transport.send(request);
        match &response {
            Ok(response) => line.insert("status".into(), response.status.into()),
            Err(reason) => line.insert("transport".into(), (*reason).into()),
        };
        self.note(step, line);
        response.map_err(|_| Stop::Fail(format!("{step}: no response")))
    }

    /// Records a resource in the manifest before anything else is done with it.
    pub fn created(
        &mut self,
        kind: Kind,
        id: &str,
        name: Option<String>,
        endpoint: &'static str,
        cleanup_action: &'static str,
    ) -> Result<(), Stop> {
        let resource = Resource {
            kind,
            id: id.into(),
            name,
            created_at: crate::manifest::now_seconds(),
            endpoint,
            cleanup_action,
            cleanup: Cleanup::Pending,
        };
        self.manifest
            .created(resource)
            .map_err(|error| Stop::Abort(error.to_string()))
    }

    /// The gate of a phase: None when it may run.
    pub fn gate(&self, phase: Phase) -> Option<PhaseResult> {
        let s = self.settings;
        let needs =
            |domain: Domain| (!s.allows(domain)).then_some(PhaseResult::Refused(domain.flag()));
        match phase {
            Phase::ReadOnly | Phase::Cleanup => None,
            Phase::WebhookPassive => {
                (s.webhook_url.is_none() || s.app_secret.is_none() || s.verify_token.is_none())
                    .then_some(PhaseResult::Skipped(
                        "needs WATS_PUBLIC_WEBHOOK_URL, WATS_APP_SECRET and WATS_VERIFY_TOKEN",
                    ))
            }
            Phase::LowImpactSends => needs(Domain::Sends).or_else(|| {
                s.recipient
                    .is_none()
                    .then_some(PhaseResult::Skipped("needs WATS_TEST_RECIPIENT_E164"))
            }),
            Phase::MediaLifecycle => {
                (s.max_upload_bytes.is_none() || s.max_download_bytes.is_none()).then_some(
                    PhaseResult::Refused("WATS_MAX_UPLOAD_BYTES and WATS_MAX_DOWNLOAD_BYTES"),
                )
            }
            Phase::TemplateMutations => needs(Domain::Templates),
            Phase::FlowDrafts => needs(Domain::Flows),
            Phase::Calling => needs(Domain::Calling).or_else(|| {
                s.recipient
                    .is_none()
                    .then_some(PhaseResult::Skipped("needs WATS_TEST_RECIPIENT_E164"))
            }),
        }
    }
}

/// The id in a reply, which must be numeric (it becomes a path segment).
pub fn reply_id(reply: &Value, step: &str) -> Result<String, Stop> {
    wats::manage::created_id(reply)
        .map(Into::into)
        .ok_or_else(|| Stop::Fail(format!("{step}: the reply has no id")))
}
