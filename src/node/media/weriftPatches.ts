/**
 * The werift 0.24.4 internals that simulcast and the node's own retransmission history touch:
 * routing of simulcast RTX, and taking generic NACKs away from werift's sender. Re-check this
 * file when upgrading werift.
 */
import {
  type GenericNack,
  type RTCPeerConnection,
  type RTCRtpReceiver,
  type RTCRtpSender,
  RTP_EXTENSION_URI,
  type RtcpPacket,
  type RtpPacket,
} from 'werift';

/** RTCP transport-layer feedback (RFC 4585) packet type and the generic NACK format. */
const RTPFB = 205;
const GENERIC_NACK_FORMAT = 1;

interface ReceiverInternals {
  trackBySSRC: Record<number, { rid?: string } | undefined>;
  ssrcByRtx: Record<number, number>;
}

interface RouterInternals {
  ssrcTable: Record<number, unknown>;
  ridTable: Record<string, RTCRtpReceiver | undefined>;
  extIdUriMap: Record<number, string>;
  routeRtp: (packet: RtpPacket) => void;
  __simulcastRtx?: boolean;
}

function extensionId(router: RouterInternals, uri: string): number | undefined {
  for (const [id, u] of Object.entries(router.extIdUriMap)) if (u === uri) return Number(id);
  return undefined;
}

function extensionText(packet: RtpPacket, id: number | undefined): string | undefined {
  if (id === undefined) return undefined;
  for (const ext of packet.header.extensions) {
    if (ext.id === id) return ext.payload.toString('ascii');
  }
  return undefined;
}

/**
 * werift routes simulcast layers by their rid header extension but drops their RTX streams
 * (which carry the repaired-rtp-stream-id extension and no a=ssrc announces). Teach the router,
 * on the first packet of an unknown SSRC: a layer's SSRC is bound to its receiver, an RTX SSRC to
 * the SSRC of the layer it repairs, so werift unwraps it like any RTX. Packets of known SSRCs pay
 * one table lookup. Idempotent.
 */
export function routeSimulcastRtx(pc: RTCPeerConnection): void {
  const router = (pc as unknown as { router: RouterInternals }).router;
  if (router.__simulcastRtx) return;
  router.__simulcastRtx = true;
  const route = router.routeRtp;
  router.routeRtp = (packet) => {
    if (router.ssrcTable[packet.header.ssrc] === undefined) learnSsrc(router, packet);
    route(packet);
  };
}

function learnSsrc(router: RouterInternals, packet: RtpPacket): void {
  const ssrc = packet.header.ssrc;
  const rid = extensionText(packet, extensionId(router, RTP_EXTENSION_URI.sdesRTPStreamID));
  if (rid !== undefined) {
    const receiver = router.ridTable[rid];
    if (receiver) router.ssrcTable[ssrc] = receiver;
    return;
  }
  const repaired = extensionText(
    packet,
    extensionId(router, RTP_EXTENSION_URI.repairedRtpStreamId),
  );
  if (repaired === undefined) return;
  const receiver = router.ridTable[repaired];
  if (!receiver) return;
  const internals = receiver as unknown as ReceiverInternals;
  for (const [layerSsrc, track] of Object.entries(internals.trackBySSRC)) {
    if (track?.rid !== repaired) continue;
    internals.ssrcByRtx[ssrc] = Number(layerSsrc);
    router.ssrcTable[ssrc] = receiver;
    return;
  }
  // The layer's own packets have not arrived yet: its SSRC is learnt from them first.
}

/**
 * Takes a subscriber sender's generic NACKs away from werift (which would resend from its fixed
 * 128-packet history) and hands them to `onNack`; every other RTCP packet goes through werift as
 * before. Idempotent per sender.
 */
export function interceptNacks(sender: RTCRtpSender, onNack: (nack: GenericNack) => void): void {
  const target = sender as unknown as {
    handleRtcpPacket: (packet: RtcpPacket) => void;
    onRtcp: { execute: (packet: RtcpPacket) => void };
    __nacksIntercepted?: boolean;
  };
  if (target.__nacksIntercepted) return;
  target.__nacksIntercepted = true;
  const handle = target.handleRtcpPacket.bind(sender);
  target.handleRtcpPacket = (packet) => {
    const feedback = (packet as { feedback?: { count?: number } }).feedback;
    if (packet.type === RTPFB && feedback?.count === GENERIC_NACK_FORMAT) {
      onNack(feedback as GenericNack);
      target.onRtcp.execute(packet);
      return;
    }
    handle(packet);
  };
}
