// An option a job was given that it cannot work with (a calibration set too small for the target
// FPR, ...). It names the option, so the CLI reports it as a usage error (exit 2) and a library
// caller can tell it from a failure of the work itself.
export class OptionError extends RangeError {
  readonly option: string;

  constructor(option: string, message: string) {
    super(`${option}: ${message}`);
    this.name = "OptionError";
    this.option = option;
  }
}
