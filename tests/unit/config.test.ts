import { readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { envName, loadNodeConfig } from '../../src/core/config.ts';
import { UserError } from '../../src/core/errors.ts';
import { fileDir } from '../helpers/tmp.ts';

const tmp = fileDir('returncam-config-');
function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

describe('node config', () => {
  it('every node config in configs/ loads', () => {
    const files = readdirSync('configs').filter((f) => /^node.*\.ya?ml$/.test(f));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const cfg = loadNodeConfig({ file: join('configs', f), env: {} });
      expect(cfg.http.port).toBeTypeOf('number');
    }
  });

  it('has embedded defaults', () => {
    const cfg = loadNodeConfig({ env: {} });
    expect(cfg.http).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(cfg.node.dataDir).toBe(join(process.cwd(), 'data'));
    expect(cfg.media.iceServers).toEqual([]);
    expect(cfg.tokens.buyerTtl).toBe(72 * 3600 * 1000);
  });

  it('layers file < env < flags', () => {
    const f = file(
      'layers.yaml',
      'http:\n  port: 9000\n  host: 0.0.0.0\ntokens:\n  buyerTtl: 1h\n',
    );
    const cfg = loadNodeConfig({
      file: f,
      env: { RETURNCAM_HTTP_PORT: '9100', RETURNCAM_NODE_ID: '0042' },
      overrides: { http: { port: 9200 } },
    });
    expect(cfg.http).toEqual({ host: '0.0.0.0', port: 9200 });
    expect(cfg.node.id).toBe('0042');
    expect(cfg.tokens.buyerTtl).toBe(3_600_000);
  });

  it('resolves a relative dataDir against the config file', () => {
    const f = file('rel.yaml', 'node:\n  dataDir: ./store\n');
    expect(loadNodeConfig({ file: f, env: {} }).node.dataDir).toBe(join(dirname(f), 'store'));
  });

  it.each([
    ['unknown key', 'http:\n  prot: 80\n', 'http.prot: unknown key'],
    ['unknown section', 'htp:\n  port: 80\n', 'htp: unknown key'],
    ['wrong type', 'http:\n  port: eighty\n', 'http.port:'],
    ['bad duration', 'tokens:\n  buyerTtl: soon\n', 'tokens.buyerTtl: "soon" is not a duration'],
    ['bad port range', 'media:\n  portRange: [5000, 4000]\n', 'media.portRange'],
    ['not a mapping', '- a\n- b\n', 'must be a YAML mapping'],
    ['broken YAML', 'http: [\n', 'not valid YAML'],
  ])('rejects %s with the path', (_name, text, message) => {
    const f = file(`bad-${_name.replace(/\s/g, '-')}.yaml`, text);
    expect(() => loadNodeConfig({ file: f, env: {} })).toThrow(UserError);
    expect(() => loadNodeConfig({ file: f, env: {} })).toThrow(message);
  });

  it('rejects a bad environment value naming the key', () => {
    expect(() => loadNodeConfig({ env: { RETURNCAM_HTTP_PORT: 'x' } })).toThrow('http.port');
  });

  it('reports a missing file clearly', () => {
    expect(() => loadNodeConfig({ file: join(tmp, 'nope.yaml'), env: {} })).toThrow(
      'cannot read config',
    );
  });

  it('names env variables after key paths', () => {
    expect(envName(['node', 'dataDir'])).toBe('RETURNCAM_NODE_DATA_DIR');
    expect(envName(['tokens', 'buyerTtl'])).toBe('RETURNCAM_TOKENS_BUYER_TTL');
  });
});
