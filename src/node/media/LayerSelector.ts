/**
 * Which simulcast layer one subscriber gets, from its estimated bandwidth and each layer's
 * bitrate as measured at the node. Pure: the caller passes the time and the measurements.
 *
 * - Down promptly: when the budget stays below the current layer's bitrate for `downHoldMs`, or
 *   at once on heavy loss; to the best layer that fits.
 * - Up slowly, one layer at a time: only after the budget has exceeded the next layer's bitrate
 *   × `upMargin` for `upHoldMs`. An upgrade that has to be undone within `failWindowMs` doubles the wait before
 *   that layer is tried again (up to `maxBackoff` ×), so random loss cannot make layers flap.
 * - When even the lowest layer does not fit: {@link STILL} (audio plus a still frame now and then).
 *   In still-frame mode the node sends almost nothing, so a receive-side estimate cannot grow back
 *   by itself: after `stillProbeMs` of clean reports the lowest layer is tried again ('probe'); a
 *   probe undone within `failWindowMs` doubles that wait (up to `maxBackoff` ×).
 * - A layer the publisher dropped (its own uplink estimate no longer carried it) is not chosen
 *   again until it has been back for `returnHoldMs`; dropped again within `failWindowMs` of coming
 *   back, it waits twice as long the next time (up to `maxBackoff` ×). On a narrow uplink the
 *   publisher's encoder switches its top layer on and off every few seconds, and each time it
 *   goes, a subscriber on it sees nothing until the lower layer's keyframe comes.
 */

/** The subscriber gets audio and an occasional still frame of the lowest layer. */
export const STILL = -1;

export interface LayerSelectorOptions {
  downHoldMs?: number;
  upHoldMs?: number;
  upMargin?: number;
  failWindowMs?: number;
  maxBackoff?: number;
  /** In still-frame mode, clean reports for this long try the lowest layer again. */
  stillProbeMs?: number;
  /** On a clean link, step down only when the budget is under this share of the layer (0..1]. */
  cleanDownMargin?: number;
  /** A layer the publisher dropped is chosen again only after it has been back this long. */
  returnHoldMs?: number;
}

export const LAYER_SELECTOR_DEFAULTS = {
  downHoldMs: 1_000,
  upHoldMs: 4_000,
  upMargin: 1.3,
  failWindowMs: 10_000,
  maxBackoff: 8,
  stillProbeMs: 3_000,
  cleanDownMargin: 0.8,
  returnHoldMs: 4_000,
} as const;

/** Whether a layer is arriving, and how it has come and gone. */
interface Presence {
  /** Arriving since (ms); undefined while it is not. */
  since: number | undefined;
  /** The publisher has dropped it at least once. */
  dropped: boolean;
  /** Multiplier of `returnHoldMs`: doubled by each drop soon after a return. */
  backoff: number;
}

export interface LayerInput {
  now: number;
  /** What the subscriber can take for video (its estimate minus the audio it gets), bit/s. */
  budgetBps: number;
  /** Measured bitrate of each layer, lowest first; 0 for a layer that is not arriving. */
  layerBps: readonly number[];
  /** The subscriber reports heavy loss: step down without waiting. */
  heavyLoss?: boolean;
  /** Reports are arriving and show (next to) no loss on the subscriber's leg. */
  linkClean?: boolean;
  /**
   * Nothing has arrived from the publisher for a moment (an outage upstream): no climb or probe
   * starts, and one under way starts over once it sends again. Right after an outage the
   * publisher's higher layers are at their weakest (its own estimate collapsed, keyframes
   * pending), so a switch up then would move the viewer onto the stream least likely to play.
   */
  publisherSilent?: boolean;
}

export interface LayerChange {
  from: number | undefined;
  to: number;
  at: number;
  reason: 'start' | 'down' | 'heavy_loss' | 'up' | 'probe' | 'layer_gone' | 'restore';
}

export class LayerSelector {
  private readonly o: Required<LayerSelectorOptions>;
  private current: number | undefined;
  private belowSince: number | undefined;
  private aboveSince: number | undefined;
  private cleanSince: number | undefined;
  private lastUp: { layer: number; at: number } | undefined;
  /**
   * The layer the subscriber had when the publisher stopped sending it: the subscriber's link
   * was not the reason, so it goes back as soon as that layer (or one between) arrives again.
   */
  private restoreTo: number | undefined;
  private readonly backoff = new Map<number, number>();
  private readonly presence: Presence[] = [];
  private changes = 0;
  private linkChanges = 0;

