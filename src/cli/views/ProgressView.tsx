/** @jsxRuntime automatic */
/** @jsxImportSource react */
import { Box, Text } from 'ink';

export interface ProgressViewProps {
  label: string;
  /** 0..1, or undefined when the total is unknown. */
  fraction: number | undefined;
  detail: string;
}

const WIDTH = 30;

/** One long operation: a bar, a percentage and what it is doing now. */
export function ProgressView({ label, fraction, detail }: ProgressViewProps) {
  const filled =
    fraction === undefined ? 0 : Math.round(Math.min(1, Math.max(0, fraction)) * WIDTH);
  return (
    <Box flexDirection="column">
      <Text>
        <Text bold>{label}</Text> <Text color="cyan">{'█'.repeat(filled)}</Text>
        <Text dimColor>{'░'.repeat(WIDTH - filled)}</Text>
        {fraction === undefined ? '' : ` ${Math.floor(fraction * 100)}%`}
      </Text>
      {detail ? <Text dimColor>{detail}</Text> : null}
    </Box>
  );
}
