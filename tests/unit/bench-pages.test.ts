import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  matchedStamps,
  type Shown,
  signalledVideoKbps,
} from '../../src/bench/browser/BrowserSession.ts';
import {
  benchLayers,
  PRODUCT_SIMULCAST,
  productLayers,
  staffPage,
} from '../../src/bench/browser/pages.ts';

describe('bench buyer page', () => {
  it("sends the product buyer page's simulcast layers", () => {
    const source = readFileSync('src/node/web/js/buyer.js', 'utf8');
    const table = /const SIMULCAST = \[([\s\S]*?)\n\];/.exec(source)?.[1];
    expect(table, 'SIMULCAST not found in buyer.js').toBeDefined();
    const sets = table!.split(/minLines: /).slice(1);
    const parsed = sets.map((set) => ({
      minLines: Number(/^(\d+)/.exec(set)![1]),
      layers: [
        ...set.matchAll(/rid: '(\w+)', scaleResolutionDownBy: (\d+), maxBitrate: ([\d_]+)/g),
      ].map((m) => ({
        rid: m[1],
        scaleResolutionDownBy: Number(m[2]),
        maxBitrate: Number(m[3]!.replace(/_/g, '')),
      })),
    }));
    expect(parsed).toEqual(PRODUCT_SIMULCAST);
  });

  it.each([
    [1080, ['q', 'h', 'f']],
    [720, ['q', 'h', 'f']],
    [540, ['q', 'h', 'f']],
    [480, ['h', 'f']],
    [360, ['h', 'f']],
    [270, []],
  ])('a camera with %i lines sends layers %j', (lines, rids) => {
    expect(productLayers(lines).map((l) => l.rid)).toEqual(rids);
  });

  it('no set of layers asks for more than the default buyer ceiling (1500 kbit/s)', () => {
    for (const set of PRODUCT_SIMULCAST) {
      expect(set.layers.reduce((sum, l) => sum + l.maxBitrate, 0)).toBeLessThanOrEqual(1_500_000);
    }
  });

  it.each([
    [1500, 1500, 1_300_000],
    [800, 1000, 800_000],
    [3000, 1500, 1_300_000],
  ])('holds the top layer to a %i kbit/s cap (all layers: %i kbit/s)', (cap, total, top) => {
    const { layers, totalKbps } = benchLayers(cap);
    expect(layers.map((l) => l.rid)).toEqual(['h', 'f']); // the bench camera is 640x360
    expect(totalKbps).toBe(total);
    expect(layers.at(-1)!.maxBitrate).toBe(top);
    expect(layers.slice(0, -1)).toEqual(productLayers(360).slice(0, -1));
  });
});

describe("the node's ceiling as its WHIP answer signals it", () => {
  const answer = (video: string) =>
    ['v=0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'b=AS:64', 'm=video 9 UDP/TLS/RTP/SAVPF 96', video]
      .filter(Boolean)
      .join('\r\n');
  it.each([
    ['b=TIAS in bit/s', 'b=TIAS:1500000\r\nb=AS:1550', 1500],
    ['b=AS in kbit/s', 'b=AS:1200', 1200],
    ['none (the audio section does not count)', '', undefined],
  ])('%s', (_name, lines, expected) => {
    expect(signalledVideoKbps(answer(lines))).toBe(expected);
  });
});

describe('matching shown frames to their stamps', () => {
  /**
   * A run of frames of one stream at 30 fps: the stamp is the capture time in ms, the RTP
   * timestamp its own base plus 90 ticks per ms. `late` lists frames whose copied picture was
   * already the next frame (its stamp a frame later than the RTP timestamp says).
   */
  function run(
    from: number,
    count: number,
    rtpBase: number,
    size: [number, number],
    late: number[] = [],
  ): Shown[] {
    return Array.from({ length: count }, (_, i) => {
      const captured = from + i * 33;
      const ts = late.includes(i) ? captured + 33 : captured;
      return {
        ts,
        rtp: (rtpBase + (captured - from) * 90) % 0x100000000,
        shown: captured + 400,
        width: size[0],
        height: size[1],
      };
    });
  }

  it('judges each layer against its own timestamps, keeping the layer seen less often', () => {
    const top = run(10_000, 60, 123_456, [640, 360], [10, 40]);
    // the low layer has its own RTP timestamps, and wraps around 2^32 in this run
    const low = run(12_000, 25, 0xffff_f000, [320, 180], [7]);
    const back = run(13_000, 30, 9_000_000, [640, 360], [3]);
    const { kept, mismatched } = matchedStamps([...top, ...low, ...back]);
    expect(mismatched).toBe(4);
    expect(kept.filter((s) => s.width === 320)).toHaveLength(24);
    expect(kept).not.toContain(top[10]);
    expect(kept).not.toContain(top[40]);
    expect(kept).not.toContain(low[7]);
    expect(kept).not.toContain(back[3]);
  });

  it('starts a new run where the timestamps were rebased at the same size', () => {
    const first = run(10_000, 20, 5_000, [640, 360], [5]);
    const rebased = run(10_660, 20, 77_000_000, [640, 360], [12]);
    const { kept, mismatched } = matchedStamps([...first, ...rebased]);
    expect(mismatched).toBe(2);
    expect(kept).toHaveLength(38);
  });

  it('keeps frames without an RTP timestamp and runs too short to judge', () => {
    const short = run(10_000, 4, 1_000, [320, 180], [1]);
    const bare = { ts: 20_000, shown: 20_400, width: 640, height: 360 };
    expect(matchedStamps([...short, bare])).toEqual({ kept: [...short, bare], mismatched: 0 });
  });
});

describe('bench staff page', () => {
  const config = {
    nodeUrl: 'http://127.0.0.1:1',
    caseId: 'c',
    token: 't',
    bitrateKbps: 400,
    fps: 30,
    audio: true,
  };

  it("embeds the product pages' stall watch as page script", () => {
    const html = staffPage(config);
    const product = readFileSync(
      new URL('../../src/node/web/js/stall.js', import.meta.url),
      'utf8',
    );
    const body = product.slice(product.indexOf('export class DecodeStallWatch') + 'export '.length);
    expect(html).toContain(body);
    expect(html).not.toContain('export class');
    const script = html.slice(html.indexOf('<script>') + 8, html.lastIndexOf('</script>'));
    // it parses (a syntax error would leave the page without its bench hooks)
    expect(() => new Function(script)).not.toThrow();
    expect(script).toContain("location + '/keyframe'");
  });

  it("embeds the product staff page's backup-picture rule, and asks for the backup only when told", () => {
    const product = readFileSync(
      new URL('../../src/node/web/js/fallback.js', import.meta.url),
      'utf8',
    );
    const body = product.slice(product.indexOf('export class PictureFallback') + 'export '.length);
    for (const backup of [false, true]) {
      const html = staffPage({ ...config, backup });
      expect(html).toContain(body);
      const script = html.slice(html.indexOf('<script>') + 8, html.lastIndexOf('</script>'));
      expect(() => new Function(script)).not.toThrow();
      expect(html).toContain(`"backup":${backup}`);
    }
  });
});
