/**
 * A kill-point runner: starts the real CLI, SIGKILLs it at a random moment, checks what it left,
 * then runs it again to completion and checks once more. For reliability tests.
 */
import { spawn } from 'node:child_process';

/** Options of {@link killAtRandomMoments}. */
export interface KillRunOptions {
  /** The command (`[process.execPath, 'packages/cli/bin/cosa.js', 'compress']`). */
  argv: string[];
  cwd: string;
  env?: Record<string, string>;
  /** Kills to make. */
  runs: number;
  /** Latest moment of a kill after the start (ms); each kill is uniform in [0, maxDelayMs]. */
  maxDelayMs: number;
  /**
   * `random` (default): uniform in [0, maxDelayMs]. `spread`: one uncounted run to completion
   * measures the command's duration D (checked too), then kill k of `runs` lands at k/(runs+1) of
   * D (capped by maxDelayMs), so the kills cover every phase of the command in order.
   */
  moments?: 'random' | 'spread';
  /** Brings the workdir (and store) back to the state before the command, before every run. */
  reset(run: number): Promise<void>;
  /**
   * Problems found in the workdir and the store ([] when consistent). `rerun` is true after a
   * run to completion (then the temp files a kill leaves must be gone too).
   */
  check(rerun: boolean): Promise<string[]>;
}

/** What {@link killAtRandomMoments} found. */
export interface KillRunResult {
  runs: number;
  /** Runs killed before the command ended by itself. */
  killed: number;
  /** Problems after a kill, by run. */
  afterKill: Array<{ run: number; delayMs: number; problems: string[] }>;
  /** Runs whose re-run to completion failed or left problems (run 0: the measuring run of `spread`). */
  afterRerun: Array<{ run: number; problems: string[] }>;
  /** The moment of each kill (ms after the start). */
  delaysMs: number[];
}

function runOnce(o: KillRunOptions, killAfterMs: number | undefined): Promise<{ code: number | null; killed: boolean; stderr: string }> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = o.argv;
    const child = spawn(cmd!, args, { cwd: o.cwd, env: { ...process.env, ...o.env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
    let killed = false;
    const t = killAfterMs === undefined ? undefined : setTimeout(() => {
      killed = child.kill('SIGKILL');
    }, killAfterMs);
    child.on('error', reject);
    child.on('close', (code) => {
      if (t) clearTimeout(t);
      resolve({ code, killed: killed && code === null, stderr });
    });
  });
}

/** Kills the command `runs` times (at random or spread moments); after each kill, checks, re-runs and checks again. */
export async function killAtRandomMoments(o: KillRunOptions): Promise<KillRunResult> {
  const result: KillRunResult = { runs: o.runs, killed: 0, afterKill: [], afterRerun: [], delaysMs: [] };
  let span = o.maxDelayMs;
  if (o.moments === 'spread') {
    await o.reset(0);
    const t0 = Date.now();
    const full = await runOnce(o, undefined);
    span = Math.min(o.maxDelayMs, Date.now() - t0);
    const problems = full.code === 0 ? await o.check(true) : [`the full run exited ${full.code}: ${full.stderr.trim().split('\n').slice(-3).join(' | ')}`];
    if (problems.length > 0) result.afterRerun.push({ run: 0, problems });
  }
  for (let run = 1; run <= o.runs; run++) {
    await o.reset(run);
    const delayMs = o.moments === 'spread' ? Math.floor((span * run) / (o.runs + 1)) : Math.floor(Math.random() * span);
    result.delaysMs.push(delayMs);
    const r = await runOnce(o, delayMs);
    if (r.killed) result.killed++;
    const problems = await o.check(false);
    if (problems.length > 0) result.afterKill.push({ run, delayMs, problems });
    const again = await runOnce(o, undefined);
    const after = again.code === 0 ? await o.check(true) : [`re-run exited ${again.code}: ${again.stderr.trim().split('\n').slice(-3).join(' | ')}`];
    if (after.length > 0) result.afterRerun.push({ run, problems: after });
  }
  return result;
}
