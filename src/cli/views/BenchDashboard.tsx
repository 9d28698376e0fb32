/** @jsxRuntime automatic */
/** @jsxImportSource react */
import { Box, Text } from 'ink';
import type { BenchProgress } from '../../bench/runBench.ts';

export interface BenchDashboardProps {
  /** What is being run: profile, sessions, node. */
  title: string;
  progress: BenchProgress;
}

function ms(v: number | undefined): string {
  return v === undefined ? '-' : v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

function bar(done: number, total: number, width = 24): string {
  const filled = total > 0 ? Math.max(0, Math.min(width, Math.round((done / total) * width))) : 0;
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

/** The live `bench run` screen: progress, latency so far, and one line per session. */
export function BenchDashboard({ title, progress: p }: BenchDashboardProps) {
  const head = ['session', 'frames', 'p50', 'p95', 'p99', 'kbit/s', 'loss', 'freezes'];
  const rows = p.sessions.map((s) => [
    String(s.index),
    String(s.frames),
    ms(s.p50),
    ms(s.p95),
    ms(s.p99),
    s.kbps.toFixed(0),
    `${s.lossPct.toFixed(1)}%`,
    String(s.freezes),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  const shown = rows.slice(0, 12);
  return (
    <Box flexDirection="column">
      <Text bold>{title}</Text>
      <Text>
        {bar(p.elapsedMs, p.durationMs)} {(p.elapsedMs / 1000).toFixed(0)} /{' '}
        {(p.durationMs / 1000).toFixed(0)} s <Text dimColor>{p.message}</Text>
      </Text>
      {p.overall ? (
        <Text>
          last 10 s: p50 <Text bold>{ms(p.overall.p50)}</Text> p95{' '}
          <Text bold color={p.overall.p95 > 600 ? 'red' : 'green'}>
            {ms(p.overall.p95)}
          </Text>{' '}
          p99 {ms(p.overall.p99)} ms over {p.overall.frames} frames
        </Text>
      ) : (
        <Text dimColor>no frames yet</Text>
      )}
      {rows.length > 0 && <Text dimColor>{line(head)}</Text>}
      {shown.map((r) => (
        <Text key={r[0]}>{line(r)}</Text>
      ))}
      {rows.length > shown.length && (
        <Text dimColor>… {rows.length - shown.length} more sessions</Text>
      )}
      <Text dimColor>Ctrl-C stops early and reports what was measured</Text>
    </Box>
  );
}
