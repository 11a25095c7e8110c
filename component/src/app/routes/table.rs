//! The route table itself: every route the service has, in match order.

use super::{op, Auth, Base, Handler, Link, Operation, Param, Route};
use crate::api::{console, events, groups, history, manage, messages, operator, webhook};
use crate::core::limits::{API_MAX_BODY, MEDIA_MAX_UPLOAD_BYTES, WEBHOOK_MAX_BODY};

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
    which: manage::Op,
    operation_id: &'static str,
    summary: &'static str,
    success_schema: &'static str,
) -> Operation {
    op(
        method,
        Handler::Manage(which),
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
    which: groups::Op,
    operation_id: &'static str,
    summary: &'static str,
) -> Operation {
    op(
        method,
        Handler::Groups(which),
        Auth::Bearer,
        operation_id,
        summary,
    )
    .success(200, "application/json", "GraphReply")
    .errors(&[400, 401, 502, 503])
}

const TEXT: &str = "text/plain";
const PROMETHEUS: &str = "text/plain; version=0.0.4";

const HTML: &str = "text/html";
/// A page's size (1..100), on every paged listing.
const LIMIT: Param = Param {
    name: "limit",
    location: "query",
    required: false,
    schema: "PageLimit",
};

pub(crate) static ROUTES: &[Route] = &[
    Route {
        base: Base::Root,
        groups: false,
        suffix: "/",
        operations: &[op(
            "GET",
            Handler::Console(console::Op::Home),
            Auth::None,
            "getHome",
            "Leads to the operator console (302 to /console).",
        )
        .success(302, HTML, "Html")],
    },
    Route {
        base: Base::Root,
        groups: false,
        suffix: "/console",
        operations: &[op(
            "GET",
            Handler::Console(console::Op::Page),
            Auth::None,
            "getConsole",
            "The operator console: one static page, with no data of its own, that signs in with the service token and reads the bearer routes.",
        )
        .success(200, HTML, "Html")],
    },
    Route {
        base: Base::Root,
        groups: false,
        suffix: "/healthz",
        operations: &[op(
            "GET",
            Handler::Operator(operator::Op::Healthz),
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
            Handler::Operator(operator::Op::Readyz),
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
            Handler::Operator(operator::Op::Status),
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
            Handler::Operator(operator::Op::Metrics),
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
            Handler::Operator(operator::Op::Diagnostics),
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
                Handler::Webhook(webhook::Op::Verify),
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
                Handler::Webhook(webhook::Op::Receive),
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
            Handler::Messages(messages::Op::SendText),
            Auth::Bearer,
            "sendTextMessage",
            "Sends a text message through Graph.",
        )
        .body("SendText", API_MAX_BODY)
        .sends_async()
        .idempotent()
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
                Handler::Messages(messages::Op::SendMessage),
                Auth::Bearer,
                "sendMessage",
                "Sends a Graph-native text body or a composer body (media, location, reaction, contacts, interactive, template; group bodies with group routes on).",
            )
                .body("SendMessage", API_MAX_BODY)
            .sends_async()
            .idempotent()
        .idempotent()
            .links(SEND_LINKS)
            .success(200, "application/json", "SendResult")
            .errors(SEND_ERRORS),
            op(
                "GET",
                Handler::History(history::Op::ListMessages),
                Auth::Bearer,
                "listMessages",
                "Recorded messages, newest first.",
            )
            .params(&[
                LIMIT,
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
            Handler::History(history::Op::GetMessage),
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
            Handler::Messages(messages::Op::MarkRead),
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
        suffix: "/outbox",
        operations: &[op(
            "GET",
            Handler::History(history::Op::ListOutbox),
            Auth::Bearer,
            "listOutbox",
            "Sends queued with Prefer: respond-async, in one state, oldest first (no payloads).",
        )
        .params(&[
            Param {
                name: "state",
                location: "query",
                required: false,
                schema: "OutboxState",
            },
            LIMIT,
            Param {
                name: "cursor",
                location: "query",
                required: false,
                schema: "OutboxCursor",
            },
        ])
        .success(200, "application/json", "OutboxPage")
        .errors(&[400, 401, 503])],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/webhooks/deliveries",
        operations: &[op(
            "GET",
            Handler::History(history::Op::ListWebhookDeliveries),
            Auth::Bearer,
            "listWebhookDeliveries",
            "Meta's recent signed deliveries (the last 500, or 24 hours), newest first: when, how many updates of which kinds, what became of them and what Meta was answered; never an id or content.",
        )
        .params(&[Param {
            name: "limit",
            location: "query",
            required: false,
            schema: "WebhookLogLimit",
        }])
        .success(200, "application/json", "WebhookDeliveryPage")
        .errors(&[400, 401, 503])],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/outbox/{outboxId}",
        operations: &[op(
            "GET",
            Handler::History(history::Op::GetOutboxItem),
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
        suffix: "/events/deliveries",
        operations: &[op(
            "GET",
            Handler::Events(events::Op::ListDeliveries),
            Auth::Bearer,
            "listEventDeliveries",
            "Events for the application's endpoints in one state: pending ones by when they are due, finished ones newest first (no payloads, no URLs).",
        )
        .params(&[
            Param {
                name: "state",
                location: "query",
                required: false,
                schema: "EventState",
            },
            LIMIT,
            Param {
                name: "cursor",
                location: "query",
                required: false,
                schema: "EventCursor",
            },
        ])
        .success(200, "application/json", "EventDeliveryPage")
        .errors(&[400, 401, 503])],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/events/deliveries/{eventId}/retry",
        operations: &[op(
            "POST",
            Handler::Events(events::Op::RetryDelivery),
            Auth::Bearer,
            "retryEventDelivery",
            "Offers an event to its endpoint again now (a delivered one is sent again), with 3 more days to succeed.",
        )
        .params(&[Param {
            name: "eventId",
            location: "path",
            required: true,
            schema: "EventId",
        }])
        .success(202, "application/json", "EventDelivery")
        .errors(&[400, 401, 404, 503])],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/events/endpoints",
        operations: &[op(
            "GET",
            Handler::Events(events::Op::Endpoints),
            Auth::Bearer,
            "listEventEndpoints",
            "The application's endpoints: host, kinds, last success and failure, and this host's counts since it started.",
        )
        .success(200, "application/json", "EventEndpoints")
        .errors(&[401, 503])],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/drain",
        operations: &[op(
            "POST",
            Handler::Events(events::Op::Drain),
            Auth::Bearer,
            "drain",
            "Sends due queued sends and due events now, up to 50 of each: what a host's timer runs, for a host without one (Spin) and its cron.",
        )
        .success(200, "application/json", "DrainReport")
        .errors(&[401, 503])],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/phone-number",
        operations: &[manage_op(
            "GET",
            manage::Op::PhoneNumberHealth,
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
            manage::Op::ListTemplates,
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
            LIMIT,
            GRAPH_AFTER,
        ])],
    },
    Route {
        base: Base::Api,
        groups: false,
        suffix: "/templates/{templateId}",
        operations: &[manage_op(
            "GET",
            manage::Op::GetTemplate,
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
            manage::Op::UploadMedia,
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
                manage::Op::GetMedia,
                "getMedia",
                "A media object's type, size and SHA-256 (never its signed URL).",
                "MediaInfo",
            )
            .params(&[MEDIA_ID]),
            manage_op(
                "DELETE",
                manage::Op::DeleteMedia,
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
            manage::Op::DownloadMedia,
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
            group_op("GET", groups::Op::List, "listGroups", "Lists the phone number's groups.")
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
            group_op("POST", groups::Op::Create, "createGroup", "Creates a group.")
                .body("GroupCreate", API_MAX_BODY)
                .errors(GROUP_BODY_ERRORS),
        ],
    },
    Route {
        base: Base::Api,
        groups: true,
        suffix: "/groups/{groupId}",
        operations: &[
            group_op("GET", groups::Op::Get, "getGroup", "A group's details.")
                .params(&[GROUP_ID]),
            group_op("POST", groups::Op::Update, "updateGroup", "Updates a group's subject, description or join approval.")
                .params(&[GROUP_ID])
                .body("GroupUpdate", API_MAX_BODY)
                .errors(GROUP_BODY_ERRORS),
            group_op("DELETE", groups::Op::Delete, "deleteGroup", "Deletes a group.")
                .params(&[GROUP_ID]),
        ],
    },
    Route {
        base: Base::Api,
        groups: true,
        suffix: "/groups/{groupId}/invite-link",
        operations: &[
            group_op("GET", groups::Op::GetInviteLink, "getGroupInviteLink", "A group's invite link.")
                .params(&[GROUP_ID]),
            group_op("POST", groups::Op::ResetInviteLink, "resetGroupInviteLink", "Resets a group's invite link (POST, as Graph does).")
                .params(&[GROUP_ID]),
        ],
    },
    Route {
        base: Base::Api,
        groups: true,
        suffix: "/groups/{groupId}/participants",
        operations: &[group_op(
            "DELETE",
            groups::Op::RemoveParticipants,
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
            group_op("GET", groups::Op::ListJoinRequests, "listGroupJoinRequests", "A group's pending join requests.")
                .params(&[GROUP_ID, GRAPH_AFTER, GRAPH_BEFORE]),
            group_op("POST", groups::Op::ApproveJoinRequests, "approveGroupJoinRequests", "Approves join requests.")
                .params(&[GROUP_ID])
                .body("GroupJoinRequests", API_MAX_BODY)
                .errors(GROUP_BODY_ERRORS),
            group_op("DELETE", groups::Op::RejectJoinRequests, "rejectGroupJoinRequests", "Rejects join requests (DELETE, as Graph does).")
                .params(&[GROUP_ID])
                .body("GroupJoinRequests", API_MAX_BODY)
                .errors(GROUP_BODY_ERRORS),
        ],
    },
];
