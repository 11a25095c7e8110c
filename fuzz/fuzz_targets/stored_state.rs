//! A store holding anything: keys under the service's own prefixes with
//! arbitrary suffixes and values (a corrupt or hand-edited store, or one
//! written by another version). Covers decoding of outbox due keys, lease
//! and item records, history rows, records and statuses, and cursors
//! built from stored keys. The drain and the read routes must never fail
//! (no 500) and never panic.
//!
//! Input: lines of `P<suffix>\t<value>`, where the first byte picks a
//! prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wats::testing::TestHost;

const PREFIXES: &[&str] = &[
    "outbox:due:",
    "outbox:item:",
    "outbox:lease:",
    "outbox:sent:",
    "msg:row:",
    "msg:rec:",
    "msg:st:",
    "wh:seen:",
    "idem:",
];

fn get(host: &TestHost, path: &str) -> u16 {
    let request = wats::Request {
        method: "GET".into(),
        path_with_query: path.into(),
        headers: vec![("authorization".into(), "Bearer test-service-token".into())],
        body: Vec::new(),
    };
    wats::block_on(wats::handle(host, request)).status
}

fuzz_target!(|data: &[u8]| {
    let host = TestHost::configured();
    host.reply(200, r#"{"messages":[{"id":"wamid.FUZZ1"}]}"#);
    let mut first_suffix = None;
    for line in data.split(|byte| *byte == b'\n') {
        let Some((&pick, rest)) = line.split_first() else {
            continue;
        };
        let mut parts = rest.splitn(2, |byte| *byte == b'\t');
        let suffix = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        let value = parts.next().unwrap_or_default().to_vec();
        let prefix = PREFIXES[usize::from(pick) % PREFIXES.len()];
        first_suffix.get_or_insert_with(|| suffix.clone());
        host.kv
            .borrow_mut()
            .insert(format!("{prefix}{suffix}"), (value, None));
    }
    // Due keys hold times; move past anything plausible.
    host.advance(10 * 365 * 24 * 3_600_000);
    let _ = wats::block_on(wats::drain(&host, 20));
    for path in ["/api/messages", "/api/messages?limit=3", "/status"] {
        assert_ne!(get(&host, path), 500, "a stored value made {path} fail");
    }
    if let Some(suffix) = first_suffix {
        let safe: String = suffix
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(60)
            .collect();
        for path in [
            format!("/api/messages/wamid.{safe}"),
            format!("/api/outbox/wats-out-{safe}"),
            format!("/api/messages?cursor=wats-msg-{safe}"),
        ] {
            assert_ne!(get(&host, &path), 500, "a stored value made a read fail");
        }
    }
});
