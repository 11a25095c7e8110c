// The wats service for JavaScript hosts (Node ≥ 24; Deno and Bun with
// JSPI, untested): the wats:service component, transpiled by jco (dist/),
// behind a Fetch API handler. This file only moves values between
// JavaScript and the component's imports and exports; every route, rule
// and error is the component's.
//
// The component's imports are synchronous. Its kv, outbound HTTP and event
// imports are asynchronous here, so the component is transpiled with JSPI
// (`WebAssembly.Suspending`): the component waits while a promise settles.

import { readFileSync } from "node:fs";
import { instantiate } from "./dist/wats.js";

const IFACE = "wats:service";
// A body longer than the service's largest limit is refused by the
// service (413) from its length: one byte more is all it needs to see.
const MAX_BODY_BYTES = 4 * 1024 * 1024 + 1;
// Graph calls: the same deadline as every other host.
const GRAPH_TIMEOUT_MS = 15_000;
// Outbox items (and events) one drain right after a request sends at most,
// and the drains it runs at most.
const DRAIN_AFTER_QUEUE = 50;
const MAX_DRAIN_ROUNDS = 20;
// Idle instances kept for reuse, and the calls an instance serves before
// it is retired.
const MAX_IDLE_INSTANCES = 8;
const MAX_CALLS_PER_INSTANCE = 1000;
// What a request gets when the component itself fails (a trap): the
// service's envelope for `internal_error` (component/src/core/error.rs).
const INTERNAL_ERROR = JSON.stringify({
  error: {
    code: "internal_error",
    message: "The service failed to handle the request.",
  },
});

// The component's core modules, compiled once per process, synchronously:
// construction instantiates the component to check its settings, and a
// constructor cannot wait.
const coreModules = new Map();
function getCoreModule(path) {
  if (!coreModules.has(path)) {
    const url = new URL(`./dist/${path}`, import.meta.url);
    coreModules.set(path, new WebAssembly.Module(readFileSync(url)));
  }
  return coreModules.get(path);
}

// A kv held in a Map, with expiry and ordered listing: the default store,
// lost when the process ends.
export function memoryKv({ now = Date.now } = {}) {
  const entries = new Map(); // key -> { value, expiresAt }
  const live = (key) => {
    const entry = entries.get(key);
    if (entry && entry.expiresAt !== undefined && entry.expiresAt <= now()) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };
  const put = (key, value, ttlSeconds) => {
    const expiresAt = ttlSeconds === undefined ? undefined : now() + ttlSeconds * 1000;
    entries.set(key, { value: value.slice(), expiresAt });
  };
  return {
    name: "memory",
    async get(key) {
      return live(key)?.value;
    },
    async set(key, value, ttlSeconds) {
      put(key, value, ttlSeconds);
    },
    // Atomic: nothing awaits between the check and the write.
    async setIfAbsent(key, value, ttlSeconds) {
      if (live(key)) return false;
      put(key, value, ttlSeconds);
      return true;
    },
    async remove(key) {
      entries.delete(key);
    },
    // Atomic: the whole batch runs without an await.
    async batch(ops) {
      return ops.map((op) => {
        switch (op.op) {
          case "get":
            return live(op.key)?.value;
          case "set":
            put(op.key, op.value, op.ttlSeconds);
            return undefined;
          case "setIfAbsent": {
            const held = live(op.key);
            if (held) return held.value;
            put(op.key, op.value, op.ttlSeconds);
            return undefined;
          }
          case "remove":
            entries.delete(op.key);
            return undefined;
          default:
            throw new TypeError(`unknown kv op ${op.op}`);
        }
      });
    },
    async listKeys(prefix, cursor, limit) {
      const keys = [...entries.keys()]
        .filter((key) => key.startsWith(prefix) && (cursor === undefined || key > cursor) && live(key))
        .sort();
      if (keys.length <= limit) return { keys };
      const page = keys.slice(0, limit);
      return { keys: page, cursor: page[page.length - 1] };
    },
  };
}

// A batch op of the component (`kv.batch`) in the shape a JS kv takes.
function fromComponentOp({ tag, val }) {
  switch (tag) {
    case "get":
    case "remove":
      return { op: tag, key: val };
    case "set":
    case "set-if-absent":
      return {
        op: tag === "set" ? "set" : "setIfAbsent",
        key: val.key,
        value: val.value,
        ttlSeconds: val.ttlSeconds,
      };
    default:
      throw new TypeError(`unknown kv op ${tag}`);
  }
}

