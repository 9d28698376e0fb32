import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestMedia } from '../../src/bench/clients/media.ts';
import { WhepSubscriber } from '../../src/bench/clients/WhepSubscriber.ts';
import { WhipPublisher } from '../../src/bench/clients/WhipPublisher.ts';
import { standardTestMedia } from '../helpers/media.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * `POST /whep/{caseId}/{sessionId}/keyframe`: a viewer page whose video stands still while
 * packets arrive asks the node for a keyframe. Real peers on loopback, with the rooms on the
 * main thread and in a worker thread.
 */
describe.each([
  { label: 'rooms on the main thread', workers: 0 },
  { label: 'rooms in a worker thread', workers: 1 },
])('viewer keyframe requests ($label)', ({ workers }) => {
  let media: TestMedia;
  let tn: TestNode;
  let caseId: string;
  let buyer: string;
  let staff: string;
  let publisher: WhipPublisher;
  let viewer: WhepSubscriber;

  const post = (path: string, token?: string) =>
    fetch(`${tn.url}${path}`, {
      method: 'POST',
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });

  beforeAll(async () => {
    media = await standardTestMedia();
    tn = await startTestNode({ media: { workers } });
    const c = tn.node.cases.create({ orderId: 'ORD-KF', sku: 'SKU-1', reason: 'damaged' });
    caseId = c.case.id;
    buyer = c.links.buyer.token;
    staff = c.links.staff.token;
    publisher = new WhipPublisher({ baseUrl: tn.url, caseId, token: buyer, media });
    await publisher.start();
    viewer = new WhepSubscriber({ baseUrl: tn.url, caseId, token: staff });
    await viewer.start();
    await waitFor('video at the viewer', () => viewer.results().framesReceived > 10, 10_000);
  });

  afterAll(async () => {
    await viewer?.close();
    await publisher?.close();
    await tn?.close();
  });

  const sessionPath = () => new URL(viewer.location!).pathname;
  const metric = async () => {
    const text = await (await fetch(`${tn.url}/metrics`)).text();
    return Number(/^returncam_viewer_stall_reports_total (\d+)/m.exec(text)?.[1]);
  };

  it('asks the publisher for a keyframe and counts the report', async () => {
    const before = publisher.results().keyframeRequests;
    const res = await post(`${sessionPath()}/keyframe`, staff);
    expect(res.status).toBe(204);
    await waitFor('the keyframe request at the publisher', () => {
      return publisher.results().keyframeRequests > before;
    });
    await expect.poll(metric, { timeout: 5000 }).toBe(1);
  });

  it('refuses a request without the link, for another role, or for no live viewer', async () => {
    const path = `${sessionPath()}/keyframe`;
    expect((await post(path)).status).toBe(401);
    // the buyer's link is not the one that opened this viewer
    const other = await post(path, buyer);
    expect(other.status).toBe(404);
    expect((await other.json()).error.code).toBe('session_not_found');
    // a publishing session is not a viewer
    const whip = new URL(publisher.location!).pathname.split('/').pop();
    expect((await post(`/whep/${caseId}/${whip}/keyframe`, buyer)).status).toBe(404);
    const unknown = await post(`/whep/${caseId}/no-such-session/keyframe`, staff);
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error.message).toContain(`POST /whep/${caseId}`);
    // none of these counted
    expect(await metric()).toBe(1);
  });
});
