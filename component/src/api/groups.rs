//! The opt-in Groups routes (`WATS_ENABLE_GROUP_ROUTES`). Groups hang off
//! the phone-number id. Inputs are camelCase; Meta's snake_case appears only
//! in the Graph calls built here. Without the flag these routes do not exist.

use crate::compose::fields::{invalid, json_object, Fields, Limit};
use crate::compose::put;
use crate::context::Context;
use crate::core::error::ApiError;
use crate::core::host::{Host, Request, Response};
use crate::core::http::{json_response, Params};
use crate::core::ids::is_opaque_token;
use crate::graph::EndpointFamily;
use serde_json::{json, Value};

/// Graph's limit on participants removed in one call.
pub(crate) const MAX_REMOVED_PARTICIPANTS: usize = 8;
const JOIN_APPROVAL_MODES: &[&str] = &["auto_approve", "approval_required"];

/// Which Groups operation a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    List,
    Create,
    Get,
    Update,
    Delete,
    GetInviteLink,
    ResetInviteLink,
    RemoveParticipants,
    ListJoinRequests,
    ApproveJoinRequests,
    RejectJoinRequests,
}

fn group_id(params: &Params) -> Result<&str, ApiError> {
    let id = params.get("groupId");
    if !is_opaque_token(id) {
        return Err(invalid("groupId", "must be a group id from the Groups API"));
    }
    Ok(id)
}

/// `limit`, `after` and `before` for Graph's cursor paging, checked.
fn paging_query(request: &Request) -> Result<String, ApiError> {
    let mut parts = Vec::new();
    if let Some(value) = request.query("limit") {
        let limit: u32 = value
            .parse()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| invalid("limit", "must be an integer from 1 to 1000"))?;
        parts.push(format!("limit={limit}"));
    }
    for name in ["after", "before"] {
        if let Some(value) = request.query(name) {
            if !is_opaque_token(&value) {
                return Err(invalid(name, "must be a cursor from a previous page"));
            }
            parts.push(format!("{name}={value}"));
        }
    }
    Ok(if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    })
}

/// The body of a create or update: subject, description, join approval.
fn group_settings(fields: &Fields, create: bool) -> Result<Value, ApiError> {
    fields.only(&["subject", "description", "joinApprovalMode"], "a group")?;
    let mut body = json!({ "messaging_product": "whatsapp" });
    let subject = if create {
        Some(fields.required_text("subject", Limit::line(100))?)
    } else {
        fields.text("subject", Limit::line(100))?
    };
    put(&mut body, "subject", subject);
    put(
        &mut body,
        "description",
        fields.text("description", Limit::lines(2048))?,
    );
    if let Some(mode) = fields.text("joinApprovalMode", Limit::line(32))? {
        if !JOIN_APPROVAL_MODES.contains(&mode) {
            return Err(invalid(
                "joinApprovalMode",
                "must be auto_approve or approval_required",
            ));
        }
        body["join_approval_mode"] = mode.into();
    }
    if body.as_object().is_some_and(|b| b.len() == 1) {
        return Err(ApiError::InvalidRequest(
            "The body must set subject, description or joinApprovalMode.".into(),
        ));
    }
    Ok(body)
}

fn removed_participants(fields: &Fields) -> Result<Value, ApiError> {
    fields.only(&["waIds"], "a participant removal")?;
    let ids = fields.texts("waIds", 1, MAX_REMOVED_PARTICIPANTS, Limit::line(32))?;
    for (index, id) in ids.iter().enumerate() {
        if id.len() < 5 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                &format!("waIds[{index}]"),
                "must be a WhatsApp id (digits)",
            ));
        }
    }
    let participants: Vec<Value> = ids.iter().map(|id| json!({ "wa_id": id })).collect();
    Ok(json!({ "messaging_product": "whatsapp", "participants": participants }))
}

