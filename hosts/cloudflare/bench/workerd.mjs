// The Worker in workerd as a deployment runs it: through Miniflare (the
// library `wrangler dev` runs workerd with) but without `wrangler dev`'s
// own layers, its proxy and the DevTools inspector, which cost the
// loadtest about ten times the Worker's own CPU. `cargo xtask loadtest
// --host worker` runs it; `--host wrangler-dev` measures `wrangler dev`.
//
//   node workerd.mjs PORT PERSIST_DIR WRANGLER_TOML
//
// Bindings, the Durable Object class and the compatibility date come from
// wrangler.toml; settings from the environment's WATS_* variables. Prints
// the URL it serves on, then serves until it is killed.
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import path from "node:path";

const [port, persistTo, configPath] = process.argv.slice(2);
if (!port || !persistTo || !configPath) {
  console.error("usage: node workerd.mjs PORT PERSIST_DIR WRANGLER_TOML");
  process.exit(2);
}
const { workerOptions, main } = unstable_getMiniflareWorkerOptions(configPath);
const settings = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => key.startsWith("WATS_")),
);
const mf = new Miniflare({
  ...workerOptions,
  host: "127.0.0.1",
  port: Number(port),
  modules: true,
  scriptPath: main,
  modulesRoot: path.dirname(main),
  bindings: { ...workerOptions.bindings, ...settings },
  durableObjectsPersist: path.join(persistTo, "do"),
});
const url = await mf.ready;
console.log(`serving on ${url.origin}`);
