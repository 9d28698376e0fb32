import { join } from 'node:path';
import { ensureTestMedia, type TestMedia } from '../../src/bench/clients/media.ts';

const MEDIA_CACHE = join(import.meta.dirname, '..', '..', '.returncam-cache', 'test-media');

/** The integration tests' clip: 6 s of VP8 (640×360, 30 fps, 600 kbit/s) and Opus, cached. */
export function standardTestMedia(): Promise<TestMedia> {
  return ensureTestMedia(MEDIA_CACHE, {
    seconds: 6,
    fps: 30,
    width: 640,
    height: 360,
    bitrateKbps: 600,
  });
}
