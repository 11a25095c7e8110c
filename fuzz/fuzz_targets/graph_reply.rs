//! Graph's answers, any status and body: parsed into a result or a typed
//! error, never a panic, and the error's envelope is a valid response.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [high, low, rest @ ..] => (u16::from_be_bytes([*high, *low]) % 600, rest),
        _ => return,
    };
    let response = wats::Response {
        status,
        headers: vec![("retry-after".into(), "7".into())],
        body: body.to_vec(),
    };
    if let Err(error) = wats::parse_reply(&response) {
        let envelope = wats::ApiError::Graph(error).into_response();
        assert!(envelope.status >= 400);
    }
});
