import { status } from './output.ts';

/** Ink only on a terminal and never under CI (LiveKit's isInteractive); progress goes to stderr. */
export function interactive(stream: NodeJS.WriteStream = process.stderr): boolean {
  return Boolean(stream.isTTY) && !process.env.CI;
}

export interface Progress {
  /** `fraction` 0..1 (undefined when unknown); `line` says what just happened. */
  update(fraction: number | undefined, line: string): void;
  done(): void;
}

/**
 * Progress of a long operation: a live ink bar on a terminal, otherwise one line per step on
 * stderr (only when the line changes, so a percentage feed does not flood a log).
 */
export async function startProgress(
  label: string,
  opts: { quiet?: boolean } = {},
): Promise<Progress> {
  if (opts.quiet) return { update() {}, done() {} };
  if (!interactive()) {
    let last = '';
    return {
      update(_fraction, line) {
        if (line !== last) status(line);
        last = line;
      },
      done() {},
    };
  }
  // react and ink only for a live view: `node start` imports this module too
  const [{ render }, { ProgressView }, { createElement }] = await Promise.all([
    import('ink'),
    import('./views/ProgressView.tsx'),
    import('react'),
  ]);
  const view = (fraction: number | undefined, detail: string) =>
    createElement(ProgressView, { label, fraction, detail });
  const app = render(view(0, ''), { stdout: process.stderr, patchConsole: false });
  return {
    update(fraction, line) {
      app.rerender(view(fraction, line));
    },
    done() {
      app.unmount();
    },
  };
}
