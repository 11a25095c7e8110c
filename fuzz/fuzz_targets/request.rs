//! Any request to any route, authorized: `METHOD\npath?query\nbody`. Covers
//! routing, path and query decoding, history cursors, composers, Groups and
//! the operator routes. The service must never fail (no 500) and never
//! echo a secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wats::testing::TestHost;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |byte| *byte == b'\n');
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default().to_vec();
    let mut host = TestHost::configured();
    host.settings
        .insert("WATS_ENABLE_GROUP_ROUTES".into(), "1".into());
    // A Graph that accepts whatever is sent.
    host.reply(200, r#"{"messages":[{"id":"wamid.FUZZ1"}],"success":true}"#);
    let request = wats::Request {
        method,
        path_with_query: path,
        headers: vec![
            ("authorization".into(), "Bearer test-service-token".into()),
            ("content-type".into(), "application/json".into()),
        ],
        body,
    };
    let response = wats::block_on(wats::handle(&host, request));
    assert_ne!(response.status, 500, "a request made the service fail");
    let text = String::from_utf8_lossy(&response.body);
    for secret in ["test-access-token", "test-app-secret", "test-service-token"] {
        assert!(!text.contains(secret), "a response echoed a secret");
    }
});
