// A full garbage collection on request. Decoding an image with alpha, of 16 bits or a JPEG hands
// its full-size pixels to JavaScript before they are resized (image-decode.ts: two steps, so the
// pixels match torchvision's convert-then-resize); that buffer's memory is libvips' and is freed
// only when V8 collects the Buffer. An idle service allocates nothing, so V8 never does, and a
// request of four 25-megapixel RGBA images left ~100 MB resident for good. The server asks for a
// collection once such buffers add up and no image is being decoded (server.ts).
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

let gc: (() => void) | undefined;

/** Runs a full collection (a few tens of ms on the service's heap). */
export function collectGarbage(): void {
  if (gc === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) {
      gc = exposed;
    } else {
      // The documented way to reach V8's gc() without starting node with --expose-gc.
      setFlagsFromString("--expose-gc");
      gc = runInNewContext("gc") as () => void;
    }
  }
  gc();
}
