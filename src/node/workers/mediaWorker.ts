import { performance } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { parentPort, resourceLimits, workerData } from 'node:worker_threads';
import type { RtpPacket } from 'werift';
import { errorMessage, HttpError } from '../../core/errors.ts';
import { Logger } from '../../core/log.ts';
import { forwardTiming } from '../media/forwardTiming.ts';
import { RoomManager, type TrackPublishedInfo } from '../media/RoomManager.ts';
import { patchSession, viewerStalled, type WorkerHeap } from './MediaBackend.ts';
import { PacketBatchWriter } from './packetBatch.ts';
import type {
  FromWorker,
  MediaWorkerData,
  RtpBatchMessage,
  SerializedError,
  ToWorker,
  WorkerCall,
  WorkerSnapshot,
} from './protocol.ts';

/**
 * The body of one media worker thread: a {@link RoomManager} of its own (one werift event loop),
 * driven by calls from the main thread's `MediaWorkerPool`. Session events go back as messages;
 * published tracks' packets go back in batches for the recorder.
 */

const port = parentPort;
if (!port) throw new Error('mediaWorker.ts runs only as a worker thread (see MediaWorkerPool)');
const data = workerData as MediaWorkerData;
const log = new Logger(
  data.log.level,
  { part: 'media', worker: data.index },
  process.stderr,
  data.log.json,
);
const rooms = new RoomManager({ media: data.media, log });
const post = (message: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(message, transfer);

rooms.onSessionStarted.subscribe((info) => post({ t: 'started', info }));
rooms.onIceConnected.subscribe((info) => post({ t: 'ice', info }));

/** Published tracks streamed to the recorder, by session. */
interface Streamed {
  trackId: number;
  writer: PacketBatchWriter;
  stop: () => void;
  repairRoundTripMs: () => number | undefined;
}
const streamed = new Map<string, Streamed[]>();
let nextTrackId = 1;

/** Posts the waiting packets of `tracks` in one message. */
function flush(tracks: Iterable<Streamed>): void {
  const batches: RtpBatchMessage[] = [];
  const transfer: ArrayBuffer[] = [];
  for (const track of tracks) {
    const batch = track.writer.take();
    if (!batch) continue;
    batches.push({
      trackId: track.trackId,
      buffer: batch.buffer,
      repairRoundTripMs: track.repairRoundTripMs(),
    });
    transfer.push(batch.buffer);
  }
  if (batches.length > 0) post({ t: 'rtp', batches }, transfer);
}

function* allStreamed(): Iterable<Streamed> {
  for (const tracks of streamed.values()) yield* tracks;
}

function stream(info: TrackPublishedInfo): void {
  const { track } = info;
  const fallback = info.kind === 'audio' ? 'audio/opus' : 'video/VP8';
  // the negotiated payload types, so the recorder can tell this codec's packets from others
  const codecs: [number, string][] = [];
  const published = rooms.publisher(info.caseId, info.role, info.sessionId)?.tracks[info.kind];
  for (let pt = 0; pt < 128 && published; pt++) {
    const codec = published.codecFor(pt);
    if (codec) codecs.push([pt, codec.mimeType]);
  }
  const entry: Streamed = {
    trackId: nextTrackId++,
    writer: new PacketBatchWriter(),
    stop: () => {},
    repairRoundTripMs: () => info.published.repairRoundTripMs,
  };
  const unsubscribe = info.published.subscribeMedia((p: RtpPacket) => {
    const h = p.header;
    const w = entry.writer;
    if (!w.add(h.sequenceNumber, h.timestamp, h.marker, h.payloadType, p.payload)) {
      flush([entry]);
      w.add(h.sequenceNumber, h.timestamp, h.marker, h.payloadType, p.payload);
    }
    if (w.full) flush([entry]);
  });
  entry.stop = unsubscribe;
  const list = streamed.get(info.sessionId) ?? [];
  list.push(entry);
  streamed.set(info.sessionId, list);
  post({
    t: 'track',
    track: {
      caseId: info.caseId,
      role: info.role,
      direction: info.direction,
      sessionId: info.sessionId,
      kind: info.kind,
      trackId: entry.trackId,
      mimeType: track.codec?.mimeType ?? fallback,
      codecs,
    },
  });
}

rooms.onTrackPublished.subscribe((info) => {
  if (data.record) stream(info);
});

rooms.onSessionEnded.subscribe((info) => {
  // every packet of the session reaches the recorder before its end does
  const tracks = streamed.get(info.sessionId);
  if (tracks) {
    streamed.delete(info.sessionId);
    for (const track of tracks) track.stop();
    flush(tracks);
  }
  post({ t: 'ended', info });
});

// every track's waiting packets leave together: one message per tick, whatever the session count
const batchTimer = setInterval(() => {
  if (streamed.size > 0) flush(allStreamed());
}, data.batchIntervalMs);

// forwarding-time samples go to the main thread's histogram with each snapshot
let forwardMs: number[] = [];
forwardTiming.setSink((seconds) => forwardMs.push(seconds * 1000));

let elu = performance.eventLoopUtilization();
function snapshot(): WorkerSnapshot {
  const now = performance.eventLoopUtilization();
  const delta = performance.eventLoopUtilization(now, elu);
  elu = now;
  forwardTiming.flush();
  const samples = Float64Array.from(forwardMs);
  forwardMs = [];
  return {
    forwardMs: samples,
    counters: { ...rooms.counters },
    stats: rooms.stats(),
    eventLoopUtilization: delta.utilization,
    heap: heapNow(),
  };
}

const MB = 1024 * 1024;
function heapNow(): WorkerHeap {
  const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return {
    usedBytes: getHeapStatistics().used_heap_size,
    youngGenerationBytes: young?.space_size ?? 0,
    youngGenerationLimitBytes: (resourceLimits.maxYoungGenerationSizeMb ?? 0) * MB,
  };
}
const statsTimer = setInterval(
  () => post({ t: 'stats', snapshot: snapshot() }),
  data.statsIntervalMs,
);

function serialize(err: unknown): SerializedError {
  if (err instanceof HttpError) {
    return { message: err.message, status: err.status, code: err.code, headers: err.headers };
  }
  return { message: errorMessage(err) };
}

async function run(call: WorkerCall): Promise<unknown> {
  switch (call.op) {
    case 'publish':
      return rooms.publish(call.caseId, call.role, call.sdp);
    case 'subscribe':
      return rooms.subscribe(call.caseId, call.role, call.sdp);
    case 'end':
      return rooms.endSession(call.caseId, call.sessionId);
    case 'session': {
      const s = rooms.session(call.caseId, call.sessionId);
      return s ? { direction: s.direction, role: s.role, iceEntityTag: s.iceEntityTag } : null;
    }
    case 'patch':
      return patchSession(rooms, call.caseId, call.sessionId, call.fragment);
    case 'stalled':
      return viewerStalled(rooms, call.caseId, call.sessionId, call.role);
    case 'closeRoom':
      await rooms.closeRoom(call.caseId);
      return null;
    case 'close':
      await rooms.close();
      clearInterval(batchTimer);
      clearInterval(statsTimer);
      post({ t: 'stats', snapshot: snapshot() });
      return null;
    case 'stats':
      return snapshot();
  }
}

port.on('message', (message: ToWorker) => {
  switch (message.t) {
    case 'call':
      run(message.call).then(
        (value) => post({ t: 'reply', id: message.id, ok: true, value: value ?? null }),
        (err: unknown) => post({ t: 'reply', id: message.id, ok: false, error: serialize(err) }),
      );
      break;
    case 'keyframe':
      rooms.publisher(message.caseId, message.role, message.sessionId)?.requestKeyframe();
      break;
    case 'crash':
      setImmediate(() => {
        throw new Error(`media worker ${data.index}: crash requested (test hook)`);
      });
      break;
  }
});

post({ t: 'ready' });
