import { z } from 'zod';
import { parseDuration } from '../../core/duration.ts';
import { HttpError } from '../../core/errors.ts';
import { DISPOSITIONS, OUTCOMES, REASONS, ROLES, STATUSES } from '../store/Store.ts';

/** Request bodies, validated strictly: an unknown field is an error naming it. */

const text = (max: number) => z.string().trim().min(1).max(max);

export const newCaseBody = z.strictObject({
  orderId: text(200),
  sku: text(200),
  reason: z.enum(REASONS),
  marketplace: text(100).optional(),
  warehouseId: text(100).optional(),
  note: z.string().max(4000).optional(),
});

export const decisionBody = z.strictObject({
  outcome: z.enum(OUTCOMES),
  disposition: z.enum(DISPOSITIONS).optional(),
  note: z.string().max(4000).optional(),
});

export const linkBody = z.strictObject({
  role: z.enum(ROLES),
  ttl: z
    .string()
    .refine((v) => (parseDuration(v) ?? 0) > 0, 'use a duration such as 30m, 72h or 7d')
    .optional(),
});

export const revokeBody = z.strictObject({ role: z.enum(ROLES) });

export const messageBody = (maxChars: number) =>
  z.strictObject({
    clientId: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[\w.:-]+$/, 'use letters, digits and . _ : - only'),
    text: z.string().trim().min(1, 'the message is empty').max(maxChars),
    kind: z.enum(['text', 'prompt']).default('text'),
  });

export const consentBody = z.strictObject({ accepted: z.literal(true) });

export const statusQuery = z.enum(STATUSES).optional();

/** Parses or answers 400 listing every `field: problem`. */
export function parseBody<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const detail = r.error.issues
    .map((i) =>
      i.code === 'unrecognized_keys'
        ? `${i.keys.join(', ')}: unknown field`
        : `${i.path.join('.') || 'body'}: ${i.message}`,
    )
    .join('; ');
  throw new HttpError(400, 'bad_request', detail);
}
