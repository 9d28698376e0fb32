import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Files that run long for their size, longest first. vitest starts the files it has no timings
 * for (every file of a fresh checkout, as in CI) largest first, which put the compiled-build test
 * (small, ~30 s of tsc) last, alone on one worker while the other sat idle.
 */
const LONG_RUNNING = [
  'tests/integration/simulcast.test.ts',
  'tests/integration/fleet-deploy.test.ts',
  'tests/integration/media-forwarding.test.ts',
  'tests/e2e/compiled.test.ts',
  'tests/integration/capacity.test.ts',
  'tests/integration/evidence.test.ts',
  'tests/integration/soak.test.ts',
];

/** vitest's order (groups, then timings or size), with the long-running files first in each project. */
export class LongRunningFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const root = this.ctx.config.root;
    const rank = (spec: TestSpecification) => {
      const i = LONG_RUNNING.indexOf(relative(root, spec.moduleId).replaceAll('\\', '/'));
      return i < 0 ? LONG_RUNNING.length : i;
    };
    const position = new Map(sorted.map((spec, i) => [spec, i]));
    return [...sorted].sort((a, b) => {
      // projects stay where vitest put them (group order, then name): only reorder inside one
      if (a.project !== b.project) return position.get(a)! - position.get(b)!;
      return rank(a) - rank(b) || position.get(a)! - position.get(b)!;
    });
  }
}
