import { describe, expect, it } from 'vitest';
import { shapePublisherAnswer } from '../../src/node/media/answer.ts';
import { sanitizeOffer } from '../../src/node/media/sdp.ts';

/** An answer as werift writes it to a Chrome publisher (trimmed to what matters here). */
const ANSWER = [
  'v=0',
  'o=- 123 0 IN IP4 0.0.0.0',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 0',
  'c=IN IP4 0.0.0.0',
  'a=mid:0',
  'a=recvonly',
  'a=rtpmap:111 opus/48000/2',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'a=rtpmap:0 PCMU/8000',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97',
  'c=IN IP4 0.0.0.0',
  'b=AS:5000',
  'a=mid:1',
  'a=recvonly',
  'a=rtpmap:96 VP8/90000',
  'a=rtcp-fb:96 transport-cc',
  'a=rtpmap:97 rtx/90000',
  'a=fmtp:97 apt=96',
  '',
].join('\r\n');

const sectionOf = (sdp: string, kind: string) =>
  sdp.split(/\r\n(?=m=)/).find((s) => s.startsWith(`m=${kind}`))!;

describe('shapePublisherAnswer', () => {
  const shaped = shapePublisherAnswer(ANSWER, { maxVideoKbps: 800 });

  it('puts the ceiling on the video section only, after its c= line, replacing what was there', () => {
    const video = sectionOf(shaped, 'video').split('\r\n');
    expect(video.slice(0, 4)).toEqual([
      'm=video 9 UDP/TLS/RTP/SAVPF 96 97',
      'c=IN IP4 0.0.0.0',
      'b=AS:800',
      'b=TIAS:800000',
    ]);
    expect(video.filter((l) => l.startsWith('b='))).toHaveLength(2);
    expect(sectionOf(shaped, 'audio')).not.toContain('b=');
    // The session part is untouched.
    expect(shaped.split('m=')[0]).toBe(ANSWER.split('m=')[0]);
  });

  it('asks Opus for in-band FEC and DTX, keeping its other parameters, and leaves other codecs alone', () => {
    const audio = sectionOf(shaped, 'audio');
    expect(audio).toContain('a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1');
    expect(audio.split('\r\n')).toContain('a=rtpmap:0 PCMU/8000');
    expect(audio).not.toMatch(/a=fmtp:0 /);
    expect(sectionOf(shaped, 'video')).toContain('a=fmtp:97 apt=96');
  });

  it.each([
    [
      'no fmtp line',
      'a=rtpmap:111 opus/48000/2\r\n',
      'a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1;usedtx=1\r\n',
    ],
    [
      'FEC turned off',
      'a=fmtp:111 minptime=10;useinbandfec=0\r\n',
      'a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1\r\n',
    ],
    [
      'DTX turned off, odd case',
      'a=fmtp:111 UseDtx=0; stereo=1\r\n',
      'a=fmtp:111 usedtx=1;stereo=1;useinbandfec=1\r\n',
    ],
  ])('Opus fmtp with %s', (_name, from, to) => {
    const sdp = ANSWER.replace('a=fmtp:111 minptime=10;useinbandfec=1\r\n', '').replace(
      'a=rtpmap:111 opus/48000/2\r\n',
      from.startsWith('a=rtpmap') ? from : `a=rtpmap:111 opus/48000/2\r\n${from}`,
    );
    expect(shapePublisherAnswer(sdp, { maxVideoKbps: 800 })).toContain(to);
  });

  it('keeps LF line endings when given them', () => {
    const lf = ANSWER.replaceAll('\r\n', '\n');
    const out = shapePublisherAnswer(lf, { maxVideoKbps: 1500 });
    expect(out).not.toContain('\r');
    expect(out).toContain('\nb=AS:1500\nb=TIAS:1500000\n');
    expect(out.endsWith('\n')).toBe(true);
  });

  it('refuses a ceiling that is not a positive whole number of kbit/s', () => {
    expect(() => shapePublisherAnswer(ANSWER, { maxVideoKbps: 0 })).toThrow(/maxVideoKbps/);
    expect(() => shapePublisherAnswer(ANSWER, { maxVideoKbps: 1.5 })).toThrow(/whole number/);
  });
});

describe('sanitizeOffer: transport-cc and the layer allocation for publishers only', () => {
  const offer = [
    'v=0',
    'm=video 9 UDP/TLS/RTP/SAVPF 96',
    'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
    'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
    'a=extmap:5 urn:3gpp:video-orientation',
    'a=extmap:14 http://www.webrtc.org/experiments/rtp-hdrext/video-layers-allocation00',
    'a=rtpmap:96 VP8/90000',
    'a=rtcp-fb:96 goog-remb',
    'a=rtcp-fb:96 transport-cc',
    'a=rtcp-fb:96 nack',
    'a=rtcp-fb:96 ccm fir',
    'a=rtcp-fb:96 rrtr',
    '',
  ].join('\r\n');

  it('keeps transport-cc, its extension and the layer allocation in a WHIP offer', () => {
    const out = sanitizeOffer(offer, 'publish');
    expect(out).toContain('a=rtcp-fb:96 transport-cc');
    expect(out).toContain(
      'a=extmap:14 http://www.webrtc.org/experiments/rtp-hdrext/video-layers-allocation00',
    );
    expect(out).toContain(
      'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
    );
    expect(out).not.toContain('video-orientation');
    expect(out).not.toContain('rrtr');
  });

  it('drops them from a WHEP offer', () => {
    const out = sanitizeOffer(offer, 'subscribe');
    expect(out).not.toMatch(/transport-cc|transport-wide-cc|layers-allocation/);
    expect(out).toContain('a=rtcp-fb:96 goog-remb');
    expect(out).toContain('a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid');
  });
});
