/**
 * ICE restart and trickle ICE over WHIP/WHEP `PATCH` (RFC 9725 section 4.3): the SDP fragments
 * (`application/trickle-ice-sdpfrag`, RFC 8840) both ways, the session's entity-tag and its
 * `If-Match` precondition (RFC 9110 section 13.1.1), and the SDP rewrite that lets werift restart
 * ICE without renegotiating anything else. Pure functions, plus a typed view of the few werift
 * 0.24.4 ICE internals the restart has to drive.
 */
import type { RTCIceTransport, RTCPeerConnection } from 'werift';
import { errorMessage, HttpError } from '../../core/errors.ts';

export const SDPFRAG_TYPE = 'application/trickle-ice-sdpfrag';

export class SdpFragError extends Error {
  override name = 'SdpFragError';
}

/** ICE credentials (RFC 8839 section 5.4). */
export interface IceCredentials {
  ufrag: string;
  pwd: string;
}

/** What a client's PATCH body says. */
export interface RemoteIceFragment {
  /** Absent in a fragment that only trickles candidates. */
  credentials?: IceCredentials;
  /** `a=candidate:` attribute values (without `a=`), in order. */
  candidates: string[];
  endOfCandidates: boolean;
  /** The `a=mid:` of the m-section the candidates belong to, if given. */
  mid?: string;
}

/** What the node answers to an ICE restart. */
export interface LocalIce extends IceCredentials {
  /** `candidate:` attribute values of the node's new generation. */
  candidates: string[];
  /** The first m-section's mid (the bundle's transport). */
  mid?: string;
}

// RFC 8839 section 5.4: ice-char = ALPHA / DIGIT / "+" / "/"
const UFRAG = /^[A-Za-z0-9+/]{4,256}$/;
const PWD = /^[A-Za-z0-9+/]{22,256}$/;
// RFC 8839 section 5.1: foundation component-id transport priority address port "typ" type …
const CANDIDATE =
  /^candidate:[A-Za-z0-9+/]{1,32} \d{1,3} [A-Za-z]+ \d{1,10} \S+ \d{1,5} typ (host|srflx|prflx|relay)( \S+ \S+)*$/;
const FRAG_LINE = /^[a-z]=/;

function splitLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trimEnd())
    .filter((line) => line !== '');
}

/**
 * Parses a client's `application/trickle-ice-sdpfrag` body. Throws {@link SdpFragError} naming
 * the line at fault. A fragment must carry new credentials (ICE restart), candidates or
 * `a=end-of-candidates` (trickle); every m-section must use the same credentials (max-bundle).
 */
