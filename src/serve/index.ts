// The scoring service as a library: createServer(detector or bundle dir, options) → listen().
export { createServer, BadExpertServer, type DetectionRecord } from "./server.js";
export { DEFAULT_OPTIONS, resolveOptions, type ServeOptions, type OnFlag } from "./options.js";
export { ServeError } from "./errors.js";
