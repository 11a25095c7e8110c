//! The parts of the management surface an operator wants at the edge, as
//! bearer-protected routes: the phone number's health, the approved
//! templates an application picks from, and the media lifecycle (upload
//! once, send by id; read what users sent). Template and Flow mutations,
//! calling and account settings stay with the CLI and the live harness:
//! they are administration, and an edge endpoint for them would widen what
//! a leaked service token can do. docs/architecture.md says more.
//!
//! Replies are curated, not passed through: Graph's own ids of the account,
//! paging links (which can carry the access token) and signed media URLs
//! never reach the caller.

use super::{assets, media, ManageError};
use crate::compose::fields::invalid;
use crate::config::{Config, ConfigError};
use crate::error::ApiError;
use crate::graph::{EndpointFamily, GraphClient, GraphError};
use crate::host::{Host, Request, Response};
use crate::http::json_response;
use crate::Context;
use serde_json::{json, Value};

/// The largest media the download route returns (Graph's audio and video
/// limit); larger documents are for Graph directly.
pub const MEDIA_MAX_DOWNLOAD_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManageAction {
    PhoneNumberHealth,
    ListTemplates,
    GetTemplate,
    UploadMedia,
    GetMedia,
    DownloadMedia,
    DeleteMedia,
}

impl From<ManageError> for ApiError {
    fn from(error: ManageError) -> ApiError {
        let ManageError::Invalid { field, expected } = error;
        invalid(field, &format!("must be {expected}"))
    }
}

fn waba(config: &Config) -> Result<&str, ApiError> {
    config
        .waba_id
        .as_deref()
        .ok_or(ApiError::InvalidConfig(ConfigError::Missing(
            "WATS_WABA_ID",
        )))
}

/// The upload's media type is its Content-Type header.
const UPLOAD_MEDIA_TYPE: &str =
    "The Content-Type header must be the file's media type, such as image/jpeg.";

pub async fn route<H: Host>(
    ctx: &Context<'_, H>,
    action: ManageAction,
    request: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    use ManageAction::*;
    let graph = GraphClient::for_request(ctx)?;
    let config = graph.config;
    let call = match action {
        PhoneNumberHealth => assets::phone_number(&config.phone_number_id)?,
        ListTemplates => {
            let (name, status, after) = (
                request.query("name"),
                request.query("status"),
                request.query("after"),
            );
            let limit = match request.query("limit") {
                Some(text) => Some(text.parse().map_err(|_| {
                    ApiError::from(super::invalid("limit", "an integer from 1 to 100"))
                })?),
                None => None,
            };
            let query = assets::TemplateQuery {
                name: name.as_deref(),
                status: status.as_deref(),
                limit,
                after: after.as_deref(),
            };
            assets::templates(waba(config)?, &query)?
        }
        GetTemplate => assets::template(id)?,
        UploadMedia => {
            let mime_type = request.header("content-type").unwrap_or_default();
            let file_name = request.query("fileName");
            let file_name = file_name.as_deref().unwrap_or("upload");
            media::upload_media(&config.phone_number_id, mime_type, file_name, &request.body)
                .map_err(|error| match error {
                    // The media type arrives as a header here, not a field.
                    ManageError::Invalid {
                        field: "mimeType", ..
                    } => ApiError::InvalidRequest(UPLOAD_MEDIA_TYPE.into()),
                    error => error.into(),
                })?
        }
        GetMedia => media::media(id)?,
        DownloadMedia => return download(&graph, config, id).await,
        DeleteMedia => media::delete_media(id)?,
    };
    let reply = graph.run(call).await?;
    let body = match action {
        PhoneNumberHealth => json!({
            "verifiedName": reply["verified_name"],
            "qualityRating": reply["quality_rating"],
            "nameStatus": reply["name_status"],
            "codeVerificationStatus": reply["code_verification_status"],
            "platformType": reply["platform_type"],
            "throughputLevel": reply["throughput"]["level"],
        }),
        ListTemplates => {
            let page = super::Page::from_reply(&reply);
            let templates: Vec<Value> = page.data.iter().map(template_summary).collect();
            json!({ "templates": templates, "nextCursor": page.after })
        }
        GetTemplate => {
            let mut summary = template_summary(&reply);
            summary["components"] = reply["components"].clone();
            summary
        }
        UploadMedia => json!({ "id": reply["id"] }),
        GetMedia => media::summary(&reply),
        _ => json!({ "success": reply["success"].as_bool().unwrap_or(true) }),
    };
    Ok(json_response(200, &body))
}

fn template_summary(template: &Value) -> Value {
    json!({
        "id": template["id"],
        "name": template["name"],
        "language": template["language"],
        "status": template["status"],
        "category": template["category"],
    })
}

/// Metadata first (for the URL, size and digest), then the bytes, checked
/// against both before anything is returned.
async fn download<H: Host>(
    graph: &GraphClient<'_, H>,
    config: &Config,
    id: &str,
) -> Result<Response, ApiError> {
    let reply = graph.run(media::media(id)?).await?;
    let info = media::MediaInfo::from_reply(&reply).map_err(ApiError::Media)?;
    let request = info
        .download_request(
            config.access_token.expose(),
            MEDIA_MAX_DOWNLOAD_BYTES,
            &config.graph_base_url,
        )
        .map_err(ApiError::Media)?;
    let response = graph.fetch(EndpointFamily::Media, request).await?;
    if !(200..300).contains(&response.status) {
        let error = GraphError::Rejected {
            status: response.status,
            meta: None,
            retry_after: None,
        };
        graph.record_failure(EndpointFamily::Media, &error);
        return Err(error.into());
    }
    info.verify(&response.body, MEDIA_MAX_DOWNLOAD_BYTES)
        .map_err(ApiError::Media)?;
    graph.record_success(EndpointFamily::Media);
    let content_type = info
        .mime_type
        .as_deref()
        .and_then(|value| media::media_type(value).ok())
        .unwrap_or("application/octet-stream");
    Ok(Response {
        status: 200,
        headers: vec![
            ("content-type".into(), content_type.into()),
            ("cache-control".into(), "private, no-store".into()),
        ],
        body: response.body,
    })
}
