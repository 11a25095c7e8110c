//! The operator console (`/console`): one static page, its style and
//! script inline and allowed by hash alone, holding no data of its own:
//! it signs in with the service token and reads the bearer routes.

use crate::context::Context;
use crate::core::config::Paths;
use crate::core::error::ApiError;
use crate::core::host::{Host, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// The page.
    Page,
    /// `/`: a redirect to the page.
    Home,
}

const PAGE: &str = include_str!("../../console/console.html");
const STYLE: &str = include_str!("../../console/console.css");
const SCRIPT: &str = include_str!("../../console/console.js");
pub(crate) const PATH: &str = "/console";

pub(crate) fn run<H: Host>(ctx: &Context<'_, H>, op: Op) -> Result<Response, ApiError> {
    match op {
        Op::Home => Ok(Response {
            status: 302,
            headers: vec![
                ("location".into(), PATH.into()),
                ("content-type".into(), "text/html; charset=utf-8".into()),
            ],
            body: format!(r#"<a href="{PATH}">{PATH}</a>"#).into_bytes(),
        }),
        // The page needs only the paths: with another setting wrong, it
        // still loads, and its Overview names the setting.
        Op::Page => {
            let paths = Paths::load(ctx.host).unwrap_or_default();
            Ok(page(&paths.api_prefix, &paths.webhook))
        }
    }
}

/// `'sha256-<base64>'`: a CSP source that allows exactly this text.
fn hash_source(text: &str) -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// Markup-safe text for an attribute (the paths are checked settings, but
/// a page never trusts that).
fn attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn page(api_prefix: &str, webhook: &str) -> Response {
    let body = PAGE
        .replace("{{API}}", &attribute(api_prefix))
        .replace("{{WEBHOOK}}", &attribute(webhook))
        .replace("{{STYLE}}", STYLE)
        .replace("{{SCRIPT}}", SCRIPT);
    let policy = format!(
        "default-src 'self'; script-src {}; style-src {}; img-src 'self' data:; connect-src 'self'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        hash_source(SCRIPT),
        hash_source(STYLE)
    );
    let headers = [
        ("content-type", "text/html; charset=utf-8"),
        ("content-security-policy", policy.as_str()),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ];
    Response {
        status: 200,
        headers: headers
            .iter()
            .map(|(name, value)| ((*name).into(), (*value).into()))
            .collect(),
        body: body.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_the_inline_script_and_style_by_hash_only() {
        let response = page("/api", "/webhooks/whatsapp");
        let policy = &response
            .headers
            .iter()
            .find(|(name, _)| name == "content-security-policy")
            .unwrap()
            .1;
        assert!(policy.contains(&hash_source(SCRIPT)) && policy.contains(&hash_source(STYLE)));
        assert!(!policy.contains("unsafe-inline") && policy.contains("frame-ancestors 'none'"));
        let html = String::from_utf8(response.body).unwrap();
        assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(html.contains(&format!("<style>{STYLE}</style>")));
        assert!(html.contains(r#"<meta name="wats-api" content="/api">"#));
        // No markup attribute that a hash policy would block.
        for blocked in [" style=\"", " onclick=", " onload=", "javascript:"] {
            assert!(!PAGE.contains(blocked), "{blocked}");
        }
        assert!(!html.contains("{{"));
    }

    #[test]
    fn a_path_cannot_break_out_of_its_attribute() {
        let html = String::from_utf8(page("/a\"><script>", "/w").body).unwrap();
        assert!(html.contains("/a&quot;&gt;&lt;script&gt;"));
    }
}
