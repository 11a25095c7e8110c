//! Media bodies: image, video, audio, document and sticker, each by an
//! uploaded media id or by a link, never both.

use super::fields::{invalid, Fields, Limit};
use super::{envelope, message_id, put, recipient, Composed};
use crate::core::error::ApiError;
use serde_json::{json, Value};

/// Graph's limit for media captions.
pub(super) const MAX_CAPTION_CHARS: usize = 1024;
const MAX_LINK_BYTES: usize = 2048;

/// `{id}` or `{link}` from `mediaId` / `link`, exactly one of them.
pub(super) fn reference(fields: &Fields) -> Result<Value, ApiError> {
    let id = fields.text("mediaId", Limit::line(128))?;
    let link = fields.text("link", Limit::line(MAX_LINK_BYTES))?;
    match (id, link) {
        (Some(id), None) => {
            if !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(invalid(
                    &fields.path("mediaId"),
                    "must be a media id from Graph",
                ));
            }
            Ok(json!({ "id": id }))
        }
        (None, Some(link)) => {
            let scheme_ok = link.starts_with("https://") || link.starts_with("http://");
            if !scheme_ok || link.contains(char::is_whitespace) {
                return Err(invalid(&fields.path("link"), "must be an http(s) URL"));
            }
            Ok(json!({ "link": link }))
        }
        _ => Err(invalid(
            &fields.path("mediaId"),
            "or `link` is required, exactly one of them",
        )),
    }
}

pub(super) fn compose(fields: &Fields, kind: &str) -> Result<Composed, ApiError> {
    let (kind, allowed): (&'static str, &[&str]) = match kind {
        "image" => ("image", &["caption"]),
        "video" => ("video", &["caption"]),
        "audio" => ("audio", &["voice"]),
        "document" => ("document", &["caption", "filename"]),
        _ => ("sticker", &[]),
    };
    let mut accepted = vec!["type", "to", "mediaId", "link", "replyToMessageId"];
    accepted.extend_from_slice(allowed);
    fields.only(&accepted, &format!("type `{kind}`"))?;
    let to = recipient(fields)?;
    let mut object = reference(fields)?;
    if allowed.contains(&"caption") {
        let caption = fields.text("caption", Limit::lines(MAX_CAPTION_CHARS))?;
        put(&mut object, "caption", caption);
    }
    if allowed.contains(&"filename") {
        put(
            &mut object,
            "filename",
            fields.text("filename", Limit::line(240))?,
        );
    }
    // Only `voice: true` changes the payload: Graph's plain audio is the
    // default.
    if allowed.contains(&"voice") && fields.bool("voice")? == Some(true) {
        object["voice"] = true.into();
    }
    let reply_to = message_id(fields, "replyToMessageId")?;
    Ok(envelope(to, kind, object, reply_to))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{composed, rule};
    use serde_json::json;

    #[test]
    fn media_by_id_or_link_with_reply_context() {
        let image = composed(json!({ "type": "image", "to": "15551230000", "mediaId": "1234567890", "caption": "hello", "replyToMessageId": "wamid.PARENT" })).unwrap();
        assert_eq!(
            image.payload["image"],
            json!({ "id": "1234567890", "caption": "hello" })
        );
        assert_eq!(
            image.payload["context"],
            json!({ "message_id": "wamid.PARENT" })
        );
        let document = composed(json!({ "type": "document", "to": "15551230000", "link": "https://example.test/a.pdf", "filename": "a.pdf" })).unwrap();
        assert_eq!(
            document.payload["document"],
            json!({ "link": "https://example.test/a.pdf", "filename": "a.pdf" })
        );
    }

    #[test]
    fn voice_only_when_asked() {
        let voice = composed(
            json!({ "type": "audio", "to": "15551230000", "mediaId": "9", "voice": true }),
        )
        .unwrap();
        assert_eq!(voice.payload["audio"], json!({ "id": "9", "voice": true }));
        let plain = composed(
            json!({ "type": "audio", "to": "15551230000", "mediaId": "9", "voice": false }),
        )
        .unwrap();
        assert_eq!(plain.payload["audio"], json!({ "id": "9" }));
    }

    #[test]
    fn exactly_one_source_and_only_the_fields_of_the_type() {
        assert!(rule(json!({ "type": "sticker", "to": "15551230000" })).contains("exactly one"));
        assert!(rule(json!({ "type": "sticker", "to": "15551230000", "mediaId": "1", "link": "https://x.test/s.webp" })).contains("exactly one"));
        assert!(rule(
            json!({ "type": "sticker", "to": "15551230000", "mediaId": "1", "caption": "no" })
        )
        .contains("accepted:"));
        assert!(rule(
            json!({ "type": "image", "to": "15551230000", "link": "ftp://x.test/a.png" })
        )
        .contains("`link`"));
        let long = "😀".repeat(1025);
        assert!(rule(
            json!({ "type": "video", "to": "15551230000", "mediaId": "1", "caption": long })
        )
        .contains("1024"));
    }
}
