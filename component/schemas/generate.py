#!/usr/bin/env python3
# Writes send-message.json: the JSON Schemas of `POST {prefix}/messages` bodies
# (compose/ holds the validation it documents). Run after changing either:
#   python3 component/schemas/generate.py
# Patterns mirror the validator: no control characters (line breaks only in
# message bodies and captions), at least one visible character.
import json, os
CTRL = "\\u0000-\\u001f\\u007f-\\u009f"
CTRL_ML = "\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f"
# "No control character anywhere, and a visible one": a lookahead rather
# than `^[^…]*$`, whose `$` Python's re also matches before a final newline.
def line(n, desc=None):
    s = {"type":"string","minLength":1,"maxLength":n,"pattern":"^(?![\\s\\S]*["+CTRL+"])[\\s\\S]*\\S"}
    if desc: s["description"]=desc
    return s
def lines(n, desc=None):
    s = {"type":"string","minLength":1,"maxLength":n,"pattern":"^(?![\\s\\S]*["+CTRL_ML+"])[\\s\\S]*\\S"}
    if desc: s["description"]=desc
    return s
REF = "#/components/schemas/"
TO = {"type":"string","pattern":"^(\\+?[0-9]{5,32}|[A-Z]{2}\\.(ENT\\.)?[A-Za-z0-9]{1,128})$","description":"Recipient: a phone number in international format (or WhatsApp id), or a business-scoped user id (US.1349…) or parent one (US.ENT.1181…), which Graph gets as `recipient`."}
FROM = {"type":"string","pattern":"^[0-9]{1,32}$","description":"Which of the configured numbers (WATS_PHONE_NUMBER_ID) sends it; the first when absent."}
REPLY = {"$ref":REF+"Wamid","description":"Sends the message as a reply: Graph's context.message_id."}
MEDIA_ID = {"type":"string","pattern":"^[A-Za-z0-9_-]{1,128}$","description":"A media id from Graph's media upload."}
LINK = {"type":"string","maxLength":2048,"pattern":"^https?://[^\\s"+CTRL+"]+$"}

def obj(kind, required, props, desc):
    p = {"type":{"const":kind},"from":FROM}
    p.update(props)
    return {"type":"object","title":kind,"description":desc,"required":["type"]+required,"properties":p,"additionalProperties":False}

def media(kind, extra, desc):
    base = {"to":{"$ref":REF+"Recipient"},"mediaId":{"$ref":REF+"MediaId"},"link":{"$ref":REF+"MediaLink"},"replyToMessageId":REPLY}
    base.update(extra)
    o = obj(kind, ["to"], base, desc)
    o["oneOf"] = [{"required":["mediaId"],"not":{"required":["link"]}},{"required":["link"],"not":{"required":["mediaId"]}}]
    return o

nullable_bool = {"type":["boolean","null"]}
variants = []
variants.append({"type":"object","title":"graphNativeText","description":"Graph's own text message body.",
  "required":["messaging_product","to","type","text"],"additionalProperties":False,
  "properties":{"messaging_product":{"const":"whatsapp"},"recipient_type":{"const":"individual"},"from":FROM,"to":{"$ref":REF+"Recipient"},"type":{"const":"text"},
    "text":{"type":"object","required":["body"],"additionalProperties":False,"properties":{"body":lines(4096),"preview_url":nullable_bool}},
    "context":{"type":"object","required":["message_id"],"additionalProperties":False,"properties":{"message_id":{"$ref":REF+"Wamid"}}}}})
