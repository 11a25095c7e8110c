//! The reference service's live testing campaign (docs/live-testing.md) as
//! a harness: off unless `WATS_LIVE_ENABLE=1`, every side-effecting phase
//! behind its own opt-in, a manifest outside the repository before any
//! mutation, cleanup of exactly what the run created, redacted output.
//! With [`Target::Fake`] the same phases run against [`fake::FakeGraph`]
//! on loopback, which is how `cargo xtask test` tests the harness itself.

pub mod campaign;
pub mod fake;
pub mod ledger;
pub mod manifest;
mod phases;
pub mod settings;
pub mod transport;

use campaign::{Campaign, Phase, PhaseResult, Stop};
use ledger::Ledger;
use manifest::{Cleanup, Manifest};
use serde_json::{json, Map, Value};
use settings::{Env, Settings, SettingsError, Target};
use std::io::Write;
use transport::Transport;

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The live flag is off: nothing ran.
    Skipped,
    /// The settings are incomplete or unsafe: nothing ran.
    Refused,
    Passed,
    Failed,
    Aborted,
}

#[derive(Debug)]
pub struct Report {
    pub verdict: Verdict,
    pub phases: Vec<(Phase, PhaseResult)>,
    pub created: usize,
    pub cleaned: usize,
    pub manual: usize,
    pub messages_sent: usize,
}

impl Report {
    fn nothing_ran(verdict: Verdict) -> Report {
        Report {
            verdict,
            phases: Vec::new(),
            created: 0,
            cleaned: 0,
            manual: 0,
            messages_sent: 0,
        }
    }

    pub fn result(&self, phase: Phase) -> Option<&PhaseResult> {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, r)| r)
    }
}

fn line(out: &mut dyn Write, value: Value) {
    let _ = writeln!(out, "{value}");
}

/// Runs the campaign with the settings in `env`, writing redacted JSON
/// lines to `out`.
pub fn run(
    env: &Env,
    target: Target,
    transport: &dyn Transport,
    mut out: Box<dyn Write>,
) -> Report {
    let settings = match Settings::from_env(env, target) {
        Ok(settings) => settings,
        Err(SettingsError::NotEnabled) => {
            line(
                &mut out,
                json!({"event": "skipped", "reason": "WATS_LIVE_ENABLE is not 1; nothing was called"}),
            );
            return Report::nothing_ran(Verdict::Skipped);
        }
        Err(error) => {
            line(
                &mut out,
                json!({"event": "refused", "reason": error.to_string()}),
            );
            return Report::nothing_ran(Verdict::Refused);
        }
    };
    // Before any call, and so before any mutation.
    let manifest = match Manifest::create(&settings.out_dir, &settings.run_id, &settings.prefix) {
        Ok(manifest) => manifest,
        Err(error) => {
            line(
                &mut out,
                json!({"event": "refused", "reason": error.to_string()}),
            );
            return Report::nothing_ran(Verdict::Refused);
        }
    };
    let target_name = match target {
        Target::Live => "live Graph",
        Target::Fake => "fake Graph on loopback",
    };
    line(
        &mut out,
        json!({"event": "start", "target": target_name, "manifest": format!("wats-live-{}.json", settings.run_id)}),
    );
    let ledger = Ledger::new(&settings.sensitive_values(), out);
    let mut campaign = Campaign {
        settings: &settings,
        transport,
        ledger,
        manifest,
        phase: Phase::ReadOnly,
        sent_message: None,
        messages_sent: 0,
    };
    let mut phases = Vec::new();
    let mut aborted = false;
    for phase in Phase::ORDER {
        campaign.phase = phase;
        let result = if aborted && phase != Phase::Cleanup {
            PhaseResult::Skipped("an earlier phase aborted the run")
        } else if let Some(gated) = campaign.gate(phase) {
            gated
        } else {
            match campaign.run_phase(phase) {
                Ok(()) => PhaseResult::Passed,
                Err(Stop::Fail(reason)) => PhaseResult::Failed(reason),
                Err(Stop::Abort(reason)) => PhaseResult::Aborted(reason),
            }
        };
        let result = if campaign.ledger.leaked && !aborted {
            PhaseResult::Aborted("a sensitive value reached the log (withheld)".into())
        } else {
            result
        };
        aborted |= matches!(result, PhaseResult::Aborted(_));
        let mut fields = Map::new();
        fields.insert("event".into(), "phase".into());
        fields.insert("phase".into(), phase.name().into());
        fields.insert("result".into(), result.label().into());
        match &result {
            PhaseResult::Skipped(why) | PhaseResult::Refused(why) => {
                fields.insert("why".into(), (*why).into());
            }
            PhaseResult::Failed(why) | PhaseResult::Aborted(why) => {
                fields.insert("why".into(), why.clone().into());
            }
            PhaseResult::Passed => {}
        }
        campaign.ledger.write(fields);
        phases.push((phase, result));
    }
    let resources = &campaign.manifest.resources;
    let count = |state: Cleanup| resources.iter().filter(|r| r.cleanup == state).count();
    let failed = phases
        .iter()
        .any(|(_, r)| matches!(r, PhaseResult::Failed(_)));
    let report = Report {
        verdict: if aborted {
            Verdict::Aborted
        } else if failed {
            Verdict::Failed
        } else {
            Verdict::Passed
        },
        created: resources.len(),
        cleaned: count(Cleanup::Done),
        manual: count(Cleanup::Manual) + count(Cleanup::Failed) + count(Cleanup::Pending),
        messages_sent: campaign.messages_sent,
        phases,
    };
    let mut summary = Map::new();
    summary.insert("event".into(), "summary".into());
    summary.insert(
        "verdict".into(),
        format!("{:?}", report.verdict).to_lowercase().into(),
    );
    summary.insert("resourcesCreated".into(), report.created.into());
    summary.insert("cleanedUp".into(), report.cleaned.into());
    summary.insert("needsManualCleanup".into(), report.manual.into());
    summary.insert("messagesSent".into(), report.messages_sent.into());
    campaign.ledger.write(summary);
    report
}
