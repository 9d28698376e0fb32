import { type RTCPeerConnection, RtpHeader, RtpPacket } from 'werift';
import { redPrimary, splitRed, UlpfecReceiver } from './ulpfec.ts';
import { tapIncomingRtp } from './werift.ts';

/** Media packets rebuilt from FEC (they passed no werift receiver: its statistics, and so the
 * loss the node reports to the publisher, count them lost, as libwebrtc's receiver does). */
export const fecRecoveredPackets = new WeakSet<RtpPacket>();

/** The RED, ULPFEC and RTX payload types a publisher's video m-section negotiated. */
export interface RedPayloadTypes {
  red: number;
  ulpfec: number;
  /** RTX payload type → the payload type it repairs (`apt`). */
  rtxApt: ReadonlyMap<number, number>;
}

/** The payload types of RED with ULPFEC in `pc`'s negotiated video codecs, if both are there. */
export function redPayloadTypes(pc: RTCPeerConnection): RedPayloadTypes | undefined {
  for (const t of pc.getTransceivers()) {
    if (t.kind !== 'video') continue;
    let red: number | undefined;
    let ulpfec: number | undefined;
    const rtxApt = new Map<number, number>();
    for (const c of t.codecs) {
      const name = c.mimeType.toLowerCase();
      if (name === 'video/red') red = c.payloadType;
      else if (name === 'video/ulpfec') ulpfec = c.payloadType;
      else if (name === 'video/rtx') {
        const apt = /(?:^|;)\s*apt=(\d+)/.exec(c.parameters ?? '');
        if (apt) rtxApt.set(c.payloadType, Number(apt[1]));
      }
    }
    if (red !== undefined && ulpfec !== undefined) return { red, ulpfec, rtxApt };
  }
  return undefined;
}

interface TrackEvent {
  onReceiveRtp: { execute: (packet: RtpPacket, extensions: Record<string, unknown>) => void };
}

/**
 * Takes a publisher's RED apart before werift sees it (werift drops video RED): media packets go
 * on with their inner payload type, FEC packets with the ULPFEC payload type (the track sees
 * them, so their sequence numbers are not taken for losses), and RTX packets that repair a RED
 * packet become RTX of the inner payload type. Each SSRC's media and FEC feed a `UlpfecReceiver`;
 * what it rebuilds goes straight to the SSRC's track, ahead of the packet that completed it.
 * Returns a function that removes the path.
 */
export function startFecReceivePath(
  pc: RTCPeerConnection,
  types: RedPayloadTypes,
  onRecovered: (count: number) => void,
): () => void {
  const rtxByApt = new Map<number, number>();
  for (const [rtx, apt] of types.rtxApt) rtxByApt.set(apt, rtx);
  const receivers = new Map<number, UlpfecReceiver>();
  const tracks = new Map<number, TrackEvent>();
  const trackFor = (ssrc: number): TrackEvent | undefined => {
    let track = tracks.get(ssrc);
    if (track) return track;
    for (const t of pc.getTransceivers()) {
      track = (t.receiver as unknown as { trackBySSRC?: Record<number, TrackEvent> }).trackBySSRC?.[
        ssrc
      ];
      if (track) {
        tracks.set(ssrc, track);
        return track;
      }
    }
    return undefined;
  };
  const deliver = (ssrc: number, recovered: ReturnType<UlpfecReceiver['addMedia']>) => {
    if (recovered.length === 0) return;
    onRecovered(recovered.length);
    const track = trackFor(ssrc);
    if (!track) return;
    for (const r of recovered) {
      const packet = new RtpPacket(
        new RtpHeader({
          ssrc,
          sequenceNumber: r.seq,
          timestamp: r.timestamp,
          payloadType: r.payloadType,
          marker: r.marker,
        }),
        r.payload,
      );
      fecRecoveredPackets.add(packet);
      track.onReceiveRtp.execute(packet, {});
    }
  };
  return tapIncomingRtp(pc, (packet) => {
    const header = packet.header;
    const pt = header.payloadType;
    if (pt === types.red) {
      const raw = rawPacket(packet);
      const split = raw ? splitRed(raw, types.ulpfec) : undefined;
      if (!split) {
        // Not the layout werift parsed (should not happen): take the primary block, no FEC.
        const red = redPrimary(packet.payload);
        if (!red || red.pt === types.ulpfec) return false;
        header.payloadType = red.pt;
        packet.payload = packet.payload.subarray(red.offset);
        return true;
      }
      let receiver = receivers.get(header.ssrc);
      if (!receiver) {
        receiver = new UlpfecReceiver();
        receivers.set(header.ssrc, receiver);
      }
      if (split.fec) {
        header.payloadType = types.ulpfec;
        packet.payload = Buffer.from(split.data.buffer, split.data.byteOffset, split.data.length);
        header.paddingSize = 0;
        deliver(header.ssrc, receiver.addFec(split.seq, split.data));
      } else {
        header.payloadType = split.pt;
        const data = split.media.tail[1]!;
        packet.payload = Buffer.from(data.buffer, data.byteOffset, data.length);
        header.paddingSize = 0;
        deliver(header.ssrc, receiver.addMedia(split.media));
      }
      return true;
    }
    const apt = types.rtxApt.get(pt);
    if (apt === types.red) {
      // RTX payload: the original sequence number, then the RED payload.
      const payload = packet.payload;
      if (payload.length < 3) return false;
      const red = redPrimary(payload.subarray(2));
      const rtx = red ? rtxByApt.get(red.pt) : undefined;
      if (!red || rtx === undefined) return false;
      packet.payload = Buffer.concat([payload.subarray(0, 2), payload.subarray(2 + red.offset)]);
      header.payloadType = rtx;
    }
    return true;
  });
}

/** The decrypted packet werift parsed `packet` from, when its payload is still a view into it. */
function rawPacket(packet: RtpPacket): Uint8Array | undefined {
  const { payload, header } = packet;
  const start = payload.byteOffset - header.payloadOffset;
  const length = header.payloadOffset + payload.length + header.paddingSize;
  if (start < 0 || start + length > payload.buffer.byteLength) return undefined;
  const raw = new Uint8Array(payload.buffer, start, length);
  const seq = (raw[2]! << 8) | raw[3]!;
  const ssrc = ((raw[8]! << 24) | (raw[9]! << 16) | (raw[10]! << 8) | raw[11]!) >>> 0;
  if ((raw[0]! & 0xc0) !== 0x80 || seq !== header.sequenceNumber || ssrc !== header.ssrc) {
    return undefined;
  }
  return raw;
}
