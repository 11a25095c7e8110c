//! State: everything the service keeps in the host's kv (the dedupe and
//! idempotency records, the message history, the outbox) and the send path
//! that records what it sends. Key schema: docs/kv-schema.md.

pub(crate) mod events;
pub(crate) mod idempotency;
pub(crate) mod outbox;
pub(crate) mod projections;
pub(crate) mod queue;
pub(crate) mod send;
pub(crate) mod store;