// One call into a kv with `batch`; op by op into one without (each op then
// atomic for its key only, as that kv makes it).
async function applyBatch(kv, ops) {
  if (typeof kv.batch === "function") {
    const answers = await kv.batch(ops);
    if (!Array.isArray(answers) || answers.length !== ops.length) {
      throw { tag: "other", val: "the kv's batch answered a different number of ops" };
    }
    return answers.map((answer) => answer ?? undefined);
  }
  const answers = [];
  for (const op of ops) {
    switch (op.op) {
      case "get":
        answers.push((await kv.get(op.key)) ?? undefined);
        break;
      case "set":
        await kv.set(op.key, op.value, op.ttlSeconds);
        answers.push(undefined);
        break;
      case "setIfAbsent":
        answers.push(
          (await kv.setIfAbsent(op.key, op.value, op.ttlSeconds))
            ? undefined
            : ((await kv.get(op.key)) ?? new Uint8Array()),
        );
        break;
      case "remove":
        await kv.remove(op.key);
        answers.push(undefined);
        break;
    }
  }
  return answers;
}

// Metric totals across requests, as the `metrics` import asks.
function metricTotals() {
  const series = new Map();
  return {
    // Sums, except a `_last_seen_millis` series, which keeps the latest
    // time (the component's rule, core/metrics.rs).
    add(samples) {
      for (const { name, labels, value } of samples) {
        const key = JSON.stringify([name, labels]);
        const held = series.get(key)?.value ?? 0;
        const total = name.endsWith("_last_seen_millis") ? Math.max(held, value) : held + value;
        series.set(key, { name, labels, value: total });
      }
    },
    snapshot() {
      return [...series.values()].map((sample) => ({ ...sample }));
    },
  };
}

function logLine(level, event, fields) {
  return JSON.stringify({ level, event, ...Object.fromEntries(fields) });
}

// A store error as the component's `kv-error` variant. Messages stay
// generic: a store's own may quote keys, which hold WhatsApp ids.
function kvError(error) {
  if (error && typeof error.tag === "string") return error;
  return { tag: "unavailable", val: "the key-value store failed" };
}

async function readCapped(body, cap) {
  if (!body) return new Uint8Array();
  const chunks = [];
  let length = 0;
  const reader = body.getReader();
  while (length < cap) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.length;
  }
  await reader.cancel().catch(() => {});
  const bytes = new Uint8Array(Math.min(length, cap));
  let at = 0;
  for (const chunk of chunks) {
    const take = Math.min(chunk.length, bytes.length - at);
    bytes.set(chunk.subarray(0, take), at);
    at += take;
  }
  return bytes;
}

// A status that carries no body in the Fetch API.
const NULL_BODY = new Set([101, 204, 205, 304]);

function toResponse({ status, headers, body }) {
  return new Response(NULL_BODY.has(status) ? null : body, { status, headers });
}

/**
 * A construction error, as the reference service throws them: a stable
 * `code` and the option or key at fault (`key`), never its value.
 */
export class WatsServiceError extends Error {
  constructor(code, key, message) {
    super(message);
    this.name = "WatsServiceError";
    this.code = code;
    this.key = key;
  }
}

/**
 * The attribute keys a telemetry sink receives (OpenTelemetry's where a
 * convention exists), as the reference names them.
 */
export const OTEL_ATTR = Object.freeze({
  httpRoute: "http.route",
  httpRequestMethod: "http.request.method",
  httpStatusCode: "http.status_code",
  httpResponseStatusClass: "http.response.status.class",
  graphEndpointFamily: "wats.graph.endpoint_family",
  operationOutcome: "wats.operation.outcome",
  webhookUpdateKind: "wats.webhook.update_kind",
  persistenceAdapter: "wats.persistence.adapter",
});

// Hands the service's measurements to the embedder's sink, synchronously.
// A sink that throws changes no response: its error is logged once.
function telemetryTo(sink, log) {
  let reported = false;
  return (measurements) => {
    if (!sink) return;
    for (const { instrument, name, value, attributes } of measurements) {
      try {
        const attrs = Object.fromEntries(attributes);
        if (instrument === "histogram") sink.recordHistogram(name, value, attrs);
        else sink.incrementCounter(name, value, attrs);
      } catch {
        if (!reported) log(logLine("warn", "wats.host.telemetry_sink_failed", []));
        reported = true;
      }
    }
  };
}

// What a kv must have: listing, and a batch or each single op.
const KV_METHODS = ["get", "set", "setIfAbsent", "remove"];

