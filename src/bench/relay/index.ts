export * from './packets.ts';
export * from './RelayHub.ts';
export * from './Scheduler.ts';
export * from './sdp.ts';
export * from './UdpRelay.ts';
