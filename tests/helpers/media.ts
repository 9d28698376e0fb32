import { join } from 'node:path';
import {
  ensureTestMedia,
  type TestMedia,
  type TestMediaOptions,
} from '../../src/bench/clients/media.ts';

const MEDIA_CACHE = join(import.meta.dirname, '..', '..', '.returncam-cache', 'test-media');

/**
 * A cached VP8 + Opus clip for the integration tests: 6 s, 640×360, 30 fps, 600 kbit/s unless
 * `overrides` says otherwise.
 */
export function testMedia(overrides: Partial<TestMediaOptions> = {}): Promise<TestMedia> {
  return ensureTestMedia(MEDIA_CACHE, {
    seconds: 6,
    fps: 30,
    width: 640,
    height: 360,
    bitrateKbps: 600,
    ...overrides,
  });
}

/** The integration tests' clip: 6 s of VP8 (640×360, 30 fps, 600 kbit/s) and Opus. */
export const standardTestMedia = (): Promise<TestMedia> => testMedia();
