//! The operator commands as a new user meets them: `wats init`, `wats
//! doctor` on a broken and on a good profile, `wats webhook token`, `wats
//! webhook sign` against a running `wats serve`, `wats openapi`. Secrets
//! are canaries: no output may hold one, nor a path the user passed.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::http::{executor, send, Server};

const CANARY_TOKEN: &str = "EAAcanaryaccesstoken0000";
const CANARY_SECRET: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
const CANARY_VERIFY: &str = "canary-verify-token-0123456789";
const CANARY_BEARER: &str = "canary-service-bearer-0123456789";

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `wats ARGS` in `dir` with exactly these `WATS_*`-style variables.
fn wats(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wats"));
    for (key, _) in
        std::env::vars().filter(|(key, _)| key.starts_with("WATS_") || key.starts_with("CANARY_"))
    {
        command.env_remove(key);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("wats runs");
    let run = Run {
        ok: status.success(),
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into(),
        stderr: String::from_utf8_lossy(&stderr).into(),
    };
    let all = format!("{}{}", run.stdout, run.stderr);
    for canary in [
        CANARY_TOKEN,
        CANARY_SECRET,
        CANARY_VERIFY,
        CANARY_BEARER,
        "canary-path",
        "CANARY_ENV",
    ] {
        assert!(
            !all.contains(canary),
            "`wats {}` printed a canary",
            args.join(" ")
        );
    }
    assert!(
        !all.contains("panicked") && !all.contains("stack backtrace"),
        "{all}"
    );
    run
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wats-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The four secrets, referenced under variable names of the user's choosing.
const SECRET_ENV: &[(&str, &str)] = &[
    ("CANARY_ENV_TOKEN", CANARY_TOKEN),
    ("CANARY_ENV_SECRET", CANARY_SECRET),
    ("CANARY_ENV_VERIFY", CANARY_VERIFY),
    ("CANARY_ENV_BEARER", CANARY_BEARER),
];

#[test]
fn init_then_doctor_on_a_broken_and_a_good_profile() {
    let dir = temp_dir("doctor");
    let init = wats(&dir, &["init", "--phone-number-id", "100000000000001"], &[]);
    assert!(init.ok, "{}", init.stderr);
    assert!(init.stdout.contains("4 secret references"));
    let profile_text = std::fs::read_to_string(dir.join("wats.profile.json")).unwrap();
    assert!(profile_text.contains(r#""env": "WATS_APP_SECRET""#));
    let again = wats(&dir, &["init"], &[]);
    assert!(!again.ok && again.stderr.contains("--force"));

    // Broken: no secret is set, and a setting is invalid.
    let broken = wats(&dir, &["doctor"], &[("WATS_GRAPH_API_VERSION", "25")]);
    assert_eq!(broken.code, Some(1));
    for key in [
        "WATS_ACCESS_TOKEN",
        "WATS_APP_SECRET",
        "WATS_VERIFY_TOKEN",
        "WATS_SERVICE_BEARER_TOKEN",
    ] {
        assert!(
            broken.stdout.contains(&format!(
                "FAIL  {key}: the variable its reference names is not set (environment or env file)"
            )),
            "{}",
            broken.stdout
        );
    }
    assert!(broken
        .stdout
        .contains("FAIL  Invalid setting WATS_GRAPH_API_VERSION"));
    assert!(broken.stdout.contains("5 problem(s)"), "{}", broken.stdout);

    // Good: the references point at variables holding canaries.
    let profile = profile_text
        .replace(
            r#""env": "WATS_ACCESS_TOKEN""#,
            r#""env": "CANARY_ENV_TOKEN""#,
        )
        .replace(
            r#""env": "WATS_APP_SECRET""#,
            r#""env": "CANARY_ENV_SECRET""#,
        )
        .replace(
            r#""env": "WATS_VERIFY_TOKEN""#,
            r#""env": "CANARY_ENV_VERIFY""#,
        )
        .replace(
            r#""env": "WATS_SERVICE_BEARER_TOKEN""#,
            r#""env": "CANARY_ENV_BEARER""#,
        );
    std::fs::write(dir.join("canary-path.json"), profile).unwrap();
    let good = wats(
        &dir,
        &["doctor", "--profile", "canary-path.json"],
        SECRET_ENV,
    );
    assert!(good.ok, "{}", good.stdout);
    assert!(good.stdout.contains("0 problem(s), 0 warning(s); ready"));

    // A literal secret in the profile is refused, naming the key only.
    let literal = r#"{"format":"wats-profile/1","settings":{"WATS_ACCESS_TOKEN":"EAAcanaryaccesstoken0000"}}"#;
    std::fs::write(dir.join("canary-path-literal.json"), literal).unwrap();
    let refused = wats(
        &dir,
        &["doctor", "--profile", "canary-path-literal.json"],
        &[],
    );
    assert!(
        !refused.ok
            && refused
                .stdout
                .contains("WATS_ACCESS_TOKEN is written in the profile as a value")
    );
    let unreadable = wats(&dir, &["doctor", "--profile", "/no/canary-path"], &[]);
    assert!(unreadable
        .stdout
        .contains("FAIL  profile: cannot read the profile"));
}

#[test]
fn usage_errors_do_not_echo_what_was_typed() {
    let dir = temp_dir("usage");
    let mistyped = wats(&dir, &["doctor", "--profle", "canary-path.json"], &[]);
    assert_eq!(mistyped.code, Some(2));
    assert!(
        mistyped.stderr.contains("(--profle)"),
        "{}",
        mistyped.stderr
    );
    for args in [
        &["doctor", "EAAcanaryaccesstoken0000"][..],
        &["canary-path"],
        &["openapi", "--profile=canary-path"],
    ] {
        let run = wats(&dir, args, &[]);
        assert!(
            !run.ok && run.stderr.starts_with("wats: error: "),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn webhook_tokens_are_fresh_and_long() {
    let dir = temp_dir("token");
    let first = wats(&dir, &["webhook", "token"], &[]);
    let second = wats(&dir, &["webhook", "token"], &[]);
    for run in [&first, &second] {
        let token = run.stdout.trim();
        assert!(run.ok && token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_ne!(first.stdout, second.stdout);
}

/// Each is new, and the Standard Webhooks library takes it as a secret.
#[test]
fn events_secrets_are_fresh_standard_webhooks_secrets() {
    let dir = temp_dir("events-secret");
    let first = wats(&dir, &["events", "secret"], &[]);
    let second = wats(&dir, &["events", "secret"], &[]);
    for run in [&first, &second] {
        let secret = run.stdout.trim();
        assert!(run.ok && secret.starts_with("whsec_"), "{}", run.stderr);
        assert!(standardwebhooks::Webhook::new(secret).is_ok());
    }
    assert_ne!(first.stdout, second.stdout);
}

#[test]
fn a_signed_payload_is_accepted_by_wats_serve_and_a_tampered_one_refused() {
    let dir = temp_dir("sign");
    let payload = br#"{"object":"whatsapp_business_account","entry":[{"id":"200000000000001","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000000","phone_number_id":"100000000000001"},"messages":[{"from":"15551230000","id":"wamid.CLISIGN1","timestamp":"1790000000","type":"text","text":{"body":"hello"}}]}}]}]}"#;
    std::fs::write(dir.join("canary-path.json"), payload).unwrap();
    let signed = wats(
        &dir,
        &["webhook", "sign", "--dry-run", "canary-path.json"],
        &[],
    );
    assert!(signed.ok, "{}", signed.stderr);
    let signature = signed.stdout.trim().to_owned();
    assert_eq!(signature, wats::sign("dry-run-app-secret", payload));
    // The secret can also come from the environment.
    let from_env = wats(
        &dir,
        &["webhook", "sign", "canary-path.json"],
        &[("WATS_APP_SECRET", CANARY_SECRET)],
    );
    assert_eq!(from_env.stdout.trim(), wats::sign(CANARY_SECRET, payload));
    let none = wats(&dir, &["webhook", "sign", "canary-path.json"], &[]);
    assert!(!none.ok && none.stderr.contains("no app secret"));
    let missing = wats(
        &dir,
        &["webhook", "sign", "--dry-run", "/no/canary-path"],
        &[],
    );
    assert!(!missing.ok && missing.stderr.contains("cannot read the payload file"));

    let server = Server::start(&["--memory"], &HashMap::new()).expect("wats serve starts");
    let client = reqwest::Client::new();
    let post = |signature: String, body: Vec<u8>| {
        executor().block_on(send(
            &client,
            &server.base,
            "POST",
            "/webhooks/whatsapp",
            &[
                ("x-hub-signature-256".into(), signature),
                ("content-type".into(), "application/json".into()),
            ],
            body,
        ))
    };
    let accepted = post(signature.clone(), payload.to_vec());
    assert_eq!(accepted.status, 200);
    let ack: serde_json::Value = serde_json::from_slice(&accepted.body).unwrap();
    assert_eq!(ack["dispatched"], 1);
    let mut tampered = payload.to_vec();
    tampered[10] ^= 1;
    assert_eq!(post(signature, tampered).status, 401);
    server.stop();
}

#[test]
fn openapi_prints_the_document_of_the_configured_routes() {
    let dir = temp_dir("openapi");
    let run = wats(
        &dir,
        &["openapi"],
        &[
            ("WATS_WEBHOOK_PATH", "/hooks/wa"),
            ("WATS_ENABLE_GROUP_ROUTES", "1"),
        ],
    );
    assert!(run.ok, "{}", run.stderr);
    let document: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/hooks/wa"].is_object());
    assert!(document["paths"]["/api/groups"].is_object());
    let bad = wats(
        &dir,
        &["openapi"],
        &[("WATS_WEBHOOK_PATH", "canary-path with spaces")],
    );
    assert!(!bad.ok && bad.stderr.contains("WATS_WEBHOOK_PATH"));
}

/// The variables `write_prod_profile` references, holding the canaries.
const PROD_SECRET_ENV: &[(&str, &str)] = &[
    ("PROD_CANARY_ENV_WATS_ACCESS_TOKEN", CANARY_TOKEN),
    ("PROD_CANARY_ENV_WATS_APP_SECRET", CANARY_SECRET),
    ("PROD_CANARY_ENV_WATS_VERIFY_TOKEN", CANARY_VERIFY),
    ("PROD_CANARY_ENV_WATS_SERVICE_BEARER_TOKEN", CANARY_BEARER),
];

/// A file of the test's directory, as an argument.
fn path_in(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

/// Stops a server and checks that nothing it wrote holds a secret.
fn stop_without_secrets(server: Server) {
    let output = server.stop();
    for canary in [CANARY_TOKEN, CANARY_SECRET, CANARY_VERIFY, CANARY_BEARER] {
        assert!(!output.contains(canary), "wats serve printed a secret");
    }
}

/// Writes `canary-path.json` in `dir`: the profile `wats init` writes, its
/// four secrets referencing variables named as a deployment might name them
/// (`PROD_CANARY_ENV_…`). Returns its path, as an argument.
fn write_prod_profile(dir: &Path) -> String {
    let init = wats(dir, &["init", "--phone-number-id", "100000000000001"], &[]);
    assert!(init.ok, "{}", init.stderr);
    let mut profile = std::fs::read_to_string(dir.join("wats.profile.json")).unwrap();
    for key in [
        "WATS_ACCESS_TOKEN",
        "WATS_APP_SECRET",
        "WATS_VERIFY_TOKEN",
        "WATS_SERVICE_BEARER_TOKEN",
    ] {
        profile = profile.replace(
            &format!(r#""env": "{key}""#),
            &format!(r#""env": "PROD_CANARY_ENV_{key}""#),
        );
    }
    std::fs::write(dir.join("canary-path.json"), profile).unwrap();
    path_in(dir, "canary-path.json")
}

#[test]
fn profile_references_resolve_from_the_env_file_as_the_reference_cli_reads_them() {
    let dir = temp_dir("env-file");
    let profile = write_prod_profile(&dir);
    // Only in the file, as in a `.env.local`: never in the environment.
    let env_file = format!(
        "# secrets\nPROD_CANARY_ENV_WATS_ACCESS_TOKEN={CANARY_TOKEN}\nexport PROD_CANARY_ENV_WATS_APP_SECRET=\"{CANARY_SECRET}\"\nPROD_CANARY_ENV_WATS_VERIFY_TOKEN={CANARY_VERIFY}\nPROD_CANARY_ENV_WATS_SERVICE_BEARER_TOKEN='{CANARY_BEARER}'\n"
    );
    std::fs::write(dir.join("canary-path.env"), env_file).unwrap();

    let without = wats(&dir, &["doctor", "--config", "canary-path.json"], &[]);
    assert_eq!(without.code, Some(1));
    assert!(
        without.stdout.contains("4 problem(s)"),
        "{}",
        without.stdout
    );
    let with = wats(
        &dir,
        &[
            "doctor",
            "--config",
            "canary-path.json",
            "--env-file",
            "canary-path.env",
        ],
        &[],
    );
    assert!(with.ok, "{}", with.stdout);
    assert!(with.stdout.contains("0 problem(s), 0 warning(s); ready"));

    // `wats serve --live` starts only with every secret resolved, and
    // verifies a delivery with the app secret the file held.
    let env_file = path_in(&dir, "canary-path.env");
    let args = [
        "--live",
        "--yes-live",
        "--memory",
        "--config",
        &profile,
        "--env-file",
        &env_file,
    ];
    let server = Server::start(&args, &HashMap::new()).expect("wats serve --live starts");
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#.to_vec();
    let client = reqwest::Client::new();
    let reply = executor().block_on(send(
        &client,
        &server.base,
        "POST",
        "/webhooks/whatsapp",
        &[(
            "x-hub-signature-256".into(),
            wats::sign(CANARY_SECRET, &body),
        )],
        body,
    ));
    assert_eq!(reply.status, 200);
    stop_without_secrets(server);
}

#[test]
fn serve_takes_the_reference_cli_s_config_and_dry_run_flags() {
    let dir = temp_dir("config-flag");
    let profile = write_prod_profile(&dir);
    let server = Server::start(
        &["--config", &profile, "--dry-run", "--memory"],
        &HashMap::new(),
    )
    .expect("wats serve --dry-run starts");
    let client = reqwest::Client::new();
    let status = executor().block_on(send(
        &client,
        &server.base,
        "GET",
        "/status",
        &[(
            "authorization".into(),
            "Bearer dry-run-service-token".into(),
        )],
        Vec::new(),
    ));
    assert_eq!(status.status, 200);
    server.stop();
    // Dry-run and live exclude each other.
    let both = wats(&dir, &["serve", "--dry-run", "--live", "--yes-live"], &[]);
    assert_eq!(both.code, Some(2));
    assert!(both.stderr.contains("--dry-run"), "{}", both.stderr);
}

#[test]
fn onboarding_walks_from_nothing_to_a_verified_test_delivery() {
    let dir = temp_dir("onboarding");
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);
    let fresh = wats(&dir, &["onboarding", "--url", &nobody], &[]);
    assert_eq!(fresh.code, Some(1));
    assert!(fresh.stdout.contains("1. [todo] profile: run `wats init"));
    assert!(fresh
        .stdout
        .contains("5. [todo] test delivery: set WATS_APP_SECRET"));
    assert!(
        fresh.stdout.contains("0 of 4 steps done"),
        "{}",
        fresh.stdout
    );

    // A profile whose references name the canaries' variables.
    let profile = write_prod_profile(&dir);
    let env_refs = PROD_SECRET_ENV.to_vec();
    let no_server = wats(
        &dir,
        &[
            "onboarding",
            "--config",
            "canary-path.json",
            "--url",
            &nobody,
        ],
        &env_refs,
    );
    assert!(
        no_server.stdout.contains("[done] doctor: no problem"),
        "{}",
        no_server.stdout
    );
    assert!(no_server
        .stdout
        .contains("5. [todo] test delivery: no server answered"));
    assert!(no_server.stdout.contains("3 of 4 steps done"));

    // The operator's server, live, with the same profile and variables.
    let settings: HashMap<String, String> = PROD_SECRET_ENV
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    let server = Server::start(
        &["--live", "--yes-live", "--memory", "--config", &profile],
        &settings,
    )
    .expect("wats serve --live starts");
    let ready = wats(
        &dir,
        &[
            "onboarding",
            "--config",
            "canary-path.json",
            "--url",
            &server.base,
        ],
        &env_refs,
    );
    assert!(ready.ok, "{}", ready.stdout);
    assert!(ready
        .stdout
        .contains("5. [done] test delivery: a signed delivery was verified"));
    assert!(ready.stdout.contains("4 of 4 steps done"));
    // Another app secret than the server's: the step says so.
    let mut wrong = env_refs.clone();
    wrong[1].1 = "0123456789abcdef0123456789abcdef";
    let refused = wats(
        &dir,
        &[
            "onboarding",
            "--config",
            "canary-path.json",
            "--url",
            &server.base,
        ],
        &wrong,
    );
    assert_eq!(refused.code, Some(1));
    assert!(refused
        .stdout
        .contains("[FAIL] test delivery: the server at --url refused the signature"));
    stop_without_secrets(server);
}
