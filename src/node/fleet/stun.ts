import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { crc32 } from 'node:zlib';

/**
 * A small STUN/TURN client over UDP (RFC 8489 STUN, RFC 8656 TURN), enough to check a TURN server
 * from the outside: a Binding request (is anything answering?) and an authenticated Allocate
 * with long-term credentials (does the server accept the credentials the node hands out, and
 * does it give a relayed address?). The allocation is released again at once.
 */

const MAGIC = 0x2112a442;
const HEADER = 20;

export const StunType = {
  bindingRequest: 0x0001,
  bindingSuccess: 0x0101,
  allocateRequest: 0x0003,
  allocateSuccess: 0x0103,
  allocateError: 0x0113,
  refreshRequest: 0x0004,
  refreshSuccess: 0x0104,
} as const;

const Attr = {
  mappedAddress: 0x0001,
  username: 0x0006,
  messageIntegrity: 0x0008,
  errorCode: 0x0009,
  lifetime: 0x000d,
  realm: 0x0014,
  nonce: 0x0015,
  xorRelayedAddress: 0x0016,
  requestedTransport: 0x0019,
  xorMappedAddress: 0x0020,
  software: 0x8022,
  fingerprint: 0x8028,
} as const;

export interface StunAttribute {
  type: number;
  value: Buffer;
  /** Where the attribute's header starts in the message. */
  offset: number;
}

export interface StunMessage {
  type: number;
  transactionId: Buffer;
  attributes: StunAttribute[];
  raw: Buffer;
}

export interface TransportAddress {
  address: string;
  port: number;
}

/** Encodes a STUN message; with `key` it carries MESSAGE-INTEGRITY, and always a FINGERPRINT. */
export function encodeStun(
  type: number,
  transactionId: Buffer,
  attributes: { type: number; value: Buffer }[],
  key?: Buffer,
): Buffer {
  const parts: Buffer[] = [];
  for (const a of attributes) {
    const head = Buffer.alloc(4);
    head.writeUInt16BE(a.type, 0);
    head.writeUInt16BE(a.value.length, 2);
    const pad = Buffer.alloc((4 - (a.value.length % 4)) % 4);
    parts.push(head, a.value, pad);
  }
  let body = Buffer.concat(parts);
  const header = (length: number) => {
    const h = Buffer.alloc(HEADER);
    h.writeUInt16BE(type, 0);
    h.writeUInt16BE(length, 2);
    h.writeUInt32BE(MAGIC, 4);
    transactionId.copy(h, 8);
    return h;
  };
  if (key) {
    // the HMAC covers the message up to MESSAGE-INTEGRITY, with the length already counting it
    const mac = createHmac('sha1', key)
      .update(Buffer.concat([header(body.length + 24), body]))
      .digest();
    const head = Buffer.alloc(4);
    head.writeUInt16BE(Attr.messageIntegrity, 0);
    head.writeUInt16BE(20, 2);
    body = Buffer.concat([body, head, mac]);
  }
  const crc = (crc32(Buffer.concat([header(body.length + 8), body])) ^ 0x5354554e) >>> 0;
  const fp = Buffer.alloc(8);
  fp.writeUInt16BE(Attr.fingerprint, 0);
  fp.writeUInt16BE(4, 2);
  fp.writeUInt32BE(crc, 4);
  body = Buffer.concat([body, fp]);
  return Buffer.concat([header(body.length), body]);
}

/** Parses a STUN message, or returns undefined when the bytes are not one. */
export function decodeStun(raw: Buffer): StunMessage | undefined {
  if (raw.length < HEADER || raw.readUInt32BE(4) !== MAGIC || (raw[0]! & 0xc0) !== 0)
    return undefined;
  const length = raw.readUInt16BE(2);
  if (length % 4 !== 0 || raw.length < HEADER + length) return undefined;
  const attributes: StunAttribute[] = [];
  let off = HEADER;
  while (off + 4 <= HEADER + length) {
    const type = raw.readUInt16BE(off);
    const len = raw.readUInt16BE(off + 2);
    if (off + 4 + len > HEADER + length) return undefined;
    attributes.push({ type, value: raw.subarray(off + 4, off + 4 + len), offset: off });
    off += 4 + len + ((4 - (len % 4)) % 4);
  }
  return {
    type: raw.readUInt16BE(0),
    transactionId: raw.subarray(8, 20),
    attributes,
    raw: raw.subarray(0, HEADER + length),
  };
}

