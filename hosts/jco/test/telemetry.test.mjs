// The telemetry sink bridged to the OpenTelemetry JS SDK as the reference's
// OtelBridge example does: the SDK sees each measurement with the full
// attribute set; a throwing sink changes no response.

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import { createWats, OTEL_ATTR } from "../index.js";
import { delivery, settings, signed } from "./delivery.mjs";

function otelBridge() {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter("wats.service");
  const sink = {
    incrementCounter: (name, value, attributes) => meter.createCounter(name).add(value, attributes),
    recordHistogram: (name, value, attributes) => meter.createHistogram(name).record(value, attributes),
  };
  const collect = async () => {
    await reader.forceFlush();
    const metrics = exporter.getMetrics().flatMap((resource) => resource.scopeMetrics.flatMap((scope) => scope.metrics));
    return (name) => metrics.filter((metric) => metric.descriptor.name === name).flatMap((metric) => metric.dataPoints);
  };
  return { sink, collect, shutdown: () => provider.shutdown() };
}

test("the OpenTelemetry SDK sees http_requests_total with the route templated and the full attribute set", async () => {
  const bridge = otelBridge();
  const wats = createWats({ config: settings, telemetrySink: bridge.sink, onUpdate: () => {} });
  const auth = { authorization: `Bearer ${settings.WATS_SERVICE_BEARER_TOKEN}` };
  assert.equal((await wats.handle(signed(delivery))).status, 200);
  assert.equal((await wats.handle(new Request("http://127.0.0.1/api/messages/wamid.NOPE", { headers: auth }))).status, 404);
  const points = await bridge.collect();
  const requests = points("http_requests_total");
  const lookup = requests.find((point) => point.attributes[OTEL_ATTR.httpStatusCode] === "404");
  assert.ok(lookup, JSON.stringify(requests.map((point) => point.attributes)));
  assert.deepEqual(lookup.attributes, {
    [OTEL_ATTR.httpRoute]: "/api/messages/:messageId",
    [OTEL_ATTR.httpRequestMethod]: "GET",
    [OTEL_ATTR.httpStatusCode]: "404",
    [OTEL_ATTR.httpResponseStatusClass]: "4xx",
  });
  assert.equal(lookup.value, 1);
  const durations = points("http_request_duration_seconds");
  assert.ok(durations.some((point) => point.attributes[OTEL_ATTR.httpRequestMethod] === "POST" && point.value.count === 1));
  const updates = points("webhook_normalization_total");
  assert.ok(updates.some((point) => point.attributes[OTEL_ATTR.webhookUpdateKind] === "message" && point.attributes[OTEL_ATTR.operationOutcome] === "dispatched"));
  assert.ok(points("persistence_operations_total").length > 0);
  const everything = JSON.stringify(requests) + JSON.stringify(updates);
  assert.ok(!everything.includes("wamid.NOPE"), "no id in any attribute");
  await bridge.shutdown();
});

test("a throwing sink changes no response and is logged once", async () => {
  const logs = [];
  const throwing = {
    incrementCounter() {
      throw new Error("the sink is down");
    },
    recordHistogram() {
      throw new Error("the sink is down");
    },
  };
  const quiet = createWats({ config: settings, onUpdate: () => {}, log: () => {} });
  const wats = createWats({ config: settings, onUpdate: () => {}, telemetrySink: throwing, log: (line) => logs.push(line) });
  for (const service of [quiet, wats]) {
    const response = await service.handle(new Request("http://127.0.0.1/healthz"));
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { ok: true, service: "wats" });
  }
  assert.equal((await wats.handle(signed(delivery))).status, 200);
  const failures = logs.filter((line) => line.includes("wats.host.telemetry_sink_failed"));
  assert.equal(failures.length, 1);
});
