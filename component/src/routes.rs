//! The route table: each route is declared once here, and this declaration
//! drives dispatch, the OpenAPI document, the `/status` inventory and the
//! metric route labels.

use crate::config::Paths;
use crate::groups::GroupAction;
use crate::manage::routes::ManageAction;

/// Where a route's path starts: fixed, or at a configured path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    Root,
    /// `WATS_WEBHOOK_PATH`.
    Webhook,
    /// `WATS_API_PREFIX`.
    Api,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
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
pub enum Handler {
    Healthz,
    Readyz,
    Status,
    Metrics,
    Diagnostics,
    OpenApi,
    WebhookVerify,
    WebhookReceive,
    SendText,
    SendMessage,
    MarkRead,
    ListMessages,
    GetMessage,
    GetOutboxItem,
    Group(GroupAction),
    Manage(ManageAction),
}

/// A query or header parameter, for the OpenAPI document.
pub struct Param {
    pub name: &'static str,
    pub location: &'static str,
    pub required: bool,
    /// What the service accepts: the document states the real constraints.
    pub schema: &'static str,
}

/// An OpenAPI link: where a response's value feeds another operation's
/// parameter (schemathesis follows these in its stateful phase).
pub struct Link {
    pub status: u16,
    pub operation_id: &'static str,
    pub parameter: &'static str,
    /// A runtime expression such as `$response.body#/outboxId`.
    pub value: &'static str,
}

