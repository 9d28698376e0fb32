import { describe, expect, it } from 'vitest';
import {
  buildSdpFrag,
  iceEntityTag,
  ifMatchHolds,
  localIceOf,
  offerWithIce,
  parseSdpFrag,
  SdpFragError,
} from '../../src/node/media/iceRestart.ts';
import { answerWithIce, parseFragment, restartFragment } from '../../src/node/web/js/ice.js';

/** A browser's restart offer, trimmed to what matters (two bundled m-sections). */
const OFFER = [
  'v=0',
  'o=- 1 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'c=IN IP4 0.0.0.0',
  'a=candidate:1 1 udp 2122260223 192.0.2.2 50000 typ host generation 0 network-id 1',
  'a=end-of-candidates',
  'a=ice-ufrag:OLDu',
  'a=ice-pwd:oldpasswordoldpassword1',
  'a=fingerprint:sha-256 AB:CD',
  'a=setup:actpass',
  'a=mid:0',
  'a=sendonly',
  'a=rtpmap:111 opus/48000/2',
  'm=video 9 UDP/TLS/RTP/SAVPF 96',
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:OLDu',
  'a=ice-pwd:oldpasswordoldpassword1',
  'a=mid:1',
  'a=sendonly',
  'a=rtpmap:96 VP8/90000',
  '',
].join('\r\n');

describe('parseSdpFrag', () => {
  const restart =
    'a=ice-options:trickle ice2\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:NEWu\r\na=ice-pwd:newpasswordnewpassword1\r\na=candidate:2 1 udp 2122260223 192.0.2.3 50001 typ host generation 0 ufrag NEWu\r\na=end-of-candidates\r\n';

  it('reads an ICE restart fragment', () => {
    expect(parseSdpFrag(restart)).toEqual({
      credentials: { ufrag: 'NEWu', pwd: 'newpasswordnewpassword1' },
      candidates: ['candidate:2 1 udp 2122260223 192.0.2.3 50001 typ host generation 0 ufrag NEWu'],
      endOfCandidates: true,
      mid: '0',
    });
  });

  it('reads a trickle fragment (no credentials)', () => {
    const frag = parseSdpFrag(
      'a=candidate:3 1 udp 1686052607 203.0.113.7 40000 typ srflx raddr 0.0.0.0 rport 0\n',
    );
    expect(frag.credentials).toBeUndefined();
    expect(frag.candidates).toHaveLength(1);
  });

  it.each([
    ['', 'empty'],
    ['   \r\n', 'empty'],
    ['ice-ufrag:abcd\r\n', 'malformed line'],
    ['m=audio nine\r\n', 'malformed m-line'],
    ['a=ice-ufrag:abcd\r\n', 'both a=ice-ufrag and a=ice-pwd'],
    ['a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n', 'both a=ice-ufrag and a=ice-pwd'],
    ['a=ice-ufrag:a b\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n', 'a=ice-ufrag must be'],
    ['a=ice-ufrag:abcd\r\na=ice-pwd:tooshort\r\n', 'a=ice-pwd must be'],
    [
      'a=ice-ufrag:abcd\r\na=ice-ufrag:efgh\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n',
      'two different a=ice-ufrag',
    ],
    ['a=candidate:1 1 udp 1 192.0.2.1 5000\r\n', 'malformed candidate'],
    ['a=candidate:1 1 udp 1 192.0.2.1 5000 typ magic\r\n', 'malformed candidate'],
    ['a=mid:0\r\na=ice-options:trickle\r\n', 'no ICE information'],
  ])('refuses %j', (body, message) => {
    expect(() => parseSdpFrag(body)).toThrow(SdpFragError);
    expect(() => parseSdpFrag(body)).toThrow(message);
  });
});

describe('offerWithIce', () => {
  it('swaps the credentials everywhere and moves the new candidates into the first m-section', () => {
    const sdp = offerWithIce(OFFER, {
      credentials: { ufrag: 'NEWu', pwd: 'newpasswordnewpassword1' },
      candidates: ['candidate:2 1 udp 2122260223 192.0.2.3 50001 typ host generation 0 ufrag NEWu'],
      endOfCandidates: true,
    });
    const lines = sdp.trimEnd().split('\r\n');
    expect(lines.filter((l) => l.startsWith('a=ice-ufrag:'))).toEqual([
      'a=ice-ufrag:NEWu',
      'a=ice-ufrag:NEWu',
    ]);
    expect(lines.filter((l) => l.startsWith('a=ice-pwd:'))).toEqual([
      'a=ice-pwd:newpasswordnewpassword1',
      'a=ice-pwd:newpasswordnewpassword1',
    ]);
    // old candidate gone; the new one sits in the first m-section, without its generation
    const candidates = lines.filter((l) => l.startsWith('a=candidate:'));
    expect(candidates).toEqual([
      'a=candidate:2 1 udp 2122260223 192.0.2.3 50001 typ host ufrag NEWu',
    ]);
    const video = lines.findIndex((l) => l.startsWith('m=video'));
    expect(lines.indexOf(candidates[0]!)).toBeLessThan(video);
    expect(lines.filter((l) => l === 'a=end-of-candidates')).toHaveLength(1);
    // everything else is as negotiated
    for (const keep of ['a=fingerprint:sha-256 AB:CD', 'a=rtpmap:96 VP8/90000', 'a=mid:1']) {
      expect(lines).toContain(keep);
    }
    expect(sdp.endsWith('\r\n')).toBe(true);
  });

  it('needs credentials', () => {
    expect(() => offerWithIce(OFFER, { candidates: [], endOfCandidates: true })).toThrow(
      'new ICE credentials',
    );
  });
});

