import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import {
  CASE_COLUMNS,
  type CaseRow,
  callStarts,
  reconnectCount,
  toCaseRow,
  toCsv,
  toNdjson,
} from '../../src/node/evidence/caseRows.ts';
import type { CaseAggregate } from '../../src/node/evidence/EvidenceStore.ts';
import { parsePointInTime } from '../../src/node/evidence/period.ts';
import { buildReport, humanSeconds, percentiles } from '../../src/node/evidence/report.ts';
import type { CaseRecord } from '../../src/node/store/Store.ts';

const T0 = Date.parse('2026-04-01T08:00:00Z');
const MIN = 60_000;

function aggregate(c: Partial<CaseRecord>, more: Partial<CaseAggregate> = {}): CaseAggregate {
  return {
    case: {
      id: 'c_1',
      orderId: 'ORD-1',
      sku: 'SKU-1',
      marketplace: null,
      warehouseId: null,
      reason: 'damaged',
      note: null,
      status: 'open',
      outcome: null,
      disposition: null,
      decisionNote: null,
      createdAt: T0,
      firstJoinedAt: null,
      decidedAt: null,
      closedAt: null,
      ...c,
    },
    videoMs: 0,
    recordings: 0,
    snapshots: 0,
    messages: 0,
    prompts: 0,
    rttMs: null,
    lossRatio: null,
    freezeRatio: null,
    publishSessions: [],
    ...more,
  };
}

describe('case rows', () => {
  it('durations between the steps, in seconds with ms precision; null where a step is missing', () => {
    const r = toCaseRow(
      aggregate({
        firstJoinedAt: T0 + 90_500,
        decidedAt: T0 + 10 * MIN,
        closedAt: T0 + 70 * MIN,
        status: 'closed',
        outcome: 'refund',
      }),
    );
    expect(r).toMatchObject({
      created_to_joined_s: 90.5,
      joined_to_decided_s: 509.5,
      decided_to_closed_s: 3600,
      created_to_decided_s: 600,
      created_to_closed_s: 4200,
      created_at: '2026-04-01T08:00:00.000Z',
    });
    const open = toCaseRow(aggregate({}));
    expect(open).toMatchObject({
      created_to_joined_s: null,
      joined_to_decided_s: null,
      created_to_decided_s: null,
      decided_on_first_call: null,
    });
  });

  const sessions = (list: [string, number, number | null][]) =>
    list.map(([role, s, e]) => ({
      role,
      startedAt: T0 + s * MIN,
      endedAt: e === null ? null : T0 + e * MIN,
    }));
  const table: {
    name: string;
    s: [string, number, number | null][];
    decidedMin: number | null;
    calls: number;
    reconnects: number;
    firstCall: boolean | null;
  }[] = [
    { name: 'no call', s: [], decidedMin: 5, calls: 0, reconnects: 0, firstCall: null },
    {
      name: 'one call',
      s: [
        ['buyer', 1, 6],
        ['staff', 1, 6],
      ],
      decidedMin: 5,
      calls: 1,
      reconnects: 0,
      firstCall: true,
    },
    {
      name: 'a reconnect inside a call is not a new call',
      s: [
        ['buyer', 1, 3],
        ['buyer', 4, 8],
      ],
      decidedMin: 7,
      calls: 1,
      reconnects: 1,
      firstCall: true,
    },
    {
      name: 'a second call after a long gap',
      s: [
        ['buyer', 1, 3],
        ['buyer', 30, 35],
        ['staff', 1, 3],
        ['staff', 30, 35],
      ],
      decidedMin: 34,
      calls: 2,
      reconnects: 2,
      firstCall: false,
    },
    {
      name: 'a second call after the decision does not count against the first',
      s: [
        ['buyer', 1, 3],
        ['buyer', 60, 65],
      ],
      decidedMin: 3,
      calls: 2,
      reconnects: 1,
      firstCall: true,
    },
    {
      name: 'undecided',
      s: [['buyer', 1, 3]],
      decidedMin: null,
      calls: 1,
      reconnects: 0,
      firstCall: null,
    },
  ];
  for (const c of table) {
    it(`calls, reconnects, first call: ${c.name}`, () => {
      const publishSessions = sessions(c.s);
      const r = toCaseRow(
        aggregate(
          c.decidedMin === null
            ? {}
            : { decidedAt: T0 + c.decidedMin * MIN, outcome: 'refund', status: 'decided' },
          { publishSessions },
        ),
      );
      expect(r.calls).toBe(c.calls);
      expect(callStarts(publishSessions)).toHaveLength(c.calls);
      expect(r.reconnects).toBe(c.reconnects);
      expect(reconnectCount(publishSessions)).toBe(c.reconnects);
      expect(r.decided_on_first_call).toBe(c.firstCall);
    });
  }

  it('CSV round-trips through a CSV parser: header, quoting, empty cells for nulls', () => {
    const rows = [
      toCaseRow(
        aggregate(
          {
            orderId: 'ORD, "quoted"\nline two',
            sku: ' lead',
            marketplace: 'ebay',
            decidedAt: T0 + 61_000,
            outcome: 'refund',
          },
          { videoMs: 90_000, rttMs: 123.44, lossRatio: 0.01234, freezeRatio: 0.5 },
        ),
      ),
      toCaseRow(aggregate({ id: 'c_2', orderId: '中文订单-7' })),
    ];
    const csv = toCsv(rows);
    const parsed = parse(csv, { columns: true }) as Record<string, string>[];
    expect(Object.keys(parsed[0]!)).toEqual([...CASE_COLUMNS]);
    expect(parsed[0]!.order_id).toBe('ORD, "quoted"\nline two');
    expect(parsed[0]!.sku).toBe(' lead');
    expect(parsed[0]!.created_to_decided_s).toBe('61');
    expect(parsed[0]!.video_minutes).toBe('1.5');
    expect(parsed[0]!.rtt_ms).toBe('123.4');
    expect(parsed[0]!.packet_loss).toBe('0.0123');
    expect(parsed[1]!.order_id).toBe('中文订单-7');
    expect(parsed[1]!.decided_at).toBe('');
    expect(parsed[1]!.rtt_ms).toBe('');
    const nd = toNdjson(rows)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as CaseRow);
    expect(nd).toEqual(rows);
  });
});

