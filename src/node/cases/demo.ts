import type { CaseService } from './CaseService.ts';

const DEMO_ORDER = 'DEMO-1001';

/** The quick start's case: reuses an open demo case if there is one, with fresh links each start. */
export function ensureDemoCase(cases: CaseService): {
  caseId: string;
  orderId: string;
  buyerUrl: string;
  staffUrl: string;
} {
  const existing = cases
    .list()
    .find((c) => c.orderId === DEMO_ORDER && c.status !== 'closed' && c.status !== 'decided');
  if (existing) {
    const buyer = cases.issueLink(existing.id, 'buyer');
    const staff = cases.issueLink(existing.id, 'staff');
    return { caseId: existing.id, orderId: DEMO_ORDER, buyerUrl: buyer.url, staffUrl: staff.url };
  }
  const created = cases.create({
    orderId: DEMO_ORDER,
    sku: 'MUG-CERAMIC-350',
    reason: 'damaged',
    marketplace: 'demo',
    warehouseId: 'local',
    note: 'Buyer reports a chipped rim on arrival.',
  });
  return {
    caseId: created.case.id,
    orderId: DEMO_ORDER,
    buyerUrl: created.links.buyer.url,
    staffUrl: created.links.staff.url,
  };
}
