import { type Command, Option } from 'commander';
import { AdminClient } from '../../node/client/AdminClient.ts';
import type {
  CaseRecord,
  CaseStatus,
  Disposition,
  Outcome,
  Reason,
  Role,
} from '../../node/store/Store.ts';
import { DISPOSITIONS, OUTCOMES, REASONS, ROLES, STATUSES } from '../../node/store/Store.ts';
import { out, printJson, table, time } from '../output.ts';

interface NodeFlags {
  node: string;
  token?: string;
  data: string;
  json?: boolean;
}

/** Flags every case command shares: which node, which admin token, output format. */
function withNodeFlags(cmd: Command): Command {
  return cmd
    .option('--node <url>', 'node base URL', process.env.RETURNCAM_NODE ?? 'http://127.0.0.1:8080')
    .option('--token <token>', 'admin token (default: RETURNCAM_ADMIN_TOKEN, or DATA/admin.token)')
    .option(
      '-d, --data <dir>',
      'data directory to read the admin token from, on the node host',
      './data',
    )
    .option('--json', 'print a versioned JSON object');
}

function client(f: NodeFlags): AdminClient {
  return new AdminClient({
    node: f.node,
    token: f.token ?? process.env.RETURNCAM_ADMIN_TOKEN,
    dataDir: f.data,
  });
}

function caseLines(c: CaseRecord): string[] {
  return [
    `case        ${c.id}`,
    `order       ${c.orderId}`,
    `sku         ${c.sku}`,
    `reason      ${c.reason}`,
    `marketplace ${c.marketplace ?? '-'}`,
    `warehouse   ${c.warehouseId ?? '-'}`,
    `status      ${c.status}`,
    `outcome     ${c.outcome ?? '-'}${c.disposition ? ` (${c.disposition})` : ''}`,
    ...(c.decisionNote ? [`decision    ${c.decisionNote}`] : []),
    ...(c.note ? [`note        ${c.note}`] : []),
    `created     ${time(c.createdAt)}`,
    `joined      ${time(c.firstJoinedAt)}`,
    `decided     ${time(c.decidedAt)}`,
    `closed      ${time(c.closedAt)}`,
  ];
}

