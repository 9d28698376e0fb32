import type { Socket } from 'node:dgram';
import { afterEach } from 'vitest';

/** A list for the sockets a test file opens: each is closed after every test (if still open). */
export function socketsClosedAfterEach(): Socket[] {
  const open: Socket[] = [];
  afterEach(() => {
    for (const s of open.splice(0)) {
      try {
        s.close();
      } catch {
        // already closed by the test
      }
    }
  });
  return open;
}
