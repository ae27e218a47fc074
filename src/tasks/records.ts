/**
 * Dataset files as raw records, each with the place it came from ("data.jsonl:7",
 * "data.parquet row 7") so every later error can name it. JSON Lines (UTF-8, an optional byte-order
 * mark, LF or CRLF, blank lines skipped) or Parquet (read with hyparquet; snappy, gzip, zstd,
 * brotli and lz4 pages). A file is Parquet when it starts with the magic bytes "PAR1", whatever its
 * name; a file named *.parquet must be. What the records mean is layout.ts's business.
 *
 * Bad rows are collected, not thrown one at a time: RowErrors reports the first in one line and
 * counts the rest, so a user fixes a file in one pass instead of one run per bad line.
 */
import { readFileSync } from "node:fs";
import { parquetMetadata, parquetReadObjects, parquetSchema } from "hyparquet";
import { compressors } from "hyparquet-compressors";

/** A problem with a dataset file: one line, exit code 2 like any other input the user must fix. */
export class DatasetError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "DatasetError";
  }
}

export interface DatasetRecord {
  /** "data.jsonl:7" or "data.parquet row 7" (1-based). */
  where: string;
  /** Line (JSONL) or row (Parquet) number, 1-based. */
  index: number;
  fields: Record<string, unknown>;
}

export type DatasetFormat = "jsonl" | "parquet";

/** Given a Parquet file's top-level column names, the ones to read. */
export type ColumnPicker = (names: readonly string[]) => readonly string[];

export interface RecordFile {
  source: string;
  format: DatasetFormat;
  records: DatasetRecord[];
  /** Top-level field names: the Parquet schema's columns, or every key seen in a JSONL file. */
  columns: string[];
}

const MORE_SHOWN = 3;

/** Collects row problems; `throwIfAny` reports the first and counts the others, in one line. */
export class RowErrors {
  private readonly items: { where: string; message: string }[] = [];

  add(where: string, message: string): void {
    this.items.push({ where, message });
  }

  get count(): number {
    return this.items.length;
  }

  throwIfAny(): void {
    if (this.items.length === 0) return;
    const [first, ...rest] = this.items;
    let line = `${first.where}: ${first.message}`;
    if (rest.length > 0) {
      const shown = rest.slice(0, MORE_SHOWN).map((r) => r.where);
      line += ` (and ${rest.length} more bad row${rest.length === 1 ? "" : "s"}: ${shown.join(", ")}${rest.length > MORE_SHOWN ? ", …" : ""})`;
    }
    throw new DatasetError(line);
  }
}

export function typeName(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}

/** JSON Lines text → records; `source` names the file. Syntax errors are collected in `errors`. */
export function parseJsonlRecords(text: string, source: string, errors: RowErrors): RecordFile {
  const records: DatasetRecord[] = [];
  const columns = new Set<string>();
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, "");
    if (line.trim() === "") continue;
    const where = `${source}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      errors.add(where, `invalid JSON (${(e as Error).message})`);
      continue;
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
      errors.add(where, `expected a JSON object, got ${typeName(obj)}`);
      continue;
    }
    for (const k of Object.keys(obj)) columns.add(k);
    records.push({ where, index: i + 1, fields: obj as Record<string, unknown> });
  }
  return { source, format: "jsonl", records, columns: [...columns] };
}

function readBytes(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new DatasetError(
      `${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
}

export function isParquet(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x41 && bytes[2] === 0x52 && bytes[3] === 0x31
  );
}

/**
 * A Parquet file's rows as objects (nested columns as nested objects and arrays, 64-bit integers as
 * bigint). `columns` picks the top-level columns to read from the file's column names (absent
 * names are ignored); all columns when not given.
 */
export async function parseParquetRecords(
  bytes: Uint8Array,
  source: string,
  columns?: ColumnPicker,
): Promise<RecordFile> {
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  let rows: Record<string, unknown>[];
  let names: string[];
  try {
    const metadata = parquetMetadata(file);
    names = parquetSchema(metadata).children.map((c) => c.element.name);
    const picked = columns?.(names);
    const wanted = picked ? names.filter((n) => picked.includes(n)) : undefined;
    rows =
      wanted && wanted.length === 0
        ? Array.from({ length: Number(metadata.num_rows) }, () => ({}))
        : await parquetReadObjects({ file, metadata, columns: wanted, compressors });
  } catch (e) {
    throw new DatasetError(`${source}: not a readable Parquet file (${(e as Error).message})`);
  }
  return {
    source,
    format: "parquet",
    records: rows.map((fields, i) => ({ where: `${source} row ${i + 1}`, index: i + 1, fields })),
    columns: names,
  };
}

/** Reads a JSON Lines or Parquet file (see the file header). JSONL syntax errors go to `errors`. */
export async function readRecordFile(
  path: string,
  errors: RowErrors,
  columns?: ColumnPicker,
): Promise<RecordFile> {
  const bytes = readBytes(path);
  if (isParquet(bytes)) return parseParquetRecords(bytes, path, columns);
  if (/\.parquet$/i.test(path))
    throw new DatasetError(`${path}: not a Parquet file (it does not start with "PAR1")`);
  return parseJsonlRecords(decodeUtf8(bytes, path), path, errors);
}

/** UTF-8 text (a leading byte-order mark dropped); invalid bytes are an error naming their line. */
function decodeUtf8(bytes: Uint8Array, source: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    let start = 0;
    for (let line = 1; ; line++) {
      const end = bytes.indexOf(0x0a, start);
      const stop = end < 0 ? bytes.length : end;
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(start, stop));
      } catch {
        throw new DatasetError(`${source}:${line}: not valid UTF-8 text; save the file as UTF-8`);
      }
      if (end < 0) throw new DatasetError(`${source}: not valid UTF-8 text; save the file as UTF-8`);
      start = end + 1;
    }
  }
}
