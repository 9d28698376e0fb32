import { parseDuration } from '../../core/duration.ts';
import { UserError } from '../../core/errors.ts';

/**
 * A point in time from a flag: a UTC date (`2026-04-01`, its midnight), an ISO time
 * (`2026-04-01T12:00:00Z`; without a zone it is read as UTC), or a duration back from now
 * (`30d`, `12h`).
 */
export function parsePointInTime(text: string, flag: string, now = Date.now()): number {
  const t = text.trim();
  if (/^\d{4}-\d{2}-\d{2}$/.test(t)) {
    const ms = Date.parse(`${t}T00:00:00Z`);
    if (Number.isFinite(ms)) return ms;
  } else if (/^\d{4}-\d{2}-\d{2}T/.test(t)) {
    const ms = Date.parse(/(Z|[+-]\d{2}:?\d{2})$/.test(t) ? t : `${t}Z`);
    if (Number.isFinite(ms)) return ms;
  } else {
    const ago = parseDuration(t);
    if (ago !== undefined && /[a-z]$/i.test(t)) return now - ago;
  }
  throw new UserError(
    `${flag} "${text}" is not a date (2026-04-01), a UTC time (2026-04-01T12:00:00Z) or a time back from now (30d, 12h)`,
  );
}
