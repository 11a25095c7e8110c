// The package's own seams: what the conformance suite does not reach.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createWats, createWatsServiceApp, createWatsServiceOpenApiDocument, memoryKv, WatsServiceError } from "../index.js";
import { delivery, settings, signed } from "./delivery.mjs";

test("concurrent copies of a delivery dispatch each update once", async () => {
  // Each kv call waits a little, so the requests' calls interleave.
  const memory = memoryKv();
  const slow = { name: "memory" };
  for (const method of ["get", "set", "setIfAbsent", "remove", "listKeys"]) {
    slow[method] = async (...args) => {
      await new Promise((resolve) => setTimeout(resolve, 2));
      return memory[method](...args);
    };
  }
  const updates = [];
  const wats = createWats({ config: settings, kv: slow, onUpdate: (update) => updates.push(update.json) });
  const replies = await Promise.all(
    Array.from({ length: 8 }, async () => {
      const response = await wats.handle(signed(delivery));
      return { status: response.status, body: await response.json() };
    }),
  );
  // Each copy is acknowledged, or told 409 update_in_flight when another
  // copy holds one of its updates and has not finished it (Meta retries).
  for (const { status, body } of replies) {
    assert.ok(status === 200 || (status === 409 && body.error.code === "update_in_flight"), JSON.stringify(body));
  }
  // Meta's retry, once the copies are done: every update is a duplicate.
  const retry = await (await wats.handle(signed(delivery))).json();
  const received = retry.received;
  assert.ok(received > 1);
  assert.equal(retry.duplicates, received);
  assert.equal(updates.length, received);
  assert.equal(new Set(updates).size, received, "no update twice");
});

test("a kv with batch is called once per phase of a delivery", async () => {
  const memory = memoryKv();
  const calls = [];
  const counting = { name: "memory", listKeys: memory.listKeys };
  for (const method of ["get", "set", "setIfAbsent", "remove", "batch"]) {
    counting[method] = (...args) => {
      calls.push(method);
      return memory[method](...args);
    };
  }
  const wats = createWats({ config: settings, kv: counting, onUpdate: () => {} });
  const first = await (await wats.handle(signed(delivery))).json();
  assert.ok(first.dispatched > 1, JSON.stringify(first));
  // Claims (with the records), projections, done marks (with the
  // delivery's line in the console's log).
  assert.deepEqual(calls, ["batch", "batch", "batch"]);
  calls.length = 0;
  const retry = await (await wats.handle(signed(delivery))).json();
  assert.equal(retry.duplicates, first.dispatched);
  assert.deepEqual(calls, ["batch", "batch"], "a redelivery is two calls: its claims, and its line in the log");
});

test("a store that throws is answered 503, never 500, and its message stays out", async () => {
  const failing = { name: "broken" };
  for (const method of ["get", "set", "setIfAbsent", "remove", "listKeys"]) {
    failing[method] = async () => {
      throw new Error("connection to kv-canary-host refused");
    };
  }
  const lines = [];
  const wats = createWats({ config: settings, kv: failing, log: (line) => lines.push(line) });
  const response = await wats.handle(signed(delivery));
  assert.equal(response.status, 503);
  const text = await response.text();
  assert.match(text, /"code":"store_unavailable"/);
  assert.ok(!text.includes("kv-canary-host") && !lines.join("\n").includes("kv-canary-host"));
});