// Checks the options a caller hands over, before any request: a wrong
// one fails here, naming it, rather than on first use. (The `WATS_*`
// settings are the component's to judge: `/readyz` says 503 invalid_config
// with the key's name.)
function checkOptions(options) {
  if (typeof WebAssembly.Suspending !== "function") {
    failWith("invalid_config", "runtime", "lacks WebAssembly JSPI: @wats/service needs Node >= 24 (or a runtime with JSPI)");
  }
  if (options === null || typeof options !== "object") failWith("invalid_config", "options", "must be an object");
  const { config, kv, fetch, now, onUpdate, log, telemetrySink } = options;
  const isFunction = (value) => typeof value === "function";
  if (config !== undefined && !(config instanceof Map) && !isFunction(config) && (config === null || typeof config !== "object")) {
    failWith("invalid_config", "config", "must be an object, a Map or a function of the key");
  }
  if (kv !== undefined && kv !== null) {
    if (typeof kv !== "object") failWith("invalid_persistence", "kv", "must be an object with the Kv methods of index.d.ts");
    if (!isFunction(kv.listKeys)) failWith("invalid_persistence", "kv.listKeys", "must be a function");
    if (!isFunction(kv.batch)) {
      const missing = KV_METHODS.find((method) => !isFunction(kv[method]));
      if (missing) failWith("invalid_persistence", `kv.${missing}`, "must be a function (or give the kv a batch)");
    }
  }
  if (fetch !== undefined && !isFunction(fetch)) failWith("invalid_transport", "fetch", "must be a function");
  if (telemetrySink !== undefined) {
    for (const method of ["incrementCounter", "recordHistogram"]) {
      if (!isFunction(telemetrySink?.[method])) failWith("invalid_config", `telemetrySink.${method}`, "must be a function");
    }
  }
  for (const [key, value] of Object.entries({ now, onUpdate, log })) {
    if (value !== undefined && !isFunction(value)) failWith("invalid_config", key, "must be a function");
  }
}

/**
 * Creates the service. See index.d.ts for the options.
 */
