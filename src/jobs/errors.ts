// An option a job was given that it cannot work with (a calibration set too small for the target
// FPR, ...). It names the option and has the code E_USAGE, so the CLI reports it as a usage error
// (exit 2) and a library caller can tell it from a failure of the work itself.
import { BadExpertError } from "../util/errors.js";

export class OptionError extends BadExpertError {
  override name = "OptionError";
  readonly option: string;

  constructor(option: string, message: string) {
    super("E_USAGE", `${option}: ${message}`);
    this.option = option;
  }
}
