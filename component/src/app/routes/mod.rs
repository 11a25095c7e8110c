//! Routes as data: what a declaration holds, how a request finds its
//! route, and the inventory. The declarations themselves are `table.rs`;
//! each drives dispatch, the OpenAPI document, the `/status` inventory and
//! the metric route labels.

mod table;

use crate::api::{console, events, groups, history, manage, messages, operator, webhook};
use crate::core::config::Paths;
use crate::core::http::Params;
use serde_json::{json, Value};
pub(crate) use table::ROUTES;

/// Where a route's path starts: fixed, or at a configured path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Base {
    Root,
    /// `WATS_WEBHOOK_PATH`.
    Webhook,
    /// `WATS_API_PREFIX`.
    Api,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Auth {
    None,
    /// The service bearer token; 401 when missing or wrong.
    Bearer,
    /// The service bearer token; a missing or wrong one gets the same 404 as
    /// an unknown route, so the route's existence is not disclosed.
    Operator,
    /// Meta's `hub.verify_token` challenge.
    VerifyToken,
    /// Meta's `X-Hub-Signature-256` over the raw body.
    Signature,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handler {
    Operator(operator::Op),
    /// The operator console's page, and `/` leading to it.
    Console(console::Op),
    /// The OpenAPI document, the app's own: it is made from this table.
    OpenApi,
    Webhook(webhook::Op),
    Events(events::Op),
    Messages(messages::Op),
    History(history::Op),
    Groups(groups::Op),
    Manage(manage::Op),
}

/// A query or header parameter, for the OpenAPI document.
pub(crate) struct Param {
    pub name: &'static str,
    pub location: &'static str,
    pub required: bool,
    /// What the service accepts: the document states the real constraints.
    pub schema: &'static str,
}

/// An OpenAPI link: where a response's value feeds another operation's
/// parameter (schemathesis follows these in its stateful phase).
pub(crate) struct Link {
    pub status: u16,
    pub operation_id: &'static str,
    pub parameter: &'static str,
    /// A runtime expression such as `$response.body#/outboxId`.
    pub value: &'static str,
}

pub(crate) struct Operation {
    pub method: &'static str,
    pub handler: Handler,
    pub auth: Auth,
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub params: &'static [Param],
    /// The name of its schema.
    pub request_body: Option<&'static str>,
    /// False when an empty body is accepted too.
    pub body_required: bool,
    /// Honours `Prefer: respond-async`: queues the send and answers 202.
    pub accepts_async: bool,
    /// Honours `Idempotency-Key`: the dispatcher replays a stored success
    /// and refuses a reused key with another body.
    pub idempotent: bool,
    /// The success status, its content type and the schema of its body.
    pub success: (u16, &'static str, &'static str),
    /// The error statuses this operation documents (besides the common ones).
    pub errors: &'static [u16],
    /// Larger bodies are refused with 413 before anything else happens.
    pub max_body_bytes: usize,
    /// The body is a file in its own media type, not JSON.
    pub raw_body: bool,
    pub links: &'static [Link],
}

/// The header of an `.idempotent()` operation.
const IDEMPOTENCY_KEY: Param = Param {
    name: "Idempotency-Key",
    location: "header",
    required: false,
    schema: "IdempotencyKey",
};
/// The header of an operation that `.sends_async()`.
const PREFER: Param = Param {
    name: "Prefer",
    location: "header",
    required: false,
    schema: "Prefer",
};

impl Operation {
    /// Its declared parameters, then the headers its flags honour.
    pub(crate) fn parameters(&self) -> impl Iterator<Item = &Param> {
        let flagged = [
            (self.idempotent, &IDEMPOTENCY_KEY),
            (self.accepts_async, &PREFER),
        ];
        self.params.iter().chain(
            flagged
                .into_iter()
                .filter_map(|(flag, param)| flag.then_some(param)),
        )
    }
}

pub(crate) struct Route {
    pub base: Base,
    /// Exists only with `WATS_ENABLE_GROUP_ROUTES`.
    pub groups: bool,
    /// The path after the base; `{name}` matches one segment.
    pub suffix: &'static str,
    pub operations: &'static [Operation],
}

const fn op(
    method: &'static str,
    handler: Handler,
    auth: Auth,
    operation_id: &'static str,
    summary: &'static str,
) -> Operation {
    Operation {
        method,
        handler,
        auth,
        operation_id,
        summary,
        params: &[],
        request_body: None,
        body_required: true,
        accepts_async: false,
        idempotent: false,
        success: (200, "application/json", "Health"),
        errors: &[],
        max_body_bytes: 0,
        raw_body: false,
        links: &[],
    }
}

impl Operation {
    const fn params(mut self, params: &'static [Param]) -> Self {
        self.params = params;
        self
    }
    const fn body(mut self, schema: &'static str, max_body_bytes: usize) -> Self {
        self.request_body = Some(schema);
        self.max_body_bytes = max_body_bytes;
        self
    }
    /// A body that may also be empty.
    const fn optional_body(mut self, schema: &'static str, max_body_bytes: usize) -> Self {
        self.request_body = Some(schema);
        self.max_body_bytes = max_body_bytes;
        self.body_required = false;
        self
    }
    /// A file in its own media type.
    const fn raw_body(mut self, schema: &'static str, max_body_bytes: usize) -> Self {
        self.request_body = Some(schema);
        self.max_body_bytes = max_body_bytes;
        self.raw_body = true;
        self
    }
    const fn sends_async(mut self) -> Self {
        self.accepts_async = true;
        self
    }
    const fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
    const fn success(
        mut self,
        status: u16,
        content_type: &'static str,
        schema: &'static str,
    ) -> Self {
        self.success = (status, content_type, schema);
        self
    }
    const fn links(mut self, links: &'static [Link]) -> Self {
        self.links = links;
        self
    }
    const fn errors(mut self, errors: &'static [u16]) -> Self {
        self.errors = errors;
        self
    }
}

/// How a template's parameters are written: `:name` for `/status` and metric
/// labels, `{name}` for OpenAPI.
#[derive(Clone, Copy)]
pub(crate) enum ParamStyle {
    Colon,
    Braces,
}

impl Route {
    fn base<'a>(&self, paths: &'a Paths) -> &'a str {
        match self.base {
            Base::Root => "",
            Base::Webhook => paths.webhook.as_str(),
            Base::Api => paths.api_prefix.as_str(),
        }
    }

    pub(crate) fn template(&self, paths: &Paths, style: ParamStyle) -> String {
        let base = self.base(paths);
        let suffix = match style {
            ParamStyle::Braces => self.suffix.to_owned(),
            ParamStyle::Colon => self
                .suffix
                .split('/')
                .map(
                    |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => format!(":{name}"),
                        None => segment.to_owned(),
                    },
                )
                .collect::<Vec<_>>()
                .join("/"),
        };
        format!("{base}{suffix}")
    }

    pub(crate) fn allow_header(&self) -> String {
        self.operations
            .iter()
            .map(|op| op.method)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Matches a request path; returns the path parameters on success.
    /// Runs for every route on every request, so it renders no template.
    fn matches(&self, paths: &Paths, path: &str) -> Option<Vec<(&'static str, String)>> {
        self.matches_template(self.suffix, path.strip_prefix(self.base(paths))?)
    }

    /// As `matches`, with this route's template already rendered.
    fn matches_template(&self, template: &str, path: &str) -> Option<Vec<(&'static str, String)>> {
        let mut params = Vec::new();
        let mut wanted = template.split('/');
        let mut given = path.split('/');
        loop {
            match (wanted.next(), given.next()) {
                (None, None) => return Some(params),
                (Some(want), Some(seg)) => {
                    if want.starts_with('{') && want.ends_with('}') {
                        if seg.is_empty() {
                            return None;
                        }
                        let name = self.param_name(&want[1..want.len() - 1])?;
                        // A segment that does not decode matches no route.
                        params.push((name, crate::core::http::decode_segment(seg)?));
                    } else if want != seg {
                        return None;
                    }
                }
                _ => return None,
            }
        }
    }

    /// The parameter's name as a static str from the declaration.
    fn param_name(&self, name: &str) -> Option<&'static str> {
        self.suffix.split('/').find_map(|segment| {
            let inner = segment.strip_prefix('{')?.strip_suffix('}')?;
            (inner == name).then_some(inner)
        })
    }
}

