/**
 * How long a viewer should hold video before showing it, from what repairs on the publisher's
 * uplink take, sent to the viewer in libwebrtc's playout-delay RTP header extension.
 *
 * A packet lost on the publisher's uplink reaches viewers a repair later than its frame's other
 * packets: the node's NACK crosses the uplink, the retransmission crosses it back (on 3G at
 * 150 ms a way, 300-450 ms in all). A viewer's jitter buffer adapts to the jitter it sees, not to
 * this: Chrome leaves frames completed by a retransmission out of its jitter estimate and adds
 * only its own leg's round trip. So with a buffer of ~100-180 ms every repaired packet of a frame
 * the picture depends on stops the picture for the rest of the repair, and Chrome counts a freeze
 * once a frame is over 150 ms later than the usual spacing. The node, which sees both the repairs
 * and the viewer, asks the viewer for a minimum playout delay that hides a typical repair, and for
 * nothing when the uplink needs none.
 *
 * Extension: http://www.webrtc.org/experiments/rtp-hdrext/playout-delay (libwebrtc
 * `docs/native-code/rtp-hdrext/playout-delay`), 3 bytes: minimum and maximum delay, 12 bits each,
 * in units of 10 ms. libwebrtc applies the values of a frame's first packet and keeps them until
 * a frame says otherwise; its target delay is max(minimum, its own jitter-based delay), at most
 * the maximum.
 */

export const PLAYOUT_DELAY_URI = 'http://www.webrtc.org/experiments/rtp-hdrext/playout-delay';

/** Granularity of the extension's values. */
const UNIT_MS = 10;
/** Largest value 12 bits of 10 ms carry. */
export const PLAYOUT_DELAY_LIMIT_MS = 0xfff * UNIT_MS;
/**
 * The maximum the node sends: libwebrtc's own default (`VCMTiming`), so that only the minimum
 * changes. A maximum of 500 ms or less with a minimum of 0 would switch Chrome to its low-latency
 * renderer instead.
 */
export const PLAYOUT_DELAY_MAX_MS = 10_000;
/**
 * Default cap of the minimum asked for, ms (`media.maxPlayoutDelayMs`): none. On
 * `3g-cross-border` a cap of 250 ms took the median freeze ratio from 1.78 to 1.51 % and the
 * p95 camera to screen from 525 to 598 ms; 400 ms, 1.15 % and 630 ms (DEVELOPERS.md).
 */
export const DEFAULT_MAX_PLAYOUT_DELAY_MS = 0;

/**
 * How much later than the usual spacing a frame may come without Chrome counting a freeze
 * (`VideoQualityObserver`: 150 ms over the average frame interval), less a margin for the
 * viewer's own jitter.
 */
const FREEZE_ALLOWANCE_MS = 130;
/** Repairs older than this no longer count. */
const WINDOW_MS = 20_000;
/** Fewer repairs than this in the window ask for no delay: a rare loss is not worth latency. */
const MIN_REPAIRS = 3;
/** The repair time to hide: this fraction of the window's repairs take as long or less. */
const QUANTILE = 0.75;
/** Repair times kept (about 20 s of a 3G uplink's repairs at 1.5 % loss). */
const CAPACITY = 64;
/** A new minimum is sent only when it differs from the current one by this much (or is 0). */
const STEP_MS = 20;

/** The extension's 3 bytes for a minimum and maximum delay, ms (rounded up to 10 ms, clamped). */
export function playoutDelayPayload(minMs: number, maxMs: number): Buffer {
  const unit = (ms: number) =>
    Math.min(0xfff, Math.max(0, Math.ceil(Math.min(ms, PLAYOUT_DELAY_LIMIT_MS) / UNIT_MS)));
  const min = unit(minMs);
  const max = Math.max(min, unit(maxMs));
  return Buffer.from([min >> 4, ((min & 0xf) << 4) | (max >> 8), max & 0xff]);
}

/** The minimum and maximum delay (ms) an extension payload carries, or undefined if malformed. */
export function parsePlayoutDelay(
  payload: Uint8Array,
): { minMs: number; maxMs: number } | undefined {
  if (payload.length !== 3) return undefined;
  const min = (payload[0]! << 4) | (payload[1]! >> 4);
  const max = ((payload[1]! & 0xf) << 8) | payload[2]!;
  return { minMs: min * UNIT_MS, maxMs: max * UNIT_MS };
}

/**
 * The repair times of one publisher's video (all its simulcast layers: one uplink): for each
 * packet the node NACKed and got back, how long after the gap was seen the repair came.
 */
export class RepairDelays {
  private readonly delays = new Float64Array(CAPACITY);
  private readonly times = new Float64Array(CAPACITY);
  private next = 0;
  private count = 0;

  add(delayMs: number, now: number): void {
    this.delays[this.next] = delayMs;
    this.times[this.next] = now;
    this.next = (this.next + 1) % CAPACITY;
    this.count = Math.min(CAPACITY, this.count + 1);
  }

  /** The repair time that {@link QUANTILE} of the last {@link WINDOW_MS}'s repairs meet, if enough. */
  typicalMs(now: number): number | undefined {
    const recent: number[] = [];
    for (let i = 0; i < this.count; i++) {
      if (now - this.times[i]! <= WINDOW_MS) recent.push(this.delays[i]!);
    }
    if (recent.length < MIN_REPAIRS) return undefined;
    recent.sort((a, b) => a - b);
    return recent[Math.min(recent.length - 1, Math.ceil(QUANTILE * recent.length) - 1)]!;
  }
}

/** The minimum playout delay to ask of a viewer for a typical repair time, ms (0: none). */
export function minPlayoutDelayMs(typicalRepairMs: number | undefined, capMs: number): number {
  if (typicalRepairMs === undefined || capMs <= 0) return 0;
  const wanted = typicalRepairMs - FREEZE_ALLOWANCE_MS;
  if (wanted <= 0) return 0;
  return Math.min(capMs, Math.ceil(wanted / UNIT_MS) * UNIT_MS);
}

/**
 * One viewer's playout delay: what it was last asked for, changed in steps of at least
 * {@link STEP_MS} so that small changes in the repair times do not move its buffer back and forth.
 */
export class PlayoutDelayPlan {
  /** The minimum last sent, ms; undefined while nothing was ever asked (no extension sent). */
  current: number | undefined;

  constructor(private readonly capMs: number) {}

  /** The minimum to send from now on, or undefined to send no extension (never needed yet). */
  update(typicalRepairMs: number | undefined): number | undefined {
    const wanted = minPlayoutDelayMs(typicalRepairMs, this.capMs);
    const current = this.current;
    if (current === undefined) {
      if (wanted > 0) this.current = wanted;
    } else if (wanted === 0 || Math.abs(wanted - current) >= STEP_MS) {
      // once sent, a minimum stays in force at the viewer until another replaces it: 0 too
      this.current = wanted;
    }
    return this.current;
  }
}
