// A node:http server of the wats package on 127.0.0.1: settings from the
// WATS_* environment, Graph calls to WATS_GRAPH_BASE_URL, state in memory.
// Updates reach WATS_EVENTS_ENDPOINTS, signed, through the service's events
// queue, which the drain below sends.
//
//   node examples/server.mjs [--port P]     (cargo xtask jco --port P)

import { createServer } from "node:http";
import { Readable } from "node:stream";
import { createWats } from "../index.js";

const portFlag = process.argv.indexOf("--port");
const port = portFlag > 0 ? Number(process.argv[portFlag + 1]) : 8788;
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error("wats jco: --port takes a number from 0 to 65535");
  process.exit(2);
}

const wats = createWats({
  config: (key) => (key.startsWith("WATS_") ? process.env[key] : undefined),
});

// Queued sends' retries and the application's events (the drain right
// after a 202 sends a queued send at once).
setInterval(() => wats.drain(50).catch(() => {}), 1000).unref();

const server = createServer(async (incoming, outgoing) => {
  const hasBody = incoming.method !== "GET" && incoming.method !== "HEAD";
  const request = new Request(`http://${incoming.headers.host ?? "127.0.0.1"}${incoming.url}`, {
    method: incoming.method,
    headers: Object.entries(incoming.headers).flatMap(([name, value]) =>
      Array.isArray(value) ? value.map((v) => [name, v]) : [[name, value]],
    ),
    body: hasBody ? Readable.toWeb(incoming) : undefined,
    duplex: "half",
  });
  const response = await wats.handle(request);
  outgoing.writeHead(response.status, [...response.headers].flat());
  outgoing.end(Buffer.from(await response.arrayBuffer()));
});

server.listen(port, "127.0.0.1", () => {
  const { port: bound } = server.address();
  process.stdout.write(`wats jco: listening on http://127.0.0.1:${bound} (node ${process.version}, store: memory)\n`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
