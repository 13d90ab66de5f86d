import { describe, expect, test } from 'vitest';
import { isCosaError } from '@cosa/schema';
import { requireHostTools } from '../src/_host-packages.ts';

describe('host tools', () => {
  test('present tools pass the check', async () => {
    await expect(requireHostTools(['ostree', 'sgdisk', 'qemu-img'])).resolves.toBeUndefined();
  });

  test('every missing tool is reported once, by its Debian package, with the setup script as the hint', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const err = await requireHostTools(['sgdisk', 'mmd', 'mcopy', 'qemu-img', 'no-such-tool']).then(() => undefined, (e: unknown) => e);
      expect(isCosaError(err, 'COSA_TOOLS_MISSING')).toBe(true);
      expect((err as Error).message).toBe('missing host packages: gdisk mtools no-such-tool qemu-utils');
      expect((err as { hint?: string }).hint).toMatch(/^run scripts\/setup\.sh/);
    } finally {
      process.env.PATH = path;
    }
  });
});
