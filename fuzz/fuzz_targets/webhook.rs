//! A webhook delivery with a valid signature over arbitrary bytes: the
//! signature check passes, so normalization, dedupe and dispatch see the
//! input. The service must answer it without failing (no 500) and never
//! echo the app secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wats::testing::TestHost;

fuzz_target!(|body: &[u8]| {
    let _ = wats::normalize(body);
    let host = TestHost::configured();
    let signature = format!("sha256={}", wats::sign("test-app-secret", body));
    let request = wats::Request {
        method: "POST".into(),
        path_with_query: "/webhooks/whatsapp".into(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-hub-signature-256".into(), signature),
        ],
        body: body.to_vec(),
    };
    let response = wats::block_on(wats::handle(&host, request));
    assert_ne!(response.status, 500, "a delivery made the service fail");
    let text = String::from_utf8_lossy(&response.body);
    assert!(!text.contains("test-app-secret"));
});
