/** One normalized webhook update, as the service dispatches it. */
export interface Update {
  /** message, status, call, message-echo, error, account-update, …, or unknown. */
  kind: string;
  /** The WhatsApp id of the message, status or call, when it has one. */
  id?: string;
  /** The delivery status of a status update, or the event of a call. */
  status?: string;
  /** The whole normalized update as a JSON object. */
  json: string;
}

/** Keys with a prefix, in ascending order, after a cursor key. */
export interface KvPage {
  keys: string[];
  /** Set when more keys may follow: the last key of this page. */
  cursor?: string;
}

/**
 * The service's state. Errors thrown as `{ tag: "unavailable", val }` (or
 * anything else) make the service answer 503 and retry where it can.
 * `setIfAbsent` must be atomic for dedupe and idempotency to hold across
 * concurrent requests (docs/kv-schema.md).
 */
export interface Kv {
  /** Shown as the persistence backend in `/status` (letters, digits, `-`). */
  name?: string;
  get(key: string): Promise<Uint8Array | undefined>;
  /** A ttl of undefined keeps the value until it is removed. */
  set(key: string, value: Uint8Array, ttlSeconds: number | undefined): Promise<void>;
  /** Stores the value only if the key holds none (expired counts as none). */
  setIfAbsent(key: string, value: Uint8Array, ttlSeconds: number | undefined): Promise<boolean>;
  remove(key: string): Promise<void>;
  listKeys(prefix: string, cursor: string | undefined, limit: number): Promise<KvPage>;
  /**
   * Optional, and what the service calls when present: runs the ops in
   * order as one unit (one transaction, one round trip) and answers one
   * entry per op: the value a `get` read; for `setIfAbsent` the live value
   * that kept it from storing (undefined: it stored); undefined for `set`
   * and `remove`. Without it, the service's few batches per request run op
   * by op through the methods above.
   */
  batch?(ops: KvOp[]): Promise<(Uint8Array | undefined)[]>;
}

/** One op of a `Kv.batch`. */
export type KvOp =
  | { op: "get"; key: string }
  | { op: "set"; key: string; value: Uint8Array; ttlSeconds: number | undefined }
  | { op: "setIfAbsent"; key: string; value: Uint8Array; ttlSeconds: number | undefined }
  | { op: "remove"; key: string };

export interface WatsOptions {
  /**
   * The `WATS_*` settings and secrets of docs/configuration.md: an object,
   * a Map, or a function of the key.
   */
  config?: Record<string, string | undefined> | Map<string, string> | ((key: string) => string | undefined);
  /** Defaults to `memoryKv()`. `null` runs without a store: dedupe is off and
   * history, idempotent and async sends answer 503 persistence_not_configured. */
  kv?: Kv | null;
  /** Outbound HTTP for Graph calls. Defaults to the global `fetch`. */
  fetch?: typeof fetch;
  /** Wall-clock milliseconds since the epoch. Defaults to `Date.now`. */
  now?: () => number;
  /** Receives each webhook update; a rejection fails the delivery (5xx) so
   * Meta delivers it again. Unset, a PII-free line (the kind) is logged. */
  onUpdate?: (update: Update) => void | Promise<void>;
  /** Receives each log line (JSON, already redacted). Defaults to stderr. */
  log?: (line: string) => void;
  /** Receives every measurement with its full attribute set (OTEL_ATTR
   * keys), where `/metrics` narrows the labels. */
  telemetrySink?: TelemetrySink;
}

/** The reference's telemetry sink: synchronous; a sink that throws changes
 * no response (its failure is logged once). */
export interface TelemetrySink {
  incrementCounter(name: string, value: number, attributes: Record<string, string | number | boolean>): void;
  recordHistogram(name: string, valueSeconds: number, attributes: Record<string, string | number | boolean>): void;
  /** Reserved, as in the reference: not called yet. */
  recordSpan?(name: string, start: Date, end: Date, attributes: Record<string, string | number | boolean>): void;
  /** Reserved, as in the reference: not called yet. */
  recordEvent?(name: string, attributes: Record<string, string | number | boolean>): void;
}

/** The attribute keys a telemetry sink receives. */
export const OTEL_ATTR: {
  readonly httpRoute: "http.route";
  readonly httpRequestMethod: "http.request.method";
  readonly httpStatusCode: "http.status_code";
  readonly httpResponseStatusClass: "http.response.status.class";
  readonly graphEndpointFamily: "wats.graph.endpoint_family";
  readonly operationOutcome: "wats.operation.outcome";
  readonly webhookUpdateKind: "wats.webhook.update_kind";
  readonly persistenceAdapter: "wats.persistence.adapter";
};

