import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPath } from '../../src/core/ffmpeg.ts';
import { RecordingLibrary } from '../../src/node/recording/RecordingLibrary.ts';
import { Store } from '../../src/node/store/Store.ts';
import { BIN, runCli, startNodeProcess } from '../helpers/cli.ts';
import { sourceClip } from '../helpers/recordingMedia.ts';

const DAY = 86_400_000;
let dir: string;
let out: string;

/** A node data directory with three cases, each with one finished recording. */
async function seed(): Promise<void> {
  const clip = await sourceClip('vp8-320', 3);
  const store = new Store(join(dir, 'returncam.db'));
  const library = new RecordingLibrary({ store, dataDir: dir, retentionDays: 180 });
  for (const [id, closedDaysAgo] of [
    ['c_keep', undefined],
    ['c_old', 200],
    ['c_hold', 1],
  ] as const) {
    store.insertCase({
      id,
      orderId: `o-${id}`,
      sku: 's',
      marketplace: null,
      warehouseId: null,
      reason: 'damaged',
      note: null,
      createdAt: Date.now() - 300 * DAY,
    });
    mkdirSync(join(dir, 'recordings', id), { recursive: true });
    const rel = join('recordings', id, `r_${id}.webm`);
    copyFileSync(clip, join(dir, rel));
    store.insertRecording({
      id: `r_${id}`,
      caseId: id,
      sessionId: `s_${id}`,
      role: 'buyer',
      path: rel,
      container: 'webm',
      tracks: [],
      startedAt: Date.now() - 250 * DAY,
    });
    await library.finish(`r_${id}`, { path: join(dir, rel), startedAt: 0, tracks: [], bytes: 0 });
    if (closedDaysAgo !== undefined) {
      store.setStatus(id, 'closed');
      store.close(id, Date.now() - closedDaysAgo * DAY);
    }
  }
  store.closeDb();
}

const rec = (args: string[]) => runCli(['rec', ...args, '--data', dir]);

function events(caseId: string) {
  const store = new Store(join(dir, 'returncam.db'));
  try {
    return store.events(caseId);
  } finally {
    store.closeDb();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'returncam-rec-cli-'));
  out = mkdtempSync(join(tmpdir(), 'returncam-rec-out-'));
  await seed();
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(out, { recursive: true, force: true });
});

