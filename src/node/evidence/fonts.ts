import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * Fonts for watermarks and PDFs. DejaVu comes inside the `dejavu-fonts-ttf` npm package, so no
 * system font is needed; Debian's fonts-dejavu-core is the fallback. DejaVu has no Chinese,
 * Japanese or Korean glyphs: a system CJK font is used for such text when one is installed.
 */
export interface FontSet {
  regular: string;
  bold: string;
  mono: string;
  /** A font with CJK glyphs (TTC files need `family`), if the system has one. */
  cjk?: { file: string; family?: string };
}

const SYSTEM_DEJAVU = '/usr/share/fonts/truetype/dejavu';

const CJK_CANDIDATES: { file: string; family?: string }[] = [
  {
    file: '/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc',
    family: 'NotoSansCJKsc-Regular',
  },
  { file: '/usr/share/fonts/truetype/wqy/wqy-microhei.ttc', family: 'WenQuanYiMicroHei' },
  { file: '/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc', family: 'WenQuanYiZenHei' },
  { file: '/usr/share/fonts/truetype/arphic/uming.ttc', family: 'AR PL UMing CN' },
  { file: '/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf' },
];

let cached: FontSet | undefined;

function packagedDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const dir = join(dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf');
    return existsSync(join(dir, 'DejaVuSans.ttf')) ? dir : undefined;
  } catch {
    return undefined;
  }
}

export function evidenceFonts(): FontSet {
  if (cached) return cached;
  const dir = packagedDir() ?? SYSTEM_DEJAVU;
  const set: FontSet = {
    regular: join(dir, 'DejaVuSans.ttf'),
    bold: join(dir, 'DejaVuSans-Bold.ttf'),
    mono: join(dir, 'DejaVuSansMono.ttf'),
  };
  if (!existsSync(set.regular)) {
    throw new Error(
      `no font for evidence documents: install the npm dependencies (dejavu-fonts-ttf) or Debian's fonts-dejavu-core (looked in ${dir})`,
    );
  }
  const cjk = CJK_CANDIDATES.find((c) => existsSync(c.file));
  if (cjk) set.cjk = cjk;
  cached = set;
  return set;
}

/** Chinese, Japanese and Korean characters, which DejaVu cannot draw. */
export const CJK_TEXT = /[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]/;
