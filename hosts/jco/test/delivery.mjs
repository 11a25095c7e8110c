// What the package tests and the bench share: synthetic settings, and a
// signed batched delivery (6 updates) from the conformance fixtures.

import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";

export const settings = {
  WATS_ACCESS_TOKEN: "test-access-token",
  WATS_APP_SECRET: "test-app-secret",
  WATS_VERIFY_TOKEN: "test-verify-token",
  WATS_SERVICE_BEARER_TOKEN: "test-service-token",
  WATS_PHONE_NUMBER_ID: "100000000000001",
};

export const delivery = readFileSync(
  new URL("../../../tests/conformance/fixtures/batched-messages.json", import.meta.url),
);

// The webhook POST of `body`, signed with the settings' app secret.
export function signed(body = delivery) {
  const signature = createHmac("sha256", settings.WATS_APP_SECRET).update(body).digest("hex");
  return new Request("http://127.0.0.1/webhooks/whatsapp", {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": `sha256=${signature}` },
    body,
  });
}
