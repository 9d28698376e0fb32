import { type ChildProcess, spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { InspectorClient, inspectorUrl } from '../../src/bench/inspector.ts';

// holds ~40 MB of arrays until told to drop them (a line on stdin)
const PROGRAM = `
globalThis.held = Array.from({ length: 40 }, () => new Array(131072).fill(1.5));
process.stdin.once('data', () => { globalThis.held = null; process.stdout.write('dropped\\n'); });
process.stdout.write('holding\\n');
setInterval(() => {}, 1000);
`;

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

async function start(flags: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [...flags, '-e', PROGRAM], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  // the inspector listens before the program runs
  const holding = new Promise((r) => child.stdout!.once('data', r));
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const u = inspectorUrl(err);
      if (u) resolve(u);
    });
    child.once('exit', () => reject(new Error(`exited: ${err}`)));
  });
  await holding;
  return { child, url };
}

describe("a node process's live heap, read through its inspector", () => {
  it('finds the URL Node prints', () => {
    expect(
      inspectorUrl(
        'Debugger listening on ws://127.0.0.1:39191/0f6c-4e1a\nFor help, see: https://nodejs.org/en/docs/inspector\n',
      ),
    ).toBe('ws://127.0.0.1:39191/0f6c-4e1a');
    expect(inspectorUrl('Debugger listening on')).toBeUndefined();
  });

  it('collects and reads what is kept: the held arrays, then nothing once they are dropped', async () => {
    const { child, url } = await start(['--inspect=127.0.0.1:0', '--expose-gc']);
    const client = await InspectorClient.connect(url);
    try {
      const holding = await client.liveHeapBytes();
      expect(holding).toBeGreaterThan(40 * 1048576);
      const dropped = new Promise((r) => child.stdout!.once('data', r));
      child.stdin!.write('drop\n');
      await dropped;
      const after = await client.liveHeapBytes();
      // without the collection the arrays would still count until V8 chose to collect them
      expect(holding - after).toBeGreaterThan(38 * 1048576);
    } finally {
      client.close();
    }
  });

  it('says what is missing when the process runs without --expose-gc', async () => {
    const { url } = await start(['--inspect=127.0.0.1:0']);
    const client = await InspectorClient.connect(url);
    try {
      await expect(client.liveHeapBytes()).rejects.toThrow('runs without --expose-gc');
    } finally {
      client.close();
    }
  });

  it('fails plainly when nothing listens', async () => {
    await expect(InspectorClient.connect('ws://127.0.0.1:9/none', 2000)).rejects.toThrow(
      'inspector: cannot connect to ws://127.0.0.1:9/none',
    );
  });
});
