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

use crate::context::Context;
use crate::core::config::{Config, ConfigError};
use crate::core::error::ApiError;
use crate::core::host::{Host, Request, Response};
use crate::core::http::{json_response, Params};
use crate::core::upstream::GraphError;
use crate::graph::{EndpointFamily, GraphClient};
use crate::manage::{assets, invalid, media, ManageError, Page};
use serde_json::{json, Value};

/// The largest media the download route returns (Graph's audio and video
/// limit); larger documents are for Graph directly.
pub(crate) const MEDIA_MAX_DOWNLOAD_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    PhoneNumberHealth,
    ListTemplates,
    GetTemplate,
    UploadMedia,
    GetMedia,
    DownloadMedia,
    DeleteMedia,
}

/// A management input refused: 400 naming the field. Here rather than in
/// `core::error`, since `manage` stands above core.
impl From<ManageError> for ApiError {
    fn from(error: ManageError) -> ApiError {
        let ManageError::Invalid { field, expected } = error;
        crate::compose::fields::invalid(field, &format!("must be {expected}"))
    }
}

pub(crate) async fn run<H: Host>(
    ctx: &Context<'_, H>,
    op: Op,
    request: &Request,
    params: &Params,
) -> Result<Response, ApiError> {
    let graph = ctx.graph()?;
    let body = match op {
        Op::PhoneNumberHealth => phone_number_health(&graph).await?,
        Op::ListTemplates => list_templates(&graph, request).await?,
        Op::GetTemplate => get_template(&graph, params.get("templateId")).await?,
        Op::UploadMedia => upload_media(&graph, request).await?,
        Op::GetMedia => {
            let reply = graph.run(media::media(params.get("mediaId"))?).await?;
            media::summary(&reply)
        }
        Op::DownloadMedia => return download_media(&graph, params.get("mediaId")).await,
        Op::DeleteMedia => {
            let reply = graph
                .run(media::delete_media(params.get("mediaId"))?)
                .await?;
            json!({ "success": reply["success"].as_bool().unwrap_or(true) })
        }
    };
    Ok(json_response(200, &body))
}

fn waba(config: &Config) -> Result<&str, ApiError> {
    config
        .waba_id
        .as_deref()
        .ok_or(ApiError::InvalidConfig(ConfigError::Missing(
            "WATS_WABA_ID",
        )))
}

/// The number's health, without its id or the number itself.
async fn phone_number_health<H: Host>(graph: &GraphClient<'_, H>) -> Result<Value, ApiError> {
    let call = assets::phone_number(graph.config.phone_number_id())?;
    let reply = graph.run(call).await?;
    Ok(json!({
        "verifiedName": reply["verified_name"],
        "qualityRating": reply["quality_rating"],
        "nameStatus": reply["name_status"],
        "codeVerificationStatus": reply["code_verification_status"],
        "platformType": reply["platform_type"],
        "throughputLevel": reply["throughput"]["level"],
    }))
}

/// A page of templates and the cursor of the next, never Graph's links.
async fn list_templates<H: Host>(
    graph: &GraphClient<'_, H>,
    request: &Request,
) -> Result<Value, ApiError> {
    let (name, status, after) = (
        request.query("name"),
        request.query("status"),
        request.query("after"),
    );
    let limit = match request.query("limit") {
        Some(text) => Some(
            text.parse()
                .map_err(|_| invalid("limit", "an integer from 1 to 100"))?,
        ),
        None => None,
    };
    let query = assets::TemplateQuery {
        name: name.as_deref(),
        status: status.as_deref(),
        limit,
        after: after.as_deref(),
    };
    let reply = graph
        .run(assets::templates(waba(graph.config)?, &query)?)
        .await?;
    let page = Page::from_reply(&reply);
    let templates: Vec<Value> = page.data.iter().map(template_summary).collect();
    Ok(json!({ "templates": templates, "nextCursor": page.after }))
}

async fn get_template<H: Host>(graph: &GraphClient<'_, H>, id: &str) -> Result<Value, ApiError> {
    let reply = graph.run(assets::template(id)?).await?;
    let mut summary = template_summary(&reply);
    summary["components"] = reply["components"].clone();
    Ok(summary)
}

/// The upload's media type is its Content-Type header.
const UPLOAD_MEDIA_TYPE: &str =
    "The Content-Type header must be the file's media type, such as image/jpeg.";

/// The file is the body, its media type the Content-Type; answers its id.
async fn upload_media<H: Host>(
    graph: &GraphClient<'_, H>,
    request: &Request,
) -> Result<Value, ApiError> {
    let mime_type = request.header("content-type").unwrap_or_default();
    let file_name = request.query("fileName");
    let file_name = file_name.as_deref().unwrap_or("upload");
    let phone_number_id = graph.config.phone_number_id();
    let call = media::upload_media(phone_number_id, mime_type, file_name, &request.body).map_err(
        |error| match error {
            // The media type arrives as a header here, not a field.
            ManageError::Invalid {
                field: "mimeType", ..
            } => ApiError::InvalidRequest(UPLOAD_MEDIA_TYPE.into()),
            error => error.into(),
        },
    )?;
    let reply = graph.run(call).await?;
    Ok(json!({ "id": reply["id"] }))
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
async fn download_media<H: Host>(
    graph: &GraphClient<'_, H>,
    id: &str,
) -> Result<Response, ApiError> {
    let config = graph.config;
    let reply = graph.run(media::media(id)?).await?;
    let info = media::MediaInfo::from_reply(&reply)?;
    let request = info.download_request(
        config.access_token.expose(),
        MEDIA_MAX_DOWNLOAD_BYTES,
        &config.graph_base_url,
    )?;
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
    info.verify(&response.body, MEDIA_MAX_DOWNLOAD_BYTES)?;
    graph.record_success(EndpointFamily::Media, response.status);
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
