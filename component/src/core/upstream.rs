//! Failures of the services wats calls (Graph, and Meta's media host), as
//! data. They live in core because the one mapping of errors to HTTP
//! (`error.rs`) carries them; `graph/` produces them. Only Meta's
//! structured identifiers are kept: its free-form message may quote
//! account data.

use serde_json::{Map, Value};

/// Meta error codes that mean "slow down" (besides HTTP 429).
const RATE_LIMIT_CODES: &[i64] = &[4, 80007, 130429, 131048, 131056];

/// Meta's structured error details, safe to return and log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetaError {
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub kind: Option<String>,
    pub fbtrace_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum GraphError {
    /// Graph answered with a non-2xx status.
    Rejected {
        status: u16,
        meta: Option<MetaError>,
        retry_after: Option<String>,
    },
    /// Graph answered 2xx with a body that is not the JSON we expect.
    BadReply {
        status: u16,
    },
    Timeout,
    Unreachable,
}

impl GraphError {
    pub fn is_rate_limit(&self) -> bool {
        match self {
            GraphError::Rejected { status, meta, .. } => {
                *status == 429
                    || meta
                        .as_ref()
                        .and_then(|meta| meta.code)
                        .is_some_and(|code| RATE_LIMIT_CODES.contains(&code))
            }
            GraphError::BadReply { .. } | GraphError::Timeout | GraphError::Unreachable => false,
        }
    }

    pub fn retry_after(&self) -> Option<&str> {
        match self {
            GraphError::Rejected { retry_after, .. } if self.is_rate_limit() => {
                retry_after.as_deref()
            }
            GraphError::Rejected { .. }
            | GraphError::BadReply { .. }
            | GraphError::Timeout
            | GraphError::Unreachable => None,
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            GraphError::Timeout => "Graph request timed out.",
            GraphError::Unreachable => "Graph API unreachable.",
            GraphError::Rejected { .. } if self.is_rate_limit() => "Graph request rate limited.",
            GraphError::Rejected { .. } | GraphError::BadReply { .. } => "Graph request failed.",
        }
    }

    pub fn meta(&self) -> Option<&MetaError> {
        match self {
            GraphError::Rejected { meta, .. } => meta.as_ref(),
            GraphError::BadReply { .. } | GraphError::Timeout | GraphError::Unreachable => None,
        }
    }

    /// Adds metaCode, metaSubcode, metaType and fbtraceId to an error body.
    pub fn add_meta_fields(&self, error: &mut Value) {
        let (Some(meta), Some(body)) = (self.meta(), error.as_object_mut()) else {
            return;
        };
        insert_opt(body, "metaCode", meta.code.map(Value::from));
        insert_opt(body, "metaSubcode", meta.subcode.map(Value::from));
        insert_opt(body, "metaType", meta.kind.clone().map(Value::from));
        insert_opt(body, "fbtraceId", meta.fbtrace_id.clone().map(Value::from));
    }

    /// Graph's HTTP status, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Rejected { status, .. } | GraphError::BadReply { status } => Some(*status),
            GraphError::Timeout | GraphError::Unreachable => None,
        }
    }

    pub fn outcome(&self) -> &'static str {
        match self {
            GraphError::Rejected { .. } if self.is_rate_limit() => "rate_limited",
            GraphError::Rejected { .. } => "rejected",
            GraphError::BadReply { .. } => "bad_reply",
            GraphError::Timeout => "timeout",
            GraphError::Unreachable => "unreachable",
        }
    }
}

fn insert_opt(body: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        body.insert(key.into(), value);
    }
}

/// Why a media download was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaError {
    /// The metadata reply lacks the URL or has an unusable one.
    BadMetadata,
    /// Larger than the caller's cap (by the metadata or by the bytes).
    TooLarge { limit: u64 },
    /// The bytes are not as long as the metadata said.
    SizeMismatch,
    /// The bytes do not hash to the metadata's digest.
    DigestMismatch,
}

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaError::BadMetadata => f.write_str("Graph's media metadata has no usable URL."),
            MediaError::TooLarge { limit } => write!(f, "The media is larger than {limit} bytes."),
            MediaError::SizeMismatch => f.write_str("The media's size differs from its metadata."),
            MediaError::DigestMismatch => {
                f.write_str("The media's SHA-256 differs from its metadata.")
            }
        }
    }
}