export function parseSdpFrag(text: string): RemoteIceFragment {
  if (typeof text !== 'string' || text.trim() === '') {
    throw new SdpFragError('the SDP fragment is empty');
  }
  let ufrag: string | undefined;
  let pwd: string | undefined;
  let mid: string | undefined;
  const candidates: string[] = [];
  let endOfCandidates = false;
  for (const line of splitLines(text)) {
    if (!FRAG_LINE.test(line)) {
      throw new SdpFragError(`the SDP fragment has a malformed line: "${line.slice(0, 60)}"`);
    }
    if (line.startsWith('m=')) {
      if (!/^m=\S+ \d+(?:\/\d+)? \S+( \S+)*$/.test(line)) {
        throw new SdpFragError(`the SDP fragment has a malformed m-line: "${line.slice(0, 60)}"`);
      }
      continue;
    }
    if (!line.startsWith('a=')) continue;
    const attr = line.slice(2);
    if (attr.startsWith('ice-ufrag:')) {
      const value = attr.slice('ice-ufrag:'.length).trim();
      if (!UFRAG.test(value)) {
        throw new SdpFragError(
          `a=ice-ufrag must be 4 to 256 letters, digits, "+" or "/" (got "${value.slice(0, 40)}")`,
        );
      }
      if (ufrag !== undefined && ufrag !== value) {
        throw new SdpFragError('the SDP fragment gives two different a=ice-ufrag values');
      }
      ufrag = value;
    } else if (attr.startsWith('ice-pwd:')) {
      const value = attr.slice('ice-pwd:'.length).trim();
      if (!PWD.test(value)) {
        throw new SdpFragError('a=ice-pwd must be 22 to 256 letters, digits, "+" or "/"');
      }
      if (pwd !== undefined && pwd !== value) {
        throw new SdpFragError('the SDP fragment gives two different a=ice-pwd values');
      }
      pwd = value;
    } else if (attr.startsWith('candidate:')) {
      if (!CANDIDATE.test(attr)) {
        throw new SdpFragError(
          `the SDP fragment has a malformed candidate: "${line.slice(0, 80)}"`,
        );
      }
      candidates.push(attr);
    } else if (attr === 'end-of-candidates') {
      endOfCandidates = true;
    } else if (attr.startsWith('mid:')) {
      mid ??= attr.slice(4).trim();
    }
  }
  if ((ufrag === undefined) !== (pwd === undefined)) {
    throw new SdpFragError(
      'the SDP fragment must carry both a=ice-ufrag and a=ice-pwd, or neither (trickle only)',
    );
  }
  if (ufrag === undefined && candidates.length === 0 && !endOfCandidates) {
    throw new SdpFragError(
      'the SDP fragment carries no ICE information: send a=ice-ufrag and a=ice-pwd (ICE restart), a=candidate lines or a=end-of-candidates',
    );
  }
  return {
    credentials: ufrag !== undefined && pwd !== undefined ? { ufrag, pwd } : undefined,
    candidates,
    endOfCandidates,
    mid,
  };
}

/** The ICE credentials of a full SDP (the first ones found). */
export function iceCredentialsOf(sdp: string): IceCredentials | undefined {
  const ufrag = /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1];
  const pwd = /^a=ice-pwd:(\S+)/m.exec(sdp)?.[1];
  return ufrag && pwd ? { ufrag, pwd } : undefined;
}

/**
 * werift drops a nomination whose remote candidate states a `generation` other than its own ICE
 * generation, which a restart increments while browsers keep writing `generation 0`: remove the
 * attribute so the node matches candidates by ufrag and address alone.
 */
export function withoutGeneration(candidate: string): string {
  return candidate.replace(/ generation \d+/, '');
}

/**
 * The previous offer with new ICE credentials and candidates: what the client would have offered
 * had it renegotiated (RFC 9725: everything but ICE stays as negotiated). Old candidates and
 * `a=end-of-candidates` go; the new candidates go into the first m-section (max-bundle).
 */
export function offerWithIce(previousOffer: string, remote: RemoteIceFragment): string {
  if (!remote.credentials) throw new SdpFragError('an ICE restart needs new ICE credentials');
  const { ufrag, pwd } = remote.credentials;
  const out: string[] = [];
  let mSections = 0;
  let placed = false;
  const place = () => {
    if (placed) return;
    for (const c of remote.candidates) out.push(`a=${withoutGeneration(c)}`);
    if (remote.endOfCandidates) out.push('a=end-of-candidates');
    placed = true;
  };
  for (const line of splitLines(previousOffer)) {
    if (line.startsWith('m=')) {
      if (mSections === 1) place();
      mSections++;
    }
    if (line.startsWith('a=candidate:') || line === 'a=end-of-candidates') continue;
    if (line.startsWith('a=ice-ufrag:')) out.push(`a=ice-ufrag:${ufrag}`);
    else if (line.startsWith('a=ice-pwd:')) out.push(`a=ice-pwd:${pwd}`);
    else out.push(line);
  }
  if (mSections === 0) throw new SdpFragError('the session has no m-section to restart ICE on');
  place();
  return `${out.join('\r\n')}\r\n`;
}

/**
 * The node's new credentials and candidates, from its new local description. werift writes its
 * own ICE generation into each candidate; it is left out, as peers (werift among them) may refuse
 * to nominate a pair whose generation differs from theirs.
 */
