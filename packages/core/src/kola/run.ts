/**
 * `cosa kola run`: the config's external tests and the built-in `basic` checks in the booted
 * image. Non-exclusive tests (and `basic`) share one VM; each exclusive test gets its own.
 */
import { cp, mkdir, rm } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { CosaError, writeFileAtomic, type OnProgress } from '@cosa/schema';
import { hostArch } from '../arch.js';
import { Workdir } from '../workdir.js';
import { basicChecks, type BasicExpectations } from './basic.js';
import { Guest, GUEST_SHARE } from './_guest.js';
import { imageKernelArgs, prepareOutputDir, resolveTarget, type KolaTarget } from './_target.js';
import { msToNs, overallResult, writeKolaReports, type KolaReport, type KolaTestReport } from './report.js';
import { discoverExternalTests, matchesPatterns, skipReason, type ExternalTest } from './tests.js';

/** Options of {@link kolaRun}. */
export interface KolaRunOptions {
  /** The workdir (default: the current directory). */
  workdir?: string;
  /** Build id (default latest). */
  build?: string;
  /** Where reports and console logs go (default `<workdir>/tmp/kola`); replaced if it holds an earlier run. */
  outputDir?: string;
  /** VMs running at once (default 1). */
  parallel?: number;
  /** Glob patterns over test names (`basic`, `ext.config.*`); none: every test. */
  patterns?: string[];
  /** Deadline of each boot + login (default 10 minutes). */
  bootTimeoutMs?: number;
  memoryMiB?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** What {@link kolaRun} returns. */
export interface KolaRunResult {
  report: KolaReport;
  /** true when every test passed (or was skipped). */
  ok: boolean;
  outputDir: string;
  reportJson: string;
  junitXml: string;
  /** The VMs booted: their name and console log. */
  vms: { name: string; consoleLog: string; elapsedMs: number }[];
}

/** A selected test: the built-in basic checks or one external test. */
type Selected = { kind: 'basic'; name: 'basic' } | { kind: 'ext'; name: string; test: ExternalTest };

/** One VM of the plan and the tests it runs, in order. */
interface VmPlan {
  name: string;
  tests: Selected[];
}

const DEFAULT_TEST_TIMEOUT_MIN = 10;

/** Splits the selected tests into VMs: one shared by `basic` and the non-exclusive tests, one per exclusive test. */
export function planVms(selected: readonly Selected[]): VmPlan[] {
  const shared = selected.filter((s) => s.kind === 'basic' || !s.test.meta.exclusive);
  const plans: VmPlan[] = shared.length > 0 ? [{ name: 'non-exclusive-test-bucket-0', tests: shared }] : [];
  for (const s of selected) if (s.kind === 'ext' && s.test.meta.exclusive) plans.push({ name: s.name, tests: [s] });
  return plans;
}

async function selectTests(configDir: string, patterns: string[], arch: string): Promise<{ selected: Selected[]; skipped: KolaTestReport[] }> {
  const ext = await discoverExternalTests(configDir);
  const all: Selected[] = [{ kind: 'basic', name: 'basic' }, ...ext.map((t) => ({ kind: 'ext' as const, name: t.name, test: t }))];
  const matched = all.filter((s) => matchesPatterns(s.name, patterns));
  if (matched.length === 0) {
    throw new CosaError('COSA_USAGE', `no test matches ${patterns.map((p) => `"${p}"`).join(' ')}`, { hint: `tests: ${all.map((s) => s.name).join(', ')}` });
  }
  const selected: Selected[] = [];
  const skipped: KolaTestReport[] = [];
  for (const s of matched) {
    const why = s.kind === 'ext' ? skipReason(s.test.meta, arch, 'qemu') : undefined;
    if (why) skipped.push({ name: s.name, result: 'SKIP', duration: 0, output: `skipped: ${why}\n`, subtests: [] });
    else selected.push(s);
  }
  return { selected, skipped };
}

/** Runs the basic checks in `guest`; one report with a subtest per check. */
async function runBasic(guest: Guest, e: BasicExpectations, emit: OnProgress): Promise<KolaTestReport> {
  const t0 = performance.now();
  const out: string[] = [];
  const subtests: string[] = [];
  let failed = false;
  for (const c of basicChecks(e)) {
    const r = await guest.exec(c.script, { timeoutMs: c.timeoutMs });
    const res = r.exitCode === 0 ? 'PASS' : 'FAIL';
    if (res === 'FAIL') failed = true;
    subtests.push(c.name);
    out.push(`--- ${res}: ${c.name} (${(r.durationMs / 1000).toFixed(1)}s)`, ...r.output.trimEnd().split('\n').map((l) => `    ${l}`));
    emit({ type: 'log', phase: 'kola', line: `${res}: ${c.name}` });
  }
  return { name: 'basic', result: failed ? 'FAIL' : 'PASS', duration: msToNs(performance.now() - t0), output: `${out.join('\n')}\n`, subtests };
}

async function runExternal(guest: Guest, t: ExternalTest, testsRoot: string): Promise<KolaTestReport> {
  const rel = relative(testsRoot, t.dir);
  const guestDir = `${GUEST_SHARE}/tests/${rel}`;
  const timeoutMs = (t.meta.timeoutMin ?? DEFAULT_TEST_TIMEOUT_MIN) * 60_000;
  const env: Record<string, string> = { KOLA_TEST: t.name, KOLA_TEST_EXE: basename(t.executable), KOLA_UNIT: `kola-runext-${basename(t.executable)}` };
  if (t.dataDir) env.KOLA_EXT_DATA = `${guestDir}/${basename(t.dataDir)}`;
  const r = await guest.exec(`exec ./${basename(t.executable)}`, { timeoutMs, env, cwd: guestDir });
  let output = r.output;
  if (r.exitCode === 124) output += `\nkola: killed after ${t.meta.timeoutMin ?? DEFAULT_TEST_TIMEOUT_MIN} min (timeoutMin)\n`;
  else if (r.exitCode !== 0) output += `\nkola: ${basename(t.executable)} exited with status ${r.exitCode}\n`;
  return { name: t.name, result: r.exitCode === 0 ? 'PASS' : 'FAIL', duration: msToNs(r.durationMs), output, subtests: [] };
}

interface VmContext {
  target: KolaTarget;
  expect: BasicExpectations;
  outputDir: string;
  testsRoot: string;
  o: KolaRunOptions;
  emit: OnProgress;
}

/** Boots one VM, runs its tests in order, stops it. A boot failure fails every test of the VM. */
async function runVm(plan: VmPlan, ctx: VmContext): Promise<{ reports: KolaTestReport[]; consoleLog: string; elapsedMs: number }> {
  const dir = join(ctx.outputDir, plan.name);
  const t0 = performance.now();
  const reports: KolaTestReport[] = [];
  let guest: Guest | undefined;
  ctx.emit({ type: 'phase', phase: `kola:${plan.name}`, status: 'start', message: `${plan.tests.length} test(s)` });
  try {
    await mkdir(join(dir, 'share'), { recursive: true });
    if (plan.tests.some((s) => s.kind === 'ext')) await cp(ctx.testsRoot, join(dir, 'share', 'tests'), { recursive: true });
    guest = await Guest.boot({
      image: ctx.target.image, firmware: ctx.target.firmware, sectorSize: ctx.target.sectorSize, accel: ctx.target.accel, dir,
      ...(ctx.o.bootTimeoutMs ? { bootTimeoutMs: ctx.o.bootTimeoutMs } : {}),
      ...(ctx.o.memoryMiB ? { memoryMiB: ctx.o.memoryMiB } : {}),
      ...(ctx.o.signal ? { signal: ctx.o.signal } : {}),
      ...(ctx.o.onProgress ? { onProgress: ctx.o.onProgress } : {}),
    });
    ctx.emit({ type: 'log', phase: 'kola', line: `${plan.name}: booted and logged in after ${((performance.now() - t0) / 1000).toFixed(1)}s` });
    for (const s of plan.tests) {
      const r = s.kind === 'basic' ? await runBasic(guest, ctx.expect, ctx.emit) : await runExternal(guest, s.test, ctx.testsRoot);
      reports.push(r);
      ctx.emit({ type: 'log', phase: 'kola', line: `${r.result}: ${r.name} (${(r.duration / 1e9).toFixed(1)}s)` });
    }
  } catch (e) {
    ctx.o.signal?.throwIfAborted();
    const why = `kola: ${plan.name}: ${(e as Error).message}\n`;
    for (const s of plan.tests.slice(reports.length)) reports.push({ name: s.name, result: 'FAIL', duration: 0, output: why, subtests: [] });
    ctx.emit({ type: 'warning', message: why.trim() });
  } finally {
    await guest?.stop();
    await rm(join(dir, 'share'), { recursive: true, force: true });
  }
  const elapsedMs = Math.round(performance.now() - t0);
  ctx.emit({ type: 'phase', phase: `kola:${plan.name}`, status: 'end', elapsedMs });
  for (const r of reports) await writeFileAtomic(join(dir, `${r.name}.txt`), r.output);
  return { reports, consoleLog: join(dir, 'console.txt'), elapsedMs };
}

/** Runs `fn` over `items` with at most `n` at once, keeping the input order in the result. */
async function mapLimit<T, R>(items: readonly T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  return out;
}

/**
 * Boots the build and runs the selected tests: `basic` and the non-exclusive external tests in one
 * VM, each exclusive test in its own, at most `parallel` VMs at once. Writes
 * `<outputDir>/reports/report.json` (kola's format), `reports/junit.xml`, and per VM
 * `<name>/console.txt` and `<name>/<test>.txt`. A failing test is a result, not an error: check `ok`.
 */
export async function kolaRun(o: KolaRunOptions = {}): Promise<KolaRunResult> {
  const emit = o.onProgress ?? (() => {});
  // Bad tests or patterns fail before anything boots or is written.
  const wd = await Workdir.open(o.workdir ?? process.cwd());
  const { selected, skipped } = await selectTests(wd.configDir, o.patterns ?? [], hostArch());
  const target = await resolveTarget(wd, o.build, o.signal);
  const outputDir = o.outputDir ?? join(target.wd.tmpDir, 'kola');
  await prepareOutputDir(outputDir);
  const expect: BasicExpectations = { commit: target.meta['ostree-commit'], kargs: await imageKernelArgs(target.wd) };
  const ctx: VmContext = { target, expect, outputDir, testsRoot: join(target.wd.configDir, 'tests', 'kola'), o, emit };
  const plans = planVms(selected);
  const ran = await mapLimit(plans, o.parallel ?? 1, (p) => runVm(p, ctx));
  const byName = new Map(ran.flatMap((r) => r.reports).map((r) => [r.name, r]));
  const tests = [...selected.map((s) => byName.get(s.name)!), ...skipped];
  const report: KolaReport = { tests, result: overallResult(tests), platform: 'qemu', version: target.id };
  const paths = await writeKolaReports(outputDir, report);
  return {
    report, ok: report.result === 'PASS', outputDir, reportJson: paths.json, junitXml: paths.junit,
    vms: plans.map((p, i) => ({ name: p.name, consoleLog: ran[i]!.consoleLog, elapsedMs: ran[i]!.elapsedMs })),
  };
}
