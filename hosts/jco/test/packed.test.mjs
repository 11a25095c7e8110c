// The package as a user gets it: `npm pack`, installed into a fresh
// project outside the repository, serving a request through the
// reference's names (`createWatsServiceApp(...).fetch`).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const packageDir = fileURLToPath(new URL("..", import.meta.url));

const app = `
import { createWatsServiceApp, WatsServiceError } from "@wats/service";
const secrets = {
  accessToken: "CANARY-ACCESS-PACKED",
  webhookVerifyToken: "CANARY-VERIFY-PACKED",
  webhookAppSecret: "CANARY-APP-PACKED",
  serviceBearerToken: "CANARY-SERVICE-PACKED",
};
const profile = { format: "wats-profile/1", settings: { WATS_PHONE_NUMBER_ID: "100000000000001" } };
const app = createWatsServiceApp({ profile, secrets });
const health = await app.fetch(new Request("http://127.0.0.1/healthz"));
let refused = "none";
try {
  createWatsServiceApp({ profile, secrets: { ...secrets, webhookAppSecret: "" } });
} catch (error) {
  refused = error instanceof WatsServiceError ? error.code + " " + error.key : "other";
}
console.log(JSON.stringify({ status: health.status, body: await health.json(), refused }));
`;

test("a packed and installed package serves /healthz through createWatsServiceApp(...).fetch", () => {
  const scratch = mkdtempSync(join(tmpdir(), "wats-packed-"));
  try {
    const quiet = { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" };
    execFileSync("npm", ["pack", "--pack-destination", scratch], { ...quiet, cwd: packageDir });
    const tarball = readdirSync(scratch).find((name) => name.endsWith(".tgz"));
    assert.ok(tarball, "npm pack wrote a tarball");
    const project = join(scratch, "project");
    execFileSync("mkdir", [project]);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "user-app", private: true, type: "module" }));
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--offline", join(scratch, tarball)], {
      ...quiet,
      cwd: project,
    });
    writeFileSync(join(project, "app.mjs"), app);
    const output = execFileSync(process.execPath, ["app.mjs"], { ...quiet, cwd: project });
    const result = JSON.parse(output.trim().split("\n").pop());
    assert.deepEqual(result, {
      status: 200,
      body: { ok: true, service: "wats" },
      refused: "invalid_secret secrets.webhookAppSecret",
    });
    assert.ok(!output.includes("CANARY"), "no secret in the output");
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
