// Where a dataset is read from: the path given, or the registry's default location. A dataset
// with neither (CIFAR-10, GTSRB, image folders) is a usage mistake that names --data-path, found
// before any work rather than deep inside a reader.
import { datasetInfo } from "../data/registry.js";
import { OptionError } from "./errors.js";

/** Throws an OptionError naming --data-path when `name` has no default location and `path` is not given. */
export function requireDataPath(name: string, path: string | undefined): void {
  const info = datasetInfo(name);
  if (path === undefined && info.defaultPath === undefined) {
    throw new OptionError(
      "--data-path",
      `dataset '${name}' has no default location; give its path with --data-path (${info.pathHint})`,
    );
  }
}
