// Small HTTP helpers for the service tests: the three request forms, and a JSON reader that
// keeps the status and headers.
export interface Reply<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
}

async function read<T>(r: Response): Promise<Reply<T>> {
  const text = await r.text();
  let body: T;
  try {
    body = JSON.parse(text) as T;
  } catch {
    throw new Error(`expected a JSON body, got status ${r.status}: ${text.slice(0, 200)}`);
  }
  return { status: r.status, headers: r.headers, body };
}

export function postRaw<T = Record<string, unknown>>(
  url: string,
  body: Uint8Array<ArrayBuffer> | string,
  type = "image/png",
  headers: Record<string, string> = {},
): Promise<Reply<T>> {
  return fetch(url, { method: "POST", headers: { "content-type": type, ...headers }, body }).then((r) => read<T>(r));
}

export function postJson<T = Record<string, unknown>>(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Reply<T>> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  }).then((r) => read<T>(r));
}

export function postMultipart<T = Record<string, unknown>>(
  url: string,
  files: Uint8Array<ArrayBuffer>[],
): Promise<Reply<T>> {
  const form = new FormData();
  for (const [i, f] of files.entries()) form.append("image", new Blob([f], { type: "image/png" }), `img${i}.png`);
  return fetch(url, { method: "POST", body: form }).then((r) => read<T>(r));
}

export function get<T = Record<string, unknown>>(url: string, headers: Record<string, string> = {}): Promise<Reply<T>> {
  return fetch(url, { headers }).then((r) => read<T>(r));
}

export const b64 = (b: Uint8Array): string => Buffer.from(b).toString("base64");

/** The value of one Prometheus sample (`name{labels} value`), or undefined when absent. */
export function metric(text: string, sample: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1));
  }
  return undefined;
}