  constructor(options: LayerSelectorOptions = {}) {
    this.o = { ...LAYER_SELECTOR_DEFAULTS, ...options };
    for (const [name, value] of Object.entries(this.o)) {
      if (!Number.isFinite(value) || value < 0) {
        throw new Error(`layer selector: ${name} must be a non-negative number, got ${value}`);
      }
    }
    if (this.o.upMargin < 1) throw new Error('layer selector: upMargin must be at least 1');
    if (this.o.cleanDownMargin <= 0 || this.o.cleanDownMargin > 1) {
      throw new Error('layer selector: cleanDownMargin must be in (0, 1]');
    }
  }

  /** The chosen layer (index, or {@link STILL}); undefined before any layer has arrived. */
  get layer(): number | undefined {
    return this.current;
  }

  /** Layer changes so far (the first choice not counted). */
  get switches(): number {
    return this.changes;
  }

  /** Steps down because of the subscriber's own link (not because the publisher dropped a layer). */
  get linkDowns(): number {
    return this.linkChanges;
  }

  /** The wait before `layer` is tried again after failed upgrades, ms. */
  upHoldFor(layer: number): number {
    return this.o.upHoldMs * (this.backoff.get(layer) ?? 1);
  }

  /** The clean time still-frame mode waits before trying the lowest layer again, ms. */
  stillProbeFor(layer: number): number {
    return this.o.stillProbeMs * (this.backoff.get(layer) ?? 1);
  }

  /**
   * How long `layer` must still arrive before it may be chosen again, ms: 0 for a layer the
   * publisher has not dropped, or one back for long enough.
   */
  returnHoldLeft(layer: number, now: number): number {
    const p = this.presence[layer];
    if (!p?.dropped) return 0;
    if (p.since === undefined) return Number.POSITIVE_INFINITY;
    return Math.max(0, p.since + this.o.returnHoldMs * p.backoff - now);
  }

  /** Decides for now; returns the change, if the choice changed. */
  update(input: LayerInput): LayerChange | undefined {
    const { now, budgetBps, layerBps } = input;
    const top = highestActive(layerBps);
    if (top < 0) return undefined; // nothing arriving: keep the choice for when it resumes
    if (!input.publisherSilent) this.trackPresence(layerBps, now);
    const current = this.current;
    if (current === undefined) return this.change(bestFitting(layerBps, budgetBps), now, 'start');
    if (current !== STILL && !(layerBps[current]! > 0)) {
      // The publisher stopped sending this layer (its own uplink estimate or CPU dropped it).
      const restoreTo = Math.max(current, this.restoreTo ?? -1);
      const change = this.change(
        Math.min(this.bestSettled(layerBps, budgetBps, now), top),
        now,
        'layer_gone',
      );
      this.restoreTo = restoreTo;
      return change;
    }
    if (this.restoreTo !== undefined && current !== STILL && current < this.restoreTo) {
      const back = this.bestSettled(layerBps, budgetBps, now, this.restoreTo);
      if (back !== STILL && back > current && this.returnHoldLeft(back, now) === 0) {
        const restoreTo = this.restoreTo;
        const change = this.change(back, now, 'restore');
        // Only part of the way back: the rest follows when the higher layer arrives again.
        if (back < restoreTo) this.restoreTo = restoreTo;
        return change;
      }
    }
    if (
      this.lastUp &&
      this.lastUp.layer === current &&
      now - this.lastUp.at >= this.o.failWindowMs
    ) {
      this.backoff.delete(current); // the upgrade held
      this.lastUp = undefined;
    }
    if (current !== STILL) {
      if (input.heavyLoss) {
        const lower = Math.min(
          bestFitting(layerBps, budgetBps),
          nextActiveBelow(layerBps, current),
        );
        return this.change(lower, now, 'heavy_loss');
      }
      // On a clean link (reports arriving, no loss) the estimate of a receive-side estimator
      // hovers just above what it is sent; a dip of a few percent is not congestion.
      const downAt = layerBps[current]! * (input.linkClean ? this.o.cleanDownMargin : 1);
      if (budgetBps < downAt) {
        this.belowSince ??= now;
        if (now - this.belowSince >= this.o.downHoldMs) {
          return this.change(this.bestSettled(layerBps, budgetBps, now), now, 'down');
        }
      } else {
        this.belowSince = undefined;
      }
    }
    const next = nextActiveAbove(layerBps, current);
    if (input.publisherSilent) {
      this.aboveSince = undefined;
      this.cleanSince = undefined;
      return undefined;
    }
    if (current === STILL && next !== undefined) {
      if (input.linkClean) {
        this.cleanSince ??= now;
        if (now - this.cleanSince >= this.stillProbeFor(next)) {
          return this.change(next, now, 'probe');
        }
      } else {
        this.cleanSince = undefined;
      }
    }
    if (next === undefined) {
      this.aboveSince = undefined;
      return undefined;
    }
    if (budgetBps >= layerBps[next]! * this.o.upMargin) {
      this.aboveSince ??= now;
      if (now - this.aboveSince >= this.upHoldFor(next) && this.returnHoldLeft(next, now) === 0) {
        // One layer at a time: each step proves the link before the next is tried.
        return this.change(next, now, 'up');
      }
    } else {
      this.aboveSince = undefined;
    }
    return undefined;
  }

