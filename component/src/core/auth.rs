//! Credential checks, all in constant time.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Compares two secrets without leaking where they differ or how long the
/// expected one is: both sides are hashed to 32 bytes first.
pub(crate) fn secrets_equal(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    given.ct_eq(&expected).into()
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` against the HMAC-SHA256 of the
/// exact raw body, in constant time.
pub fn signature_valid(app_secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    let Some(hex_digest) = header
        .map(str::trim)
        .and_then(|h| h.strip_prefix("sha256="))
    else {
        return false;
    };
    let mut claimed = [0u8; 32];
    if hex::decode_to_slice(hex_digest, &mut claimed).is_err() {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&claimed).is_ok()
}

/// The `X-Hub-Signature-256` value Meta would send for this body.
#[allow(clippy::expect_used, reason = "HMAC accepts a key of any length")]
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_and_reject_tampering() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let header = sign("secret", body);
        assert!(signature_valid("secret", Some(&header), body));
        assert!(signature_valid(
            "secret",
            Some(&header.to_uppercase().replace("SHA256=", "sha256=")),
            body
        ));
        assert!(!signature_valid("other", Some(&header), body));
        assert!(!signature_valid("secret", Some(&header), b"{}"));
        assert!(!signature_valid("secret", Some("sha256=zz"), body));
        assert!(!signature_valid("secret", Some(&header[7..]), body));
        assert!(!signature_valid("secret", None, body));
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(secrets_equal("a-token", "a-token"));
        assert!(!secrets_equal("a-token", "a-tokeN"));
        assert!(!secrets_equal("", "a-token"));
    }
}
