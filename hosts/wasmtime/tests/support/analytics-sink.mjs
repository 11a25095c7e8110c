// A stand-in for a Workers Analytics Engine dataset (worker_e2e.rs): bound
// to the wats Worker as WATS_ANALYTICS through a service binding to this
// entrypoint, it takes `writeDataPoint(point)` over RPC as a dataset takes
// it, and POSTs each point to the test's fake Graph, where the test reads
// them (workerd's own local dataset keeps nothing).
import { WorkerEntrypoint } from "cloudflare:workers";

export class AnalyticsSink extends WorkerEntrypoint {
  async writeDataPoint(point) {
    await fetch(this.env.SINK_URL, { method: "POST", body: JSON.stringify(point) });
  }
}

export default {
  fetch: () => new Response("the analytics stand-in"),
};