variants.append(obj("text",["to","text"],{"to":{"$ref":REF+"Recipient"},"text":lines(4096),"previewUrl":nullable_bool,"replyToMessageId":REPLY},"A text message."))
variants.append(media("image",{"caption":lines(1024)},"An image by media id or link."))
variants.append(media("video",{"caption":lines(1024)},"A video by media id or link."))
variants.append(media("audio",{"voice":{"type":["boolean","null"],"description":"true sends a voice message (audio.voice)."}},"An audio file by media id or link."))
variants.append(media("document",{"caption":lines(1024),"filename":line(240)},"A document by media id or link."))
variants.append(media("sticker",{},"A sticker by media id or link."))
variants.append(obj("location",["to","latitude","longitude"],{"to":{"$ref":REF+"Recipient"},"latitude":{"type":"number","minimum":-90,"maximum":90},"longitude":{"type":"number","minimum":-180,"maximum":180},"name":line(1000),"address":line(1000),"replyToMessageId":REPLY},"A location pin."))
variants.append(obj("reaction",["to","messageId","emoji"],{"to":{"$ref":REF+"Recipient"},"messageId":{"$ref":REF+"Wamid"},"emoji":{"type":"string","minLength":1,"maxLength":16,"description":"Exactly one emoji (one grapheme cluster)."}},"A reaction to a message."))
variants.append(obj("removeReaction",["to","messageId"],{"to":{"$ref":REF+"Recipient"},"messageId":{"$ref":REF+"Wamid"}},"Removes the reaction from a message."))
def texts_obj(names, required=()):
    o={"type":"object","additionalProperties":False,"properties":{n:line(256) for n in names}}
    if required: o["required"]=list(required)
    return o
