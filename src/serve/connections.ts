// The HTTP server's connections and the requests on them, for a shutdown that loses nothing.
//
// A keep-alive connection with no request in progress may still have the client's next request
// on the wire: closing it then resets that request, unanswered (http.Server.close() does exactly
// that to every idle connection, which is how SIGTERM under 64 busy connections reset dozens of
// requests). So a drain closes a connection only when it answers a request (with
// `connection: close`) or when it has been idle for a while with no byte read since its last
// answer; the rest it leaves to the grace period.
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";

interface Conn {
  /** Requests received on it and not yet answered (or aborted). */
  active: number;
  /** When its last answer finished (or it was opened). */
  idleSince: number;
  /** socket.bytesRead at that moment: more means a request has begun arriving. */
  bytesAtIdle: number;
}

export class Connections {
  readonly #conns = new Map<Socket, Conn>();
  /** The responses of the requests in flight, with the request id each answer carries. */
  readonly #open = new Map<ServerResponse, string>();

  constructor(server: Server) {
    server.on("connection", (socket: Socket) => {
      this.#conns.set(socket, { active: 0, idleSince: performance.now(), bytesAtIdle: socket.bytesRead });
      socket.once("close", () => this.#conns.delete(socket));
    });
  }

  /** Open connections. */
  get size(): number {
    return this.#conns.size;
  }

  /** Requests received and not yet answered. */
  get inFlight(): number {
    return this.#open.size;
  }

  /** Counts a request until its response is finished or its connection is gone. */
  request(req: IncomingMessage, res: ServerResponse, id: string): void {
    const c = this.#conns.get(req.socket);
    this.#open.set(res, id);
    if (c) c.active++;
    res.once("close", () => {
      this.#open.delete(res);
      if (!c) return;
      c.active--;
      c.idleSince = performance.now();
      c.bytesAtIdle = req.socket.bytesRead;
    });
  }

  /** Closes the connections with no request in progress, idle for `minIdleMs` or more and nothing read since; returns how many. */
  closeIdle(minIdleMs: number): number {
    const now = performance.now();
    let n = 0;
    for (const [socket, c] of this.#conns) {
      if (c.active > 0 || now - c.idleSince < minIdleMs || socket.bytesRead !== c.bytesAtIdle) continue;
      socket.destroy();
      n++;
    }
    return n;
  }

  /**
   * Answers every request in flight whose answer has not begun (one still arriving, or whose
   * handler did not finish) with `status` and the JSON `body` plus its request id, closing the
   * connection after it; returns how many.
   */
  answerUnanswered(status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): number {
    let n = 0;
    for (const [res, requestId] of this.#open) {
      if (res.headersSent || res.writableEnded) continue;
      res.writeHead(status, {
        ...headers,
        "content-type": "application/json; charset=utf-8",
        connection: "close",
        "x-request-id": requestId,
      });
      res.end(JSON.stringify({ ...body, requestId }));
      n++;
    }
    return n;
  }

  /** Closes every connection (the end of a grace period); returns how many still had a request in progress. */
  destroyAll(): number {
    let cut = 0;
    for (const [socket, c] of this.#conns) {
      if (c.active > 0 || socket.bytesRead !== c.bytesAtIdle) cut++;
      socket.destroy();
    }
    return cut;
  }
}