pub struct Operation {
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

pub struct Route {
    pub base: Base,
    /// Exists only with `WATS_ENABLE_GROUP_ROUTES`.
    pub groups: bool,
    /// The path after the base; `{name}` matches one segment.
    pub suffix: &'static str,
    pub operations: &'static [Operation],
}

/// Bodies of Meta's webhook deliveries reach 3 MB; leave room above that.
pub const WEBHOOK_MAX_BODY: usize = 4 * 1024 * 1024;
pub const API_MAX_BODY: usize = 256 * 1024;
/// Uploads through the edge; Graph takes larger files directly.
pub const MEDIA_MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024;
/// The largest body any route accepts: a host may stop reading after this
/// many bytes plus one (the service then answers 413).
pub const MAX_BODY_BYTES: usize = WEBHOOK_MAX_BODY;

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

const SEND_PARAMS: &[Param] = &[
    Param {
        name: "Idempotency-Key",
        location: "header",
        required: false,
        schema: "IdempotencyKey",
    },
    Param {
        name: "Prefer",
        location: "header",
        required: false,
        schema: "Prefer",
    },
];
const SEND_ERRORS: &[u16] = &[400, 401, 409, 413, 502, 503];
/// A send's reply names the message (200) or the outbox item (202).
const SEND_LINKS: &[Link] = &[
    Link {
        status: 200,
        operation_id: "getMessage",
        parameter: "messageId",
        value: "$response.body#/messages/0/id",
    },
    Link {
        status: 202,
        operation_id: "getOutboxItem",
        parameter: "outboxId",
        value: "$response.body#/outboxId",
    },
];
const MESSAGE_ID: Param = Param {
    name: "messageId",
    location: "path",
    required: true,
    schema: "Wamid",
};
const GROUP_ID: Param = Param {
    name: "groupId",
    location: "path",
    required: true,
    schema: "GroupId",
};
const GRAPH_AFTER: Param = Param {
    name: "after",
    location: "query",
    required: false,
    schema: "GraphCursor",
};
const GRAPH_BEFORE: Param = Param {
    name: "before",
    location: "query",
    required: false,
    schema: "GraphCursor",
};
const GROUP_BODY_ERRORS: &[u16] = &[400, 401, 413, 502, 503];

/// A management operation: bearer, a curated Graph reply.
const fn manage_op(
    method: &'static str,
    action: ManageAction,
    operation_id: &'static str,
    summary: &'static str,
    success_schema: &'static str,
) -> Operation {
    op(
        method,
        Handler::Manage(action),
        Auth::Bearer,
        operation_id,
        summary,
    )
    .success(200, "application/json", success_schema)
    .errors(&[400, 401, 502, 503])
}
const MEDIA_ID: Param = Param {
    name: "mediaId",
    location: "path",
    required: true,
    schema: "GraphId",
};
const TEMPLATE_ID: Param = Param {
    name: "templateId",
    location: "path",
    required: true,
    schema: "GraphId",
};

/// A Groups operation: bearer, Graph's reply passed through.
const fn group_op(
    method: &'static str,
    action: GroupAction,
    operation_id: &'static str,
    summary: &'static str,
) -> Operation {
    op(
        method,
        Handler::Group(action),
        Auth::Bearer,
        operation_id,
        summary,
    )
    .success(200, "application/json", "GraphReply")
    .errors(&[400, 401, 502, 503])
}

const TEXT: &str = "text/plain";
const PROMETHEUS: &str = "text/plain; version=0.0.4";

pub static ROUTES: &[Route] = &[
    Route {
        base: Base::Root,
        groups: false,
        suffix: "/healthz",
        operations: &[op(
            "GET",
            Handler::Healthz,
            Auth::None,
            "getHealthz",
            "Liveness: the service answers.",
        )],
    },
    Route {
        base: Base::Root,
        groups: false,
        suffix: "/readyz",
        operations: &[op(
            "GET",
            Handler::Readyz,
            Auth::None,
            "getReadyz",
            "Readiness: the configuration is valid.",
        )
        .errors(&[503])],
    },
    Route {
        base: Base::Root,
        groups: false,
        suffix: "/status",
        operations: &[op(
            "GET",
            Handler::Status,
            Auth::Operator,
            "getStatus",
            "Redacted operator status snapshot.",
        )
        .success(200, "application/json", "Status")],
    },
    Route {
        base: Base::Root,
        groups: false,
        suffix: "/metrics",
        operations: &[op(
            "GET",
            Handler::Metrics,
            Auth::Operator,
            "getMetrics",
            "Prometheus text exposition.",
        )
        .success(200, PROMETHEUS, "Text")],
    },
    Route {
        base: Base::Root,
        groups: false,
        suffix: "/debug/diagnostics",
        operations: &[op(
            "GET",
            Handler::Diagnostics,
            Auth::Operator,
            "getDiagnostics",
            "Redacted support diagnostics snapshot.",
        )
        .success(200, "application/json", "Diagnostics")],
    },
    Route {
        base: Base::Root,
        groups: false,
        suffix: "/openapi.json",
        operations: &[op(
            "GET",
            Handler::OpenApi,
            Auth::None,
            "getOpenApi",
            "This OpenAPI 3.1 document.",
        )
        .success(200, "application/json", "AnyObject")],
    },
    Route {
        base: Base::Webhook,
        groups: false,
        suffix: "",
        operations: &[
            op(
                "GET",
                Handler::WebhookVerify,
                Auth::VerifyToken,
                "verifyWebhook",
                "Meta's webhook verification challenge.",
            )
            .params(&[
                Param {
                    name: "hub.mode",
                    location: "query",
                    required: true,
                    schema: "HubMode",
                },
                Param {
                    name: "hub.verify_token",
                    location: "query",
                    required: true,
                    schema: "NonEmptyString",
                },
                Param {
                    name: "hub.challenge",
                    location: "query",
                    required: true,
                    schema: "HubChallenge",
                },
            ])
            .success(200, TEXT, "Text")
            .errors(&[400, 403]),
            op(
                "POST",
                Handler::WebhookReceive,
                Auth::Signature,
                "receiveWebhook",
                "Receives a signed webhook delivery and dispatches every update in it.",
            )
            .params(&[Param {
                name: "X-Hub-Signature-256",
                location: "header",
                required: true,
                schema: "SignatureHeader",
            }])
            .body("WebhookDelivery", WEBHOOK_MAX_BODY)
            .success(200, "application/json", "WebhookAck")
            .errors(&[400, 401, 409, 413, 503]),
        ],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/messages/text",
        operations: &[op(
            "POST",
            Handler::SendText,
            Auth::Bearer,
            "sendTextMessage",
            "Sends a text message through Graph.",
        )
        .params(SEND_PARAMS)
        .body("SendText", API_MAX_BODY)
        .sends_async()
        .links(SEND_LINKS)
        .success(200, "application/json", "SendResult")
        .errors(SEND_ERRORS)],
    },
    // After /messages/text, so that a GET there is 405 rather than a lookup
    // of the id `text`.
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/messages",
        operations: &[
            op(
                "POST",
                Handler::SendMessage,
                Auth::Bearer,
                "sendMessage",
                "Sends a Graph-native text body or a composer body (media, location, reaction, contacts, interactive, template; group bodies with group routes on).",
            )
            .params(SEND_PARAMS)
            .body("SendMessage", API_MAX_BODY)
            .sends_async()
            .links(SEND_LINKS)
            .success(200, "application/json", "SendResult")
            .errors(SEND_ERRORS),
            op(
                "GET",
                Handler::ListMessages,
                Auth::Bearer,
                "listMessages",
                "Recorded messages, newest first.",
            )
            .params(&[
                Param {
                    name: "limit",
                    location: "query",
                    required: false,
                    schema: "PageLimit",
                },
                Param {
                    name: "cursor",
                    location: "query",
                    required: false,
                    schema: "PageCursor",
                },
            ])
            .success(200, "application/json", "MessagePage")
            .errors(&[400, 401, 503]),
        ],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/messages/{messageId}",
        operations: &[op(
            "GET",
            Handler::GetMessage,
            Auth::Bearer,
            "getMessage",
            "One recorded message by WhatsApp message id, with its statuses.",
        )
        .params(&[MESSAGE_ID])
        .success(200, "application/json", "MessageRecord")
        .errors(&[400, 401, 503])],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/messages/{messageId}/read",
        operations: &[op(
            "POST",
            Handler::MarkRead,
            Auth::Bearer,
            "markMessageRead",
            "Marks an inbound message read, optionally showing a typing indicator.",
        )
        .params(&[MESSAGE_ID])
        .optional_body("MarkRead", API_MAX_BODY)
        .success(200, "application/json", "GraphReply")
        .errors(&[400, 401, 413, 502, 503])],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/outbox/{outboxId}",
        operations: &[op(
            "GET",
            Handler::GetOutboxItem,
            Auth::Bearer,
            "getOutboxItem",
            "The state of a send queued with Prefer: respond-async.",
        )
        .params(&[Param {
            name: "outboxId",
            location: "path",
            required: true,
            schema: "OutboxId",
        }])
        .success(200, "application/json", "OutboxItem")
        .errors(&[400, 401, 503])],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/phone-number",
        operations: &[manage_op(
            "GET",
            ManageAction::PhoneNumberHealth,
            "getPhoneNumberHealth",
            "The business phone number's quality rating, name status and throughput.",
            "PhoneNumberHealth",
        )],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/templates",
        operations: &[manage_op(
            "GET",
            ManageAction::ListTemplates,
            "listTemplates",
            "The account's message templates (needs WATS_WABA_ID).",
            "TemplatePage",
        )
        .params(&[
            Param {
                name: "name",
                location: "query",
                required: false,
                schema: "TemplateName",
            },
            Param {
                name: "status",
                location: "query",
                required: false,
                schema: "TemplateStatus",
            },
            Param {
                name: "limit",
                location: "query",
                required: false,
                schema: "PageLimit",
            },
            GRAPH_AFTER,
        ])],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/templates/{templateId}",
        operations: &[manage_op(
            "GET",
            ManageAction::GetTemplate,
            "getTemplate",
            "One message template with its components.",
            "Template",
        )
        .params(&[TEMPLATE_ID])],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/media",
        operations: &[manage_op(
            "POST",
            ManageAction::UploadMedia,
            "uploadMedia",
            "Uploads a file (its media type as Content-Type) for sends by mediaId.",
            "MediaCreated",
        )
        .params(&[Param {
            name: "fileName",
            location: "query",
            required: false,
            schema: "MediaFileName",
        }])
        .raw_body("MediaBytes", MEDIA_MAX_UPLOAD_BYTES)
        .errors(&[400, 401, 413, 502, 503])],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/media/{mediaId}",
        operations: &[
            manage_op(
                "GET",
                ManageAction::GetMedia,
                "getMedia",
                "A media object's type, size and SHA-256 (never its signed URL).",
                "MediaInfo",
            )
            .params(&[MEDIA_ID]),
            manage_op(
                "DELETE",
                ManageAction::DeleteMedia,
                "deleteMedia",
                "Deletes an uploaded media object.",
                "Success",
            )
            .params(&[MEDIA_ID]),
        ],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/media/{mediaId}/content",
        operations: &[manage_op(
            "GET",
            ManageAction::DownloadMedia,
            "downloadMedia",
            "A media object's bytes, checked against its size and SHA-256 (up to 16 MiB).",
            "MediaBytes",
        )
        .params(&[MEDIA_ID])
        .success(200, "*/*", "MediaBytes")],
    },
    Route {
        base: Base::Api,
        groups: true,
        suffix: "/groups",
        operations: &[
            group_op("GET", GroupAction::List, "listGroups", "Lists the phone number's groups.")
                .params(&[
                    Param {
                        name: "limit",
                        location: "query",
                        required: false,
                        schema: "GraphPageLimit",
                    },
                    GRAPH_AFTER,
                    GRAPH_BEFORE,
                ]),
            group_op("POST", GroupAction::Create, "createGroup", "Creates a group.")
                .body("GroupCreate", API_MAX_BODY)
                .errors(GROUP_BODY_ERRORS),
        ],
    },
    Route {
        base: Base::Api,
        groups: true,
        suffix: "/groups/{groupId}",
        operations: &[
            group_op("GET", GroupAction::Get, "getGroup", "A group's details.")
                .params(&[GROUP_ID]),
            group_op("POST", GroupAction::Update, "updateGroup", "Updates a group's subject, description or join approval.")
                .params(&[GROUP_ID])
                .body("GroupUpdate", API_MAX_BODY)
                .errors(GROUP_BODY_ERRORS),
            group_op("DELETE", GroupAction::Delete, "deleteGroup", "Deletes a group.")
                .params(&[GROUP_ID]),
        ],
    },
    Route {
        base: Base::Api,
        groups: true,
        suffix: "/groups/{groupId}/invite-link",
        operations: &[
            group_op("GET", GroupAction::GetInviteLink, "getGroupInviteLink", "A group's invite link.")
                .params(&[GROUP_ID]),
            group_op("POST", GroupAction::ResetInviteLink, "resetGroupInviteLink", "Resets a group's invite link (POST, as Graph does).")
                .params(&[GROUP_ID]),
        ],
    },
    Route {
        base: Base::Api,
        groups: true,
        suffix: "/groups/{groupId}/participants",
        operations: &[group_op(
            "DELETE",
            GroupAction::RemoveParticipants,
            "removeGroupParticipants",
            "Removes up to 8 participants from a group.",
        )
        .params(&[GROUP_ID])
        .body("GroupParticipants", API_MAX_BODY)
        .errors(GROUP_BODY_ERRORS)],
    },
    Route {
        base: Base::Api,
        groups: true,
        suffix: "/groups/{groupId}/join-requests",
        operations: &[
            group_op("GET", GroupAction::ListJoinRequests, "listGroupJoinRequests", "A group's pending join requests.")
                .params(&[GROUP_ID, GRAPH_AFTER, GRAPH_BEFORE]),
            group_op("POST", GroupAction::ApproveJoinRequests, "approveGroupJoinRequests", "Approves join requests.")
                .params(&[GROUP_ID])
                .body("GroupJoinRequests", API_MAX_BODY)
                .errors(GROUP_BODY_ERRORS),
            group_op("DELETE", GroupAction::RejectJoinRequests, "rejectGroupJoinRequests", "Rejects join requests (DELETE, as Graph does).")
                .params(&[GROUP_ID])
                .body("GroupJoinRequests", API_MAX_BODY)
                .errors(GROUP_BODY_ERRORS),
        ],
    },
];