function attr(msg: StunMessage, type: number): Buffer | undefined {
  return msg.attributes.find((a) => a.type === type)?.value;
}

/** True when the message's MESSAGE-INTEGRITY was made with `key`. */
export function checkIntegrity(msg: StunMessage, key: Buffer): boolean {
  const mi = msg.attributes.find((a) => a.type === Attr.messageIntegrity);
  if (mi?.value.length !== 20) return false;
  const covered = Buffer.from(msg.raw.subarray(0, mi.offset));
  covered.writeUInt16BE(mi.offset + 24 - HEADER, 2);
  const mac = createHmac('sha1', key).update(covered).digest();
  return timingSafeEqual(mac, mi.value);
}

/** Long-term credential key (RFC 8489 §9.2.2): MD5(username ":" realm ":" password). */
export function longTermKey(username: string, realm: string, password: string): Buffer {
  return createHash('md5').update(`${username}:${realm}:${password}`).digest();
}

function xorAddress(value: Buffer, transactionId: Buffer): TransportAddress {
  const family = value[1];
  const port = value.readUInt16BE(2) ^ (MAGIC >>> 16);
  if (family === 0x01) {
    const a = (value.readUInt32BE(4) ^ MAGIC) >>> 0;
    return { address: [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.'), port };
  }
  const mask = Buffer.concat([Buffer.from([0x21, 0x12, 0xa4, 0x42]), transactionId]);
  const bytes = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) bytes[i] = value[4 + i]! ^ mask[i]!;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return { address: groups.join(':'), port };
}

function errorCode(msg: StunMessage): { code: number; reason: string } | undefined {
  const v = attr(msg, Attr.errorCode);
  if (!v || v.length < 4) return undefined;
  return { code: (v[2]! & 0x7) * 100 + v[3]!, reason: v.subarray(4).toString('utf8') };
}

/** One UDP socket, requests matched to answers by transaction id, retransmitted RFC-style. */
class StunTransport {
  private readonly socket: Socket;
  private readonly waiting = new Map<string, (m: StunMessage) => void>();
  private readonly ready: Promise<void>;

  constructor(
    private readonly server: TransportAddress,
    private readonly what: string,
  ) {
    this.socket = createSocket(isIPv6(server.address) ? 'udp6' : 'udp4');
    this.socket.on('message', (buf) => {
      const m = decodeStun(buf);
      if (!m) return;
      this.waiting.get(m.transactionId.toString('hex'))?.(m);
    });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(0, () => {
        this.socket.off('error', reject);
        this.socket.on('error', () => {});
        resolve();
      });
    });
  }

  async request(
    type: number,
    attributes: { type: number; value: Buffer }[],
    timeoutMs: number,
    key?: Buffer,
  ): Promise<StunMessage> {
    await this.ready;
    const tid = randomBytes(12);
    const packet = encodeStun(type, tid, attributes, key);
    return new Promise((resolve, reject) => {
      const id = tid.toString('hex');
      let rto = 250;
      let resend: NodeJS.Timeout | undefined;
      const send = () => {
        this.socket.send(packet, this.server.port, this.server.address);
        resend = setTimeout(send, rto);
        rto = Math.min(rto * 2, 2000);
      };
      const timer = setTimeout(() => {
        clearTimeout(resend);
        this.waiting.delete(id);
        reject(new Error(`${this.what}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (m) => {
        clearTimeout(timer);
        clearTimeout(resend);
        this.waiting.delete(id);
        resolve(m);
      });
      send();
    });
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}

export interface StunCheckOptions {
  host: string;
  port: number;
  timeoutMs?: number;
}

/** A STUN Binding request: answers with the address the server saw us at. */
export async function stunBinding(opts: StunCheckOptions): Promise<{ mapped: TransportAddress }> {
  const what = `STUN ${opts.host}:${opts.port}`;
  const t = new StunTransport({ address: opts.host, port: opts.port }, what);
  try {
    const res = await t.request(StunType.bindingRequest, [], opts.timeoutMs ?? 3000);
    const x = attr(res, Attr.xorMappedAddress);
    if (res.type !== StunType.bindingSuccess || !x)
      throw new Error(`${what}: unexpected answer 0x${res.type.toString(16)}`);
    return { mapped: xorAddress(x, res.transactionId) };
  } finally {
    t.close();
  }
}

export interface TurnAllocateOptions extends StunCheckOptions {
  username: string;
  password: string;
}

export interface TurnAllocation {
  relayed: TransportAddress;
  mapped: TransportAddress | undefined;
  lifetimeSeconds: number;
  realm: string;
}

/**
 * Allocates a UDP relay with long-term credentials (first unauthenticated, to learn the realm and
 * nonce; then signed), checks the server's own MESSAGE-INTEGRITY on the answer, and releases the
 * allocation with a zero-lifetime Refresh. Throws with the server's error code when refused.
 */
export async function turnAllocate(opts: TurnAllocateOptions): Promise<TurnAllocation> {
  const what = `TURN ${opts.host}:${opts.port}`;
  const timeout = opts.timeoutMs ?? 3000;
  const t = new StunTransport({ address: opts.host, port: opts.port }, what);
  const udp = Buffer.from([17, 0, 0, 0]);
  try {
    const first = await t.request(
      StunType.allocateRequest,
      [{ type: Attr.requestedTransport, value: udp }],
      timeout,
    );
    if (first.type !== StunType.allocateError)
      throw new Error(`${what}: allocated without asking for credentials`);
    let challenge = first;
    for (let attempt = 0; attempt < 2; attempt++) {
      const realm = attr(challenge, Attr.realm)?.toString('utf8');
      const nonce = attr(challenge, Attr.nonce);
      const err = errorCode(challenge);
      if (err?.code !== 401 && err?.code !== 438)
        throw new Error(`${what}: refused: ${err?.code ?? '?'} ${err?.reason ?? ''}`.trim());
      if (!realm || !nonce) throw new Error(`${what}: the challenge has no realm or nonce`);
      const key = longTermKey(opts.username, realm, opts.password);
      const auth = [
        { type: Attr.username, value: Buffer.from(opts.username, 'utf8') },
        { type: Attr.realm, value: Buffer.from(realm, 'utf8') },
        { type: Attr.nonce, value: nonce },
      ];
      const res = await t.request(
        StunType.allocateRequest,
        [{ type: Attr.requestedTransport, value: udp }, ...auth],
        timeout,
        key,
      );
      if (res.type === StunType.allocateError) {
        const e = errorCode(res);
        if (e?.code === 438 && attempt === 0) {
          challenge = res; // stale nonce: once more with the new one
          continue;
        }
        throw new Error(
          `${what}: allocate refused: ${e?.code ?? '?'} ${e?.reason ?? ''}${e?.code === 401 ? ' (wrong credentials, expired username or another realm)' : ''}`.trim(),
        );
      }
      if (res.type !== StunType.allocateSuccess)
        throw new Error(`${what}: unexpected answer 0x${res.type.toString(16)}`);
      if (!checkIntegrity(res, key))
        throw new Error(`${what}: the answer's MESSAGE-INTEGRITY does not match our key`);
      const relayed = attr(res, Attr.xorRelayedAddress);
      if (!relayed) throw new Error(`${what}: the answer has no relayed address`);
      const mapped = attr(res, Attr.xorMappedAddress);
      const life = attr(res, Attr.lifetime);
      const allocation: TurnAllocation = {
        relayed: xorAddress(relayed, res.transactionId),
        mapped: mapped ? xorAddress(mapped, res.transactionId) : undefined,
        lifetimeSeconds: life ? life.readUInt32BE(0) : 0,
        realm,
      };
      // release it; the server frees it anyway when the lifetime runs out
      await t
        .request(
          StunType.refreshRequest,
          [{ type: Attr.lifetime, value: Buffer.alloc(4) }, ...auth],
          timeout,
          key,
        )
        .catch(() => undefined);
      return allocation;
    }
    throw new Error(`${what}: the server kept saying the nonce is stale`);
  } finally {
    t.close();
  }
}