contact = {"type":"object","required":["name"],"additionalProperties":False,"properties":{
  "name":dict(texts_obj(["formattedName","firstName","lastName","middleName","suffix","prefix"],["formattedName"]), minProperties=2, description="formattedName and at least one other name part."),
  "phones":{"type":"array","maxItems":20,"items":texts_obj(["phone","type","waId"])},
  "emails":{"type":"array","maxItems":20,"items":texts_obj(["email","type"])},
  "urls":{"type":"array","maxItems":20,"items":texts_obj(["url","type"])},
  "addresses":{"type":"array","maxItems":20,"items":texts_obj(["street","city","state","zip","country","countryCode","type"])},
  "org":texts_obj(["company","department","title"]),
  "birthday":{"type":"string","pattern":"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}}}
variants.append(obj("contacts",["to","contacts"],{"to":{"$ref":REF+"Recipient"},"contacts":{"type":"array","minItems":1,"maxItems":20,"items":contact},"replyToMessageId":REPLY},"Contact cards (camelCase in, snake_case to Graph)."))
H = line(60); F = line(60); B = lines(1024)
common = {"to":{"$ref":REF+"Recipient"},"replyToMessageId":REPLY}
def inter(kind, required, props, desc):
    p=dict(common); p.update(props); return obj(kind, ["to"]+required, p, desc)
variants.append(inter("interactiveButtons",["bodyText","buttons"],{"bodyText":B,"headerText":H,"footerText":F,
  "buttons":{"type":"array","minItems":1,"maxItems":3,"description":"Ids and titles unique.","items":{"type":"object","required":["id","title"],"additionalProperties":False,"properties":{"id":line(256),"title":line(20)}}}},"Up to 3 reply buttons."))
variants.append(inter("interactiveList",["bodyText","buttonText","sections"],{"bodyText":lines(4096),"headerText":H,"footerText":F,"buttonText":line(20),
  "sections":{"type":"array","minItems":1,"maxItems":10,"description":"At most 10 rows in all; row ids unique; a title on each section when there are several.","items":{"type":"object","required":["rows"],"additionalProperties":False,"properties":{"title":line(24),
    "rows":{"type":"array","minItems":1,"maxItems":10,"items":{"type":"object","required":["id","title"],"additionalProperties":False,"properties":{"id":line(200),"title":line(24),"description":line(72)}}}}}}},"A list message."))
variants.append(inter("interactiveCtaUrl",["bodyText","displayText","url"],{"bodyText":B,"headerText":H,"footerText":F,"displayText":line(20),"url":{"type":"string","maxLength":2000,"pattern":"^https?://[^\\s"+CTRL+"]+$"}},"A call-to-action URL button."))
variants.append(inter("interactiveProduct",["catalogId","productRetailerId"],{"bodyText":B,"footerText":F,"catalogId":line(64),"productRetailerId":line(256)},"One product from a catalog."))
variants.append(inter("interactiveProducts",["bodyText","headerText","catalogId","sections"],{"bodyText":B,"headerText":H,"footerText":F,"catalogId":line(64),
  "sections":{"type":"array","minItems":1,"maxItems":10,"description":"At most 30 products in all.","items":{"type":"object","required":["title","productRetailerIds"],"additionalProperties":False,"properties":{"title":line(24),"productRetailerIds":{"type":"array","minItems":1,"maxItems":30,"items":line(256)}}}}},"Several products from a catalog."))
variants.append(inter("interactiveCatalog",["bodyText"],{"bodyText":B,"footerText":F,"thumbnailProductRetailerId":line(256)},"The business's catalog."))
variants.append(inter("interactiveLocationRequest",["bodyText"],{"bodyText":B},"Asks the user to share a location."))
variants.append(inter("callPermissionRequest",["bodyText"],{"bodyText":B,"footerText":F},"Asks the user's permission to call."))
param = {"type":"object","required":["type"],"description":"text {text}; payload {payload}; coupon_code {couponCode}; currency {fallbackValue, code, amount1000}; date_time {fallbackValue}; image/video/document {mediaId|link, filename for documents}. Optional parameterName.",
  "properties":{"type":{"enum":["text","payload","coupon_code","currency","date_time","image","video","document"]},"parameterName":line(64)}}
component = {"type":"object","required":["type"],"additionalProperties":False,"properties":{"type":{"enum":["header","body","button"]},
  "subType":{"enum":["quick_reply","url","copy_code","flow","catalog"]},"index":{"type":"integer","minimum":0,"maximum":9},
  "parameters":{"type":"array","maxItems":100,"items":param}},"description":"subType and index are required for buttons and only for them."}
variants.append(obj("template",["to","name","language"],{"to":{"$ref":REF+"Recipient"},"name":{"type":"string","pattern":"^[a-z0-9_]{1,512}$"},
  "language":{"type":"string","pattern":"^[a-z]{2,3}(_[A-Za-z0-9]{2,4})?$"},"components":{"type":"array","maxItems":20,"items":component},"replyToMessageId":REPLY},"An approved message template."))
groups = [
 obj("groupText",["groupId","text"],{"groupId":{"$ref":REF+"GroupId"},"text":lines(4096),"previewUrl":nullable_bool,"replyToMessageId":REPLY},"Text to a group (needs WATS_ENABLE_GROUP_ROUTES)."),
 # Two variants titled groupPin: pinning needs expirationDays, unpinning refuses it.
 obj("groupPin",["groupId","messageId","action","expirationDays"],{"groupId":{"$ref":REF+"GroupId"},"messageId":{"$ref":REF+"Wamid"},"action":{"const":"pin"},"expirationDays":{"type":"integer","minimum":1,"maximum":30}},"Pins a group message for 1 to 30 days (needs WATS_ENABLE_GROUP_ROUTES)."),
 obj("groupPin",["groupId","messageId","action"],{"groupId":{"$ref":REF+"GroupId"},"messageId":{"$ref":REF+"Wamid"},"action":{"const":"unpin"}},"Unpins a group message (needs WATS_ENABLE_GROUP_ROUTES)."),
]
# Wamid and GroupId are in components.json.
schemas = {
    "SendMessage": {"oneOf": variants + groups},
    "Recipient": TO,
    "MediaId": MEDIA_ID,
    "MediaLink": LINK,
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "send-message.json")
with open(out, "w") as f:
    json.dump(schemas, f, ensure_ascii=False, separators=(",", ":"))
    f.write("\n")
