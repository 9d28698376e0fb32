import { statfsSync } from 'node:fs';
import { join } from 'node:path';

export interface DiskSpace {
  freeBytes: number;
  totalBytes: number;
}

/**
 * Space on the filesystem that holds DATA/recordings, for /healthz and `fleet status`; null
 * when it cannot be read (the directory is missing or the platform has no statfs).
 */
export function recordingsDisk(dataDir: string): DiskSpace | null {
  try {
    const s = statfsSync(join(dataDir, 'recordings'));
    return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
  } catch {
    return null;
  }
}
