//! The application: the route table (declared once; it drives dispatch,
//! the OpenAPI document, `/status` and metric labels), the dispatcher that
//! applies each declaration's policies, and the OpenAPI document. Nothing
//! but `lib.rs` and `component.rs` imports this layer.

pub(crate) mod dispatch;
#[cfg(test)]
mod layers;
pub(crate) mod openapi;
pub(crate) mod routes;
pub(crate) mod schemas;
