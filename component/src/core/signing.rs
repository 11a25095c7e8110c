//! Standard Webhooks signatures: each event the service POSTs to one of the
//! application's endpoints carries `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
//! keyed by the bytes of `WATS_EVENTS_SIGNING_SECRET` (`whsec_` + base64).
//! Any Standard Webhooks library verifies them.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

const SECRET_PREFIX: &str = "whsec_";
/// Shorter keys are guessable; the specification asks for 24 to 64 bytes.
const MIN_KEY_BYTES: usize = 16;
const MAX_KEY_BYTES: usize = 128;

/// The decoded signing secret. Debug output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl SigningKey {
    /// `whsec_` followed by the base64 of 16 to 128 bytes.
    pub fn parse(secret: &str) -> Option<SigningKey> {
        let encoded = secret.strip_prefix(SECRET_PREFIX)?;
        let key = STANDARD.decode(encoded).ok()?;
        (MIN_KEY_BYTES..=MAX_KEY_BYTES)
            .contains(&key.len())
            .then_some(SigningKey(key))
    }

    /// The secret for these key bytes, as `wats events secret` prints it.
    pub fn encode(key: &[u8]) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
    }

    /// The `webhook-signature` header's value for this message.
    #[allow(clippy::expect_used, reason = "HMAC accepts a key of any length")]
    pub fn sign(&self, id: &str, timestamp_seconds: u64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_seconds.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_whsec_and_base64_of_enough_bytes() {
        let secret = SigningKey::encode(&[7; 24]);
        assert!(secret.starts_with("whsec_"));
        assert_eq!(SigningKey::parse(&secret), Some(SigningKey(vec![7; 24])));
        assert_eq!(SigningKey::parse("whsec_c2hvcnQ="), None, "5 bytes");
        assert_eq!(SigningKey::parse("whsec_not base64!"), None);
        assert_eq!(SigningKey::parse(&secret["whsec_".len()..]), None);
        assert_eq!(format!("{:?}", SigningKey(vec![1])), "[REDACTED]");
    }

    /// The example of the Standard Webhooks specification's reference
    /// libraries: this secret, id, timestamp and body sign to this value.
    #[test]
    fn signatures_match_the_specification_example() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
