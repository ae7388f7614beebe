// The command table: every `badexpert <command>` the CLI knows.
import type { Command } from "../command.js";
import { info } from "./info.js";
import { train } from "./train.js";
import { evaluate } from "./evaluate.js";

export const COMMANDS: readonly Command[] = [train, evaluate, info];
