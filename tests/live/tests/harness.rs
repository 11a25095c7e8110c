//! The harness itself, tested without credentials or network: every phase
//! against the fake Graph on loopback; the gates (live flag, domain flags,
//! run id and prefix, media caps); the manifest and cleanup; abort
//! criteria; and redaction, proved with canary values.

use std::path::{Path, PathBuf};
use wats_live::campaign::{Phase, PhaseResult};
use wats_live::fake::{Failure, FakeGraph, EXISTING_FLOW, EXISTING_TEMPLATE};
use wats_live::ledger::Captured;
use wats_live::settings::{Env, Target};
use wats_live::transport::Http;
use wats_live::{run, Report, Verdict};

const TOKEN: &str = "EAAcanaryLiveAccessToken0001";
const APP_SECRET: &str = "canaryappsecret0123456789abcdef0";
const VERIFY: &str = "canary-verify-token-live-0001";
const WABA: &str = "200000000777001";
const PHONE: &str = "100000000777001";
const RECIPIENT: &str = "15557770001";
const INBOUND: &str = "wamid.CANARYINBOUND0001";

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wats-live-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fake() -> FakeGraph {
    FakeGraph::start(TOKEN, WABA, PHONE, APP_SECRET, VERIFY)
}

/// The settings of a run with every opt-in on.
fn everything(fake: &FakeGraph, run_id: &str, dir: &Path) -> Env {
    let pairs = [
        ("WATS_GRAPH_BASE_URL", fake.base_url.clone()),
        ("WATS_ACCESS_TOKEN", TOKEN.into()),
        ("WATS_WABA_ID", WABA.into()),
        ("WATS_PHONE_NUMBER_ID", PHONE.into()),
        ("WATS_TEST_RECIPIENT_E164", RECIPIENT.into()),
        ("WATS_TEST_RUN_ID", run_id.into()),
        ("WATS_TEST_RESOURCE_PREFIX", format!("wats-live-{run_id}")),
        ("WATS_APP_SECRET", APP_SECRET.into()),
        ("WATS_VERIFY_TOKEN", VERIFY.into()),
        (
            "WATS_PUBLIC_WEBHOOK_URL",
            format!("{}/webhook", fake.base_url),
        ),
        ("WATS_TEST_TEMPLATE_NAME", "hello_world".into()),
        ("WATS_TEST_INBOUND_MESSAGE_ID", INBOUND.into()),
        ("WATS_ENABLE_SENDS", "1".into()),
        ("WATS_ENABLE_COMMERCE_MESSAGES", "1".into()),
        ("WATS_ENABLE_TEMPLATE_MUTATIONS", "1".into()),
        ("WATS_ENABLE_FLOW_MUTATIONS", "1".into()),
        ("WATS_ENABLE_CALLING_LIVE", "1".into()),
        ("WATS_MAX_UPLOAD_BYTES", "1048576".into()),
        ("WATS_MAX_DOWNLOAD_BYTES", "1048576".into()),
        ("WATS_LIVE_OUT_DIR", dir.display().to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn run_fake(env: &Env) -> (Report, String) {
    let output = Captured::default();
    let report = run(env, Target::Fake, &Http::new(), Box::new(output.clone()));
    (report, output.text())
}

fn assert_redacted(output: &str, fake: &FakeGraph) {
    let state = fake.state();
    let mut canaries = vec![
        TOKEN,
        APP_SECRET,
        VERIFY,
        WABA,
        PHONE,
        RECIPIENT,
        INBOUND,
        "fake-signature",
        "/download/",
    ];
    let created: Vec<String> = state
        .requests
        .iter()
        .map(|(_, path)| path.clone())
        .filter(|p| p.contains("70000000000"))
        .collect();
    canaries.extend(created.iter().map(String::as_str));
    for canary in canaries {
        assert!(!output.contains(canary), "a canary reached the output");
    }
    assert!(!output.contains("wamid.") && !output.contains("wacid."));
    for line in output.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("every line is JSON");
        for key in value.as_object().unwrap().keys() {
            let allowed = [
                "event",
                "phase",
                "step",
                "method",
                "group",
                "status",
                "ref",
                "created",
                "class",
                "metaCode",
                "metaSubcode",
                "transport",
                "result",
                "why",
                "refused",
                "skipped",
                "target",
                "manifest",
                "reason",
                "verdict",
                "resourcesCreated",
                "cleanedUp",
                "needsManualCleanup",
                "messagesSent",
            ];
            assert!(allowed.contains(&key.as_str()), "unexpected key {key}");
        }
    }
}

#[test]
fn without_the_live_flag_the_live_suite_skips_and_calls_nothing() {
    let fake = fake();
    let dir = out_dir("skip");
    let mut env = everything(&fake, "skip-1", &dir);
    let output = Captured::default();
    let report = run(&env, Target::Live, &Http::new(), Box::new(output.clone()));
    assert_eq!(report.verdict, Verdict::Skipped);
    assert!(output.text().contains("WATS_LIVE_ENABLE is not 1"));
    env.insert("WATS_LIVE_ENABLE".into(), "0".into());
    let report = run(
        &env,
        Target::Live,
        &Http::new(),
        Box::new(Captured::default()),
    );
    assert_eq!(report.verdict, Verdict::Skipped);
    assert!(fake.state().requests.is_empty());
    assert!(!dir.join("wats-live-skip-1.json").exists());
}

#[test]
fn every_phase_runs_against_the_fake_graph_and_cleans_up_exactly_what_it_made() {
    let fake = fake();
    let dir = out_dir("all");
    let (report, output) = run_fake(&everything(&fake, "all-1", &dir));
    for (phase, result) in &report.phases {
        assert_eq!(result, &PhaseResult::Passed, "{phase:?}\n{output}");
    }
    assert_eq!(report.verdict, Verdict::Passed);
    assert_eq!((report.created, report.cleaned, report.manual), (4, 4, 0));
    let state = fake.state();
    // Exactly what the run created is gone; what the account had is not.
    assert!(state.media.is_empty() && state.calls.is_empty());
    assert_eq!(
        state.templates.keys().collect::<Vec<_>>(),
        [EXISTING_TEMPLATE]
    );
    assert_eq!(state.flows.keys().collect::<Vec<_>>(), [EXISTING_FLOW]);
    assert!(!state.sip_credentials_requested);
    assert_eq!(state.webhook_deliveries, 1);
    // text, location, contacts, buttons, reaction, template, catalog, image
    assert_eq!((state.messages_sent, report.messages_sent), (8, 8));
    // Read-only first, deletes only in cleanup.
    let first_write = state.requests.iter().position(|(m, _)| m != "GET").unwrap();
    let reads = &state.requests[..first_write];
    assert!(
        reads.len() >= 10
            && reads
                .iter()
                .all(|(m, p)| m == "GET" && !p.contains("download"))
    );
    let deletes: Vec<_> = state
        .requests
        .iter()
        .filter(|(m, _)| m == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 3);
    drop(state);

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("wats-live-all-1.json")).unwrap()).unwrap();
    assert_eq!(manifest["resourcePrefix"], "wats-live-all-1");
    let resources = manifest["resources"].as_array().unwrap();
    let kinds: Vec<_> = resources
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["media", "template", "flow", "call"]);
    assert!(resources
        .iter()
        .all(|r| r["cleanupStatus"] == "done" && r["createdAt"].as_u64().is_some()));
    assert!(resources[1]["name"]
        .as_str()
        .unwrap()
        .starts_with("wats_live_all_1"));
    assert!(resources[2]["name"]
        .as_str()
        .unwrap()
        .starts_with("wats-live-all-1"));
    assert_redacted(&output, &fake);
    assert!(
        output.contains(r#""step":"getWabaInfo""#) && output.contains(r#""group":"templates""#)
    );
}

