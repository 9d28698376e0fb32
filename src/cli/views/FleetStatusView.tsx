/** @jsxRuntime automatic */
/** @jsxImportSource react */
import { Box, Text } from 'ink';

export interface FleetStatusViewProps {
  headers: string[];
  rows: { cells: string[]; state: 'ok' | 'unhealthy' | 'down' }[];
  /** Lines under the table: what is wrong with each node that is not ok. */
  problems: string[];
  updatedAt: string;
  intervalText: string;
}

const COLOR = { ok: 'green', unhealthy: 'yellow', down: 'red' } as const;

/** The `fleet status --watch` screen: a table redrawn in place. Everything arrives formatted. */
export function FleetStatusView(props: FleetStatusViewProps) {
  const widths = props.headers.map((h, i) =>
    Math.max(h.length, ...props.rows.map((r) => (r.cells[i] ?? '').length)),
  );
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return (
    <Box flexDirection="column">
      <Text bold>{line(props.headers)}</Text>
      {props.rows.map((r) => (
        <Text key={r.cells[0]} color={COLOR[r.state]}>
          {line(r.cells)}
        </Text>
      ))}
      {props.problems.map((p) => (
        <Text key={p} dimColor>
          {p}
        </Text>
      ))}
      <Text dimColor>
        updated {props.updatedAt}, every {props.intervalText}; Ctrl-C to stop
      </Text>
    </Box>
  );
}
