import { describe, expect, it } from 'vitest';
import {
  CHANNEL_IDS,
  CHANNELS,
  type ChannelFile,
  channelViolations,
  perFileBudget,
  RESPONSE_TARGET_CHARS,
  responseText,
} from '../../src/node/evidence/channels.ts';
import { keyMoments, locateFrame, type Segment } from '../../src/node/evidence/keyMoments.ts';
import type { ChainedEvent } from '../../src/node/store/eventChain.ts';

const MB = 1_000_000;

describe('channel limits', () => {
  it('one table covers every channel, each with its source', () => {
    expect(Object.keys(CHANNELS).sort()).toEqual([...CHANNEL_IDS].sort());
    for (const ch of Object.values(CHANNELS)) {
      expect(ch.source.length).toBeGreaterThan(10);
      expect(ch.maxFileBytes).toBeGreaterThan(0);
    }
  });

  const pdf = (bytes: number, pages = 3): ChannelFile => ({
    name: 'summary.pdf',
    mime: 'application/pdf',
    bytes,
    pages,
  });
  const jpg = (bytes: number, name = 'a.jpg'): ChannelFile => ({ name, mime: 'image/jpeg', bytes });
  const table: [string, keyof typeof CHANNELS, ChannelFile[], RegExp[]][] = [
    ['Stripe: a 4 MB PDF fits', 'stripe', [pdf(4 * MB)], []],
    [
      'Stripe: a 5.1 MB PDF is too big, alone and in all',
      'stripe',
      [pdf(5.1 * MB)],
      [/more than Stripe's 5000000/, /in all, more than Stripe's 4500000/],
    ],
    [
      'Stripe: 4.8 MB in two files is over the combined limit',
      'stripe',
      [pdf(2.4 * MB), jpg(2.4 * MB)],
      [/in all, more than Stripe's 4500000/],
    ],
    [
      'PayPal: exactly 10 MB is not "less than 10 MB"',
      'paypal',
      [pdf(10 * MB)],
      [/more than PayPal's 9999999/],
    ],
    ['PayPal takes GIF', 'paypal', [{ name: 'x.gif', mime: 'image/gif', bytes: 100 }], []],
    ['eBay takes no PDF', 'ebay', [pdf(100)], [/eBay does not take application\/pdf/]],
    ['eBay: a 6 MB photo is too big', 'ebay', [jpg(6 * MB)], [/more than eBay's 5000000/]],
    ['Amex: 21 pages', 'amex', [pdf(MB, 21)], [/21 pages, more than American Express's 20/]],
    [
      'Amex: no PNG',
      'amex',
      [{ name: 'x.png', mime: 'image/png', bytes: 10 }],
      [/does not take image\/png/],
    ],
    [
      'Amex: six files',
      'amex',
      Array.from({ length: 6 }, (_, i) => jpg(4.5 * MB, `${i}.jpg`)),
      [/in all, more than American Express's 25000000/, /6 files, more than American Express's 5/],
    ],
    [
      'response text is not a file',
      'amex',
      [pdf(MB), { name: 'response.txt', mime: 'text/plain', bytes: 10 * MB }],
      [],
    ],
  ];
  for (const [name, id, files, expected] of table) {
    it(name, () => {
      const got = channelViolations(CHANNELS[id], files);
      expect(got).toHaveLength(expected.length);
      for (const [i, re] of expected.entries()) expect(got[i]).toMatch(re);
    });
  }

  it('per-file budget: the smaller of the file limit and a share of the total', () => {
    expect(perFileBudget(CHANNELS.stripe, 1)).toBe(4.5 * MB);
    expect(perFileBudget(CHANNELS.paypal, 1)).toBe(10 * MB - 1);
    expect(perFileBudget(CHANNELS.amex, 5)).toBe(5 * MB);
    expect(perFileBudget(CHANNELS.amex, 10)).toBe(2.5 * MB);
    expect(perFileBudget(CHANNELS.ebay, 40)).toBe(5 * MB);
  });

  it('the response text cites each recording hash and stays short', () => {
    const sha = 'ab'.repeat(32);
    for (const id of CHANNEL_IDS) {
      const text = responseText(CHANNELS[id], {
        caseId: 'c_1',
        orderId: 'ORD-1',
        sku: 'MUG-350',
        reason: 'not_as_described',
        outcome: 'partial_refund',
        disposition: 'refurbish',
        inspectedAt: Date.parse('2026-04-01T08:00:00Z'),
        decidedAt: Date.parse('2026-04-01T08:10:00Z'),
        recordings: [{ role: 'buyer', durationMs: 95_000, sha256: sha }],
        stills: 4,
        manifestNote: 'manifest SHA-256 x',
        attachments: ['order-ORD-1-inspection.pdf'],
      });
      expect(text).toContain(`Recording SHA-256: ${sha} (buyer, 95 s)`);
      expect(text).toContain('2026-04-01 08:00 UTC');
      expect(text).toContain('Outcome: partial refund, item refurbish');
      expect(text.length).toBeLessThanOrEqual(RESPONSE_TARGET_CHARS);
    }
  });
});

describe('key moments and where their frames are', () => {
  const ev = (
    seq: number,
    at: number,
    type: string,
    data: Record<string, unknown>,
  ): ChainedEvent => ({
    caseId: 'c',
    seq,
    at,
    type,
    actor: 'x',
    data,
    prevHash: '',
    hash: '',
  });
  it('first buyer join, each prompt, each decision — in time order', () => {
    const m = keyMoments([
      ev(1, 100, 'case.created', {}),
      ev(2, 200, 'participant.joined', { role: 'staff', direction: 'subscribe' }),
      ev(3, 300, 'participant.joined', { role: 'buyer', direction: 'publish' }),
      ev(4, 400, 'message.posted', { kind: 'text', text: 'hello' }),
      ev(5, 500, 'message.posted', { kind: 'prompt', text: 'show the label' }),
      ev(6, 600, 'participant.joined', { role: 'buyer', direction: 'publish' }),
      ev(7, 700, 'case.decided', { outcome: 'refund', disposition: 'restock' }),
    ]);
    expect(m.map((x) => [x.kind, x.seq, x.label])).toEqual([
      ['first-join', 3, 'First join (buyer)'],
      ['prompt', 5, 'Prompt: "show the label"'],
      ['decision', 7, 'Decision: refund (restock)'],
    ]);
  });

  const seg = (
    recordingId: string,
    role: string,
    startedAt: number,
    durationMs: number,
  ): Segment => ({
    recordingId,
    role,
    startedAt,
    durationMs,
  });
  const segments = [
    seg('b1', 'buyer', 1000, 5000),
    seg('b2', 'buyer', 20_000, 5000),
    seg('s1', 'staff', 8000, 4000),
  ];
  const table: [string, number, Record<string, unknown> | undefined][] = [
    [
      'inside the buyer recording',
      3500,
      { recordingId: 'b1', offsetMs: 2500, relation: 'during', gapMs: 0 },
    ],
    [
      'the first frame, just before the recording starts',
      800,
      { recordingId: 'b1', offsetMs: 0, relation: 'after', gapMs: 200 },
    ],
    [
      'a staff recording covers a gap in the buyer ones',
      9000,
      { recordingId: 's1', offsetMs: 1000, relation: 'during' },
    ],
    [
      'the last frame before, after every recording',
      27_000,
      { recordingId: 'b2', offsetMs: 4900, relation: 'before', gapMs: 2000 },
    ],
    [
      'at the very end: a frame that still decodes',
      6000,
      { recordingId: 'b1', offsetMs: 4900, relation: 'during' },
    ],
    ['too far from any video', 20 * 60_000, undefined],
  ];
  for (const [name, at, expected] of table) {
    it(name, () => {
      const loc = locateFrame(at, segments);
      if (expected === undefined) expect(loc).toBeUndefined();
      else expect(loc).toMatchObject(expected);
    });
  }
});
