//! The OpenAPI 3.1 document, generated from the route table.

use crate::app::routes::{self, Auth, ParamStyle};
use crate::app::schemas;
use crate::core::config::Paths;
use serde_json::{json, Map, Value};

const SECURITY_SCHEME: &str = "serviceBearerAuth";

fn status_description(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Malformed request or body",
        401 => "Missing or invalid credentials",
        403 => "Verification failed",
        404 => "Not found",
        405 => "Method not allowed",
        409 => "Conflict",
        413 => "Body too large",
        414 => "Request target (path and query) over 2 KiB",
        431 => "Over 100 headers, or over 16 KiB of them",
        502 => "Graph request failed",
        503 => "Rate limited by Graph, or a dependency is unavailable",
        _ => "Response",
    }
}

pub fn document(paths: &Paths) -> Value {
    let mut path_items = Map::new();
    for route in routes::active(paths) {
        let mut item = Map::new();
        for op in route.operations {
            let (status, content_type, schema) = op.success;
            let mut responses = Map::new();
            responses.insert(
                status.to_string(),
                json!({ "description": status_description(status), "content": { content_type: { "schema": schemas::reference(schema) } } }),
            );
            if op.accepts_async {
                responses.insert(
                    "202".into(),
                    json!({ "description": "Queued in the outbox (Prefer: respond-async)", "content": { "application/json": { "schema": schemas::reference("Queued") } } }),
                );
            }
            for link in op.links {
                if let Some(response) = responses.get_mut(&link.status.to_string()) {
                    response["links"][link.operation_id] = json!({
                        "operationId": link.operation_id,
                        "parameters": { link.parameter: link.value },
                    });
                }
            }
            let mut errors: Vec<u16> = op.errors.to_vec();
            // What any request may get: no such route or method, and the
            // limits on the request line and headers (`limits`).
            errors.extend([404, 405, 414, 431]);
            if op.auth == Auth::Bearer {
                errors.push(401);
            }
            errors.sort_unstable();
            errors.dedup();
            for error in errors {
                responses.insert(
                    error.to_string(),
                    json!({
                        "description": status_description(error),
                        "content": { "application/json": { "schema": schemas::reference("Error") } }
                    }),
                );
            }
            let mut operation = json!({
                "operationId": op.operation_id,
                "summary": op.summary,
                "responses": responses,
            });
            if matches!(op.auth, Auth::Bearer | Auth::Operator) {
                operation["security"] = json!([{ SECURITY_SCHEME: [] }]);
            }
            let mut parameters = op.parameters().peekable();
            if parameters.peek().is_some() {
                operation["parameters"] = parameters
                    .map(|p| json!({ "name": p.name, "in": p.location, "required": p.required, "schema": schemas::reference(p.schema) }))
                    .collect();
            }
            if let Some(body) = op.request_body {
                let content_type = if op.raw_body {
                    "application/octet-stream"
                } else {
                    "application/json"
                };
                operation["requestBody"] = json!({ "required": op.body_required, "content": { content_type: { "schema": schemas::reference(body) } } });
            }
            item.insert(op.method.to_ascii_lowercase(), operation);
        }
        path_items.insert(
            route.template(paths, ParamStyle::Braces),
            Value::Object(item),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "wats",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "WhatsApp Cloud API webhook and messaging service."
        },
        "paths": path_items,
        "components": {
            "securitySchemes": { SECURITY_SCHEME: { "type": "http", "scheme": "bearer" } },
            "schemas": schemas::components(paths)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::limits::{MAX_HEADERS, MAX_HEADER_BYTES, MAX_TARGET_BYTES};

    #[test]
    fn limit_descriptions_state_the_limits() {
        let target = status_description(414);
        assert!(target.contains(&format!("{} KiB", MAX_TARGET_BYTES / 1024)));
        let headers = status_description(431);
        assert!(headers.contains(&format!("{MAX_HEADERS} headers")));
        assert!(headers.contains(&format!("{} KiB", MAX_HEADER_BYTES / 1024)));
    }

    #[test]
    fn every_operation_documents_the_request_limits() {
        let document = document(&Paths::default());
        let paths = document["paths"].as_object().expect("paths");
        assert!(!paths.is_empty());
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("a path item") {
                for status in ["414", "431"] {
                    assert!(
                        operation["responses"].get(status).is_some(),
                        "{method} {path} does not document {status}"
                    );
                }
            }
        }
    }
}