/// The inventory of `/status`: each active operation's method, path
/// template and how it is authenticated.
pub(crate) fn inventory(paths: &Paths) -> Value {
    active(paths)
        .flat_map(|route| {
            route.operations.iter().map(move |op| {
                let auth = match op.auth {
                    Auth::None => "none",
                    Auth::Bearer | Auth::Operator => "bearer",
                    Auth::VerifyToken => "verify-token",
                    Auth::Signature => "signature",
                };
                json!({ "method": op.method, "path": route.template(paths, ParamStyle::Colon), "auth": auth })
            })
        })
        .collect()
}

/// The routes that exist with these settings.
pub(crate) fn active(paths: &Paths) -> impl Iterator<Item = &'static Route> + '_ {
    ROUTES
        .iter()
        .filter(move |route| !route.groups || paths.group_routes)
}

/// The setting whose value makes one route's path reach another route (a
/// webhook path of `/healthz`, say), if any.
pub(crate) fn colliding_setting(paths: &Paths) -> Option<&'static str> {
    let routes: Vec<&Route> = active(paths).collect();
    let templates: Vec<String> = routes
        .iter()
        .map(|route| route.template(paths, ParamStyle::Braces))
        .collect();
    for (index, first) in routes.iter().enumerate() {
        let first_path = &templates[index];
        // Routes on one base overlap only as declared (a literal before a
        // parameter); a setting can only make different bases collide.
        for (second, second_path) in routes.iter().zip(&templates).skip(index + 1) {
            if second.base == first.base {
                continue;
            }
            if first.matches_template(first_path, second_path).is_some()
                || second.matches_template(second_path, first_path).is_some()
            {
                let webhook = first.base == Base::Webhook || second.base == Base::Webhook;
                return Some(if webhook {
                    "WATS_WEBHOOK_PATH"
                } else {
                    "WATS_API_PREFIX"
                });
            }
        }
    }
    None
}