describe('parsePointInTime', () => {
  const now = Date.parse('2026-05-10T12:00:00Z');
  const good: [string, string][] = [
    ['2026-04-01', '2026-04-01T00:00:00.000Z'],
    ['2026-04-01T12:30:00Z', '2026-04-01T12:30:00.000Z'],
    ['2026-04-01T12:30:00', '2026-04-01T12:30:00.000Z'],
    ['2026-04-01T12:30:00+02:00', '2026-04-01T10:30:00.000Z'],
    ['7d', '2026-05-03T12:00:00.000Z'],
    ['12h', '2026-05-10T00:00:00.000Z'],
  ];
  for (const [text, iso] of good) {
    it(`reads ${text}`, () => {
      expect(new Date(parsePointInTime(text, '--since', now)).toISOString()).toBe(iso);
    });
  }
  for (const text of ['yesterday', '2026-13-45', '12', '']) {
    it(`refuses "${text}" and says which flag`, () => {
      expect(() => parsePointInTime(text, '--until', now)).toThrow(/--until/);
    });
  }
});

describe('report', () => {
  it('percentiles of handling times, reasons × outcomes, rankings, first-call share', () => {
    const mk = (
      id: string,
      sku: string,
      wh: string,
      outcome: CaseRecord['outcome'],
      decidedMin: number | null,
      calls: number,
    ) =>
      toCaseRow(
        aggregate(
          {
            id,
            sku,
            warehouseId: wh,
            reason: outcome === 'rejected' ? 'unwanted' : 'damaged',
            outcome,
            firstJoinedAt: T0 + MIN,
            decidedAt: decidedMin === null ? null : T0 + decidedMin * MIN,
            status: decidedMin === null ? 'inspecting' : 'decided',
          },
          {
            publishSessions: Array.from({ length: calls }, (_, i) => ({
              role: 'buyer',
              startedAt: T0 + (1 + i * 20) * MIN,
              endedAt: T0 + (2 + i * 20) * MIN,
            })),
          },
        ),
      );
    const rows = [
      mk('a', 'MUG', 'de', 'refund', 10, 1),
      mk('b', 'MUG', 'de', 'refund', 20, 1),
      mk('c', 'MUG', 'us', 'rejected', 30, 2),
      mk('d', 'LAMP', 'us', 'partial_refund', 40, 1),
      mk('e', 'LAMP', 'us', null, null, 1),
    ];
    const r = buildReport(rows, {}, T0);
    expect(r.cases).toBe(5);
    expect(r.decided).toBe(4);
    expect(r.handling.createdToDecided).toEqual({
      count: 4,
      p50: 1500,
      p90: 2220,
      p95: 2310,
      max: 2400,
    });
    expect(r.byReason).toEqual([
      { reason: 'damaged', cases: 4, outcomes: { refund: 2, partial_refund: 1, undecided: 1 } },
      { reason: 'unwanted', cases: 1, outcomes: { rejected: 1 } },
    ]);
    expect(r.skusByCount.map((s) => [s.key, s.cases])).toEqual(
      [
        ['LAMP', 2],
        ['MUG', 3],
      ].sort((a, b) => Number(b[1]) - Number(a[1])),
    );
    expect(r.skusByRefundRate.map((s) => [s.key, s.refundRate])).toEqual([
      ['LAMP', 1],
      ['MUG', 2 / 3],
    ]);
    expect(r.warehousesByRefundRate.map((s) => [s.key, s.refundRate])).toEqual([
      ['de', 1],
      ['us', 0.5],
    ]);
    expect(r.firstCall).toEqual({
      decidedWithCall: 4,
      onFirstCall: 3,
      share: 0.75,
      decidedWithoutCall: 0,
    });
  });

  it('percentiles ignore missing values; humanSeconds reads well', () => {
    expect(percentiles([null, null])).toBeNull();
    expect(percentiles([5, null, 1])).toEqual({ count: 2, p50: 3, p90: 4.6, p95: 4.8, max: 5 });
    expect([null, 4.25, 59, 93, 7260, 3 * 86400 + 3600].map(humanSeconds)).toEqual([
      '-',
      '4.3s',
      '59s',
      '1m 33s',
      '2h 1m',
      '3d 1h',
    ]);
  });
});
