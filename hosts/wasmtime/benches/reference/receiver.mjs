// The reference the loadtest holds `wats serve` to: a WhatsApp webhook
// receiver as a careful Node developer writes it, with nothing but Node 24's
// own modules. It verifies X-Hub-Signature-256, parses the JSON, and per
// delivery runs one SQLite transaction (WAL, synchronous=NORMAL) that, per
// update, inserts its dedupe key (INSERT OR IGNORE) and, when the key is
// new, a history row. Then it answers 200.
//
// usage: node receiver.mjs DATABASE_PATH APP_SECRET
// Prints `reference: listening on http://127.0.0.1:PORT` once ready.

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { DatabaseSync } from "node:sqlite";

const [databasePath, appSecret] = process.argv.slice(2);
if (!databasePath || !appSecret) {
  console.error("usage: node receiver.mjs DATABASE_PATH APP_SECRET");
  process.exit(2);
}

const db = new DatabaseSync(databasePath);
db.exec(`
  PRAGMA journal_mode = WAL;
  PRAGMA synchronous = NORMAL;
  CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL, kind TEXT NOT NULL,
    received_at INTEGER NOT NULL, body TEXT NOT NULL);
`);
const claim = db.prepare("INSERT OR IGNORE INTO seen (key) VALUES (?)");
const record = db.prepare(
  "INSERT INTO history (key, kind, received_at, body) VALUES (?, ?, ?, ?)",
);

function signatureValid(header, body) {
  if (typeof header !== "string" || !header.startsWith("sha256=")) return false;
  const given = Buffer.from(header.slice("sha256=".length), "hex");
  const expected = createHmac("sha256", appSecret).update(body).digest();
  return given.length === expected.length && timingSafeEqual(given, expected);
}

// Each message and each status of a message is an update of its own.
function* updates(payload) {
  for (const entry of payload.entry ?? []) {
    for (const change of entry.changes ?? []) {
      const value = change.value ?? {};
      for (const message of value.messages ?? []) {
        yield [`message:${message.id}`, "message", message];
      }
      for (const status of value.statuses ?? []) {
        yield [`status:${status.id}:${status.status}`, "status", status];
      }
    }
  }
}

function answer(response, status, body) {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

const server = createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    const body = Buffer.concat(chunks);
    if (!signatureValid(request.headers["x-hub-signature-256"], body)) {
      return answer(response, 401, { ok: false });
    }
    let payload;
    try {
      payload = JSON.parse(body.toString("utf8"));
    } catch {
      return answer(response, 400, { ok: false });
    }
    let received = 0;
    let dispatched = 0;
    const now = Date.now();
    db.exec("BEGIN IMMEDIATE");
    try {
      for (const [key, kind, item] of updates(payload)) {
        received += 1;
        if (claim.run(key).changes === 1) {
          record.run(key, kind, now, JSON.stringify(item));
          dispatched += 1;
        }
      }
      db.exec("COMMIT");
    } catch {
      db.exec("ROLLBACK");
      return answer(response, 503, { ok: false });
    }
    answer(response, 200, { ok: true, received, dispatched, duplicates: received - dispatched });
  });
});

server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  console.log(`reference: listening on http://127.0.0.1:${server.address().port}`);
});