export function localIceOf(localSdp: string): LocalIce {
  const credentials = iceCredentialsOf(localSdp);
  if (!credentials) throw new Error('the local description has no ICE credentials');
  const candidates: string[] = [];
  let mid: string | undefined;
  let section = 0;
  for (const line of splitLines(localSdp)) {
    if (line.startsWith('m=')) section++;
    if (section !== 1) continue;
    if (line.startsWith('a=mid:')) mid ??= line.slice(6).trim();
    else if (line.startsWith('a=candidate:')) candidates.push(withoutGeneration(line.slice(2)));
  }
  return { ...credentials, candidates, mid };
}

/** The `application/trickle-ice-sdpfrag` body answering an ICE restart (RFC 8840 section 9). */
export function buildSdpFrag(local: LocalIce): string {
  const lines = ['a=ice-options:trickle ice2'];
  if (local.mid !== undefined) {
    lines.push('m=audio 9 UDP/TLS/RTP/SAVPF 0');
    lines.push(`a=mid:${local.mid}`);
  }
  lines.push(`a=ice-ufrag:${local.ufrag}`, `a=ice-pwd:${local.pwd}`);
  for (const c of local.candidates) lines.push(`a=${c}`);
  lines.push('a=end-of-candidates');
  return `${lines.join('\r\n')}\r\n`;
}

/**
 * The session's strong entity-tag (RFC 9725 section 4.3.1): one per ICE generation, so a PATCH
 * meant for an earlier generation fails its `If-Match`.
 */
export function iceEntityTag(sessionId: string, generation: number): string {
  return generation === 0 ? `"${sessionId}"` : `"${sessionId}.${generation}"`;
}

/**
 * Evaluates `If-Match` (RFC 9110 section 13.1.1) against the session's current entity-tag: absent
 * or `*` is true for a live session; otherwise true only if one listed tag is the same strong tag
 * (a weak `W/` tag never matches).
 */
export function ifMatchHolds(header: string | undefined, currentTag: string): boolean {
  if (header === undefined) return true;
  const value = header.trim();
  if (value === '*') return true;
  const tags = value.match(/(W\/)?"[^"]*"/g) ?? [];
  return tags.some((tag) => !tag.startsWith('W/') && tag === currentTag);
}

/** A werift 0.24.4 STUN message, as far as its USERNAME goes. */
interface StunRequest {
  getAttributeValue: (key: string) => unknown;
  setAttribute: (key: string, value: unknown) => unknown;
}

/** A werift 0.24.4 ICE socket (`StunProtocol`, or its TCP twin): where checks go out. */
interface IceSocket {
  request: (request: StunRequest, addr: [string, number], ...rest: unknown[]) => Promise<unknown>;
}

/** A werift 0.24.4 `CandidatePair`, as far as sending on it goes. */
interface SendingPair {
  protocol: { sendData: (data: Buffer, addr: [string, number]) => Promise<void> };
  remoteAddr: [string, number];
  /** werift's `CandidatePairState`. */
  state: number;
  packetsSent: number;
  bytesSent: number;
}

/** werift's `CandidatePairState.SUCCEEDED`: the pair answered a check of ours. */
const PAIR_SUCCEEDED = 3;

/**
 * Private state of werift 0.24.4's ICE agent (`ice/src/ice.js` `Connection`) that the restart,
 * its bridge and {@link keepPathUsernames} read or take over.
 */
interface IceAgent {
  earlyChecks: unknown[];
  remoteCandidates: unknown[];
  generation: number;
  state: string;
  nominated?: SendingPair;
  /** The current generation's pairs, best first. */
  checkList: SendingPair[];
  send: (data: Buffer) => Promise<void>;
  canSendApplicationData: () => boolean;
  /** While a restart has nominated no pair: the pair media goes out on (read by the hot path). */
  restartBridge?: SendingPair;
  /** Every local ufrag the agent has had, with its password. */
  userHistory: Record<string, string>;
  checkIncoming: (message: StunRequest, addr: [string, number], socket: IceSocket) => void;
}

