/**
 * The SDK as users install it: every package packed with `pnpm pack`, the tarballs installed with
 * npm into a fresh directory outside the workspace (third-party dependencies from the registry),
 * and then, with only that install: `cosa init` + `cosa build` of the bundled example, a boot
 * check, and a script that calls `buildImage()`. The workdir's cache/ is the shared test cache, as
 * in e2e-build.slow.test.ts, so the compose is the same warm one.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testWorkdirCache } from '@cosa/test-utils';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const PACKAGES = ['schema', 'ostree', 'image', 'store', 'cloud', 'core', 'cli'];

let base = '';
let app = '';
let wd = '';
let cosa = '';

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (no shell), with a deadline. */
function sh(argv: string[], opts: { cwd: string; timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { cwd: opts.cwd, timeout: opts.timeoutMs ?? 10 * 60_000, maxBuffer: 64 * 1048576, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function lastLine(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

beforeAll(async () => {
  for (const p of PACKAGES) {
    if (!existsSync(join(repoRoot, 'packages', p, 'dist/index.js'))) throw new Error(`@cosa/${p} is not built: run \`pnpm -r run build\` first`);
  }
  // Outside the workspace (and outside /tmp's vitest-visible tree): nothing resolves back into it.
  base = await mkdtemp('/var/tmp/cosa-pack-install-');
  const tarballs = join(base, 'tarballs');
  app = join(base, 'app');
  wd = join(base, 'wd');
  await mkdir(tarballs);
  await mkdir(app);
  for (const p of PACKAGES) {
    const r = await sh(['pnpm', 'pack', '--pack-destination', tarballs], { cwd: join(repoRoot, 'packages', p), timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
  }
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'cosa-user', version: '1.0.0', private: true, type: 'module' }));
  const files = (await readdir(tarballs)).map((f) => join(tarballs, f));
  const r = await sh(['npm', 'install', '--no-audit', '--no-fund', '--loglevel=error', ...files], { cwd: app, timeoutMs: 15 * 60_000 });
  expect(r.code, r.stderr).toBe(0);
  cosa = join(app, 'node_modules', '.bin', 'cosa');
}, 30 * 60_000);

afterAll(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

describe('the packed SDK installed with npm outside the workspace', () => {
  it('ships LICENSE and README in every package and keeps the exec bits of the initramfs hook and script', async () => {
    for (const p of PACKAGES) {
      const dir = join(app, 'node_modules', '@cosa', p);
      expect(existsSync(join(dir, 'LICENSE')), p).toBe(true);
      expect(existsSync(join(dir, 'README.md')), p).toBe(true);
    }
    const assets = join(app, 'node_modules', '@cosa', 'ostree', 'assets', 'initramfs-tools');
    for (const f of ['hooks/ostree', 'scripts/local-bottom/ostree']) expect((await stat(join(assets, f))).mode & 0o111, f).toBe(0o111);
    expect((await stat(cosa)).mode & 0o100).toBe(0o100);
    // core does not pull the AWS SDK in: only the CLI needs @cosa/store.
    const core = JSON.parse(await sh(['cat', join(app, 'node_modules', '@cosa', 'core', 'package.json')], { cwd: app }).then((r) => r.stdout)) as { dependencies: Record<string, string> };
    expect(Object.keys(core.dependencies)).not.toContain('@cosa/store');
    expect(Object.keys(core.dependencies)).not.toContain('@cosa/cloud');
    expect(core.dependencies['@cosa/schema']).toBe('^0.1.0');
  });

  it('loads every package with import and with require, without a warning', async () => {
    const names = PACKAGES.map((p) => `@cosa/${p}`);
    const esm = await sh(['node', '--input-type=module', '-e', `for (const n of ${JSON.stringify(names)}) await import(n); console.log('ok')`], { cwd: app });
    expect(esm).toMatchObject({ code: 0, stdout: 'ok\n', stderr: '' });
    const cjs = await sh(['node', '-e', `const c = require('@cosa/core'); for (const n of ${JSON.stringify(names)}) require(n); console.log(typeof c.buildImage)`], { cwd: app });
    expect(cjs).toMatchObject({ code: 0, stdout: 'function\n', stderr: '' });
    // The subpaths cosa's own packages share (image and core import run and readGpt from them).
    const internal = await sh(['node', '--input-type=module', '-e', `const o = await import('@cosa/ostree/internal'); const i = await import('@cosa/image/internal'); const s = await import('@cosa/schema/internal'); console.log(typeof o.run, typeof i.readGpt, typeof s.retry)`], { cwd: app });
    expect(internal).toMatchObject({ code: 0, stdout: 'function function function\n', stderr: '' });
  });

  it('answers cosa --version and stops quietly when its reader goes away', async () => {
    const v = await sh([cosa, '--version'], { cwd: app });
    expect(v).toMatchObject({ code: 0, stdout: '0.1.0\n' });
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(cosa, ['--help'], { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.stdout.destroy(); // `| head -0`: the reader is gone before the first write
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(141);
  });

  it('runs cosa init and cosa build of the bundled example with the installed CLI', async () => {
    const config = join(base, 'config');
    cpSync(join(repoRoot, 'examples/debian'), config, { recursive: true });
    await mkdir(wd);
    const init = await sh([cosa, 'init', config, '--json'], { cwd: wd });
    expect(init.code, init.stderr).toBe(0);
    expect(lastLine(init.stdout)).toMatchObject({ event: 'result', workdir: wd });
    await rm(join(wd, 'cache'), { recursive: true });
    await symlink(testWorkdirCache(), join(wd, 'cache'));
    const b = await sh([cosa, 'build', '--json'], { cwd: wd, timeoutMs: 30 * 60_000 });
    expect(b.code, b.stderr + b.stdout.slice(-3000)).toBe(0);
    const lines = b.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string });
    expect(lines.filter((l) => l.event === 'result')).toHaveLength(1);
    expect(lines.at(-1)).toMatchObject({ event: 'result', status: 'built', artifacts: { qemu: expect.stringMatching(/\.qcow2$/) } });
  }, 35 * 60_000);

  it('boots the build with cosa run --check', async () => {
    const r = await sh([cosa, 'run', '--check', '--timeout', '600', '--json'], { cwd: wd, timeoutMs: 15 * 60_000 });
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(0);
    expect(lastLine(r.stdout)).toMatchObject({ event: 'result', ok: true });
  }, 20 * 60_000);

  it('runs a script that calls buildImage() for the metal image of the latest build', async () => {
    const script = join(app, 'metal.mjs');
    await writeFile(
      script,
      `import { buildImage } from '@cosa/core';\n` +
        `const img = await buildImage({ workdir: process.argv[2], build: 'latest', platform: 'metal' });\n` +
        `console.log(JSON.stringify(img));\n`,
    );
    const r = await sh(['node', script, wd], { cwd: app, timeoutMs: 15 * 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const img = JSON.parse(r.stdout) as { platform: string; path: string; sha256: string; size: number; written: boolean };
    expect(img).toMatchObject({ platform: 'metal', written: true });
    expect(img.path.startsWith(join(wd, 'builds'))).toBe(true);
    expect((await stat(img.path)).size).toBe(img.size);
    expect(await sha256(img.path)).toBe(img.sha256);
    // A second call finds it and writes nothing.
    const again = await sh(['node', script, wd], { cwd: app });
    expect(JSON.parse(again.stdout)).toEqual({ ...img, written: false });
  }, 20 * 60_000);
});