  /**
   * The switch up to the current layer never happened (the publisher went silent before that
   * layer's keyframe came): the subscriber is still on `layer`. Not a failed climb: the climb
   * starts over, without a longer wait.
   */
  abandonUp(layer: number): void {
    const up = this.lastUp;
    if (!up || up.layer !== this.current || layer >= up.layer) return;
    this.current = layer;
    this.lastUp = undefined;
    this.belowSince = undefined;
    this.aboveSince = undefined;
    this.cleanSince = undefined;
  }

  /**
   * The switch down from `layer` never happened: the publisher switched that layer back on before
   * the lower layer's keyframe came (its estimate dipped for a moment). The subscriber is still
   * on `layer`, and nothing is waiting to bring it back.
   */
  cancelDown(layer: number): void {
    const current = this.current;
    if (current === undefined || current === STILL || layer <= current) return;
    this.current = layer;
    this.restoreTo = undefined;
    this.belowSince = undefined;
    this.aboveSince = undefined;
    this.cleanSince = undefined;
  }

  /** Notes which layers arrive: a layer that stops is one the publisher dropped. */
  private trackPresence(layerBps: readonly number[], now: number): void {
    for (let i = 0; i < layerBps.length; i++) {
      let p = this.presence[i];
      if (!p) {
        p = { since: undefined, dropped: false, backoff: 1 };
        this.presence[i] = p;
      }
      if (layerBps[i]! > 0) {
        p.since ??= now;
        continue;
      }
      if (p.since === undefined) continue;
      if (!p.dropped || now - p.since >= this.o.failWindowMs) p.backoff = 1;
      else p.backoff = Math.min(this.o.maxBackoff, p.backoff * 2);
      p.dropped = true;
      p.since = undefined;
    }
  }

  /**
   * The best arriving layer (at most `highest`) that fits `budget` and is not waiting out its
   * return hold; when every fitting layer is, the best fitting one.
   */
  private bestSettled(
    layerBps: readonly number[],
    budget: number,
    now: number,
    highest = layerBps.length - 1,
  ): number {
    const settled = bestFitting(
      layerBps,
      budget,
      highest,
      (i) => this.returnHoldLeft(i, now) === 0,
    );
    return settled !== STILL ? settled : bestFitting(layerBps, budget, highest);
  }

  private change(to: number, now: number, reason: LayerChange['reason']): LayerChange | undefined {
    const from = this.current;
    if (from === to) return undefined;
    this.current = to;
    // Any change but a publisher-side one ends the way back to the layer the publisher dropped.
    this.restoreTo = undefined;
    this.belowSince = undefined;
    this.aboveSince = undefined;
    this.cleanSince = undefined;
    if (from !== undefined) this.changes++;
    if (reason === 'down' || reason === 'heavy_loss') this.linkChanges++;
    if (reason === 'up' || reason === 'probe') {
      this.lastUp = { layer: to, at: now };
    } else if (from !== undefined && from !== STILL && (to === STILL || to < from)) {
      const up = this.lastUp;
      if (up && from >= up.layer && now - up.at < this.o.failWindowMs) {
        // The last upgrade did not hold: wait longer before trying that layer again.
        const factor = Math.min(this.o.maxBackoff, (this.backoff.get(up.layer) ?? 1) * 2);
        this.backoff.set(up.layer, factor);
      }
      this.lastUp = undefined;
    }
    return { from, to, at: now, reason };
  }
}

function highestActive(layerBps: readonly number[]): number {
  for (let i = layerBps.length - 1; i >= 0; i--) if (layerBps[i]! > 0) return i;
  return -1;
}

/**
 * The best arriving layer (at most `highest`, and one `usable` allows) whose bitrate fits
 * `budget`, or {@link STILL}.
 */
function bestFitting(
  layerBps: readonly number[],
  budget: number,
  highest = layerBps.length - 1,
  usable: (layer: number) => boolean = () => true,
): number {
  for (let i = Math.min(highest, layerBps.length - 1); i >= 0; i--) {
    const bps = layerBps[i]!;
    if (bps > 0 && bps <= budget && usable(i)) return i;
  }
  return STILL;
}

function nextActiveBelow(layerBps: readonly number[], layer: number): number {
  for (let i = layer - 1; i >= 0; i--) if (layerBps[i]! > 0) return i;
  return STILL;
}

function nextActiveAbove(layerBps: readonly number[], layer: number): number | undefined {
  for (let i = layer + 1; i < layerBps.length; i++) if (layerBps[i]! > 0) return i;
  return undefined;
}
