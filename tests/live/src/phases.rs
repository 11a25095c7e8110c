//! What each phase does. Read-only before side-effecting before
//! destructive; deletes happen only in cleanup, and only of what this run
//! created.

use crate::campaign::{reply_id, Campaign, Phase, Stop};
use crate::manifest::{Cleanup, Kind};
use crate::settings::Domain;
use serde_json::{json, Map, Value};
use wats::manage::{assets, media, messaging, Page};

/// A minimal audio offer: validated and forwarded, never negotiated.
const SDP_OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n";

/// The smallest Flow JSON Graph accepts for a draft.
const FLOW_JSON: &str = r#"{"version":"7.0","screens":[{"id":"WATS_LIVE","title":"wats live check","terminal":true,"layout":{"type":"SingleColumnLayout","children":[{"type":"Footer","label":"Done","on-click-action":{"name":"complete","payload":{}}}]}}]}"#;

impl Campaign<'_> {
    pub fn run_phase(&mut self, phase: Phase) -> Result<(), Stop> {
        match phase {
            Phase::ReadOnly => self.read_only(),
            Phase::WebhookPassive => self.webhook_passive(),
            Phase::LowImpactSends => self.low_impact_sends(),
            Phase::MediaLifecycle => self.media_lifecycle(),
            Phase::TemplateMutations => self.template_mutations(),
            Phase::FlowDrafts => self.flow_drafts(),
            Phase::Calling => self.calling(),
            Phase::Cleanup => self.cleanup(),
        }
    }

    fn read_only(&mut self) -> Result<(), Stop> {
        let waba = self.settings.waba_id.0.clone();
        let phone = self.settings.phone_number_id.0.clone();
        self.graph("getWabaInfo", assets::waba_info(&waba), None)?;
        self.graph("listSubscribedApps", assets::subscribed_apps(&waba), None)?;
        let numbers = self.graph("listPhoneNumbers", assets::phone_numbers(&waba), None)?;
        let listed = lists(&numbers, &phone);
        let info = self.graph("getPhoneNumberInfo", assets::phone_number(&phone), None)?;
        if !listed || info["id"] != phone.as_str() {
            return Err(Stop::Abort(
                "the phone number is not one of the WABA's: not the intended test asset".into(),
            ));
        }
        // Never with SIP credentials: the campaign does not need them.
        self.graph(
            "getPhoneNumberSettings",
            assets::phone_number_settings(&phone, false),
            None,
        )?;
        self.graph("getBusinessProfile", assets::business_profile(&phone), None)?;
        self.graph(
            "getCommerceSettings",
            assets::commerce_settings(&phone),
            None,
        )?;
        let query = assets::TemplateQuery {
            limit: Some(5),
            ..Default::default()
        };
        let templates = self.graph(
            "listMessageTemplates",
            assets::templates(&waba, &query),
            None,
        )?;
        if let Some(id) = first_id(&templates) {
            self.graph("getMessageTemplate", assets::template(&id), Some(&id))?;
        }
        let flows = self.graph("listFlows", assets::flows(&waba), None)?;
        if let Some(id) = first_id(&flows) {
            self.graph("getFlow", assets::flow(&id), Some(&id))?;
            self.graph("getFlowAssets", assets::flow_assets(&id), Some(&id))?;
        }
        Ok(())
    }

    fn webhook_passive(&mut self) -> Result<(), Stop> {
        let s = self.settings;
        let (url, secret, verify) = match (&s.webhook_url, &s.app_secret, &s.verify_token) {
            (Some(url), Some(secret), Some(verify)) => {
                (url.0.clone(), secret.0.clone(), verify.0.clone())
            }
            _ => return Err(Stop::Fail("webhook settings missing".into())),
        };
        let challenge = format!("{}", crate::manifest::now_seconds());
        let verify_url = format!(
            "{url}?hub.mode=subscribe&hub.verify_token={}&hub.challenge={challenge}",
            wats::manage::query_value(&verify)
        );
        let request = wats::OutgoingRequest {
            method: "GET".into(),
            url: verify_url,
            headers: vec![],
            body: vec![],
        };
        let answer = self.fetch("webhookVerify", "webhook", request)?;
        if answer.status != 200 || answer.body != challenge.as_bytes() {
            return Err(Stop::Fail(
                "webhookVerify: the challenge was not echoed".into(),
            ));
        }
        // A status update for a message id of this run: signed here as Meta
        // would sign it, handled by the service like any other.
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": s.waba_id.0, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "0", "phone_number_id": s.phone_number_id.0},
            "statuses": [{"id": format!("wamid.{}", s.prefix.replace('-', "")), "status": "delivered", "timestamp": challenge, "recipient_id": "0"}]
        }}]}]})
        .to_string()
        .into_bytes();
        let request = wats::OutgoingRequest {
            method: "POST".into(),
            url,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-hub-signature-256".into(), wats::sign(&secret, &body)),
            ],
            body,
        };
        let answer = self.fetch("webhookSignedPost", "webhook", request)?;
        if answer.status != 200 {
            return Err(Stop::Fail(
                "webhookSignedPost: the signed delivery was not acknowledged".into(),
            ));
        }
        Ok(())
    }

    fn send(&mut self, step: &str, body: Value) -> Result<Option<String>, Stop> {
        let composed = wats::compose::compose(body.as_object().expect("an object"), false)
            .map_err(|error| Stop::Fail(format!("{step}: {}", error.message())))?;
        let phone = self.settings.phone_number_id.0.clone();
        let reply = self.graph(
            step,
            messaging::send_message(&phone, &composed.payload),
            None,
        )?;
        self.messages_sent += 1;
        Ok(reply["messages"][0]["id"].as_str().map(Into::into))
    }

    fn low_impact_sends(&mut self) -> Result<(), Stop> {
        let to = self
            .settings
            .recipient
            .as_ref()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let mark = format!("wats live check {}", self.settings.run_id);
        self.sent_message =
            self.send("sendText", json!({"type": "text", "to": to, "text": mark}))?;
        self.send("sendLocation", json!({"type": "location", "to": to, "latitude": 0.0, "longitude": 0.0, "name": "wats live check"}))?;
        self.send("sendContacts", json!({"type": "contacts", "to": to, "contacts": [{"name": {"formattedName": "wats live check", "firstName": "wats"}}]}))?;
        self.send("sendInteractiveButtons", json!({"type": "interactiveButtons", "to": to, "bodyText": mark, "buttons": [{"id": "ok", "title": "OK"}]}))?;
        if let Some(parent) = self.sent_message.clone() {
            self.send(
                "sendReaction",
                json!({"type": "reaction", "to": to, "messageId": parent, "emoji": "👍"}),
            )?;
        }
        if let Some((name, language)) = self.settings.template.clone() {
            self.send(
                "sendTemplate",
                json!({"type": "template", "to": to, "name": name, "language": language}),
            )?;
        }
        if self.settings.allows(Domain::Commerce) {
            self.send(
                "sendCatalog",
                json!({"type": "interactiveCatalog", "to": to, "bodyText": mark}),
            )?;
        } else {
            self.refused_step("sendCatalog", Domain::Commerce);
        }
        if let Some(inbound) = self.settings.inbound_message_id.clone() {
            let phone = self.settings.phone_number_id.0.clone();
            self.graph(
                "markMessageAsRead",
                messaging::mark_read(&phone, &inbound.0, false),
                Some(&inbound.0),
            )?;
            self.graph(
                "indicateTyping",
                messaging::mark_read(&phone, &inbound.0, true),
                Some(&inbound.0),
            )?;
        }
        Ok(())
    }

    fn refused_step(&mut self, step: &str, domain: Domain) {
        let mut line = Map::new();
        line.insert("refused".into(), domain.flag().into());
        self.note(step, line);
    }

    fn media_lifecycle(&mut self) -> Result<(), Stop> {
        let s = self.settings;
        let (max_upload, max_download) = (
            s.max_upload_bytes.unwrap_or(0),
            s.max_download_bytes.unwrap_or(0),
        );
        let (bytes, mime_type, file_name) = match &s.media_file {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|_| Stop::Fail("WATS_TEST_MEDIA_FILE cannot be read".into()))?;
                (bytes, mime_of(path), "wats-live-fixture")
            }
            None => (
                media::TINY_PNG.to_vec(),
                "image/png",
                "wats-live-fixture.png",
            ),
        };
        if bytes.len() as u64 > max_upload {
            return Err(Stop::Fail(
                "the media fixture is larger than WATS_MAX_UPLOAD_BYTES".into(),
            ));
        }
        let phone = s.phone_number_id.0.clone();
        let uploaded = self.graph(
            "uploadMedia",
            media::upload_media(&phone, mime_type, file_name, &bytes),
            None,
        )?;
        let id = reply_id(&uploaded, "uploadMedia")?;
        self.created(Kind::Media, &id, None, "media", "deleteMedia")?;
        let metadata = self.graph("downloadMedia", media::media(&id), Some(&id))?;
        let info =
            media::MediaInfo::from_reply(&metadata).map_err(|e| Stop::Fail(e.to_string()))?;
        let request = info
            .download_request(&s.access_token.0, max_download, &s.base_url)
            .map_err(|e| Stop::Fail(e.to_string()))?;
        let download = self.fetch("downloadMediaBytes", "media", request)?;
        if download.status != 200 {
            return Err(Stop::Fail("downloadMediaBytes: not 200".into()));
        }
        info.verify(&download.body, max_download)
            .map_err(|e| Stop::Fail(e.to_string()))?;
        if download.body != bytes {
            return Err(Stop::Fail(
                "downloadMediaBytes: not the uploaded bytes".into(),
            ));
        }
        match (&s.recipient, s.allows(Domain::Sends)) {
            (Some(to), true) if mime_type.starts_with("image/") => {
                let to = to.0.clone();
                self.send(
                    "sendImage",
                    json!({"type": "image", "to": to, "mediaId": id}),
                )?;
            }
            _ => self.refused_step("sendImage", Domain::Sends),
        }
        Ok(())
    }

    fn template_mutations(&mut self) -> Result<(), Stop> {
        let waba = self.settings.waba_id.0.clone();
        let name = format!("{}_utility", self.settings.prefix.replace('-', "_"));
        let components = json!([{"type": "BODY", "text": "wats live check"}]);
        let new = assets::NewTemplate {
            name: &name,
            language: "en_US",
            category: "UTILITY",
            components: &components,
        };
        let created = self.graph(
            "createMessageTemplate",
            assets::create_template(&waba, &new),
            None,
        )?;
        let id = reply_id(&created, "createMessageTemplate")?;
        self.created(
            Kind::Template,
            &id,
            Some(name.clone()),
            "templates",
            "deleteMessageTemplate",
        )?;
        let template = self.graph("getMessageTemplate", assets::template(&id), Some(&id))?;
        if !self.template_listed(&waba, &name, &id)? {
            return Err(Stop::Fail(
                "listMessageTemplates: the new template is not listed".into(),
            ));
        }
        // Meta edits only templates that finished review.
        if matches!(
            template["status"].as_str(),
            Some("APPROVED" | "REJECTED" | "PAUSED")
        ) {
            let components = json!([{"type": "BODY", "text": "wats live check, edited"}]);
            self.graph(
                "updateMessageTemplate",
                assets::update_template(&id, None, Some(&components)),
                Some(&id),
            )?;
        } else {
            let mut line = Map::new();
            line.insert(
                "skipped".into(),
                "the template is still under review".into(),
            );
            self.note("updateMessageTemplate", line);
        }
        Ok(())
    }

    fn flow_drafts(&mut self) -> Result<(), Stop> {
        let waba = self.settings.waba_id.0.clone();
        let name = format!("{}-flow", self.settings.prefix);
        let created = self.graph(
            "createFlow",
            assets::create_flow(&waba, &name, &["OTHER"]),
            None,
        )?;
        let id = reply_id(&created, "createFlow")?;
        self.created(Kind::Flow, &id, Some(name.clone()), "flows", "deleteFlow")?;
        self.graph("getFlow", assets::flow(&id), Some(&id))?;
        let renamed = format!("{name}-renamed");
        self.graph(
            "updateFlowMetadata",
            assets::update_flow_metadata(&id, Some(&renamed), None),
            Some(&id),
        )?;
        self.graph(
            "updateFlowJson",
            assets::update_flow_json(&id, FLOW_JSON.as_bytes()),
            Some(&id),
        )?;
        self.graph("getFlowAssets", assets::flow_assets(&id), Some(&id))?;
        if self.settings.allows(Domain::FlowPublish) {
            self.graph("publishFlow", assets::publish_flow(&id), Some(&id))?;
            // A published Flow cannot be deleted, only deprecated, which is
            // irreversible: left to the operator.
            let index = self.manifest.resources.len() - 1;
            self.manifest.resources[index].cleanup_action = "deprecateFlow (irreversible; by hand)";
            self.manifest
                .set_cleanup(index, Cleanup::Manual)
                .map_err(|e| Stop::Abort(e.to_string()))?;
        } else {
            self.refused_step("publishFlow", Domain::FlowPublish);
        }
        Ok(())
    }

    fn calling(&mut self) -> Result<(), Stop> {
        let to = self
            .settings
            .recipient
            .as_ref()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let phone = self.settings.phone_number_id.0.clone();
        let reply = self.graph(
            "initiateCall",
            messaging::initiate_call(&phone, &to, SDP_OFFER),
            None,
        )?;
        let id = reply["calls"][0]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Stop::Fail("initiateCall: the reply has no call id".into()))?;
        self.created(Kind::Call, &id, None, "calls", "terminateCall")?;
        // Terminated at once by cleanup, which comes next; accepting needs
        // WebRTC and its own flag, and is not exercised here.
        Ok(())
    }

    /// Undoes what this run created, calls first, then re-reads the touched
    /// families to confirm nothing is left.
    fn cleanup(&mut self) -> Result<(), Stop> {
        let waba = self.settings.waba_id.0.clone();
        let phone = self.settings.phone_number_id.0.clone();
        let mut failed = 0;
        for kind in [Kind::Call, Kind::Media, Kind::Template, Kind::Flow] {
            for index in 0..self.manifest.resources.len() {
                let resource = self.manifest.resources[index].clone();
                if resource.kind != kind || resource.cleanup != Cleanup::Pending {
                    continue;
                }
                let id = resource.id.as_str();
                let (step, call) = match kind {
                    Kind::Call => (
                        "terminateCall",
                        messaging::call_action(&phone, id, messaging::CallAction::Terminate, None),
                    ),
                    Kind::Media => ("deleteMedia", media::delete_media(id)),
                    Kind::Template => (
                        "deleteMessageTemplate",
                        assets::delete_template(
                            &waba,
                            resource.name.as_deref().unwrap_or_default(),
                            id,
                        ),
                    ),
                    Kind::Flow => ("deleteFlow", assets::delete_flow(id)),
                };
                let outcome = match self.graph(step, call, Some(id)) {
                    Ok(_) => Cleanup::Done,
                    Err(_) => {
                        failed += 1;
                        Cleanup::Failed
                    }
                };
                self.manifest
                    .set_cleanup(index, outcome)
                    .map_err(|e| Stop::Abort(e.to_string()))?;
            }
        }
        self.verify_cleanup(&waba)?;
        if failed > 0 {
            return Err(Stop::Abort(format!(
                "cleanup failed for {failed} resource(s); the manifest lists them"
            )));
        }
        Ok(())
    }

    /// Whether the account's templates of this name include this id.
    fn template_listed(&mut self, waba: &str, name: &str, id: &str) -> Result<bool, Stop> {
        let query = assets::TemplateQuery {
            name: Some(name),
            ..Default::default()
        };
        let listed = self.graph(
            "listMessageTemplates",
            assets::templates(waba, &query),
            None,
        )?;
        Ok(lists(&listed, id))
    }

    fn verify_cleanup(&mut self, waba: &str) -> Result<(), Stop> {
        let done: Vec<_> = self
            .manifest
            .resources
            .iter()
            .filter(|r| r.cleanup == Cleanup::Done)
            .cloned()
            .collect();
        for resource in done {
            let still_there = match resource.kind {
                Kind::Template => {
                    let name = resource.name.as_deref().unwrap_or_default();
                    self.template_listed(waba, name, &resource.id)?
                }
                Kind::Flow => {
                    let listed = self.graph("listFlows", assets::flows(waba), None)?;
                    lists(&listed, &resource.id)
                }
                Kind::Media => self
                    .graph(
                        "downloadMedia",
                        media::media(&resource.id),
                        Some(&resource.id),
                    )
                    .is_ok(),
                Kind::Call => false,
            };
            if still_there {
                return Err(Stop::Abort(format!(
                    "a deleted {} is still listed",
                    resource.kind.name()
                )));
            }
        }
        Ok(())
    }
}

/// Whether a listing holds the object with this id.
fn lists(reply: &Value, id: &str) -> bool {
    Page::from_reply(reply)
        .data
        .iter()
        .any(|item| item["id"] == id)
}

fn first_id(reply: &Value) -> Option<String> {
    Page::from_reply(reply)
        .data
        .first()
        .and_then(|item| item["id"].as_str())
        .filter(|id| wats::config::is_numeric_id(id))
        .map(Into::into)
}

fn mime_of(path: &std::path::Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "ogg" => "audio/ogg",
        _ => "text/plain",
    }
}