#[test]
fn side_effecting_phases_are_refused_without_their_domain_flags() {
    let fake = fake();
    let dir = out_dir("refuse");
    let mut env = everything(&fake, "refuse-1", &dir);
    for flag in [
        "WATS_ENABLE_SENDS",
        "WATS_ENABLE_COMMERCE_MESSAGES",
        "WATS_ENABLE_TEMPLATE_MUTATIONS",
        "WATS_ENABLE_FLOW_MUTATIONS",
        "WATS_ENABLE_CALLING_LIVE",
        "WATS_MAX_UPLOAD_BYTES",
    ] {
        env.remove(flag);
    }
    // A flag set to anything but 1 is off.
    env.insert("WATS_ENABLE_FLOW_MUTATIONS".into(), "yes".into());
    let (report, output) = run_fake(&env);
    assert_eq!(report.verdict, Verdict::Passed);
    let refused = |phase| matches!(report.result(phase), Some(PhaseResult::Refused(_)));
    for phase in [
        Phase::LowImpactSends,
        Phase::MediaLifecycle,
        Phase::TemplateMutations,
        Phase::FlowDrafts,
        Phase::Calling,
    ] {
        assert!(refused(phase), "{phase:?} ran without its flag");
    }
    assert_eq!(report.result(Phase::ReadOnly), Some(&PhaseResult::Passed));
    let state = fake.state();
    // Only reads reached Graph (plus the signed POST to the operator's own webhook).
    assert!(state
        .requests
        .iter()
        .all(|(m, p)| m == "GET" || p == "/webhook"));
    assert_eq!(state.messages_sent, 0);
    assert!(output.contains(r#""result":"refused","why":"WATS_ENABLE_TEMPLATE_MUTATIONS""#));
    drop(state);
    assert_redacted(&output, &fake);
}

#[test]
fn the_run_id_and_its_prefix_are_required_and_the_manifest_stays_out_of_the_repository() {
    let fake = fake();
    let dir = out_dir("ids");
    let env = everything(&fake, "ids-1", &dir);
    let cases: [(&str, Option<&str>, &str); 4] = [
        ("WATS_TEST_RUN_ID", None, "WATS_TEST_RUN_ID is required"),
        (
            "WATS_TEST_RESOURCE_PREFIX",
            Some("prod-templates"),
            "WATS_TEST_RESOURCE_PREFIX must be wats-live-<WATS_TEST_RUN_ID>",
        ),
        (
            "WATS_GRAPH_BASE_URL",
            Some("https://graph.facebook.com"),
            "the fake Graph must be on 127.0.0.1",
        ),
        (
            "WATS_LIVE_OUT_DIR",
            Some(env!("CARGO_MANIFEST_DIR")),
            "inside a git repository",
        ),
    ];
    for (key, value, message) in cases {
        let mut env = env.clone();
        match value {
            Some(value) => env.insert(key.into(), value.into()),
            None => env.remove(key),
        };
        let (report, output) = run_fake(&env);
        assert_eq!(report.verdict, Verdict::Refused, "{key}");
        assert!(output.contains(message), "{key}: {output}");
    }
    assert!(fake.state().requests.is_empty());
}

#[test]
fn a_rate_limit_aborts_the_run_and_cleanup_still_removes_what_was_made() {
    let fake = fake();
    let dir = out_dir("abort");
    fake.state().fail = Some(Failure {
        method: "POST",
        path_contains: "message_templates",
        status: 400,
        code: 130429,
    });
    let (report, output) = run_fake(&everything(&fake, "abort-1", &dir));
    assert_eq!(report.verdict, Verdict::Aborted);
    assert!(matches!(
        report.result(Phase::TemplateMutations),
        Some(PhaseResult::Aborted(_))
    ));
    for phase in [Phase::FlowDrafts, Phase::Calling] {
        assert!(
            matches!(report.result(phase), Some(PhaseResult::Skipped(_))),
            "{phase:?}"
        );
    }
    assert_eq!(report.result(Phase::Cleanup), Some(&PhaseResult::Passed));
    assert_eq!((report.created, report.cleaned), (1, 1));
    assert!(fake.state().media.is_empty());
    assert!(output
        .lines()
        .any(|l| l.contains(r#""class":"rate_limited""#) && l.contains(r#""metaCode":130429"#)));
    assert_redacted(&output, &fake);
}

#[test]
fn a_failed_cleanup_aborts_and_leaves_the_resource_in_the_manifest() {
    let fake = fake();
    let dir = out_dir("cleanup");
    let mut env = everything(&fake, "cleanup-1", &dir);
    env.remove("WATS_ENABLE_CALLING_LIVE");
    fake.state().fail = Some(Failure {
        method: "DELETE",
        path_contains: "/",
        status: 500,
        code: 2,
    });
    let (report, output) = run_fake(&env);
    assert_eq!(report.verdict, Verdict::Aborted);
    assert_eq!(report.manual, 1);
    let manifest = std::fs::read_to_string(dir.join("wats-live-cleanup-1.json")).unwrap();
    assert!(manifest.contains(r#""cleanupStatus": "failed""#));
    assert!(output.contains("cleanup failed for 1 resource(s)"));
    assert_redacted(&output, &fake);
}

#[test]
fn a_wrong_token_aborts_at_the_first_read() {
    let fake = fake();
    let dir = out_dir("token");
    let mut env = everything(&fake, "token-1", &dir);
    env.insert("WATS_ACCESS_TOKEN".into(), "EAAcanaryWrongToken0002".into());
    let (report, output) = run_fake(&env);
    assert_eq!(report.verdict, Verdict::Aborted);
    assert!(output.contains("the token is invalid or its scope is wrong"));
    assert_eq!(report.created, 0);
    assert!(!output.contains("EAAcanaryWrongToken0002"));
}

#[test]
fn a_phase_cannot_make_calls_riskier_than_it_may() {
    use wats_live::campaign::{Campaign, Stop};
    use wats_live::ledger::Ledger;
    use wats_live::manifest::Manifest;
    use wats_live::settings::Settings;
    let fake = fake();
    let dir = out_dir("risk");
    let env = everything(&fake, "risk-1", &dir);
    let settings = Settings::from_env(&env, Target::Fake).unwrap();
    let transport = Http::new();
    let mut campaign = Campaign {
        settings: &settings,
        transport: &transport,
        ledger: Ledger::new(&settings.sensitive_values(), Box::new(Captured::default())),
        manifest: Manifest::create(&dir, "risk-1", "wats-live-risk-1").unwrap(),
        phase: Phase::ReadOnly,
        sent_message: None,
        messages_sent: 0,
    };
    let upload = || wats::manage::media::upload_media(PHONE, "image/png", "a.png", b"x");
    let delete = || wats::manage::media::delete_media("700000000000001");
    assert!(matches!(
        campaign.graph("uploadMedia", upload(), None),
        Err(Stop::Abort(_))
    ));
    campaign.phase = Phase::MediaLifecycle;
    assert!(matches!(
        campaign.graph("deleteMedia", delete(), None),
        Err(Stop::Abort(_))
    ));
    // Refused before reaching Graph: the fake saw neither.
    assert!(fake.state().requests.is_empty());
    assert!(campaign.graph("uploadMedia", upload(), None).is_ok());
}
