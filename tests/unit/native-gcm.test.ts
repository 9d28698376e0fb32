/**
 * The native AES-128-GCM addon (native/srtp_gcm.c) against Node's own crypto: the same
 * ciphertext and tag, forgeries refused with nothing of them left behind, clear errors for bad
 * arguments, one context per key, contexts freed with their handles, and loading in a worker
 * thread (media.workers).
 */
import { spawnSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { NATIVE_ADDON_PATH } from '../../src/node/media/nativeAddon.ts';
import { gcmHandle, nativeGcm, nativeGcmStatus } from '../../src/node/media/nativeGcm.ts';

function nodeSeal(key: Buffer, iv: Buffer, aad: Buffer, plain: Buffer): Buffer {
  const c = createCipheriv('aes-128-gcm', key, iv);
  c.setAAD(aad);
  const enc = c.update(plain);
  c.final();
  return Buffer.concat([aad, enc, c.getAuthTag()]);
}

describe('native AES-GCM addon', () => {
  it('is built and loaded (npm install builds it; `npm run build:native` rebuilds it)', () => {
    expect(nativeGcmStatus()).toEqual({ loaded: true });
  });

  const native = nativeGcm!;

  it("seals to Node's bytes and opens them again, for headers and payloads of every size", () => {
    const key = randomBytes(16);
    const handle = native.context(key);
    for (const aadLength of [0, 12, 16, 28, 72]) {
      for (const plainLength of [0, 1, 15, 16, 17, 160, 1100, 1400]) {
        const iv = randomBytes(12);
        const aad = randomBytes(aadLength);
        const plain = randomBytes(plainLength);
        const dst = Buffer.alloc(aadLength + plainLength + 16);
        aad.copy(dst);
        native.seal(handle, iv, dst, aadLength, plain);
        expect(dst.toString('hex')).toBe(nodeSeal(key, iv, aad, plain).toString('hex'));

        const opened = Buffer.alloc(aadLength + plainLength);
        expect(native.open(handle, iv, dst, aadLength, opened)).toBe(true);
        expect(opened.equals(Buffer.concat([aad, plain]))).toBe(true);
      }
    }
  });

  it('refuses a changed header, payload, tag, IV or key, and leaves no plaintext behind', () => {
    const key = randomBytes(16);
    const handle = native.context(key);
    const iv = randomBytes(12);
    const plain = Buffer.from('the left hinge was already cracked when it was packed');
    const sealed = nodeSeal(key, iv, randomBytes(12), plain);
    const opened = Buffer.alloc(sealed.length - 16);
    for (const at of [0, 11, 12, 30, sealed.length - 1]) {
      const forged = Buffer.from(sealed);
      forged[at]! ^= 0x01;
      opened.fill(0xee);
      expect(native.open(handle, iv, forged, 12, opened), `byte ${at}`).toBe(false);
      expect(opened.every((b) => b === 0)).toBe(true);
    }
    const otherIv = Buffer.from(iv);
    otherIv[11]! ^= 1;
    expect(native.open(handle, otherIv, sealed, 12, opened)).toBe(false);
    expect(native.open(native.context(randomBytes(16)), iv, sealed, 12, opened)).toBe(false);
    // and the context still opens a good packet after the failures
    expect(native.open(handle, iv, sealed, 12, opened)).toBe(true);
    expect(opened.subarray(12).toString()).toBe(plain.toString());
  });

  it('says what is wrong with bad arguments instead of reading or writing past a Buffer', () => {
    const handle = native.context(randomBytes(16));
    const iv = randomBytes(12);
    expect(() => native.context(randomBytes(32))).toThrow(/key must be a 16-byte Buffer/);
    expect(() => native.context('key' as unknown as Buffer)).toThrow(/16-byte Buffer/);
    expect(() => native.seal(handle, iv, Buffer.alloc(20), 12, Buffer.alloc(10))).toThrow(
      /dst must hold aadLength \+ plain.length \+ 16 bytes/,
    );
    expect(() =>
      native.seal(handle, Buffer.alloc(16), Buffer.alloc(38), 12, Buffer.alloc(10)),
    ).toThrow(/iv 12/);
    expect(() =>
      native.seal({} as typeof handle, iv, Buffer.alloc(38), 12, Buffer.alloc(10)),
    ).toThrow(/seal\(context/);
    expect(() => native.open(handle, iv, Buffer.alloc(20), 12, Buffer.alloc(4))).toThrow(
      /src must hold aadLength \+ 16 bytes at least/,
    );
    expect(() => native.open(handle, iv, Buffer.alloc(40), 12, Buffer.alloc(40))).toThrow(
      /dst src.length - 16/,
    );
  });

  it('keeps one context per key Buffer', () => {
    const key = randomBytes(16);
    expect(gcmHandle(native, key)).toBe(gcmHandle(native, key));
    expect(gcmHandle(native, Buffer.from(key))).not.toBe(gcmHandle(native, key));
  });

  it('frees the OpenSSL contexts of handles that are dropped', () => {
    // In a process of its own, to collect garbage on demand. Finalizers run on the event loop.
    const script = `
      const addon = require(${JSON.stringify(NATIVE_ADDON_PATH)});
      const before = addon.liveContexts();
      for (let i = 0; i < 20000; i++) addon.context(require('node:crypto').randomBytes(16));
      const made = addon.liveContexts() - before;
      const kept = addon.context(Buffer.alloc(16, 7));
      let rounds = 0;
      (function settle() {
        global.gc();
        if (addon.liveContexts() - before > 1 && ++rounds < 50) return setTimeout(settle, 10);
        console.log(JSON.stringify({ made, left: addon.liveContexts() - before, kept: typeof kept }));
      })();`;
    const run = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ made: 20000, left: 1, kept: 'object' });
  });

  it('loads and seals in a worker thread too, as the media workers do', async () => {
    const key = randomBytes(16);
    const iv = randomBytes(12);
    const plain = randomBytes(300);
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const addon = require(workerData.path);
       const dst = Buffer.alloc(12 + workerData.plain.length + 16);
       addon.seal(addon.context(Buffer.from(workerData.key)), Buffer.from(workerData.iv), dst, 12, Buffer.from(workerData.plain));
       parentPort.postMessage(dst.toString('hex'));`,
      { eval: true, workerData: { path: NATIVE_ADDON_PATH, key, iv, plain } },
    );
    const hex = await new Promise<string>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(hex).toBe(nodeSeal(key, iv, Buffer.alloc(12), plain).toString('hex'));
  });
});
