// `badexpert info`: which badexpert this is and what engine it runs on.
import { availableParallelism } from "node:os";
import type { Command } from "../command.js";
import { packageVersion } from "../../util/package-version.js";
import { libtorchVersion, getNumThreads, cudaAvailable, cudaDeviceCount } from "../../engine/index.js";

export const info: Command = {
  name: "info",
  summary: "show badexpert's version and the engine's versions, threads and devices",
  examples: ["badexpert info", "badexpert info --json"],
  options: { json: { type: "boolean", description: "print one JSON object instead of text" } },
  run(opts) {
    const facts = {
      version: packageVersion(),
      libtorch: libtorchVersion(),
      threads: getNumThreads(),
      cores: availableParallelism(),
      cuda: cudaAvailable(),
      cudaDevices: cudaDeviceCount(),
      node: process.version,
    };
    if (opts.json) console.log(JSON.stringify(facts));
    else for (const [k, v] of Object.entries(facts)) console.log(`${k.padEnd(12)} ${String(v)}`);
    return Promise.resolve(0);
  },
};
