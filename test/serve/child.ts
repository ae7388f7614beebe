// `badexpert serve` as a child process for the lifecycle tests: started with JSON logs on stdout,
// resolved once it logs "listening" (or rejected with its exit code and stderr if it exits first).
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

export interface ServeChild {
  child: ChildProcess;
  url: string;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  /** Resolves with the exit code (null when killed by a signal) and the time of exit. */
  exited: Promise<{ code: number | null; at: number }>;
  stderr: () => string;
}

export async function startServe(args: string[]): Promise<ServeChild> {
  const child = spawn(process.execPath, [MAIN, "serve", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, BADEXPERT_THREADS: "1" },
  });
  const logs: Record<string, unknown>[] = [];
  let err = "";
  child.stderr?.on("data", (b: Buffer) => (err += b.toString()));
  const exited = new Promise<{ code: number | null; at: number }>((r) =>
    child.on("exit", (code) => r({ code, at: performance.now() })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    rl.on("line", (line) => {
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(o);
      if (o.event === "listening") resolve(String(o.url));
    });
    child.on("exit", (code) => reject(new Error(`serve exited with ${code} before listening: ${err.slice(0, 2000)}`)));
  });
  return { child, url, logs, exited, stderr: () => err };
}
