// The labels file of a folder of triggered images (`evaluate-defense --triggered DIR`):
// DIR/labels.csv, one row per image, with a header naming the columns:
//
//   file,label,target
//   0000.png,6,4
//   0001.png,8,4
//
// `file` is the image's path relative to DIR, `label` its true class index, `target` (optional
// column) the class the trigger is meant to send it to. Without a target column the target is
// unknown. Plain comma-separated values: no quoting (a name with a comma or a quote is refused,
// not guessed at), blank lines ignored, a UTF-8 byte-order mark and CRLF line ends accepted.
import { BadExpertError } from "../../util/errors.js";

export interface LabelRow {
  file: string;
  label: number;
  /** null where the file has no target column. */
  target: number | null;
}

export interface LabelsCsv {
  rows: LabelRow[];
  /** Whether the file has a target column (then every row has a target). */
  hasTargets: boolean;
}

/** Most rows one labels file may have (far above any evaluation set; bounds the work on a bad file). */
export const MAX_LABEL_ROWS = 1_000_000;

const CLASS_INDEX = /^\d{1,9}$/;

export function parseLabelsCsv(text: string, source: string): LabelsCsv {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  let at = 0;
  while (at < lines.length && (lines[at] ?? "").trim() === "") at++;
  const header = (lines[at] ?? "").split(",").map((c) => c.trim().toLowerCase());
  const ok =
    header.length >= 2 &&
    header.length <= 3 &&
    header[0] === "file" &&
    header[1] === "label" &&
    (header.length === 2 || header[2] === "target");
  if (!ok)
    throw new BadExpertError(
      "E_DATA",
      `${source}: the first line must be the header "file,label" or "file,label,target", found ${JSON.stringify((lines[at] ?? "").slice(0, 80))}`,
    );
  const hasTargets = header.length === 3;
  const rows: LabelRow[] = [];
  const seen = new Set<string>();
  for (let i = at + 1; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    if (line === "") continue;
    const where = `${source}, line ${i + 1}`;
    if (line.includes('"'))
      throw new BadExpertError(
        "E_DATA",
        `${where}: quoted fields are not supported (rename the file so its name has no comma or quote)`,
      );
    const cells = line.split(",").map((c) => c.trim());
    if (cells.length !== header.length)
      throw new BadExpertError(
        "E_DATA",
        `${where}: expected ${header.length} comma-separated values (${header.join(",")}), found ${cells.length}`,
      );
    const [file, label, target] = cells as [string, string, string | undefined];
    if (file === "") throw new BadExpertError("E_DATA", `${where}: the file name is empty`);
    if (seen.has(file)) throw new BadExpertError("E_DATA", `${where}: ${JSON.stringify(file)} is listed twice`);
    seen.add(file);
    const classIndex = (text: string, column: string): number => {
      if (!CLASS_INDEX.test(text))
        throw new BadExpertError(
          "E_DATA",
          `${where}: ${column} must be a class index (a non-negative integer), found ${JSON.stringify(text.slice(0, 40))}`,
        );
      return Number(text);
    };
    rows.push({
      file,
      label: classIndex(label, "label"),
      target: hasTargets ? classIndex(target ?? "", "target") : null,
    });
    if (rows.length > MAX_LABEL_ROWS) throw new BadExpertError("E_DATA", `${source}: more than ${MAX_LABEL_ROWS} rows`);
  }
  if (rows.length === 0) throw new BadExpertError("E_DATA", `${source}: no rows after the header`);
  return { rows, hasTargets };
}
