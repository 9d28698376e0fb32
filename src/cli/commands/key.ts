import { resolve } from 'node:path';
import type { Command } from 'commander';
import { EvidenceKey } from '../../node/evidence/EvidenceKey.ts';
import { out, printJson } from '../output.ts';

/** `node key`: the node's evidence public key and key id, to hand to whoever checks its bundles. */
export function registerKeyCommand(node: Command): void {
  node
    .command('key')
    .description("print the node's evidence public key (PEM) and key id")
    .option('-d, --data <dir>', 'node data directory', './data')
    .option('--json', 'print a versioned JSON object')
    .action((f: { data: string; json?: boolean }) => {
      const key = EvidenceKey.readPublic(resolve(f.data));
      if (f.json) {
        printJson({
          keyId: key.keyId,
          algorithm: 'Ed25519',
          publicKey: key.publicPem,
          file: key.source,
        });
        return;
      }
      out(`key id ${key.keyId} (Ed25519; first 16 hex of the SHA-256 of the DER public key)`);
      process.stdout.write(key.publicPem);
    });
}