pub(crate) enum Resolution {
    Found {
        route: &'static Route,
        operation: &'static Operation,
        params: Params,
    },
    MethodNotAllowed {
        route: &'static Route,
    },
    NotFound,
}

/// Finds the route and operation for a request. Literal routes win over
/// parameterized ones because they are declared first.
pub(crate) fn resolve(paths: &Paths, method: &str, path: &str) -> Resolution {
    for route in active(paths) {
        let Some(params) = route.matches(paths, path) else {
            continue;
        };
        return match route.operations.iter().find(|op| op.method == method) {
            Some(operation) => Resolution::Found {
                route,
                operation,
                params: Params::new(params),
            },
            None => Resolution::MethodNotAllowed { route },
        };
    }
    Resolution::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> Paths {
        Paths {
            webhook: "/hook".into(),
            api_prefix: "/api".into(),
            group_routes: false,
        }
    }

    #[test]
    fn resolves_configured_paths_and_methods() {
        assert!(
            matches!(resolve(&paths(), "POST", "/hook"), Resolution::Found { operation, .. } if operation.handler == Handler::Webhook(webhook::Op::Receive))
        );
        assert!(
            matches!(resolve(&paths(), "GET", "/api/messages/text"), Resolution::MethodNotAllowed { route } if route.allow_header() == "POST")
        );
        assert!(matches!(
            resolve(&paths(), "GET", "/webhooks/whatsapp"),
            Resolution::NotFound
        ));
        assert!(matches!(
            resolve(&paths(), "GET", "/healthz/"),
            Resolution::NotFound
        ));
    }

    #[test]
    fn group_routes_exist_only_when_enabled() {
        assert!(matches!(
            resolve(&paths(), "GET", "/api/groups"),
            Resolution::NotFound
        ));
        let enabled = Paths {
            group_routes: true,
            ..paths()
        };
        assert!(
            matches!(resolve(&enabled, "DELETE", "/api/groups/G1/join-requests"), Resolution::Found { operation, .. } if operation.handler == Handler::Groups(groups::Op::RejectJoinRequests))
        );
        assert!(
            matches!(resolve(&enabled, "DELETE", "/api/groups/G1/invite-link"), Resolution::MethodNotAllowed { route } if route.allow_header() == "GET, POST")
        );
    }

    #[test]
    fn parameters_render_in_both_styles() {
        let route = Route {
            base: Base::Api,
            groups: false,
            suffix: "/messages/{messageId}",
            operations: &[],
        };
        assert_eq!(
            route.template(&paths(), ParamStyle::Colon),
            "/api/messages/:messageId"
        );
        assert_eq!(
            route.template(&paths(), ParamStyle::Braces),
            "/api/messages/{messageId}"
        );
        assert_eq!(
            route.matches(&paths(), "/api/messages/wamid.X"),
            Some(vec![("messageId", "wamid.X".into())])
        );
        assert_eq!(route.matches(&paths(), "/api/messages/"), None);
        assert_eq!(
            route.matches(&paths(), "/api/messages/wamid.a%2Bb+c"),
            Some(vec![("messageId", "wamid.a+b+c".into())])
        );
        assert_eq!(route.matches(&paths(), "/api/messages/%ff"), None);
    }

    #[test]
    fn settings_that_make_routes_collide_are_named() {
        assert_eq!(colliding_setting(&paths()), None);
        let healthz = Paths {
            webhook: "/healthz".into(),
            ..paths()
        };
        assert_eq!(colliding_setting(&healthz), Some("WATS_WEBHOOK_PATH"));
        let shadowed = Paths {
            webhook: "/api/messages/text".into(),
            ..paths()
        };
        assert_eq!(colliding_setting(&shadowed), Some("WATS_WEBHOOK_PATH"));
        let debug = Paths {
            api_prefix: "/debug/diagnostics/messages".into(),
            ..paths()
        };
        assert_eq!(colliding_setting(&debug), None);
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut ids: Vec<_> = ROUTES
            .iter()
            .flat_map(|r| r.operations)
            .map(|o| o.operation_id)
            .collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count);
    }

    #[test]
    fn flagged_operations_document_their_headers_and_conflicts() {
        let mut idempotent = Vec::new();
        for op in ROUTES.iter().flat_map(|r| r.operations) {
            let names: Vec<_> = op.parameters().map(|p| p.name).collect();
            // Each header once: declared by its flag, never also by hand.
            let count = |name| names.iter().filter(|n| **n == name).count();
            assert_eq!(count("Idempotency-Key"), usize::from(op.idempotent));
            assert_eq!(count("Prefer"), usize::from(op.accepts_async));
            if op.idempotent {
                idempotent.push(op.operation_id);
                // A reused key with another body, or one still in flight.
                assert!(op.errors.contains(&409), "{}", op.operation_id);
            }
        }
        // The sends, which a client retries, and nothing that reads.
        assert_eq!(idempotent, ["sendTextMessage", "sendMessage"]);
    }
}