test("a Graph call that cannot connect is a 502 with the service's envelope", async () => {
  const wats = createWats({
    config: settings,
    fetch: async () => {
      throw new TypeError("fetch failed: getaddrinfo graph-canary-host");
    },
    log: () => {},
  });
  const response = await wats.handle(
    new Request("http://127.0.0.1/api/messages/text", {
      method: "POST",
      headers: { authorization: `Bearer ${settings.WATS_SERVICE_BEARER_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ to: "15551230000", text: "hello" }),
    }),
  );
  assert.equal(response.status, 502);
  const body = await response.json();
  assert.equal(body.error.code, "graph_request_failed");
  assert.ok(!JSON.stringify(body).includes("graph-canary-host"));
});

test("an oversized body is refused from its first 4 MiB", async () => {
  const wats = createWats({ config: settings, log: () => {} });
  let pulled = 0;
  const chunk = new Uint8Array(1 << 20);
  const endless = new ReadableStream({
    pull(controller) {
      pulled += chunk.length;
      controller.enqueue(chunk);
    },
  });
  const response = await wats.handle(
    new Request("http://127.0.0.1/webhooks/whatsapp", { method: "POST", body: endless, duplex: "half" }),
  );
  assert.equal(response.status, 413);
  assert.ok(pulled <= 6 << 20, `read ${pulled} bytes of an endless body`);
});

test("wrong options fail construction with the reference's codes, naming the option", () => {
  const cases = [
    [{ kv: { listKeys() {}, get() {} } }, "invalid_persistence", "kv.set"],
    [{ kv: { get() {}, set() {}, setIfAbsent() {}, remove() {} } }, "invalid_persistence", "kv.listKeys"],
    [{ kv: "sqlite://CANARY-DB-URL" }, "invalid_persistence", "kv"],
    [{ fetch: "CANARY-FETCH" }, "invalid_transport", "fetch"],
    [{ onUpdate: "CANARY-HANDLER" }, "invalid_config", "onUpdate"],
    [{ config: 42 }, "invalid_config", "config"],
    [{ telemetrySink: { incrementCounter() {} } }, "invalid_config", "telemetrySink.recordHistogram"],
  ];
  for (const [options, code, key] of cases) {
    assert.throws(
      () => createWats({ config: settings, ...options }),
      (error) =>
        error instanceof WatsServiceError &&
        error.code === code &&
        error.key === key &&
        !error.message.includes("CANARY"),
      `${code} ${key}`,
    );
  }
  // A kv with a batch needs no single ops; without a store is allowed.
  createWats({ config: settings, kv: { listKeys() {}, batch() {} } });
  createWats({ config: settings, kv: null });
});

test("wrong WATS_* settings fail construction with the reference's codes, naming the key only", () => {
  const { WATS_ACCESS_TOKEN: _, ...withoutToken } = settings;
  const cases = [
    [withoutToken, "invalid_secret", "WATS_ACCESS_TOKEN"],
    [{ ...settings, WATS_APP_SECRET: " " }, "invalid_secret", "WATS_APP_SECRET"],
    [{ ...settings, WATS_WEBHOOK_PATH: "CANARY-no-slash" }, "invalid_path", "WATS_WEBHOOK_PATH"],
    [{ ...settings, WATS_GRAPH_API_VERSION: "CANARY-version" }, "invalid_config", "WATS_GRAPH_API_VERSION"],
    [{ ...settings, WATS_EVENTS_ENDPOINTS: "https://CANARY.example/secret-path" }, "invalid_secret", "WATS_EVENTS_SIGNING_SECRET"],
  ];
  for (const [config, code, key] of cases) {
    assert.throws(
      () => createWats({ config, log: () => {} }),
      (error) => error instanceof WatsServiceError && error.code === code && error.key === key && !error.message.includes("CANARY"),
      `${code} ${key}`,
    );
  }
});

test("createWatsServiceOpenApiDocument is the document the app serves, without secrets", async () => {
  const profile = { format: "wats-profile/1", settings: { WATS_API_PREFIX: "/v2" } };
  const document = createWatsServiceOpenApiDocument(profile);
  assert.equal(document.openapi, "3.1.0");
  assert.ok("/v2/messages" in document.paths && !("/v2/groups" in document.paths), Object.keys(document.paths).join(" "));
  const withGroups = createWatsServiceOpenApiDocument(profile, { enableGroupRoutes: true });
  assert.ok("/v2/groups" in withGroups.paths);
  const app = createWats({ config: { ...settings, WATS_API_PREFIX: "/v2" }, log: () => {} });
  const served = await (await app.fetch(new Request("http://127.0.0.1/openapi.json"))).json();
  assert.deepEqual(served, document);
  assert.doesNotMatch(JSON.stringify(document), new RegExp(settings.WATS_SERVICE_BEARER_TOKEN));
  assert.throws(
    () => createWatsServiceOpenApiDocument({ settings: { WATS_API_PREFIX: "CANARY" } }),
    (error) => error instanceof WatsServiceError && error.code === "invalid_path" && error.key === "WATS_API_PREFIX" && !error.message.includes("CANARY"),
  );
  assert.throws(
    () => createWatsServiceOpenApiDocument(null),
    (error) => error instanceof WatsServiceError && error.code === "invalid_profile",
  );
});

test("a runtime without JSPI is told what it needs at construction", () => {
  const suspending = WebAssembly.Suspending;
  delete WebAssembly.Suspending;
  try {
    assert.throws(
      () => createWats({ config: settings }),
      (error) => error instanceof WatsServiceError && error.key === "runtime" && /Node >= 24/.test(error.message),
    );
  } finally {
    WebAssembly.Suspending = suspending;
  }
});

test("with the embedder's onUpdate, WATS_ECHO_REPLY and WATS_LOG_WEBHOOK_EVENTS do nothing", async () => {
  const flags = { ...settings, WATS_ECHO_REPLY: "1", WATS_LOG_WEBHOOK_EVENTS: "1" };
  for (const own of [true, false]) {
    const graphCalls = [];
    const logs = [];
    const wats = createWats({
      config: flags,
      fetch: async (url) => {
        graphCalls.push(url);
        return Response.json({ messaging_product: "whatsapp", messages: [{ id: "wamid.ECHO" }] });
      },
      onUpdate: own ? () => {} : undefined,
      log: (line) => logs.push(JSON.parse(line)),
    });
    const ack = await (await wats.handle(signed(delivery))).json();
    assert.ok(ack.dispatched > 0, JSON.stringify(ack));
    const webhookLines = logs.filter((line) => line.event === "wats.webhook.update").length;
    if (own) {
      assert.deepEqual([graphCalls.length, webhookLines], [0, 0], "no echo, no webhook log lines");
    } else {
      assert.ok(graphCalls.length > 0 && webhookLines > 0, "echo and log lines without onUpdate");
    }
  }
});

test("createWatsServiceApp maps the reference's config and names what is wrong", async () => {
  const secrets = {
    accessToken: settings.WATS_ACCESS_TOKEN,
    webhookVerifyToken: settings.WATS_VERIFY_TOKEN,
    webhookAppSecret: settings.WATS_APP_SECRET,
    serviceBearerToken: settings.WATS_SERVICE_BEARER_TOKEN,
  };
  const profile = { format: "wats-profile/1", settings: { WATS_PHONE_NUMBER_ID: settings.WATS_PHONE_NUMBER_ID } };
  const dispatched = [];
  const app = createWatsServiceApp({
    profile,
    secrets,
    whatsapp: { dispatch: (update) => dispatched.push(update.kind) },
    persistence: memoryKv(),
  });
  const ack = await (await app.fetch(signed(delivery))).json();
  assert.ok(ack.dispatched > 0 && dispatched.length === ack.dispatched, JSON.stringify(ack));
  const cases = [
    [{ profile: null }, "invalid_profile", "profile"],
    [{ secrets: undefined }, "invalid_secrets", "secrets"],
    [{ secrets: { ...secrets, accessToken: 7 } }, "invalid_secret", "secrets.accessToken"],
    [{ transport: "CANARY-TRANSPORT" }, "invalid_transport", "transport"],
    [{ whatsapp: {} }, "invalid_whatsapp", "whatsapp.dispatch"],
    [{ persistence: { listKeys() {} } }, "invalid_persistence", "persistence.get"],
    [{ enableGroupRoutes: "yes" }, "invalid_config", "enableGroupRoutes"],
  ];
  for (const [change, code, key] of cases) {
    assert.throws(
      () => createWatsServiceApp({ profile, secrets, ...change }),
      (error) => error instanceof WatsServiceError && error.code === code && error.key === key && !error.message.includes("CANARY"),
      `${code} ${key}`,
    );
  }
});
