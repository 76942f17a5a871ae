// Builds the explorer into web/dist: one bundled script (esbuild), the page and its styles. The
// InstanceTracker ABI and the canonical address come from the compiled contract (ape's
// .build/__local__.json) and the recorded public deployments (deployments.json), so the page reads
// the contract the Python verifier reads, never one a protocol names. Writes dist/ only when a
// source changed (the build is part of bin/setup, run each time).
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { getContractAddress, keccak256, toHex } from "viem";

const web = dirname(fileURLToPath(import.meta.url));
const root = join(web, "..");
const dist = join(web, "dist");
const PROXY = "0x4e59b44847b379578588920cA78FbF26c0B4956C"; // tracker.chain.canonical.PROXY_ADDRESS
const SALT = keccak256(toHex("instance-tracker/InstanceTracker/v2")); // tracker.chain.canonical.SALT

const manifest = join(root, ".build", "__local__.json");
if (!existsSync(manifest)) {
  console.error("web/build.mjs: .build/__local__.json is missing: run `ape compile` first");
  process.exit(1);
}
const contractType = JSON.parse(readFileSync(manifest, "utf8")).contractTypes.InstanceTracker;
const bytecode = contractType.deploymentBytecode.bytecode;
const canonical = getContractAddress({ opcode: "CREATE2", from: PROXY, salt: SALT, bytecode });
const publicDeployments = existsSync(join(root, "deployments.json")) ? JSON.parse(readFileSync(join(root, "deployments.json"), "utf8")) : {};
const deployments = Object.fromEntries(
  Object.entries(publicDeployments).map(([chainId, d]) => [chainId, { address: d.address, block_number: d.block_number }]),
);
const tracker = { abi: contractType.abi, canonical, deployments };

function files(dir) {
  return readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? files(join(dir, name)) : [join(dir, name)]));
}
const inputs = [...files(join(web, "src")), join(web, "build.mjs"), join(root, "package-lock.json")];
const fingerprint = createHash("sha256");
for (const file of inputs.sort()) fingerprint.update(file).update(readFileSync(file));
fingerprint.update(JSON.stringify(tracker));
const stamp = fingerprint.digest("hex").slice(0, 16);
if (existsSync(join(dist, `.built-${stamp}`)) && !process.argv.includes("--force")) process.exit(0);

const staging = join(web, ".dist-new");
rmSync(staging, { recursive: true, force: true });
mkdirSync(staging, { recursive: true });
const result = await esbuild.build({
  entryPoints: [join(web, "src", "main.js")],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  outfile: join(staging, "app.js"),
  define: { __TRACKER__: JSON.stringify(tracker) },
  metafile: true,
  legalComments: "none",
  logLevel: "warning",
});
for (const name of ["index.html", "style.css"]) copyFileSync(join(web, "src", "ui", name), join(staging, name));
writeFileSync(join(staging, `.built-${stamp}`), "");
rmSync(dist, { recursive: true, force: true });
renameSync(staging, dist);
const size = Object.values(result.metafile.outputs).reduce((total, output) => total + output.bytes, 0);
console.log(`web/dist: app.js ${(size / 1024).toFixed(0)} KiB (canonical InstanceTracker ${canonical})`);