/// How a template's parameters are written: `:name` for `/status` and metric
/// labels, `{name}` for OpenAPI.
#[derive(Clone, Copy)]
pub enum ParamStyle {
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

    pub fn template(&self, paths: &Paths, style: ParamStyle) -> String {
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

    pub fn allow_header(&self) -> String {
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
                        params.push((name, crate::http::decode_segment(seg)?));
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

/// The routes that exist with these settings.
pub fn active(paths: &Paths) -> impl Iterator<Item = &'static Route> + '_ {
    ROUTES
        .iter()
        .filter(move |route| !route.groups || paths.group_routes)
}

/// The setting whose value makes one route's path reach another route (a
/// webhook path of `/healthz`, say), if any.
pub fn colliding_setting(paths: &Paths) -> Option<&'static str> {
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

pub enum Resolution {
    Found {
        route: &'static Route,
        operation: &'static Operation,
        params: Vec<(&'static str, String)>,
    },
    MethodNotAllowed {
        route: &'static Route,
    },
    NotFound,
}

/// Finds the route and operation for a request. Literal routes win over
/// parameterized ones because they are declared first.
pub fn resolve(paths: &Paths, method: &str, path: &str) -> Resolution {
    for route in active(paths) {
        let Some(params) = route.matches(paths, path) else {
            continue;
        };
        return match route.operations.iter().find(|op| op.method == method) {
            Some(operation) => Resolution::Found {
                route,
                operation,
                params,
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
            matches!(resolve(&paths(), "POST", "/hook"), Resolution::Found { operation, .. } if operation.handler == Handler::WebhookReceive)
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
            matches!(resolve(&enabled, "DELETE", "/api/groups/G1/join-requests"), Resolution::Found { operation, .. } if operation.handler == Handler::Group(GroupAction::RejectJoinRequests))
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
}
