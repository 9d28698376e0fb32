/** Written last by the build, so its time is when the build finished. */
export declare const BUILD_STAMP: string;
/**
 * The compiled CLI's entry URL when `root/<outDir>` is a finished build newer than every source
 * file; otherwise the reason it is not used.
 */
export declare function compiledEntry(
  root: string,
  outDir?: string,
): { entry: URL } | { reason: string };