describe('returncam rec (CLI as a process, on the data directory)', () => {
  it('lists and shows recordings, as text and as versioned JSON', async () => {
    const list = await rec(['list']);
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toMatch(/^RECORDING\s+CASE\s+ROLE/m);
    for (const id of ['r_c_keep', 'r_c_old', 'r_c_hold']) expect(list.stdout).toContain(id);
    const json = JSON.parse((await rec(['list', '--case', 'c_keep', '--json'])).stdout) as {
      version: number;
      recordings: { id: string }[];
    };
    expect(json.version).toBe(1);
    expect(json.recordings.map((r) => r.id)).toEqual(['r_c_keep']);

    const show = await rec(['show', 'r_c_keep']);
    expect(show.exitCode).toBe(0);
    expect(show.stdout).toMatch(/^sha256\s+[0-9a-f]{64}$/m);
    expect(show.stdout).toMatch(/^length\s+3\.0s$/m);
    expect(show.stdout).toMatch(/^\d\s+video\s+VP8\s+90\s/m);
    expect(show.stdout).toMatch(/^\d\s+audio\s+OPUS\s/m);

    const missing = await rec(['show', 'r_nope']);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toBe('returncam: recording r_nope does not exist');
  });

  it('verify passes on intact files and exits 1 naming a flipped byte', async () => {
    const ok = await rec(['verify', '--all']);
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toContain('3 recording(s) checked, none damaged');
    expect(ok.stderr).toMatch(/^verified 1\/3 /m);

    const file = join(dir, 'recordings', 'c_keep', 'r_c_keep.webm');
    const good = readFileSync(file);
    const bad = Buffer.from(good);
    bad[5000]! ^= 0x40;
    writeFileSync(file, bad);
    try {
      const damaged = await rec(['verify', 'r_c_keep']);
      expect(damaged.exitCode).toBe(1);
      expect(damaged.stdout).toMatch(
        /^DAMAGED {2}r_c_keep: recordings\/c_keep\/r_c_keep\.webm changed since it was recorded: sha256 [0-9a-f]{64} ≠ stored [0-9a-f]{64}$/m,
      );
      expect(damaged.stdout).toContain('1 of 1 recording(s) damaged');
      const json = JSON.parse((await rec(['verify', '--all', '--json'])).stdout) as {
        version: number;
        ok: boolean;
        results: { id: string; ok: boolean }[];
      };
      expect(json).toMatchObject({ version: 1, ok: false });
      expect(json.results.filter((r) => !r.ok).map((r) => r.id)).toEqual(['r_c_keep']);
    } finally {
      writeFileSync(file, good);
    }
    const usage = await rec(['verify']);
    expect(usage.exitCode).toBe(1);
    expect(usage.stderr).toContain('name a recording id, or pass --all');
  });

  it('transcodes to an MP4 (H.264/AAC) with progress on stderr', async () => {
    const mp4 = join(out, 'keep.mp4');
    const r = await rec(['transcode', 'r_c_keep', '--to', 'mp4', '--out', mp4]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*keep\.mp4 \(/m);
    expect(r.stderr).toMatch(/^transcoding r_c_keep: 100%$/m);
    const probe = await execa(ffmpegPath(), ['-hide_banner', '-i', mp4], { reject: false });
    expect(probe.stderr).toMatch(/Video: h264/);
    expect(probe.stderr).toMatch(/Audio: aac/);
    const decoded = await execa(ffmpegPath(), ['-v', 'error', '-i', mp4, '-f', 'null', '-'], {
      reject: false,
    });
    expect(decoded.stderr).toBe('');
  });

  // util-linux `script` provides the terminal
  it.skipIf(!existsSync('/usr/bin/script'))(
    'on a terminal, transcoding draws an ink progress bar instead of lines',
    async () => {
      const mp4 = join(out, 'keep-tty.mp4');
      const cmd = `stty cols 120 rows 30; exec ${BIN} rec transcode r_c_keep --data ${dir} --out ${mp4}`;
      const r = await execa('script', ['-qfec', cmd, '/dev/null'], {
        reject: false,
        env: { PATH: process.env.PATH ?? '', TERM: 'xterm-256color' },
        extendEnv: false,
        timeout: 30_000,
      });
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain('transcoding r_c_keep');
      expect(r.stdout).toContain('█');
      expect(r.stdout).not.toMatch(/^transcoding r_c_keep: 100%\r?$/m);
      expect(r.stdout).toMatch(/wrote .*keep-tty\.mp4/);
    },
  );

  it('hold blocks erase until release; erase and prune leave the case, mark it erased and log who and why', async () => {
    const hold = await rec(['hold', 'c_hold', '--reason', 'chargeback CB-7', '--by', 'alice']);
    expect(hold.exitCode).toBe(0);
    expect(hold.stdout).toBe('case c_hold is on legal hold: chargeback CB-7');
    const blocked = await rec(['erase', 'c_hold', '--reason', 'buyer asked', '--by', 'bob']);
    expect(blocked.exitCode).toBe(1);
    expect(blocked.stderr).toMatch(
      /case c_hold is on legal hold \(chargeback CB-7\); release the hold first/,
    );
    expect(existsSync(join(dir, 'recordings', 'c_hold', 'r_c_hold.webm'))).toBe(true);

    // prune skips the held case and takes the one closed 200 days ago
    const dry = await rec(['prune', '--dry-run']);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toMatch(/^c_old\s/m);
    expect(dry.stdout).not.toContain('c_hold');
    expect(dry.stdout).toMatch(/would delete .* from 1 case\(s\) \(dry run\)/);
    expect(existsSync(join(dir, 'recordings', 'c_old'))).toBe(true);
    const prune = await rec(['prune', '--by', 'cron', '--json']);
    expect(prune.exitCode).toBe(0);
    expect(JSON.parse(prune.stdout)).toMatchObject({
      version: 1,
      dryRun: false,
      cases: [{ caseId: 'c_old', recordings: ['r_c_old'] }],
    });
    expect(existsSync(join(dir, 'recordings', 'c_old'))).toBe(false);
    expect(events('c_old').at(-1)).toMatchObject({ type: 'media.pruned', data: { by: 'cron' } });

    expect((await rec(['release', 'c_hold', '--by', 'alice'])).exitCode).toBe(0);
    const erase = await rec(['erase', 'c_hold', '--reason', 'GDPR request 881', '--by', 'bob']);
    expect(erase.exitCode).toBe(0);
    expect(erase.stdout).toMatch(/^case c_hold: erased 1 recording\(s\) and 0 snapshot\(s\)/);
    expect(existsSync(join(dir, 'recordings', 'c_hold'))).toBe(false);
    const types = events('c_hold').map((e) => e.type);
    expect(types.slice(-3)).toEqual(['media.hold', 'media.released', 'media.erased']);
    expect(events('c_hold').at(-1)).toMatchObject({
      actor: 'admin:bob',
      data: { by: 'bob', reason: 'GDPR request 881' },
    });

    const list = await rec(['list', '--case', 'c_hold']);
    expect(list.stdout).toMatch(/r_c_hold .* erased$/m);
  });

  it('goes through a running node with --node', async () => {
    const node = await startNodeProcess([], {
      dataDir: dir,
      env: { RETURNCAM_RECORDING_MIN_FREE_BYTES: '1', RETURNCAM_RECORDING_STOP_FREE_BYTES: '0' },
    });
    try {
      const list = await runCli(['rec', 'list', '--node', node.url, '--data', dir, '--json']);
      expect(list.exitCode).toBe(0);
      const ids = (JSON.parse(list.stdout) as { recordings: { id: string }[] }).recordings
        .map((r) => r.id)
        .sort();
      expect(ids).toEqual(['r_c_hold', 'r_c_keep', 'r_c_old']);
      const verify = await runCli(['rec', 'verify', 'r_c_keep', '--node', node.url, '--data', dir]);
      expect(verify.exitCode).toBe(0);
      expect(verify.stdout).toMatch(/^ok {7}r_c_keep sha256 [0-9a-f]{64}$/m);
      const hold = await runCli([
        'rec',
        'hold',
        'c_keep',
        '--reason',
        'dispute',
        '--by',
        'carol',
        '--node',
        node.url,
        '--data',
        dir,
      ]);
      expect(hold.exitCode).toBe(0);
      const transcode = await runCli([
        'rec',
        'transcode',
        'r_c_keep',
        '--node',
        node.url,
        '--data',
        dir,
      ]);
      expect(transcode.exitCode).toBe(1);
      expect(transcode.stderr).toContain('use --data DIR instead of --node');
    } finally {
      await node.stop('SIGINT');
    }
    expect(events('c_keep').at(-1)).toMatchObject({ type: 'media.hold', actor: 'admin:carol' });
  });
});
