import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package's root directory. The code runs from `src/` (through the TypeScript loader) or from
 * its compiled copy in `dist/`; both sit one level under the root, so one relative path serves
 * either.
 */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Files that are not compiled (the pages, the SQL migrations) are read from `src/` whichever copy
 * of the code runs.
 */
export const SOURCE_DIR = join(PACKAGE_ROOT, 'src');

/** This process runs the compiled copy (`dist/`, from `npm run build`), not the sources. */
export const COMPILED = import.meta.url.endsWith('.js');
