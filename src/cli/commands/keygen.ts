// `badexpert keygen`: an Ed25519 key pair for signing bundles (`defend --sign-key`) and checking
// them where they are used (`scan --verify-key`, `evaluate-defense --verify-key`).
import { mkdir } from "node:fs/promises";
import type { Command } from "../command.js";
import { emitJson, requireStr } from "../args.js";
import { writeKeyPair, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE } from "../../defense/signature.js";
import { BadExpertError } from "../../util/errors.js";

export const keygen: Command = {
  name: "keygen",
  summary: "make an Ed25519 key pair for signing detector bundles",
  details: [
    `Writes ${PRIVATE_KEY_FILE} (private, mode 600: keep it where bundles are built) and ${PUBLIC_KEY_FILE}`,
    "(public: copy it to the machines that use the bundles). Existing key files are never overwritten.",
    `There, bundles are verified with it without --verify-key when it is at ~/.config/badexpert/${PUBLIC_KEY_FILE}`,
    "($XDG_CONFIG_HOME/badexpert/...) or named by BADEXPERT_VERIFY_KEY (which also refuses unsigned bundles).",
    "",
    "Then sign a bundle where it is built and check it where it is used:",
    `  badexpert defend --checkpoint runs/m --out runs/d --sign-key keys/${PRIVATE_KEY_FILE}`,
    `  badexpert scan --bundle runs/d --verify-key keys/${PUBLIC_KEY_FILE} image.png`,
  ].join("\n"),
  examples: ["badexpert keygen --out keys"],
  options: {
    out: { type: "string", short: "o", description: "directory for the two key files (created if missing)" },
    json: { type: "boolean", description: "print the key paths as one JSON object" },
  },
  async run(v) {
    const out = requireStr(v, "out", "directory for the key files");
    await mkdir(out, { recursive: true });
    let keys: { privateKey: string; publicKey: string };
    try {
      keys = await writeKeyPair(out);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST")
        throw new BadExpertError(
          "E_IO",
          `keygen: ${out} already holds a key file (${(e as Error).message}); choose another --out`,
          { cause: e },
        );
      throw e;
    }
    console.error(`private key ${keys.privateKey} (keep it secret), public key ${keys.publicKey}`);
    emitJson(v, keys);
    return 0;
  },
};