export interface DrainReport {
  claimed: number;
  sent: number;
  retried: number;
  failed: number;
  stale: number;
  /** Events the application's endpoints took, that will be offered again
   * after a backoff, and that were given up (after 3 days). */
  eventsDelivered: number;
  eventsRetried: number;
  eventsFailed: number;
  /** When the earliest queued send or event is due (milliseconds since the
   * epoch), if one is: a timer may wait until then. */
  nextDueMillis?: number;
}

export interface Wats {
  /** Answers one request: every route of the service. */
  handle(request: Request): Promise<Response>;
  /** The same as `handle`, under the name JS runtimes call a handler
   * (`Bun.serve({ fetch: wats.fetch })`, Deno, Hono). */
  fetch(request: Request): Promise<Response>;
  /** Sends up to `limit` due outbox items (queued with `Prefer: respond-async`)
   * and up to `limit` due events for the application's endpoints
   * (`WATS_EVENTS_ENDPOINTS`); call it on a timer. It also runs right after
   * a 202, and after each delivery when endpoints are set. */
  drain(limit?: number): Promise<DrainReport>;
  /** The OpenAPI 3.1 document `GET /openapi.json` serves, as an object. */
  openApiDocument(): Record<string, unknown>;
}

/**
 * Throws `WatsServiceError` when an option is wrong, naming it: `runtime`
 * (no WebAssembly JSPI: Node >= 24 is needed) and `options`, `config`,
 * `now`, `onUpdate`, `log` (`invalid_config`), `kv` or a missing
 * `kv.<method>` (`invalid_persistence`), `fetch` (`invalid_transport`);
 * and a wrong `WATS_*` setting, judged by the service itself and named
 * (never its value): `invalid_secret` for a secret, `invalid_path` for
 * `WATS_WEBHOOK_PATH` or `WATS_API_PREFIX`, `invalid_config` otherwise.
 */
export function createWats(options?: WatsOptions): Wats;

/** The construction error: the reference service's codes. */
export class WatsServiceError extends Error {
  readonly name: "WatsServiceError";
  readonly code:
    | "invalid_config"
    | "invalid_profile"
    | "invalid_secrets"
    | "invalid_secret"
    | "invalid_path"
    | "invalid_transport"
    | "invalid_crypto_provider"
    | "invalid_whatsapp"
    | "invalid_persistence";
  /** The option (or `kv.<method>`) at fault; never its value. */
  readonly key: string;
}

/** A kv in a Map, with expiry and ordered listing; lost when the process ends. */
export function memoryKv(options?: { now?: () => number }): Kv;

/** The reference's configuration (`createWatsServiceApp`). */
export interface WatsServiceConfig {
  /** A `wats init` profile (`wats-profile/1`): its `settings` are the
   * `WATS_*` settings; secrets never sit in it. */
  profile: { format?: string; settings?: Record<string, string> };
  secrets: {
    accessToken: string;
    webhookVerifyToken: string;
    webhookAppSecret: string;
    serviceBearerToken: string;
  };
  /** Outbound HTTP: a fetch function, or an object with one. */
  transport?: typeof fetch | { fetch: typeof fetch };
  /** Receives each normalized update; a rejection fails the delivery. */
  whatsapp?: { dispatch(update: Update): unknown | Promise<unknown> };
  /** The store; none keeps no state (dedupe off, history 503). */
  persistence?: Kv;
  enableGroupRoutes?: boolean;
  telemetrySink?: TelemetrySink;
}

/**
 * The reference's constructor over `createWats`. Throws `WatsServiceError`:
 * `invalid_config`, `invalid_profile`, `invalid_secrets`,
 * `invalid_secret` (naming `secrets.<name>`), `invalid_transport`,
 * `invalid_whatsapp`, `invalid_persistence`.
 */
export function createWatsServiceApp(config: WatsServiceConfig): Wats;

/** The reference's name for the options of `createWatsServiceOpenApiDocument`. */
export interface WatsServiceOpenApiOptions {
  enableGroupRoutes?: boolean;
}

/**
 * The OpenAPI 3.1 document of a profile's routes, without secrets or a
 * store: what its app serves at `GET /openapi.json`. Throws
 * `WatsServiceError` (`invalid_profile`, `invalid_path`, `invalid_config`).
 */
export function createWatsServiceOpenApiDocument(
  profile: WatsServiceConfig["profile"],
  options?: WatsServiceOpenApiOptions,
): Record<string, unknown>;

/** The reference's type names. */
export type WatsServiceApp = Wats;
