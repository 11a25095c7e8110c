//! Graph: calls as data ([`call`]) and the client that runs them over the
//! host ([`client`]). Never the request context, never an HTTP error of the
//! service: failures are [`GraphError`](crate::core::upstream::GraphError).

pub(crate) mod call;
pub(crate) mod client;

pub use call::{parse_reply, CallBody, EndpointFamily, GraphCall, Multipart, Risk};
pub(crate) use client::GraphClient;
