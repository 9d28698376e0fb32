import { describe, expect, it } from 'vitest';
import { estimateTimestampOffset } from '../../src/bench/FanoutSession.ts';
import { answerForJanus, midsByKind, offerForViewer } from '../../src/bench/janus/sdpMids.ts';

const janusOffer = [
  'v=0',
  'o=- 1 1 IN IP4 192.0.2.2',
  's=VideoRoom 1000',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97',
  'a=sendonly',
  'a=mid:0',
  'a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
  'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
  'a=rtpmap:96 VP8/90000',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'a=sendonly',
  'a=mid:1',
  'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
  'a=rtpmap:111 opus/48000/2',
  '',
].join('\r\n');

describe("Janus viewer offers in the viewer's section names", () => {
  it('renames 0/1 to video/audio, drops the mid extension, and maps the answer back', () => {
    const { sdp, names } = offerForViewer(janusOffer);
    expect(names).toEqual({ '0': 'video', '1': 'audio' });
    expect(sdp).toContain('a=group:BUNDLE video audio\r\n');
    expect(midsByKind(sdp)).toEqual({ video: 'video', audio: 'audio' });
    expect(sdp).not.toContain('sdes:mid');
    expect(sdp).toContain('abs-send-time');
    const answer =
      'v=0\r\na=group:BUNDLE video audio\r\nm=video 9 X 96\r\na=mid:video\r\nm=audio 9 X 111\r\na=mid:audio\r\n';
    const back = answerForJanus(answer, names);
    expect(back).toContain('a=group:BUNDLE 0 1\r\n');
    expect(midsByKind(back)).toEqual({ video: '0', audio: '1' });
  });
});

describe('matching frames across a server that rewrites RTP timestamps', () => {
  const sent = Array.from({ length: 300 }, (_, i) => ({
    rtpTimestamp: (4_000_000_000 + i * 3000) >>> 0,
    sentAt: 1000 + i * 33.3,
    keyframe: i % 60 === 0,
  }));
  const cases: { name: string; offset: number; transit: number; from: number }[] = [
    { name: 'small offset, 2 ms transit', offset: 12345, transit: 2, from: 30 },
    { name: 'wraps past 2^32, 20 ms transit', offset: 0x9000_0000, transit: 20, from: 59 },
    { name: 'joins on a keyframe, 5 ms transit', offset: 777, transit: 5, from: 120 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const received = sent.slice(c.from).map((f) => ({
        rtpTimestamp: (f.rtpTimestamp + c.offset) >>> 0,
        receivedAt: f.sentAt + c.transit,
        keyframe: f.keyframe,
      }));
      expect(estimateTimestampOffset(sent, received)).toBe(c.offset >>> 0);
    });
  }
  it('knows nothing before a frame arrives', () => {
    expect(estimateTimestampOffset(sent, [])).toBeUndefined();
  });
});