export function createWats(options = {}) {
  checkOptions(options);
  const settings = options.config ?? {};
  const readSetting =
    typeof settings === "function"
      ? settings
      : (key) => (settings instanceof Map ? settings.get(key) : settings[key]);
  const kv = options.kv === undefined ? memoryKv({ now: options.now }) : options.kv;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const now = options.now ?? Date.now;
  const onUpdate = options.onUpdate;
  const log = options.log ?? ((line) => console.error(line));
  const started = now();
  const monotonicOrigin = performance.now();
  const metrics = metricTotals();
  const emitTelemetry = telemetryTo(options.telemetrySink, log);

  // The keys that name the application's endpoints (docs/events.md).
  const eventsConfigured = () =>
    ["WATS_EVENTS_ENDPOINTS", "WATS_EVENTS_FORWARD_URL"].some((key) => {
      const value = readSetting(key);
      return typeof value === "string" && value.trim() !== "";
    });
  const store = () => {
    if (!kv) throw { tag: "not-configured" };
    return kv;
  };
  const hostSettings = {
    "wats.runtime": "jco",
    "wats.store": kv ? (kv.name ?? "custom") : undefined,
    // The embedder's own seam: WATS_LOG_WEBHOOK_EVENTS and WATS_ECHO_REPLY
    // then do nothing, as in the reference.
    "wats.dispatch.embedder": onUpdate ? "1" : undefined,
  };

  const imports = {
    [`${IFACE}/clock`]: {
      nowMillis: () => BigInt(Math.floor(now())),
      monotonicNanos: () => BigInt(Math.floor((performance.now() - monotonicOrigin) * 1e6)),
      startedMillis: () => BigInt(Math.floor(started)),
    },
    [`${IFACE}/config`]: {
      get: (key) => {
        const value = key in hostSettings ? hostSettings[key] : readSetting(key);
        return value === undefined || value === null ? undefined : String(value);
      },
    },
    [`${IFACE}/kv`]: {
      async batch(ops) {
        try {
          return await applyBatch(store(), ops.map(fromComponentOp));
        } catch (error) {
          throw kvError(error);
        }
      },
      async listKeys(prefix, cursor, limit) {
        try {
          const page = await store().listKeys(prefix, cursor, limit);
          return { keys: page.keys, cursor: page.cursor ?? undefined };
        } catch (error) {
          throw kvError(error);
        }
      },
    },
    [`${IFACE}/outbound-http`]: {
      // Reasons stay generic: a runtime's message may quote the URL.
      async send({ method, url, headers, body }) {
        let response;
        try {
          response = await fetchImpl(url, {
            method,
            headers,
            body: body.length > 0 ? body : undefined,
            redirect: "manual",
            signal: AbortSignal.timeout(GRAPH_TIMEOUT_MS),
          });
        } catch (error) {
          if (error?.name === "TimeoutError" || error?.name === "AbortError") throw { tag: "timeout" };
          throw { tag: "unreachable", val: "fetch failed" };
        }
        let bytes;
        try {
          bytes = new Uint8Array(await response.arrayBuffer());
        } catch {
          throw { tag: "other", val: "reading the response failed" };
        }
        return { status: response.status, headers: [...response.headers], body: bytes };
      },
    },
    [`${IFACE}/events`]: {
      // A rejection fails the delivery (5xx), so Meta delivers it again.
      async dispatch(update) {
        if (!onUpdate) {
          log(logLine("info", "wats.update", [["kind", update.kind]]));
          return;
        }
        try {
          await onUpdate(update);
        } catch {
          throw "the application refused the update";
        }
      },
    },
    [`${IFACE}/metrics`]: {
      add: (samples) => metrics.add(samples),
      snapshot: () => metrics.snapshot(),
    },
    [`${IFACE}/telemetry`]: {
      emit: (measurements) => emitTelemetry(measurements),
    },
    [`${IFACE}/log`]: {
      write: (level, event, fields) => log(logLine(level, event, fields)),
    },
  };

  // Instances that finished a call cleanly, ready for the next. A call
  // takes one (or makes one: about 1.3 ms, five times a /healthz call),
  // so calls run side by side: an instance waiting on a promise cannot be
  // entered again. The service keeps no state in an instance between
  // calls; an instance that failed (a trap) is dropped, and each retires
  // after MAX_CALLS so that no heap grows for ever.
  const idle = [];
  const takeInstance = () => idle.pop() ?? { service: instantiate(getCoreModule, imports), calls: 0 };
  const returnInstance = (entry) => {
    entry.calls += 1;
    if (entry.calls < MAX_CALLS_PER_INSTANCE && idle.length < MAX_IDLE_INSTANCES) idle.push(entry);
  };
  async function withInstance(call) {
    const entry = takeInstance();
    const result = await call(entry.service);
    returnInstance(entry);
    return result;
  }

  // The settings are the component's to judge; it judges them now, so a
  // wrong one fails construction with the reference's code and the key's
  // name (never its value), instead of every request answering 503.
  const first = takeInstance();
  const fault = options[UNCHECKED] ? undefined : first.service.setup.checkConfig();
  if (fault) throw new WatsServiceError(fault.code, fault.key, fault.message);
  idle.push(first);

  // The OpenAPI document of these settings, as `GET /openapi.json` serves it.
  function openApiDocument() {
    const entry = takeInstance();
    try {
      return JSON.parse(entry.service.setup.openapi());
    } catch (error) {
      const fault = error?.payload;
      if (fault?.code) throw new WatsServiceError(fault.code, fault.key, fault.message);
      throw error;
    } finally {
      returnInstance(entry);
    }
  }

  async function drain(limit = 50) {
    const report = await withInstance((service) => service.scheduler.drain(limit));
    // A u64 arrives as a BigInt; a time in milliseconds fits a number.
    const { nextDueMillis, ...counts } = report;
    return nextDueMillis === undefined ? counts : { ...counts, nextDueMillis: Number(nextDueMillis) };
  }

  // Again while a drain takes all it may: a delivery queues an event per
  // update and endpoint.
  async function drainNow() {
    for (let round = 0; round < MAX_DRAIN_ROUNDS; round++) {
      const report = await drain(DRAIN_AFTER_QUEUE);
      const events = report.eventsDelivered + report.eventsRetried + report.eventsFailed;
      if (report.claimed < DRAIN_AFTER_QUEUE && events < DRAIN_AFTER_QUEUE) return;
    }
  }

  async function handle(request) {
    try {
      const url = new URL(request.url);
      const body = await readCapped(request.body, MAX_BODY_BYTES);
      const response = await withInstance((service) =>
        service.handler.handle({
          method: request.method,
          pathWithQuery: url.pathname + url.search,
          headers: [...request.headers],
          body,
        }),
      );
      // A queued send (202), or the events of a delivery for the
      // application's endpoints, go out now rather than at the next tick.
      const posted = request.method === "POST" && response.status >= 200 && response.status < 300;
      if (response.status === 202 || (posted && eventsConfigured())) {
        setTimeout(() => drainNow().catch(() => {}), 0);
      }
      return toResponse(response);
    } catch {
      // No detail: a trap's message could quote request data.
      log(logLine("error", "wats.host.request_failed", []));
      return new Response(INTERNAL_ERROR, {
        status: 500,
        headers: { "content-type": "application/json" },
      });
    }
  }

  // `fetch` is what JS runtimes call a handler (`Bun.serve({ fetch })`,
  // Deno's `export default`, Hono's mount); `handle` is the same.
  return { handle, fetch: handle, drain, openApiDocument };
}