function agent(transport: RTCIceTransport): IceAgent {
  return transport.connection as unknown as IceAgent;
}

/**
 * Keeps media going out while an ICE restart finds its new path. werift forgets its nominated
 * pair when it restarts and sends nothing until the peer nominates a new one: Chrome does that
 * with a later check of the new pair, 30 ms to 3.2 s after the PATCH on loopback. Until then
 * media goes out on the best pair of the new generation that has answered a check of ours (a
 * working path, as a controlled libwebrtc agent would use it), else on the pair in use before
 * the restart: the old path often still works meanwhile (a browser keeps its old connections
 * until it has chosen the new one). Call before the restart is applied; returns the function that
 * ends the bridge (once the restart has connected or given up).
 */
export function bridgeIceRestart(transport: RTCIceTransport | undefined): () => void {
  const ice = transport && agent(transport);
  const previous = ice?.nominated;
  if (!ice || !previous || Object.hasOwn(ice, 'restartBridge')) return () => {};
  const send = ice.send;
  const pair = (): SendingPair | undefined => {
    if (ice.nominated !== undefined || ice.state === 'closed' || ice.state === 'failed') {
      return undefined;
    }
    for (const p of ice.checkList) if (p.state === PAIR_SUCCEEDED) return p;
    return previous;
  };
  const ownRules = Object.getPrototypeOf(ice).canSendApplicationData as () => boolean;
  Object.defineProperty(ice, 'restartBridge', { get: pair, configurable: true });
  ice.canSendApplicationData = () => ownRules.call(ice) || pair() !== undefined;
  ice.send = async (data) => {
    const p = pair();
    if (!p) return send(data);
    await p.protocol.sendData(data, p.remoteAddr);
    p.packetsSent++;
    p.bytesSent += data.length;
  };
  return () => {
    ice.send = send;
    delete (ice as Partial<IceAgent>).restartBridge;
    delete (ice as Partial<IceAgent>).canSendApplicationData;
  };
}

/** The agents {@link keepPathUsernames} already looks after. */
const keptAgents = new WeakSet<object>();

/**
 * Sends the node's checks and consent requests on each path under the local ufrag the peer uses
 * on that path. During an ICE restart Chrome checks from its new ports with the node's *previous*
 * ufrag until the answer reaches it, and may nominate such a pair; libwebrtc then ties that
 * connection to the previous ufrag for good and answers 401 to a request naming the new one.
 * werift's consent requests always name its newest ufrag, so on that pair none is answered, and
 * consent expires (the session ends) 30 s after the restart. So, per socket and peer address, the
 * agent remembers which of its ufrags (known to it, so never a stranger's) the peer's latest check
 * named, and its requests there name that one, as long as they are for the same peer ufrag.
 * Install once the session has an ICE transport; before any restart this changes nothing.
 */
export function keepPathUsernames(transport: RTCIceTransport | undefined): void {
  const ice = transport && agent(transport);
  if (!ice || keptAgents.has(ice)) return;
  keptAgents.add(ice);
  const named = new WeakMap<IceSocket, Map<string, { peer: string; ours: string }>>();
  const keyOf = (addr: [string, number]) => `${addr[0]}|${addr[1]}`;
  const watch = (socket: IceSocket) => {
    const byAddr = new Map<string, { peer: string; ours: string }>();
    named.set(socket, byAddr);
    const request = socket.request;
    socket.request = (message, addr, ...rest) => {
      const username = message.getAttributeValue('USERNAME');
      if (typeof username === 'string') {
        // a request names the peer's ufrag first (RFC 8445 section 7.2.2)
        const [peer, ours] = username.split(':');
        const used = byAddr.get(keyOf(addr));
        if (used && used.peer === peer && used.ours !== ours) {
          message.setAttribute('USERNAME', `${peer}:${used.ours}`);
        }
      }
      return request.call(socket, message, addr, ...rest);
    };
    return byAddr;
  };
  const checkIncoming = ice.checkIncoming;
  ice.checkIncoming = (message, addr, socket) => {
    const username = message.getAttributeValue('USERNAME');
    if (typeof username === 'string') {
      const [ours, peer] = username.split(':');
      if (ours && peer && Object.hasOwn(ice.userHistory, ours)) {
        (named.get(socket) ?? watch(socket)).set(keyOf(addr), { peer, ours });
      }
    }
    checkIncoming.call(ice, message, addr, socket);
  };
}

