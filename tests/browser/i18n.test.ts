import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WEB_DIR } from '../../src/node/http/pages.ts';
import { DISPOSITIONS, OUTCOMES, REASONS, STATUSES } from '../../src/node/store/Store.ts';

/** The pages' strings: every key the pages use exists in every language (no raw keys on screen). */

const read = (rel: string) => readFileSync(join(WEB_DIR, rel), 'utf8');
const languages = readdirSync(join(WEB_DIR, 'i18n')).filter((f) => f.endsWith('.json'));
const dicts = Object.fromEntries(
  languages.map((f) => [
    f.replace(/\.json$/, ''),
    JSON.parse(read(`i18n/${f}`)) as Record<string, string>,
  ]),
);

function usedKeys(): Set<string> {
  const keys = new Set<string>();
  for (const page of ['buyer.html', 'staff.html']) {
    for (const m of read(page).matchAll(/data-i18n(?:-placeholder|-title|-aria)?="([^"]+)"/g))
      keys.add(m[1]!);
  }
  for (const file of readdirSync(join(WEB_DIR, 'js'))) {
    const src = read(`js/${file}`);
    // t('key'), t("key") and keys written as quoted literals such as 'staff.mic.on' or 'prompt.rotate'
    for (const m of src.matchAll(
      /['"`]((?:buyer|staff|chat|error|quality|prompt|field|lang|brand)\.[\w.]+)['"`]/g,
    )) {
      keys.add(m[1]!);
    }
  }
  for (const [prefix, values] of [
    ['reason', REASONS],
    ['status', STATUSES],
    ['outcome', OUTCOMES],
    ['disposition', DISPOSITIONS],
  ] as const) {
    for (const v of values) keys.add(`${prefix}.${v}`);
  }
  for (const q of ['good', 'weak', 'reconnecting', 'offline', 'idle']) keys.add(`quality.${q}`);
  for (const kind of ['expired', 'revoked', 'badLink', 'closed', 'notFound']) {
    keys.add(`error.${kind}.title`);
    keys.add(`error.${kind}.body`);
  }
  return keys;
}

describe('page strings', () => {
  it('ships English and Simplified Chinese', () => {
    expect(Object.keys(dicts).sort()).toEqual(['en', 'zh-CN']);
  });

  it('has every key the pages use, in every language', () => {
    const keys = [...usedKeys()];
    expect(keys.length).toBeGreaterThan(80);
    for (const [lang, dict] of Object.entries(dicts)) {
      const missing = keys.filter((k) => typeof dict[k] !== 'string' || dict[k] === '');
      expect(missing, `missing in ${lang}.json`).toEqual([]);
    }
  });

  it('has the same keys and placeholders in every language', () => {
    const en = dicts.en!;
    for (const [lang, dict] of Object.entries(dicts)) {
      expect(Object.keys(dict).sort(), lang).toEqual(Object.keys(en).sort());
      for (const [key, text] of Object.entries(en)) {
        const vars = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
        expect(vars(dict[key]!), `${lang} ${key}`).toEqual(vars(text));
      }
    }
  });
});
