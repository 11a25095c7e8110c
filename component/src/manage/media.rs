//! Media: upload, metadata, download with a byte cap and an integrity
//! check, delete. Media URLs are signed: they are used, never logged.

use super::{graph_id, invalid, ManageError};
use crate::core::host::OutgoingRequest;
use crate::core::upstream::MediaError;
use crate::graph::EndpointFamily::Media;
use crate::graph::{CallBody, GraphCall, Multipart};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A valid 1×1 PNG: what stand-in Graphs serve and the live campaign
/// uploads when given no file. Costs the component nothing unless used.
pub const TINY_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Uploads a file for later sends by media id.
pub fn upload_media(
    phone_number_id: &str,
    mime_type: &str,
    file_name: &str,
    bytes: &[u8],
) -> Result<GraphCall, ManageError> {
    let phone = graph_id("phoneNumberId", phone_number_id)?;
    let mime_type = media_type(mime_type)?;
    if bytes.is_empty() {
        return Err(invalid("file", "a non-empty file"));
    }
    let safe_name = !file_name.is_empty()
        && file_name.len() <= 128
        && file_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !safe_name {
        return Err(invalid(
            "fileName",
            "letters, digits, dots, dashes and underscores",
        ));
    }
    let form = Multipart::encode(
        &[("messaging_product", "whatsapp"), ("type", mime_type)],
        (file_name, mime_type, bytes),
    );
    Ok(GraphCall::new(
        "POST",
        Media,
        format!("{phone}/media"),
        CallBody::Multipart(form),
    ))
}

/// Metadata of a media object: its signed URL, type, size and digest.
pub fn media(media_id: &str) -> Result<GraphCall, ManageError> {
    let id = graph_id("mediaId", media_id)?;
    Ok(GraphCall::get(Media, id.to_owned()))
}

pub fn delete_media(media_id: &str) -> Result<GraphCall, ManageError> {
    let id = graph_id("mediaId", media_id)?;
    Ok(GraphCall::delete(Media, id.to_owned()))
}

/// `type/subtype`, as Graph names media types.
pub fn media_type(value: &str) -> Result<&str, ManageError> {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".+-".contains(&b))
    };
    let ok = value.len() <= 100
        && value
            .split_once('/')
            .is_some_and(|(kind, sub)| token(kind) && token(sub));
    ok.then_some(value)
        .ok_or_else(|| invalid("mimeType", "a media type such as image/jpeg"))
}

/// What the service answers about a media object: never its signed URL.
pub fn summary(reply: &Value) -> Value {
    serde_json::json!({
        "id": reply["id"],
        "mimeType": reply["mime_type"],
        "sha256": reply["sha256"],
        "fileSize": file_size(reply),
    })
}

/// Graph gives the size as a number (older versions as a string).
fn file_size(reply: &Value) -> Option<u64> {
    match &reply["file_size"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The parts of a media metadata reply a download needs.
#[derive(Clone, PartialEq)]
pub struct MediaInfo {
    url: String,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub file_size: Option<u64>,
}

// The URL is signed: Debug must not print it.
impl std::fmt::Debug for MediaInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaInfo")
            .field("mime_type", &self.mime_type)
            .field("file_size", &self.file_size)
            .finish_non_exhaustive()
    }
}

impl MediaInfo {
    pub fn from_reply(reply: &Value) -> Result<MediaInfo, MediaError> {
        let url = reply["url"].as_str().unwrap_or_default();
        let usable = (url.starts_with("https://") || url.starts_with("http://"))
            && !url.chars().any(|c| c.is_whitespace() || c.is_control());
        if !usable {
            return Err(MediaError::BadMetadata);
        }
        Ok(MediaInfo {
            url: url.into(),
            mime_type: reply["mime_type"].as_str().map(Into::into),
            sha256: reply["sha256"].as_str().map(Into::into),
            file_size: file_size(reply),
        })
    }

    /// The download request (the signed URL needs the access token too),
    /// refused up front when the metadata already says it is too large.
    /// The URL must be Meta's media host (https, `*.fbsbx.com`) or on the
    /// Graph base URL (a stand-in Graph): the access token goes nowhere else.
    pub fn download_request(
        &self,
        access_token: &str,
        max_bytes: u64,
        graph_base_url: &str,
    ) -> Result<OutgoingRequest, MediaError> {
        let host = self
            .url
            .strip_prefix("https://")
            .and_then(|rest| rest.split(['/', '?']).next())
            .unwrap_or_default();
        let meta_host = host.ends_with(".fbsbx.com") && !host.contains(['@', ':']);
        if !meta_host && !self.url.starts_with(&format!("{graph_base_url}/")) {
            return Err(MediaError::BadMetadata);
        }
        if self.file_size.is_some_and(|size| size > max_bytes) {
            return Err(MediaError::TooLarge { limit: max_bytes });
        }
        Ok(OutgoingRequest {
            method: "GET".into(),
            url: self.url.clone(),
            headers: vec![("authorization".into(), format!("Bearer {access_token}"))],
            body: Vec::new(),
        })
    }

