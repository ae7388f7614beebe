// The command table: every `badexpert <command>` the CLI knows.
import type { Command } from "../command.js";
import { info } from "./info.js";
import { demo } from "./demo.js";
import { train } from "./train.js";
import { evaluate } from "./evaluate.js";
import { attack } from "./attack.js";
import { defend } from "./defend.js";
import { scan } from "./scan.js";
import { evaluateDefenseCommand } from "./evaluate-defense.js";
import { serve } from "./serve.js";

export const COMMANDS: readonly Command[] = [demo, train, evaluate, attack, defend, scan, evaluateDefenseCommand, serve, info];
