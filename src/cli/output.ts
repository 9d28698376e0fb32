/** Results go to stdout; status and progress to stderr. `--json` output is versioned. */
export function printJson(value: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ version: 1, ...value }, null, 2)}\n`);
}

export function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}

export function status(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** A fixed-width text table. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** UTC ISO time without milliseconds, or a dash. */
export function time(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : '-';
}