/** The ICE generation werift is on (0 before any restart). */
export function iceGeneration(transport: RTCIceTransport): number {
  return agent(transport).generation;
}

/**
 * Starts ICE checks on a restarted transport. werift's answerer starts checks only from
 * `setLocalDescription`, and only while DTLS is down, so a restart under a live DTLS session
 * never checks by itself. Its agent gives up at once when it has nothing to pair, so this waits
 * for a remote candidate or the peer's first check (for at most `waitMs`). Resolves true once a
 * new pair is nominated; false when nothing came, ICE failed or the session closed.
 */
export async function startRestartedIce(
  transport: RTCIceTransport,
  waitMs: number,
  isClosed: () => boolean,
): Promise<boolean> {
  const internals = agent(transport);
  const deadline = performance.now() + waitMs;
  while (internals.remoteCandidates.length === 0 && internals.earlyChecks.length === 0) {
    if (isClosed() || performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  if (isClosed()) return false;
  try {
    await transport.start();
  } catch {
    // werift has set the transport 'failed'; the session hears that from the connection state
    return false;
  }
  return transport.state === 'connected';
}

/**
 * Restarts ICE on a negotiated werift connection: applies its previous offer again with the
 * client's new credentials and candidates, answers, and regathers (werift keeps its sockets and
 * gives its host candidates the new credentials). Nothing else is renegotiated: the codecs each
 * sender was switched to (the forwarder picks the publisher's codec) are put back afterwards,
 * since applying an offer resets them to the first negotiated one. Resolves with the node's new
 * ICE; checks still have to be started ({@link startRestartedIce}).
 */
export async function applyIceRestart(
  pc: RTCPeerConnection,
  fragment: RemoteIceFragment,
): Promise<LocalIce> {
  const previous = pc.remoteDescription?.sdp;
  if (!previous) {
    throw new HttpError(409, 'not_negotiated', 'the session has no negotiated offer to restart');
  }
  const offer = offerWithIce(previous, fragment);
  const senders = pc.getTransceivers().map((t) => {
    const sender = t.sender as unknown as { codec?: unknown; rtxPayloadType?: number };
    return { sender, codec: sender.codec, rtx: sender.rtxPayloadType };
  });
  try {
    await pc.setRemoteDescription({ type: 'offer', sdp: offer });
    for (const { sender, codec, rtx } of senders) {
      sender.codec = codec;
      sender.rtxPayloadType = rtx;
    }
    await pc.setLocalDescription(await pc.createAnswer());
  } catch (err) {
    throw new HttpError(500, 'ice_restart_failed', `the ICE restart failed: ${errorMessage(err)}`);
  }
  const local = pc.localDescription?.sdp;
  if (!local) throw new HttpError(500, 'ice_restart_failed', 'werift produced no new answer');
  return localIceOf(local);
}

/** Adds trickled candidates (and end-of-candidates) to the connection's current ICE generation. */
export async function addTrickledCandidates(
  pc: RTCPeerConnection,
  fragment: RemoteIceFragment,
): Promise<void> {
  try {
    for (const candidate of fragment.candidates) {
      await pc.addIceCandidate({ candidate: withoutGeneration(candidate), sdpMLineIndex: 0 });
    }
    if (fragment.endOfCandidates) await pc.addIceCandidate({ candidate: '', sdpMLineIndex: 0 });
  } catch (err) {
    throw new HttpError(
      422,
      'candidate_rejected',
      `the node could not use a trickled candidate: ${errorMessage(err)}`,
    );
  }
}
