//! The surfaces of the service, one module each: an `Op` enum naming its
//! operations, `run` dispatching them, and one function per operation
//! (parse the request, call state or Graph, shape the reply). Policies that
//! hold for many operations (auth, body limits, idempotency) are the
//! dispatcher's, in `app`.

pub(crate) mod console;
pub(crate) mod events;
pub(crate) mod groups;
pub(crate) mod history;
pub(crate) mod manage;
pub(crate) mod messages;
pub(crate) mod operator;
pub(crate) mod webhook;
