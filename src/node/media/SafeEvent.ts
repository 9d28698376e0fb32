/**
 * A typed event in the shape of werift's `Event` (`subscribe` returns `{ unSubscribe }`), except
 * that a listener that throws is reported to `onListenerError` and does not stop the other
 * listeners or the code that emitted.
 */
export type Listener<T> = (payload: T) => void;

export interface Subscription {
  unSubscribe: () => void;
}

export class SafeEvent<T> {
  private listeners: Listener<T>[] = [];

  constructor(
    private readonly name: string,
    private readonly onListenerError: (event: string, err: unknown) => void = () => {},
  ) {}

  subscribe(listener: Listener<T>): Subscription {
    this.listeners = [...this.listeners, listener];
    return {
      unSubscribe: () => {
        this.listeners = this.listeners.filter((l) => l !== listener);
      },
    };
  }

  /** Calls `listener` for the next event only. */
  once(listener: Listener<T>): Subscription {
    const sub = this.subscribe((payload) => {
      sub.unSubscribe();
      listener(payload);
    });
    return sub;
  }

  /** Resolves with the next event. */
  asPromise(): Promise<T> {
    return new Promise((resolve) => this.once(resolve));
  }

  execute(payload: T): void {
    // The array is replaced, never mutated, so (un)subscribing from a listener is safe.
    for (const listener of this.listeners) {
      try {
        listener(payload);
      } catch (err) {
        try {
          this.onListenerError(this.name, err);
        } catch {
          // the error reporter itself failed: nothing sensible left to do
        }
      }
    }
  }

  get listenerCount(): number {
    return this.listeners.length;
  }

  clear(): void {
    this.listeners = [];
  }
}
