import { describe, expect, it } from 'vitest';
import { parseNodeCounters } from '../../src/bench/BenchNode.ts';

describe('bench: node counters from /metrics', () => {
  it('reads every counter, and a counter an earlier node lacks as 0', () => {
    const base = [
      'returncam_rtp_packets_in_total 10',
      'returncam_rtp_packets_out_total 20',
      'returncam_rtp_bytes_in_total 1000',
      'returncam_rtp_bytes_out_total 2000',
      'returncam_nacks_received_total 1',
      'returncam_nacks_sent_total 2',
      'returncam_plis_received_total 3',
      'returncam_plis_sent_total 4',
      'returncam_rtp_retransmits_total 5',
      'returncam_layer_switches_total 6',
      'returncam_still_frame_entries_total 7',
      'returncam_recovery_keyframe_requests_total 8',
      'returncam_fec_recovered_packets_total 9',
    ].join('\n');
    const earlier = parseNodeCounters(base);
    expect(earlier).toMatchObject({ packetsIn: 10, fecRecovered: 9, duplicatesDropped: 0 });
    const now = parseNodeCounters(`${base}\nreturncam_duplicate_packets_dropped_total 11\n`);
    expect(now?.duplicatesDropped).toBe(11);
    // without the counters every node has, it is not a returncam node
    expect(
      parseNodeCounters(base.replace('returncam_rtp_packets_in_total 10', '')),
    ).toBeUndefined();
    expect(parseNodeCounters('nodejs_heap_size_used_bytes 1')).toBeUndefined();
  });
});