    /// Checks downloaded bytes against the cap, the size and the digest.
    /// Meta gives the digest as 64 hex characters (upper or lower case).
    pub fn verify(&self, bytes: &[u8], max_bytes: u64) -> Result<(), MediaError> {
        if bytes.len() as u64 > max_bytes {
            return Err(MediaError::TooLarge { limit: max_bytes });
        }
        if self
            .file_size
            .is_some_and(|size| size != bytes.len() as u64)
        {
            return Err(MediaError::SizeMismatch);
        }
        let Some(expected) = self.sha256.as_deref() else {
            return Ok(());
        };
        // Meta sends 64 hex digits; anything else cannot be checked, so it
        // fails closed.
        let actual = Sha256::digest(bytes);
        let matches = hex::decode(expected).is_ok_and(|digest| digest == actual.as_slice());
        if matches {
            Ok(())
        } else {
            Err(MediaError::DigestMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GRAPH: &str = "https://graph.facebook.com";

    fn info(bytes: &[u8], digest: String) -> MediaInfo {
        MediaInfo::from_reply(&json!({
            "url": "https://lookaside.fbsbx.com/m?sig=canary",
            "mime_type": "image/png",
            "sha256": digest,
            "file_size": bytes.len(),
        }))
        .unwrap()
    }

    #[test]
    fn downloads_accept_hex_digests_in_either_case_and_refuse_others() {
        let bytes = b"png bytes";
        let digest = Sha256::digest(bytes);
        let hex_digest = hex::encode(digest);
        assert_eq!(info(bytes, hex_digest.clone()).verify(bytes, 100), Ok(()));
        assert_eq!(
            info(bytes, hex_digest.to_uppercase()).verify(bytes, 100),
            Ok(())
        );
        // A digest in another form (base64 here) cannot be checked: refused.
        let b64 = "Kx1fXhUd9/2EH5k2hY3QIWDaMcVhR4WmpTcJK39eS+8=".to_owned();
        assert_eq!(
            info(bytes, b64).verify(bytes, 100),
            Err(MediaError::DigestMismatch)
        );
        let wrong = hex::encode(Sha256::digest(b"other"));
        assert_eq!(
            info(bytes, wrong).verify(bytes, 100),
            Err(MediaError::DigestMismatch)
        );
        assert_eq!(
            info(bytes, hex_digest.clone()).verify(b"png byte", 100),
            Err(MediaError::SizeMismatch)
        );
        assert_eq!(
            info(bytes, hex_digest).verify(bytes, 4),
            Err(MediaError::TooLarge { limit: 4 })
        );
    }

    #[test]
    fn oversized_media_is_refused_before_the_download_and_urls_never_print() {
        let media = info(&[0; 50], String::new());
        assert_eq!(
            media.download_request("t", 10, GRAPH).unwrap_err(),
            MediaError::TooLarge { limit: 10 }
        );
        let request = media.download_request("t", 50, GRAPH).unwrap();
        assert!(request.url.contains("lookaside"));
        // The token goes to Meta's media host or the Graph base URL only.
        for elsewhere in [
            "https://evil.example/x",
            "http://lookaside.fbsbx.com/x",
            "https://x.fbsbx.com@evil.example/",
            "https://fbsbx.com.evil.example/",
        ] {
            let other = MediaInfo::from_reply(&json!({"url": elsewhere})).unwrap();
            assert_eq!(
                other.download_request("t", 50, GRAPH).unwrap_err(),
                MediaError::BadMetadata,
                "{elsewhere}"
            );
        }
        let stand_in =
            MediaInfo::from_reply(&json!({"url": "http://127.0.0.1:9/media/1"})).unwrap();
        assert!(stand_in
            .download_request("t", 50, "http://127.0.0.1:9")
            .is_ok());
        assert!(!format!("{media:?}").contains("canary"));
        assert_eq!(
            MediaInfo::from_reply(&json!({"url": "file:///etc/passwd"})),
            Err(MediaError::BadMetadata)
        );
    }

    #[test]
    fn uploads_are_multipart_with_the_messaging_product() {
        let call = upload_media("1", "image/png", "a.png", b"\x89PNG").unwrap();
        assert_eq!(call.path, "1/media");
        let CallBody::Multipart(form) = &call.body else {
            panic!("not multipart")
        };
        let text = String::from_utf8_lossy(&form.bytes);
        assert!(text.contains("whatsapp") && text.contains("image/png"));
        assert!(upload_media("1", "image/png", "../a.png", b"x").is_err());
        assert!(upload_media("1", "image png", "a.png", b"x").is_err());
        assert!(upload_media("1", "image/png", "a.png", b"").is_err());
    }
}
