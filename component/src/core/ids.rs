//! Every check an id or token passes before it becomes a kv key, a Graph
//! path segment or part of a reply: none of them lets a `/`, `?` or space
//! through, so no input can reach another key or endpoint.

/// Graph's object ids (WABA, phone number, template, Flow, media): decimal.
pub fn is_numeric_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Graph's base64url-like tokens: Group ids and paging cursors.
pub(crate) fn is_opaque_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 200
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b))
}

/// Meta's prefixed ids (`wamid.…`, `wacid.…`): the prefix, then base64.
pub(crate) fn is_prefixed_id(prefix: &str, text: &str) -> bool {
    text.len() > prefix.len()
        && text.len() <= 200
        && text.starts_with(prefix)
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-=+".contains(&b))
}

/// WAMIDs are `wamid.` and base64; nothing else may reach a kv lookup.
pub(crate) fn is_safe_wamid(text: &str) -> bool {
    is_prefixed_id("wamid.", text)
}

/// A phone number in international format (or a WhatsApp id, which has
/// the same shape): 5 to 32 digits, optionally after a `+`.
pub(crate) fn is_phone_number(to: &str) -> bool {
    let digits = to.strip_prefix('+').unwrap_or(to);
    (5..=32).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A business-scoped user id (BSUID): an ISO 3166 alpha-2 country code, a
/// dot, then up to 128 letters and digits (`US.13491208655302741918`); a
/// parent BSUID has `ENT.` after the dot (`US.ENT.11815799212886844830`).
pub(crate) fn is_bsuid(id: &str) -> bool {
    let Some((country, rest)) = id.split_once('.') else {
        return false;
    };
    let rest = rest.strip_prefix("ENT.").unwrap_or(rest);
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && (1..=128).contains(&rest.len())
        && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_ids_cannot_leave_their_path_segment() {
        assert!(is_opaque_token(
            "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"
        ));
        assert!(!is_opaque_token("../x"));
        assert!(!is_opaque_token(""));
        assert!(is_prefixed_id("wacid.", "wacid.ABC="));
        assert!(!is_prefixed_id("wacid.", "wacid."));
        assert!(!is_prefixed_id("wacid.", "wamid.ABC"));
        assert!(!is_prefixed_id("wacid.", "wacid.a/b"));
    }

    #[test]
    fn business_scoped_user_ids_and_their_parents() {
        assert!(is_bsuid("US.13491208655302741918"));
        assert!(is_bsuid("US.ENT.11815799212886844830"));
        assert!(is_bsuid(&format!("BR.{}", "a".repeat(128))));
        for bad in [
            "US.",
            "US.ENT.",
            "us.1349",
            "USA.1349",
            "US.13-49",
            "US.1349.1",
            "15551234567",
            "",
        ] {
            assert!(!is_bsuid(bad), "{bad}");
        }
        assert!(!is_bsuid(&format!("BR.{}", "a".repeat(129))));
    }

    #[test]
    fn wamids_are_checked() {
        assert!(is_safe_wamid(
            "wamid.HBgLMTU1NTEyMzAwMDAVAgASGBQzQTFBQTAwMDAwMDAwMDAwMDAwMQA="
        ));
        assert!(!is_safe_wamid("wamid."));
        assert!(!is_safe_wamid("wamid.a/../b"));
        assert!(!is_safe_wamid("other.123"));
    }
}