export function registerCaseCommands(program: Command): void {
  const cmd = program.command('case').description('create and manage return inspection cases');

  withNodeFlags(
    cmd
      .command('create')
      .description('open a case and print its buyer and staff links')
      .requiredOption('--order <id>', 'marketplace order id')
      .requiredOption('--sku <sku>', 'item SKU')
      .addOption(
        new Option('--reason <reason>', 'return reason').choices(REASONS).makeOptionMandatory(),
      )
      .option('--marketplace <name>', 'marketplace (amazon, ebay, shopify, …)')
      .option('--warehouse <id>', 'warehouse id')
      .option('--note <text>', 'free note for staff'),
  ).action(
    async (
      f: NodeFlags & {
        order: string;
        sku: string;
        reason: Reason;
        marketplace?: string;
        warehouse?: string;
        note?: string;
      },
    ) => {
      const r = await client(f).createCase({
        orderId: f.order,
        sku: f.sku,
        reason: f.reason,
        marketplace: f.marketplace,
        warehouseId: f.warehouse,
        note: f.note,
      });
      if (f.json) {
        printJson({
          id: r.case.id,
          buyerUrl: r.links.buyer.url,
          staffUrl: r.links.staff.url,
          buyerToken: r.links.buyer.token,
          staffToken: r.links.staff.token,
          expiresAt: new Date(r.links.buyer.expiresAt).toISOString(),
          staffExpiresAt: new Date(r.links.staff.expiresAt).toISOString(),
          case: r.case,
        });
        return;
      }
      out(`case ${r.case.id} created (order ${r.case.orderId}, ${r.case.reason})`);
      out(`buyer link: ${r.links.buyer.url}`);
      out(`            expires ${time(r.links.buyer.expiresAt)}`);
      out(`staff link: ${r.links.staff.url}`);
      out(`            expires ${time(r.links.staff.expiresAt)}`);
    },
  );

  withNodeFlags(
    cmd
      .command('list')
      .description('list cases, newest first')
      .addOption(new Option('--status <status>', 'only cases in this status').choices(STATUSES)),
  ).action(async (f: NodeFlags & { status?: CaseStatus }) => {
    const { cases } = await client(f).listCases(f.status);
    if (f.json) {
      printJson({ cases });
      return;
    }
    if (!cases.length) {
      out(
        f.status ? `no ${f.status} cases` : 'no cases yet (create one with: returncam case create)',
      );
      return;
    }
    out(
      table(
        ['CASE', 'ORDER', 'SKU', 'REASON', 'STATUS', 'OUTCOME', 'CREATED'],
        cases.map((c) => [
          c.id,
          c.orderId,
          c.sku,
          c.reason,
          c.status,
          c.outcome ?? '-',
          time(c.createdAt),
        ]),
      ),
    );
  });

  withNodeFlags(
    cmd.command('show').description('a case with its timeline').argument('<id>', 'case id'),
  ).action(async (id: string, f: NodeFlags) => {
    const d = await client(f).showCase(id);
    if (f.json) {
      printJson({ ...d });
      return;
    }
    for (const l of caseLines(d.case)) out(l);
    out('');
    out('timeline (UTC)');
    out(
      table(
        ['#', 'AT', 'EVENT', 'BY', 'DETAIL'],
        d.events.map((e) => [
          String(e.seq),
          time(e.at),
          e.type,
          e.actor.split(':')[0] ?? e.actor,
          Object.entries(e.data)
            .filter(([, v]) => v !== null && v !== undefined)
            .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(' ')
            .slice(0, 100),
        ]),
      ),
    );
    const head = d.events.at(-1);
    if (head) out(`\nevent log head ${head.hash}`);
  });

  withNodeFlags(
    cmd
      .command('decide')
      .description('record the outcome of an inspection')
      .argument('<id>', 'case id')
      .addOption(
        new Option('--outcome <outcome>', 'decision').choices(OUTCOMES).makeOptionMandatory(),
      )
      .addOption(new Option('--disposition <d>', 'what happens to the item').choices(DISPOSITIONS))
      .option('--note <text>', 'why'),
  ).action(
    async (
      id: string,
      f: NodeFlags & { outcome: Outcome; disposition?: Disposition; note?: string },
    ) => {
      const { case: c } = await client(f).decide(id, {
        outcome: f.outcome,
        disposition: f.disposition,
        note: f.note,
      });
      if (f.json) return printJson({ case: c });
      out(`case ${c.id} decided: ${c.outcome}${c.disposition ? `, ${c.disposition}` : ''}`);
    },
  );

  withNodeFlags(
    cmd
      .command('close')
      .description('close a case (its links stop working)')
      .argument('<id>', 'case id'),
  ).action(async (id: string, f: NodeFlags) => {
    const { case: c } = await client(f).close(id);
    if (f.json) return printJson({ case: c });
    out(`case ${c.id} closed`);
  });

  withNodeFlags(
    cmd
      .command('link')
      .description('issue a new link for a role')
      .argument('<id>', 'case id')
      .addOption(
        new Option('--role <role>', 'who the link is for').choices(ROLES).makeOptionMandatory(),
      )
      .option('--ttl <duration>', 'how long it stays valid (e.g. 30m, 72h, 7d)'),
  ).action(async (id: string, f: NodeFlags & { role: Role; ttl?: string }) => {
    const { link } = await client(f).issueLink(id, f.role, f.ttl);
    if (f.json)
      return printJson({
        url: link.url,
        token: link.token,
        role: link.role,
        expiresAt: new Date(link.expiresAt).toISOString(),
      });
    out(`${link.role} link: ${link.url}`);
    out(`expires ${time(link.expiresAt)}`);
  });

  withNodeFlags(
    cmd
      .command('revoke')
      .description("revoke every link of a role (and end that role's media sessions)")
      .argument('<id>', 'case id')
      .addOption(new Option('--role <role>', 'whose links').choices(ROLES).makeOptionMandatory()),
  ).action(async (id: string, f: NodeFlags & { role: Role }) => {
    const { revoked } = await client(f).revoke(id, f.role);
    if (f.json) return printJson({ revoked });
    out(`revoked ${revoked} ${f.role} link${revoked === 1 ? '' : 's'} of case ${id}`);
  });
}
