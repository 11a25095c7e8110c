//! Sends, read receipts, typing indicators and calling. SDP is validated
//! and forwarded, never negotiated.

use super::{graph_id, invalid, ManageError};
use crate::graph::EndpointFamily::{Calls, Messages};
use crate::graph::GraphCall;
use serde_json::json;

/// Sends a message body built by [`crate::compose::compose`].
pub fn send_message(
    phone_number_id: &str,
    payload: &serde_json::Value,
) -> Result<GraphCall, ManageError> {
    let phone = graph_id("phoneNumberId", phone_number_id)?;
    if payload["messaging_product"] != "whatsapp" {
        return Err(invalid("payload", "a composed message body"));
    }
    Ok(GraphCall::post(
        Messages,
        format!("{phone}/messages"),
        payload,
    ))
}

/// Marks an inbound message read, and optionally shows "typing…" to its
/// sender (for up to 25 s or until the next message).
pub fn mark_read(
    phone_number_id: &str,
    message_id: &str,
    typing_indicator: bool,
) -> Result<GraphCall, ManageError> {
    let phone = graph_id("phoneNumberId", phone_number_id)?;
    if !crate::core::ids::is_safe_wamid(message_id) {
        return Err(invalid("messageId", "a WhatsApp message id (wamid.…)"));
    }
    let mut body =
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": message_id});
    if typing_indicator {
        body["typing_indicator"] = json!({"type": "text"});
    }
    Ok(GraphCall::post(
        Messages,
        format!("{phone}/messages"),
        &body,
    ))
}

/// The largest SDP forwarded; real offers are a few KiB.
pub const MAX_SDP_BYTES: usize = 16 * 1024;

/// Checks that an SDP is one: `v=0` first, `type=value` lines, at least one
/// audio media section. Nothing is negotiated or rewritten.
pub fn sdp(text: &str) -> Result<&str, ManageError> {
    let expected = "an SDP with v=0, an o= and an m=audio line";
    if text.is_empty() || text.len() > MAX_SDP_BYTES {
        return Err(invalid("sdp", expected));
    }
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    if lines.next() != Some("v=0") {
        return Err(invalid("sdp", expected));
    }
    let (mut origin, mut audio) = (false, false);
    for line in lines.filter(|line| !line.is_empty()) {
        let bytes = line.as_bytes();
        let well_formed = bytes.len() >= 2
            && bytes[0].is_ascii_lowercase()
            && bytes[1] == b'='
            && !line.chars().any(|c| c.is_control() && c != '\t');
        if !well_formed {
            return Err(invalid("sdp", expected));
        }
        origin |= line.starts_with("o=");
        audio |= line.starts_with("m=audio ");
    }
    if origin && audio {
        Ok(text)
    } else {
        Err(invalid("sdp", expected))
    }
}

fn recipient(to: &str) -> Result<&str, ManageError> {
    crate::core::ids::is_phone_number(to)
        .then_some(to)
        .ok_or_else(|| invalid("to", "a phone number in international format"))
}

fn call_id(id: &str) -> Result<&str, ManageError> {
    crate::core::ids::is_prefixed_id("wacid.", id)
        .then_some(id)
        .ok_or_else(|| invalid("callId", "a WhatsApp call id (wacid.…)"))
}

/// Starts a business-initiated call with an SDP offer.
pub fn initiate_call(
    phone_number_id: &str,
    to: &str,
    offer: &str,
) -> Result<GraphCall, ManageError> {
    let phone = graph_id("phoneNumberId", phone_number_id)?;
    let body = json!({
        "messaging_product": "whatsapp",
        "to": recipient(to)?,
        "action": "connect",
        "session": {"sdp_type": "offer", "sdp": sdp(offer)?},
    });
    Ok(GraphCall::post(Calls, format!("{phone}/calls"), &body))
}

/// What to do with a user-initiated call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallAction {
    /// Answers early with an SDP so media can start connecting.
    PreAccept,
    Accept,
    Reject,
    Terminate,
}

impl CallAction {
    fn name(self) -> &'static str {
        match self {
            CallAction::PreAccept => "pre_accept",
            CallAction::Accept => "accept",
            CallAction::Reject => "reject",
            CallAction::Terminate => "terminate",
        }
    }
}

/// Pre-accept and accept carry an SDP answer; reject and terminate none.
pub fn call_action(
    phone_number_id: &str,
    id: &str,
    action: CallAction,
    answer: Option<&str>,
) -> Result<GraphCall, ManageError> {
    let phone = graph_id("phoneNumberId", phone_number_id)?;
    let mut body =
        json!({"messaging_product": "whatsapp", "call_id": call_id(id)?, "action": action.name()});
    match (action, answer) {
        (CallAction::PreAccept | CallAction::Accept, Some(answer)) => {
            body["session"] = json!({"sdp_type": "answer", "sdp": sdp(answer)?});
        }
        (CallAction::PreAccept | CallAction::Accept, None) => {
            return Err(invalid("sdp", "an SDP answer"));
        }
        (_, Some(_)) => return Err(invalid("sdp", "absent when rejecting or terminating")),
        (_, None) => {}
    }
    Ok(GraphCall::post(Calls, format!("{phone}/calls"), &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn sdp_is_checked_not_rewritten() {
        assert_eq!(sdp(OFFER), Ok(OFFER));
        assert!(sdp("v=0\no=- 1 2 IN IP4 0.0.0.0\nm=audio 9 RTP/AVP 0\n").is_ok());
        for bad in [
            "",
            "o=x\r\nv=0",
            "v=0\r\no=x\r\n",
            "v=0\r\no=x\r\nm=audio 9\r\nnot a line",
            "v=0\r\no=x\r\nm=video 9 x\r\n",
        ] {
            assert!(sdp(bad).is_err(), "{bad:?}");
        }
        assert!(sdp(&format!("{OFFER}a={}\r\n", "x".repeat(MAX_SDP_BYTES))).is_err());
    }

    #[test]
    fn calls_carry_their_action_and_session() {
        let call = initiate_call("1", "+15551230000", OFFER).unwrap();
        assert_eq!(call.body_json()["session"]["sdp_type"], "offer");
        let accept = call_action("1", "wacid.ABC=", CallAction::Accept, Some(OFFER)).unwrap();
        assert_eq!(accept.body_json()["action"], "accept");
        assert!(call_action("1", "wacid.ABC=", CallAction::Accept, None).is_err());
        assert!(call_action("1", "wacid.ABC=", CallAction::Reject, Some(OFFER)).is_err());
        assert!(call_action("1", "../x", CallAction::Terminate, None).is_err());
        let read = mark_read("1", "wamid.X1", true).unwrap();
        assert_eq!(read.body_json()["typing_indicator"]["type"], "text");
    }
}
