// Events for the application's endpoints, checked with the Standard
// Webhooks package from npm (`standardwebhooks`), not with wats's own code.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { connect, createServer as createNetServer } from "node:net";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Webhook } from "standardwebhooks";
import { createWats, WatsServiceError } from "../index.js";
import { delivery, settings, signed } from "./delivery.mjs";

const SECRET = `whsec_${Buffer.from("jco-events-test-signing-key-0042").toString("base64")}`;
const eventSettings = {
  ...settings,
  WATS_EVENTS_ENDPOINTS: "https://app.example/hook, https://audit.example/hook status",
  WATS_EVENTS_SIGNING_SECRET: SECRET,
};

// A fetch that plays both endpoints: it keeps what each received and
// answers with `status(n)` for the n-th request.
function endpoints(status = () => 204) {
  const received = [];
  const fetch = async (url, init) => {
    const headers = Object.fromEntries(new Headers(init.headers));
    received.push({ url, headers, body: new TextDecoder().decode(init.body) });
    return new Response(null, { status: status(received.length) });
  };
  return { received, fetch };
}

// Each event as the receiver sees it once verified; throws if one is not.
function verified(received) {
  const verifier = new Webhook(SECRET);
  return received.map(({ url, headers, body }) => ({
    url,
    id: headers["webhook-id"],
    event: verifier.verify(body, headers),
  }));
}

test("each update reaches each endpoint that takes it, signed, once the drain runs", async () => {
  const { received, fetch } = endpoints();
  const wats = createWats({ config: eventSettings, fetch, log: () => {} });
  const ack = await (await wats.handle(signed(delivery))).json();
  assert.equal(ack.dispatched, 6);
  await wats.drain(50);
  const events = verified(received);
  const app = events.filter((e) => e.url === "https://app.example/hook");
  const audit = events.filter((e) => e.url === "https://audit.example/hook");
  assert.equal(app.length, 6, "every kind");
  assert.deepEqual(audit.map((e) => e.event.type), ["whatsapp.status", "whatsapp.status", "whatsapp.status"]);
  assert.deepEqual(app.map((e) => e.event.data.kind), ["message", "message", "status", "status", "message", "status"]);
  assert.equal(new Set(events.map((e) => e.id)).size, 9, "one webhook-id per update and endpoint");
  // Meta's retry of the delivery: duplicates, and no event again.
  await wats.handle(signed(delivery));
  await wats.drain(50);
  assert.equal(received.length, 9);
});

test("a refused event is offered again under the same webhook-id and body", async () => {
  const { received, fetch } = endpoints((n) => (n === 1 ? 500 : 204));
  let clock = Date.now();
  const wats = createWats({ config: { ...eventSettings, WATS_EVENTS_ENDPOINTS: "https://app.example/hook message" }, fetch, now: () => clock, log: () => {} });
  await wats.handle(signed(delivery));
  const first = await wats.drain(50);
  assert.deepEqual([first.eventsDelivered, first.eventsRetried], [2, 1]);
  clock += 2_000;
  const second = await wats.drain(50);
  assert.equal(second.eventsDelivered, 1);
  const events = verified(received);
  assert.equal(events[0].id, events[3].id);
  assert.equal(received[0].body, received[3].body);
});

test("without a store the events go out inline, and a refusal is Meta's 503", async () => {
  const { received, fetch } = endpoints((n) => (n === 2 ? 503 : 204));
  const wats = createWats({ config: { ...eventSettings, WATS_EVENTS_ENDPOINTS: "https://app.example/hook" }, fetch, kv: null, log: () => {} });
  const response = await wats.handle(signed(delivery));
  assert.equal(response.status, 503);
  assert.equal(verified(received).length, received.length, "every inline event verifies");
});

test("endpoints without a signing secret fail construction, naming the key", () => {
  const { WATS_EVENTS_SIGNING_SECRET: _, ...unsigned } = eventSettings;
  assert.throws(
    () => createWats({ config: unsigned, log: () => {} }),
    (error) =>
      error instanceof WatsServiceError &&
      error.code === "invalid_secret" &&
      error.key === "WATS_EVENTS_SIGNING_SECRET" &&
      !/app\.example/.test(error.message),
  );
});

// The Node receiver of docs/events.md, run as it stands there.
test("the Node receiver of docs/events.md verifies every event of a delivery", async () => {
  const docs = readFileSync(new URL("../../../docs/events.md", import.meta.url), "utf8");
  const blocks = [...docs.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1]);
  assert.equal(blocks.length, 1, "docs/events.md has one JavaScript block");
  // Beside the tests, so that it finds the package's node_modules.
  const file = fileURLToPath(new URL(`./.receiver-${process.pid}.mjs`, import.meta.url));
  writeFileSync(file, blocks[0]);
  const port = await freePort();
  const receiver = spawn(process.execPath, [file], {
    env: { ...process.env, WATS_EVENTS_SIGNING_SECRET: SECRET, PORT: String(port) },
    stdio: ["ignore", "pipe", "ignore"],
    detached: true,
  });
  const printed = [];
  receiver.stdout.setEncoding("utf8").on("data", (text) => printed.push(...text.split("\n").filter(Boolean)));
  try {
    await listening(port);
    const endpoint = `http://127.0.0.1:${port}/`;
    const wats = createWats({ config: { ...eventSettings, WATS_EVENTS_ENDPOINTS: endpoint }, log: () => {} });
    await wats.handle(signed(delivery));
    const report = await wats.drain(50);
    assert.equal(report.eventsDelivered, 6, JSON.stringify(report));
    for (let waited = 0; printed.length < 6 && waited < 5_000; waited += 20) await sleep(20);
    assert.deepEqual(
      printed.map((line) => line.split(" ")[0]),
      ["whatsapp.message", "whatsapp.message", "whatsapp.status", "whatsapp.status", "whatsapp.message", "whatsapp.status"],
    );
  } finally {
    process.kill(-receiver.pid, "SIGKILL");
    unlinkSync(file);
  }
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve) => {
    const probe = createNetServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

// Until the receiver accepts connections (at most 10 s).
async function listening(port) {
  for (let waited = 0; waited < 10_000; waited += 50) {
    const open = await new Promise((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.end();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (open) return;
    await sleep(50);
  }
  throw new Error("the receiver did not start");
}
