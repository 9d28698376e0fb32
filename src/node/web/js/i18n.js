/**
 * Strings live in one JSON file per language under /static/i18n/. The page marks translatable
 * elements with data-i18n (text), data-i18n-placeholder, data-i18n-title and data-i18n-aria.
 * English is always loaded as the fallback for missing keys.
 */

export const LANGUAGES = ['en', 'zh-CN'];
const STORAGE_KEY = 'returncam.lang';

/** @type {Record<string, Record<string, string>>} */
const dicts = {};
let current = 'en';
/** @type {Set<() => void>} */
const listeners = new Set();

/** Picks a supported language from a list such as navigator.languages. */
export function pickLanguage(preferred) {
  for (const raw of preferred ?? []) {
    const tag = String(raw).toLowerCase();
    if (tag.startsWith('zh')) return 'zh-CN';
    if (tag.startsWith('en')) return 'en';
  }
  return 'en';
}

function storedLanguage() {
  try {
    const v = localStorage.getItem(STORAGE_KEY);
    return v && LANGUAGES.includes(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

async function load(lang) {
  if (dicts[lang]) return dicts[lang];
  const res = await fetch(`/static/i18n/${lang}.json`);
  if (!res.ok) throw new Error(`language file ${lang}.json: HTTP ${res.status}`);
  dicts[lang] = await res.json();
  return dicts[lang];
}

export function currentLanguage() {
  return current;
}

/** Translates `key`, filling `{name}` placeholders from `vars`. Falls back to English, then the key. */
export function t(key, vars) {
  const s = dicts[current]?.[key] ?? dicts.en?.[key] ?? key;
  if (!vars) return s;
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

/** The English string for a key (prompts travel in English and are translated by each reader). */
export function english(key) {
  return dicts.en?.[key] ?? key;
}

/** The key whose English text is `text` among keys starting with `prefix`, if any. */
export function keyForEnglish(prefix, text) {
  const en = dicts.en ?? {};
  for (const [k, v] of Object.entries(en)) {
    if (k.startsWith(prefix) && v === text) return k;
  }
  return undefined;
}

export function applyTranslations(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) {
    el.setAttribute('placeholder', t(el.dataset.i18nPlaceholder));
  }
  for (const el of root.querySelectorAll('[data-i18n-title]')) {
    el.setAttribute('title', t(el.dataset.i18nTitle));
  }
  for (const el of root.querySelectorAll('[data-i18n-aria]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nAria));
  }
  document.documentElement.lang = current;
}

export async function setLanguage(lang, { remember = true } = {}) {
  const next = LANGUAGES.includes(lang) ? lang : 'en';
  await Promise.all([load('en'), load(next)]);
  current = next;
  if (remember) {
    try {
      localStorage.setItem(STORAGE_KEY, next);
    } catch {
      // private mode: the choice lasts for this page only
    }
  }
  applyTranslations();
  for (const fn of listeners) fn();
}

/** Runs `fn` after every language change (to re-render text built in code). */
export function onLanguageChange(fn) {
  listeners.add(fn);
}

/**
 * Loads the viewer's language (stored choice, else navigator.languages) and wires a <select>
 * to switch it.
 */
export async function initI18n(select) {
  const lang = storedLanguage() ?? pickLanguage(navigator.languages ?? [navigator.language]);
  await setLanguage(lang, { remember: false });
  if (select) {
    select.replaceChildren();
    for (const code of LANGUAGES) {
      const opt = document.createElement('option');
      opt.value = code;
      const dict = await load(code);
      opt.textContent = (select.dataset.short ? dict['lang.short'] : dict['lang.name']) ?? code;
      opt.title = dict['lang.name'] ?? code;
      select.append(opt);
    }
    select.value = current;
    select.addEventListener('change', () => setLanguage(select.value));
  }
}

/** Formats a time (ms since the epoch) in the viewer's time zone. */
export function formatTime(ms, { date = false } = {}) {
  if (ms === null || ms === undefined) return '–';
  const opts = date
    ? { dateStyle: 'medium', timeStyle: 'short' }
    : { hour: 'numeric', minute: '2-digit' };
  return new Intl.DateTimeFormat(current, opts).format(new Date(ms));
}

export function timeZoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
}