describe('the node answer fragment', () => {
  it('carries the first m-section mid, the new credentials and candidates', () => {
    const local = localIceOf(
      'v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:nodE\r\na=ice-pwd:nodepasswordnodepasswrd\r\na=candidate:9 1 udp 2130706431 127.0.0.1 40000 typ host\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=candidate:9 1 udp 2130706431 127.0.0.1 40000 typ host\r\n',
    );
    expect(local).toEqual({
      ufrag: 'nodE',
      pwd: 'nodepasswordnodepasswrd',
      candidates: ['candidate:9 1 udp 2130706431 127.0.0.1 40000 typ host'],
      mid: '0',
    });
    const frag = buildSdpFrag(local);
    // what the node sends is what a client parses back
    expect(parseSdpFrag(frag)).toMatchObject({
      credentials: { ufrag: 'nodE', pwd: 'nodepasswordnodepasswrd' },
      candidates: local.candidates,
      endOfCandidates: true,
      mid: '0',
    });
    expect(parseFragment(frag)).toEqual({
      ufrag: 'nodE',
      pwd: 'nodepasswordnodepasswrd',
      candidates: local.candidates,
    });
  });
});

describe('the page side', () => {
  it('sends the first m-section of its restart offer as a fragment the node accepts', () => {
    const frag = restartFragment(OFFER);
    expect(frag).toBe(
      [
        'm=audio 9 UDP/TLS/RTP/SAVPF 111',
        'a=mid:0',
        'a=ice-ufrag:OLDu',
        'a=ice-pwd:oldpasswordoldpassword1',
        'a=candidate:1 1 udp 2122260223 192.0.2.2 50000 typ host generation 0 network-id 1',
        'a=end-of-candidates',
        '',
      ].join('\r\n'),
    );
    expect(parseSdpFrag(frag).credentials).toEqual({
      ufrag: 'OLDu',
      pwd: 'oldpasswordoldpassword1',
    });
  });

  it('applies the node fragment to the answer it holds', () => {
    const answer = OFFER.replace(/a=sendonly/g, 'a=recvonly');
    const sdp = answerWithIce(answer, {
      ufrag: 'nodE',
      pwd: 'nodepasswordnodepasswrd',
      candidates: ['candidate:9 1 udp 2130706431 127.0.0.1 40000 typ host'],
    });
    const lines = sdp.trimEnd().split('\r\n');
    expect(lines.filter((l) => l.startsWith('a=ice-ufrag:'))).toEqual([
      'a=ice-ufrag:nodE',
      'a=ice-ufrag:nodE',
    ]);
    expect(lines.filter((l) => l.startsWith('a=candidate:'))).toEqual([
      'a=candidate:9 1 udp 2130706431 127.0.0.1 40000 typ host',
    ]);
    expect(lines.indexOf('a=candidate:9 1 udp 2130706431 127.0.0.1 40000 typ host')).toBeLessThan(
      lines.findIndex((l) => l.startsWith('m=video')),
    );
  });
});

describe('entity-tags and If-Match (RFC 9110 section 13.1.1)', () => {
  it('gives each ICE generation its own strong tag', () => {
    expect(iceEntityTag('abc', 0)).toBe('"abc"');
    expect(iceEntityTag('abc', 1)).toBe('"abc.1"');
    expect(iceEntityTag('abc', 2)).not.toBe(iceEntityTag('abc', 1));
  });

  it.each([
    [undefined, true],
    ['*', true],
    [' * ', true],
    ['"abc.1"', true],
    ['"zzz", "abc.1"', true],
    ['"abc"', false],
    ['W/"abc.1"', false],
    ['abc.1', false],
    ['', false],
  ])('If-Match %j against "abc.1" holds: %s', (header, holds) => {
    expect(ifMatchHolds(header, '"abc.1"')).toBe(holds);
  });
});
