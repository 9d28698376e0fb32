/**
 * Which media worker hosts each case. A case goes to the live worker with the fewest sessions
 * when its first session arrives and stays there while it has sessions (started or still being
 * negotiated), so its publisher and viewers share one room. Pure bookkeeping: no threads here.
 */

/** A session slot held on a worker: give it back with {@link CaseAssignment.release}. */
export interface Placement {
  worker: number;
  caseId: string;
  /** Distinguishes this placement of the case from a later one (after a worker failed). */
  epoch: number;
}

interface CaseEntry {
  worker: number;
  epoch: number;
  sessions: number;
}

export class CaseAssignment {
  private readonly cases = new Map<string, CaseEntry>();
  private readonly load: number[];
  private nextEpoch = 1;

  constructor(readonly workers: number) {
    if (!Number.isInteger(workers) || workers < 1) {
      throw new RangeError(`CaseAssignment: need at least one worker (got ${workers})`);
    }
    this.load = new Array<number>(workers).fill(0);
  }

  /** The worker hosting `caseId`, if it has sessions. */
  workerOf(caseId: string): number | undefined {
    return this.cases.get(caseId)?.worker;
  }

  /** Sessions held on `worker`. */
  sessionsOn(worker: number): number {
    return this.load[worker] ?? 0;
  }

  /** Cases hosted on `worker`. */
  casesOn(worker: number): string[] {
    const out: string[] = [];
    for (const [caseId, entry] of this.cases) if (entry.worker === worker) out.push(caseId);
    return out;
  }

  /**
   * Holds one session slot for `caseId`: on its current worker, or on the live worker with the
   * fewest sessions (lowest index on a tie). Undefined when no worker is live.
   */
  place(caseId: string, live: (worker: number) => boolean): Placement | undefined {
    let entry = this.cases.get(caseId);
    if (!entry || !live(entry.worker)) {
      if (entry) this.drop(entry.worker);
      let best: number | undefined;
      for (let i = 0; i < this.workers; i++) {
        if (!live(i)) continue;
        if (best === undefined || this.load[i]! < this.load[best]!) best = i;
      }
      if (best === undefined) return undefined;
      entry = { worker: best, epoch: this.nextEpoch++, sessions: 0 };
      this.cases.set(caseId, entry);
    }
    entry.sessions++;
    this.load[entry.worker]!++;
    return { worker: entry.worker, caseId, epoch: entry.epoch };
  }

  /** Gives back a slot (the session ended or was never set up). A stale placement is ignored. */
  release(placement: Placement): void {
    const entry = this.cases.get(placement.caseId);
    if (!entry || entry.epoch !== placement.epoch || entry.sessions === 0) return;
    entry.sessions--;
    this.load[entry.worker]!--;
    if (entry.sessions === 0) this.cases.delete(placement.caseId);
  }

  /** Forgets everything `worker` hosted (it failed); returns the cases it had. */
  drop(worker: number): string[] {
    const dropped = this.casesOn(worker);
    for (const caseId of dropped) this.cases.delete(caseId);
    this.load[worker] = 0;
    return dropped;
  }
}
