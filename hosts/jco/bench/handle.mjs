// Time per request through the package in-process (no HTTP), instances
// reused as `createWats` does: GET /healthz, and a signed batched webhook
// whose updates are all duplicates after the first round. Medians of
// batches, printed for `cargo xtask bench`.

import { createWats } from "../index.js";
import { settings, signed } from "../test/delivery.mjs";

const wats = createWats({ config: settings, onUpdate: () => {}, log: () => {} });

const requests = {
  "GET /healthz": () => new Request("http://127.0.0.1/healthz"),
  "signed batched webhook (duplicates)": () => signed(),
};

const BATCHES = 30;
const PER_BATCH = 50;
for (const [name, make] of Object.entries(requests)) {
  for (let i = 0; i < PER_BATCH; i++) await (await wats.handle(make())).arrayBuffer(); // warm
  const perRequest = [];
  for (let batch = 0; batch < BATCHES; batch++) {
    const start = performance.now();
    for (let i = 0; i < PER_BATCH; i++) {
      const response = await wats.handle(make());
      if (response.status !== 200) throw new Error(`${name}: status ${response.status}`);
      await response.arrayBuffer();
    }
    perRequest.push(((performance.now() - start) * 1000) / PER_BATCH);
  }
  perRequest.sort((a, b) => a - b);
  const median = perRequest[BATCHES >> 1];
  console.log(`    jco ${name}: ${median.toFixed(0)} µs median, ${perRequest[0].toFixed(0)} µs fastest (${BATCHES}×${PER_BATCH})`);
}
