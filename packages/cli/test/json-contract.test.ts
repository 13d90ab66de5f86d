import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BuildsDir } from '@cosa/core';
import { snapshotTree, tempDir, tempWorkdir, TINY_CONFIG, writeFakeBuild, type TempWorkdir } from '@cosa/test-utils';
import { main } from '../src/index.js';
import { runCli } from './_run.js';

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

async function addBuilds(wd: TempWorkdir, ids: string[]): Promise<void> {
  const b = new BuildsDir(join(wd.dir, 'builds'));
  for (const [i, id] of ids.entries()) {
    await writeFakeBuild(wd.dir, id, { timestamp: `2026-01-01T00:0${i}:00Z` });
    await b.insertBuild(id, 'x86_64');
  }
}

/** Every stdout line parsed; fails the test when one is not a JSON object with an `event`. */
function jsonLines(stdout: string): Record<string, unknown>[] {
  const lines = stdout.split('\n');
  expect(lines.pop()).toBe('');
  return lines.map((l) => {
    const v = JSON.parse(l) as Record<string, unknown>;
    expect(typeof v.event).toBe('string');
    return v;
  });
}

describe('the --json contract', () => {
  const ok: { argv: string[]; expect: Record<string, unknown> }[] = [
    { argv: ['list'], expect: { builds: expect.any(Array) } },
    { argv: ['tag', 'update', '--tag', 'gold', '--build', '1.0'], expect: { tag: expect.objectContaining({ name: 'gold' }) } },
    { argv: ['tag', 'list'], expect: { tags: [] } },
    { argv: ['tag', 'delete', '--all'], expect: { deleted: [] } },
    { argv: ['meta', '--get', 'buildid'], expect: { key: 'buildid', value: '1.1' } },
    { argv: ['meta', '--get-value', 'buildid'], expect: { key: 'buildid', value: '1.1' } },
    { argv: ['meta', '--dump'], expect: { meta: expect.objectContaining({ buildid: '1.1' }) } },
    { argv: ['meta', '--set', 'summary=x'], expect: { build: '1.1' } },
    { argv: ['meta', '--image-path', 'ostree'], expect: { name: 'ostree' } },
    { argv: ['prune', '--dry-run', '--keep-last-n', '1'], expect: { deleted: ['1.0'], dryRun: true } },
    { argv: ['manifest', 'flatten'], expect: { manifest: expect.objectContaining({ ref: 'test/x86_64/tiny' }) } },
    { argv: ['clean'], expect: { removed: expect.any(Array) } },
  ];
  it.each(ok)('`cosa $argv.0 $argv.1 --json` prints JSON Lines ending in exactly one result', async (c) => {
    await using wd = await tempWorkdir();
    await addBuilds(wd, ['1.0', '1.1']);
    const r = await runCli([...c.argv, '--json'], wd.dir);
    expect(r.code, r.stderr).toBe(0);
    const lines = jsonLines(r.stdout);
    expect(lines.filter((l) => l.event === 'result')).toHaveLength(1);
    expect(lines.at(-1)).toMatchObject({ event: 'result', ...c.expect });
  });

  it('prints an empty result for a command that has nothing to report', async () => {
    await using t = await tempDir();
    await mkdir(join(t.dir, 'config'));
    for (const [n, text] of Object.entries(TINY_CONFIG)) await writeFile(join(t.dir, 'config', n), text);
    await mkdir(join(t.dir, 'wd'));
    const r = await runCli(['init', join(t.dir, 'config'), '--json'], join(t.dir, 'wd'));
    expect(r.code, r.stderr).toBe(0);
    expect(jsonLines(r.stdout)).toEqual([{ event: 'result', workdir: join(t.dir, 'wd'), config: join(t.dir, 'wd', 'src', 'config'), variant: null }]);
  });

  const usage: { name: string; argv: string[] }[] = [
    { name: 'unknown option', argv: ['list', '--bogus'] },
    { name: 'unknown command', argv: ['no-such-command'] },
    { name: 'missing argument', argv: ['init'] },
    { name: 'non-numeric count', argv: ['prune', '--keep-last-n', 'abc'] },
    { name: 'options that exclude each other', argv: ['meta', '--get', 'a', '--dump'] },
  ];
  it.each(usage)('turns a usage error ($name) into one error line and exit 2, the workdir untouched', async (c) => {
    await using wd = await tempWorkdir();
    await addBuilds(wd, ['1.0']);
    const before = await snapshotTree(wd.dir);
    const r = await runCli([...c.argv, '--json'], wd.dir);
    expect(r.code).toBe(2);
    expect(jsonLines(r.stdout)).toEqual([{ event: 'error', code: 'COSA_USAGE', message: expect.any(String) }]);
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it('turns a failure into exactly one error line with its code and hint', async () => {
    await using wd = await tempWorkdir();
    await addBuilds(wd, ['1.0']);
    const r = await runCli(['meta', '--build', '9.9', '--get', 'buildid', '--json'], wd.dir);
    expect(r.code).toBe(1);
    expect(jsonLines(r.stdout)).toEqual([expect.objectContaining({ event: 'error', code: 'COSA_BUILD_NOT_FOUND' })]);
    expect(r.stderr).toContain('9.9');
  });

  it('reports what a command did in its result line (prune deletes, then says which)', async () => {
    await using wd = await tempWorkdir();
    await addBuilds(wd, ['1.0', '1.1', '1.2']);
    const r = await runCli(['prune', '--keep-last-n', '1', '--json'], wd.dir);
    expect(r.code, r.stderr).toBe(0);
    const result = jsonLines(r.stdout).at(-1) as { event: string; deleted: string[] };
    expect(result.event).toBe('result');
    expect(result.deleted.sort()).toEqual(['1.0', '1.1']);
    expect((await runCli(['list', '--json'], wd.dir)).stdout).toContain('"id":"1.2"');
  });
});

describe('cosa command-line habits', () => {
  it('prints its version for --version and -V', async () => {
    expect(await runCli(['--version'], process.cwd())).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
    expect((await runCli(['-V'], process.cwd())).stdout).toBe(`${version}\n`);
    expect((await runCli(['--version', '--json'], process.cwd())).stdout).toBe(`{"event":"result","version":"${version}"}\n`);
  });

  it('keeps `cosa build --version ID` for the build id, not the program version', async () => {
    await using t = await tempDir();
    const r = await runCli(['build', '--version', '9.9'], t.dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('error:');
  });

  it.each([
    { argv: ['run', '--cpus', 'abc'], option: '--cpus' },
    { argv: ['run', '--check', '--timeout', '12s'], option: '--timeout' },
    { argv: ['run', '-m', '0'], option: '--memory' },
    { argv: ['buildextend', '--platforms', 'aws', '--parallel', 'two'], option: '--parallel' },
    { argv: ['prune', '--keep-last-n', '-1'], option: '--keep-last-n' },
  ])('refuses the non-numeric or non-positive value of $option, naming it', async (c) => {
    await using wd = await tempWorkdir();
    const before = await snapshotTree(wd.dir);
    const r = await runCli(c.argv, wd.dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(c.option);
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it('lists the global options and the environment variables in the help of a subcommand', async () => {
    const r = await runCli(['list', '--help'], process.cwd());
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Global Options:[\s\S]*--workdir <dir>[\s\S]*--verbose/);
    for (const v of ['COSA_ACCEL', 'COSA_SUPERMIN_MEMORY', 'AWS_CONFIG_FILE', 'NO_COLOR']) expect(r.stdout).toContain(v);
    const top = await runCli(['--help'], process.cwd());
    expect(top.stdout).toContain('-V, --version');
  });

  it('stops quietly with status 141 when stdout is closed (EPIPE), without a stack trace', async () => {
    await using wd = await tempWorkdir();
    await addBuilds(wd, ['1.0', '1.1', '1.2']);
    const broken = new Writable({
      write(_chunk, _enc, cb) {
        cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const err = new PassThrough();
    let stderr = '';
    err.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await main(['list'], { cwd: wd.dir, stdout: broken as PassThrough, stderr: err });
    expect(code).toBe(141);
    expect(stderr).toBe('');
  });

  it('exits 130 when interrupted (SIGINT) in the middle of a command', async () => {
    await using wd = await tempWorkdir();
    // A server that accepts connections and never answers: buildfetch waits on it.
    const sockets: Socket[] = [];
    const server = createServer((s) => void sockets.push(s));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as { port: number }).port;
    const signals = new EventEmitter();
    try {
      const accepted = new Promise<void>((res) => server.once('connection', () => res()));
      const run = runCli(['buildfetch', '--url', `http://127.0.0.1:${port}/builds`], wd.dir, { signals });
      await accepted;
      signals.emit('SIGINT');
      const r = await run;
      expect(r.code).toBe(130);
      expect(r.stderr).toContain('interrupted');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((res) => server.close(res));
    }
  });
});
