import { describe, expect, it } from 'vitest';
import { runCli } from './_run.js';

describe('cosa entry point', () => {
  it('exits 2 on an unknown command', async () => {
    const r = await runCli(['no-such-command'], process.cwd());
    expect(r.code).toBe(2);
  });
  it('prints help and exits 0', async () => {
    const r = await runCli(['--help'], process.cwd());
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: cosa');
  });
});
