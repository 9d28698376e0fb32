import type { ChainedEvent } from '../store/eventChain.ts';
import type { RecordingRecord } from '../store/Store.ts';

/**
 * The moments of a case worth a still from the recording — the buyer's first join, each prompt
 * staff sent, each decision — and where in which recording that moment is. Pure functions.
 */

export type MomentKind = 'first-join' | 'prompt' | 'decision';

export interface Moment {
  kind: MomentKind;
  /** Wall-clock time of the event, UTC ms. */
  at: number;
  /** The event in the case timeline. */
  seq: number;
  label: string;
}

/** A playable piece of recording on the wall clock. */
export interface Segment {
  recordingId: string;
  role: string;
  startedAt: number;
  durationMs: number;
}

export interface FrameLocation {
  recordingId: string;
  role: string;
  /** Media time into the recording. */
  offsetMs: number;
  /** Wall-clock time of that frame. */
  frameAt: number;
  /** How far the frame is from the moment (0 when the recording covers it). */
  gapMs: number;
  /** The frame is the last one before the moment, or the first one after it. */
  relation: 'during' | 'before' | 'after';
}

/** A frame this close to the end of a file is the last one that still decodes reliably. */
const TAIL_MS = 100;

function short(text: string, max = 80): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function keyMoments(events: readonly ChainedEvent[]): Moment[] {
  const out: Moment[] = [];
  const joins = events.filter(
    (e) => e.type === 'participant.joined' && e.data.direction === 'publish',
  );
  const firstJoin = joins.find((e) => e.data.role === 'buyer') ?? joins[0];
  if (firstJoin) {
    out.push({
      kind: 'first-join',
      at: firstJoin.at,
      seq: firstJoin.seq,
      label: `First join (${String(firstJoin.data.role)})`,
    });
  }
  for (const e of events) {
    if (e.type === 'message.posted' && e.data.kind === 'prompt') {
      out.push({
        kind: 'prompt',
        at: e.at,
        seq: e.seq,
        label: `Prompt: "${short(String(e.data.text ?? ''))}"`,
      });
    } else if (e.type === 'case.decided') {
      const d = e.data;
      out.push({
        kind: 'decision',
        at: e.at,
        seq: e.seq,
        label: `Decision: ${String(d.outcome)}${d.disposition ? ` (${String(d.disposition)})` : ''}`,
      });
    }
  }
  return out.sort((a, b) => a.at - b.at || a.seq - b.seq);
}

/** Recordings that hold video to take frames from. */
export function videoSegments(recordings: readonly RecordingRecord[]): Segment[] {
  return recordings
    .filter(
      (r) =>
        r.erasedAt === null &&
        (r.status === 'finished' || r.status === 'truncated' || r.status === 'repaired') &&
        (r.durationMs ?? 0) > 0 &&
        r.tracks.some((t) => t.kind === 'video' && (t.frames ?? 0) > 0),
    )
    .map((r) => ({
      recordingId: r.id,
      role: r.role,
      startedAt: r.startedAt,
      durationMs: r.durationMs ?? 0,
    }))
    .sort((a, b) => a.startedAt - b.startedAt);
}

function locateIn(at: number, segments: readonly Segment[]): FrameLocation | undefined {
  let best: FrameLocation | undefined;
  for (const s of segments) {
    const end = s.startedAt + s.durationMs;
    const last = Math.max(0, s.durationMs - TAIL_MS);
    let loc: FrameLocation;
    if (at >= s.startedAt && at <= end) {
      const offsetMs = Math.min(at - s.startedAt, last);
      return {
        recordingId: s.recordingId,
        role: s.role,
        offsetMs,
        frameAt: s.startedAt + offsetMs,
        gapMs: 0,
        relation: 'during',
      };
    }
    if (end < at) {
      loc = {
        recordingId: s.recordingId,
        role: s.role,
        offsetMs: last,
        frameAt: s.startedAt + last,
        gapMs: at - end,
        relation: 'before',
      };
    } else {
      loc = {
        recordingId: s.recordingId,
        role: s.role,
        offsetMs: 0,
        frameAt: s.startedAt,
        gapMs: s.startedAt - at,
        relation: 'after',
      };
    }
    if (!best || loc.gapMs < best.gapMs) best = loc;
  }
  return best;
}

/**
 * Where the frame for a moment is: in the buyer's recording when there is one (the buyer shows
 * the item), else any role's. A recording covering the moment wins; otherwise the nearest frame
 * before or after it, if no more than `maxGapMs` away.
 */
export function locateFrame(
  at: number,
  segments: readonly Segment[],
  maxGapMs = 10 * 60_000,
): FrameLocation | undefined {
  const buyer = segments.filter((s) => s.role === 'buyer');
  const found = (buyer.length ? locateIn(at, buyer) : undefined) ?? locateIn(at, segments);
  const other = buyer.length && found?.relation !== 'during' ? locateIn(at, segments) : undefined;
  const pick = other && found && other.relation === 'during' ? other : found;
  return pick && pick.gapMs <= maxGapMs ? pick : undefined;
}
