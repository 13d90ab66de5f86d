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
  /** Brings the workdir (and store) back to the state before the command, before every run. */
  reset(run: number): Promise<void>;
  /** Problems found in the workdir and the store ([] when consistent). */
  check(): Promise<string[]>;
}

/** What {@link killAtRandomMoments} found. */
export interface KillRunResult {
  runs: number;
  /** Runs killed before the command ended by itself. */
  killed: number;
  /** Problems after a kill, by run. */
  afterKill: Array<{ run: number; delayMs: number; problems: string[] }>;
  /** Runs whose re-run to completion failed or left problems. */
  afterRerun: Array<{ run: number; problems: string[] }>;
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

/** Kills the command `runs` times at random moments; after each kill, checks, re-runs and checks again. */
export async function killAtRandomMoments(o: KillRunOptions): Promise<KillRunResult> {
  const result: KillRunResult = { runs: o.runs, killed: 0, afterKill: [], afterRerun: [] };
  for (let run = 1; run <= o.runs; run++) {
    await o.reset(run);
    const delayMs = Math.floor(Math.random() * o.maxDelayMs);
    const r = await runOnce(o, delayMs);
    if (r.killed) result.killed++;
    const problems = await o.check();
    if (problems.length > 0) result.afterKill.push({ run, delayMs, problems });
    const again = await runOnce(o, undefined);
    const after = again.code === 0 ? await o.check() : [`re-run exited ${again.code}: ${again.stderr.trim().split('\n').slice(-3).join(' | ')}`];
    if (after.length > 0) result.afterRerun.push({ run, problems: after });
  }
  return result;
}