// createWats without the settings' check: for the OpenAPI document, which
// needs only the paths, not the secrets.
const UNCHECKED = Symbol("unchecked");

// The reference's secret names, and the settings they are.
const REFERENCE_SECRETS = {
  accessToken: "WATS_ACCESS_TOKEN",
  webhookVerifyToken: "WATS_VERIFY_TOKEN",
  webhookAppSecret: "WATS_APP_SECRET",
  serviceBearerToken: "WATS_SERVICE_BEARER_TOKEN",
};

function failWith(code, key, what) {
  throw new WatsServiceError(code, key, `${key} ${what}`);
}

// A profile of `wats init` (wats-profile/1), and the Groups opt-in, as
// settings: never secrets.
function profileSettings(profile, enableGroupRoutes) {
  if (profile === null || typeof profile !== "object") failWith("invalid_profile", "profile", "must be an object");
  const settings = profile.settings ?? {};
  if (typeof settings !== "object" || Object.values(settings).some((value) => typeof value !== "string")) {
    failWith("invalid_profile", "profile.settings", "must map WATS_* keys to strings");
  }
  if (enableGroupRoutes !== undefined && typeof enableGroupRoutes !== "boolean") {
    failWith("invalid_config", "enableGroupRoutes", "must be a boolean");
  }
  const groups = enableGroupRoutes === undefined ? {} : { WATS_ENABLE_GROUP_ROUTES: enableGroupRoutes ? "1" : "0" };
  return { ...settings, ...groups };
}

/**
 * The reference's OpenAPI document of a profile's routes (`{
 * enableGroupRoutes }` in options), without secrets or a store: the
 * document its app serves at `GET /openapi.json`.
 */
export function createWatsServiceOpenApiDocument(profile, options = {}) {
  if (options === null || typeof options !== "object") failWith("invalid_config", "options", "must be an object");
  const config = profileSettings(profile, options.enableGroupRoutes);
  return createWats({ config, kv: null, log: () => {}, [UNCHECKED]: true }).openApiDocument();
}

/**
 * The reference's constructor: `{ profile, secrets, transport, whatsapp,
 * persistence, enableGroupRoutes }` onto `createWats`'s options. See
 * index.d.ts.
 */
export function createWatsServiceApp(config) {
  if (config === null || typeof config !== "object") failWith("invalid_config", "config", "must be an object");
  const { profile, secrets, transport, whatsapp, persistence, enableGroupRoutes } = config;
  const settings = profileSettings(profile, enableGroupRoutes);
  if (secrets === null || typeof secrets !== "object") failWith("invalid_secrets", "secrets", "must be an object");
  const secretSettings = {};
  for (const [name, key] of Object.entries(REFERENCE_SECRETS)) {
    const value = secrets[name];
    if (typeof value !== "string" || value.trim() === "") failWith("invalid_secret", `secrets.${name}`, "must be a non-empty string");
    secretSettings[key] = value;
  }
  const fetchImpl = typeof transport === "function" ? transport : transport?.fetch;
  if (transport !== undefined && typeof fetchImpl !== "function") {
    failWith("invalid_transport", "transport", "must be a fetch function or an object with one");
  }
  if (whatsapp !== undefined && typeof whatsapp?.dispatch !== "function") {
    failWith("invalid_whatsapp", "whatsapp.dispatch", "must be a function");
  }
  const options = {
    config: { ...settings, ...secretSettings },
    // The reference keeps no state without a store.
    kv: persistence ?? null,
    fetch: fetchImpl,
    onUpdate: whatsapp ? (update) => whatsapp.dispatch(update) : undefined,
    telemetrySink: config.telemetrySink,
  };
  // createWats names the option at fault; here it is `persistence`.
  try {
    return createWats(options);
  } catch (error) {
    if (error instanceof WatsServiceError && error.key.startsWith("kv")) {
      failWith(error.code, error.key.replace(/^kv/, "persistence"), "must be a Kv (index.d.ts)");
    }
    throw error;
  }
}
