/**
 * Disk image benchmarks: supermin appliance (cold, cached), disk write VM vs direct for the test
 * commit with a per-step breakdown, qemu-img convert, boot to login (BIOS, UEFI). Prints a table
 * of medians and writes the "@cosa/image" section of docs/benchmarks.md.
 *   pnpm exec vitest run --config bench/image.vitest.config.ts      (BENCH_RUNS=3 by default)
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'vitest';
import { writeFileAtomic, type ProgressEvent } from '@cosa/schema';
import { bootCheck, convertImage, createDisk, directExecutor, prepareAppliance, probeAccelerator, vmExecutor } from '@cosa/image';
import { debianTestCommit } from '../packages/image/test/_commit.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CACHE = join(process.env.COSA_TEST_CACHE ?? '/var/tmp/cosa-test-cache', 'bench-cache');
const DOC = new URL('../docs/benchmarks.md', import.meta.url).pathname;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Collects the disk script's "cosa-disk: <ms> <step>" lines into per-step durations. */
function stepTimer(): { onProgress: (e: ProgressEvent) => void; steps: () => Map<string, number> } {
  const marks: [number, string][] = [];
  return {
    onProgress: (e) => {
      if (e.type !== 'log') return;
      const m = /cosa-disk: (\d+) (\S+)/.exec(e.line);
      if (m) marks.push([Number(m[1]), m[2]!]);
    },
    steps: () => {
      const out = new Map<string, number>();
      for (let i = 0; i + 1 < marks.length; i++) out.set(marks[i]![1], marks[i + 1]![0] - marks[i]![0]);
      return out;
    },
  };
}

test('image benchmarks', async () => {
  const commit = await debianTestCommit();
  await mkdir(CACHE, { recursive: true });
  const tmp = await mkdtemp('/var/tmp/cosa-image-bench-');
  const rows: [string, number[], string?][] = [];
  const stepRows = new Map<string, { vm?: number; direct?: number }>();
  try {
    const accel = await probeAccelerator({ cacheDir: CACHE });
    const cold: number[] = [];
    for (let i = 0; i < Math.min(RUNS, 2); i++) cold.push(await time(() => prepareAppliance({ cacheDir: CACHE, force: true })));
    rows.push(['appliance prepare+build, cold', cold]);
    const cached: number[] = [];
    for (let i = 0; i < RUNS; i++) cached.push(await time(() => prepareAppliance({ cacheDir: CACHE })));
    rows.push(['appliance, cached', cached]);

    const base = { repo: commit.repo, commit: commit.commit, ref: commit.ref, osname: commit.osname, platform: 'qemu', buildId: 'bench.1', cacheDir: CACHE };
    const raw = join(tmp, 'disk.raw');
    // BENCH_SKIP_VM=1 skips the in-VM disk write (minutes under TCG).
    const executors = [['direct', directExecutor()], ['vm', vmExecutor({ cacheDir: CACHE, accel })]] as const;
    for (const [name, executor] of executors.filter(([n]) => n !== 'vm' || !process.env.BENCH_SKIP_VM)) {
      const runs: number[] = [];
      const n = name === 'vm' ? 1 : RUNS;
      for (let i = 0; i < n; i++) {
        const t = stepTimer();
        runs.push(await time(() => createDisk({ ...base, executor, output: raw, tmpDir: join(tmp, 'tmp'), onProgress: t.onProgress })));
        if (i === 0) for (const [step, ms] of t.steps()) stepRows.set(step, { ...stepRows.get(step), [name]: ms });
      }
      rows.push([`disk write (createDisk), ${name}`, runs, name === 'vm' ? `${accel}, 1 run` : undefined]);
    }
    const conv: number[] = [];
    for (let i = 0; i < RUNS; i++) conv.push(await time(() => convertImage({ input: raw, output: join(tmp, 'disk.qcow2'), format: 'qcow2' })));
    rows.push(['qemu-img convert raw → qcow2 (+ sha256)', conv]);
    for (const firmware of ['bios', 'uefi'] as const) {
      const r = await bootCheck({ image: join(tmp, 'disk.qcow2'), firmware, accel, timeoutMs: 600_000 });
      if (!r.ok) throw new Error(`${firmware} boot failed:\n${r.consoleLog.slice(-2000)}`);
      rows.push([`boot to login: (${firmware})`, [r.elapsedMs], `${accel}, 1 run`]);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }

  const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
  const lines = [
    '<!-- image-bench:start -->',
    `Measured ${new Date().toISOString().slice(0, 16)}Z by \`bench/image.bench.ts\` (2 cores, shared machine, load average ${load} at the end;`,
    'the host is shared with other jobs, so absolute times vary). Medians of the runs shown.',
    '',
    '| what | median | runs | note |',
    '|---|---|---|---|',
    ...rows.map(([what, xs, note]) => `| ${what} | ${sec(median(xs))} | ${xs.map((x) => (x / 1000).toFixed(1)).join(', ')} | ${note ?? ''} |`),
    '',
    'Disk script steps (first run of each executor; the same script on the host and in the VM):',
    '',
    '| step | direct | vm | vm / direct |',
    '|---|---|---|---|',
    ...[...stepRows].map(([s, v]) => `| ${s} | ${v.direct === undefined ? '' : sec(v.direct)} | ${v.vm === undefined ? '' : sec(v.vm)} | ${v.direct && v.vm ? `${(v.vm / v.direct).toFixed(1)}×` : ''} |`),
    '<!-- image-bench:end -->',
  ];
  const section = lines.join('\n');
  // Only the generated table block is replaced; the prose around it in the section is kept.
  const doc = existsSync(DOC) ? await readFile(DOC, 'utf8') : '# Benchmarks\n';
  const re = /<!-- image-bench:start -->[\s\S]*?<!-- image-bench:end -->/;
  const next = re.test(doc) ? doc.replace(re, section) : `${doc.trimEnd()}\n\n## @cosa/image\n\n${section}\n`;
  await mkdir(new URL('../docs', import.meta.url).pathname, { recursive: true });
  await writeFileAtomic(DOC, next.endsWith('\n') ? next : `${next}\n`);
  process.stdout.write(`${section}\n`);
});
