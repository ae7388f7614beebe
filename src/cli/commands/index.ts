// The command table: every `badexpert <command>` the CLI knows.
import type { Command } from "../command.js";
import { info } from "./info.js";

export const COMMANDS: readonly Command[] = [info];
