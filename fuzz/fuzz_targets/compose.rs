//! Every composer's validation, on any JSON object: it accepts or refuses,
//! never panics, and a refusal never repeats the input's values.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(data) else {
        return;
    };
    if let Err(error) = wats::compose::compose(&body, true) {
        let response = error.into_response();
        assert_eq!(response.status, 400);
    }
});
