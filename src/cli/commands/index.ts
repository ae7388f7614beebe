// The command table: every `badexpert <command>` the CLI knows.
import type { Command } from "../command.js";
import { info } from "./info.js";
import { demo } from "./demo.js";
import { train } from "./train.js";
import { evaluate } from "./evaluate.js";
import { attack } from "./attack.js";
import { defend } from "./defend.js";
import { scan } from "./scan.js";
import { explain } from "./explain.js";
import { evaluateDefenseCommand } from "./evaluate-defense.js";
import { compareCommand } from "./compare.js";
import { exportCommand } from "./export.js";
import { importCommand } from "./import.js";
import { keygen } from "./keygen.js";
import { serve } from "./serve.js";

export const COMMANDS: readonly Command[] = [
  demo,
  train,
  evaluate,
  attack,
  defend,
  scan,
  explain,
  evaluateDefenseCommand,
  compareCommand,
  importCommand,
  exportCommand,
  serve,
  keygen,
  info,
];