fn join_requests(fields: &Fields) -> Result<Value, ApiError> {
    fields.only(&["joinRequestIds"], "a join request decision")?;
    let ids = fields.texts("joinRequestIds", 1, 100, Limit::line(128))?;
    for (index, id) in ids.iter().enumerate() {
        if !is_opaque_token(id) {
            return Err(invalid(
                &format!("joinRequestIds[{index}]"),
                "must be a join request id from Graph",
            ));
        }
    }
    Ok(json!({ "messaging_product": "whatsapp", "join_requests": ids }))
}

/// The request body, read by `read` into the JSON Graph takes.
fn graph_body(
    request: &Request,
    read: impl Fn(&Fields) -> Result<Value, ApiError>,
) -> Result<Option<Value>, ApiError> {
    let object = json_object(request)?;
    read(&Fields::root(&object)).map(Some)
}

/// Each operation is one Graph call: its method, path and body are built
/// here from checked inputs, and Graph's reply is passed through.
pub(crate) async fn run<H: Host>(
    ctx: &Context<'_, H>,
    op: Op,
    request: &Request,
    params: &Params,
) -> Result<Response, ApiError> {
    use Op::*;
    let config = ctx.config()?;
    let (method, path, body) = match op {
        List => (
            "GET",
            format!(
                "{}/groups{}",
                config.phone_number_id(),
                paging_query(request)?
            ),
            None,
        ),
        Create => (
            "POST",
            format!("{}/groups", config.phone_number_id()),
            graph_body(request, |fields| group_settings(fields, true))?,
        ),
        Get => ("GET", group_id(params)?.to_owned(), None),
        Update => (
            "POST",
            group_id(params)?.to_owned(),
            graph_body(request, |fields| group_settings(fields, false))?,
        ),
        Delete => ("DELETE", group_id(params)?.to_owned(), None),
        GetInviteLink => ("GET", format!("{}/invite_link", group_id(params)?), None),
        ResetInviteLink => (
            "POST",
            format!("{}/invite_link", group_id(params)?),
            Some(json!({ "messaging_product": "whatsapp" })),
        ),
        RemoveParticipants => (
            "DELETE",
            format!("{}/participants", group_id(params)?),
            graph_body(request, removed_participants)?,
        ),
        ListJoinRequests => (
            "GET",
            format!(
                "{}/join_requests{}",
                group_id(params)?,
                paging_query(request)?
            ),
            None,
        ),
        ApproveJoinRequests => (
            "POST",
            format!("{}/join_requests", group_id(params)?),
            graph_body(request, join_requests)?,
        ),
        RejectJoinRequests => (
            "DELETE",
            format!("{}/join_requests", group_id(params)?),
            graph_body(request, join_requests)?,
        ),
    };
    let mut reply = ctx
        .graph()?
        .call(EndpointFamily::Groups, method, &path, body.as_ref())
        .await?;
    // Graph's paging links can carry the access token; the cursors suffice.
    if let Some(paging) = reply.get_mut("paging") {
        let cursors = paging.get_mut("cursors").map(Value::take);
        *paging = json!({ "cursors": cursors });
    }
    Ok(json_response(200, &reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participants_are_at_most_eight_wa_ids_in_snake_case() {
        let body = json!({ "waIds": ["15551230001", "15551230002"] });
        let mapped = removed_participants(&Fields::root(body.as_object().unwrap())).unwrap();
        assert_eq!(
            mapped["participants"],
            json!([{ "wa_id": "15551230001" }, { "wa_id": "15551230002" }])
        );
        let nine = json!({ "waIds": vec!["15551230001"; 9] });
        assert!(removed_participants(&Fields::root(nine.as_object().unwrap())).is_err());
    }

    #[test]
    fn group_settings_map_to_snake_case() {
        let body = json!({ "subject": "Team", "joinApprovalMode": "approval_required" });
        let mapped = group_settings(&Fields::root(body.as_object().unwrap()), true).unwrap();
        assert_eq!(
            mapped,
            json!({ "messaging_product": "whatsapp", "subject": "Team", "join_approval_mode": "approval_required" })
        );
        let empty = json!({});
        assert!(group_settings(&Fields::root(empty.as_object().unwrap()), false).is_err());
    }
}
