/**
 * Datagrams the kernel dropped because a socket's receive buffer was full (`RcvbufErrors` in
 * `/proc/net/snmp`, `Udp6RcvbufErrors` in `/proc/net/snmp6`). The counters are the machine's (its
 * network namespace's), not one process's: a rise during a run says some socket could not keep
 * up, the harness's, the node's or another program's, and that a loss the run saw may not be the
 * profile's.
 */
import { readFileSync } from 'node:fs';

/** `RcvbufErrors` of the `Udp:` rows of `/proc/net/snmp` (a header row, then a values row). */
export function udpRcvbufErrors(snmp: string): number | undefined {
  const rows = snmp.split('\n').filter((l) => l.startsWith('Udp: '));
  if (rows.length < 2) return undefined;
  const names = rows[0]!.split(/\s+/);
  const values = rows[1]!.split(/\s+/);
  const at = names.indexOf('RcvbufErrors');
  const value = at > 0 ? Number(values[at]) : Number.NaN;
  return Number.isSafeInteger(value) ? value : undefined;
}

/** `Udp6RcvbufErrors` of `/proc/net/snmp6` (one `name value` per line). */
export function udp6RcvbufErrors(snmp6: string): number | undefined {
  const row = snmp6.split('\n').find((l) => l.startsWith('Udp6RcvbufErrors'));
  const value = row === undefined ? Number.NaN : Number(row.split(/\s+/)[1]);
  return Number.isSafeInteger(value) ? value : undefined;
}

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Datagrams dropped so far on this machine in full receive buffers, IPv4 and IPv6; undefined
 * where the kernel does not say (not Linux).
 */
export function udpBufferDrops(): number | undefined {
  const snmp = read('/proc/net/snmp');
  const v4 = snmp === undefined ? undefined : udpRcvbufErrors(snmp);
  if (v4 === undefined) return undefined;
  const snmp6 = read('/proc/net/snmp6');
  return v4 + ((snmp6 === undefined ? undefined : udp6RcvbufErrors(snmp6)) ?? 0);
}
