import { execSync } from 'node:child_process';
import { createRequire } from 'node:module';

let cached: string | undefined;

/**
 * The ffmpeg binary: `RETURNCAM_FFMPEG` if set, else a system `ffmpeg` on PATH, else the one
 * shipped inside the `@ffmpeg-installer/ffmpeg` npm package.
 */
export function ffmpegPath(): string {
  if (cached) return cached;
  const fromEnv = process.env.RETURNCAM_FFMPEG;
  if (fromEnv) {
    cached = fromEnv;
    return cached;
  }
  try {
    const onPath = execSync('command -v ffmpeg', { encoding: 'utf8', shell: '/bin/sh' }).trim();
    if (onPath) {
      cached = onPath;
      return cached;
    }
  } catch {
    // no ffmpeg on PATH: fall through to the packaged one
  }
  const require = createRequire(import.meta.url);
  cached = (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;
  return cached;
}
