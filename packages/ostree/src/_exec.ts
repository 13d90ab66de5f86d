/**
 * The one module that runs external tools. Every other module calls {@link run}: argv arrays
 * (never shell strings), an AbortSignal, the command reported to progress, output lines streamed,
 * failures turned into CommandFailedError with stderr attached.
 */
import type { ResultPromise } from 'execa';
import { CommandFailedError, type OnProgress } from '@cosa/schema';

/**
 * execa loaded on the first command: it is ~100 modules, and a CLI call that runs no tool (the
 * no-op `cosa build`, `cosa list`) should not pay for loading them.
 */
let execaModule: Promise<typeof import('execa')> | undefined;
const loadExeca = (): Promise<typeof import('execa')> => (execaModule ??= import('execa'));

/** Options of {@link run}. */
export interface RunOptions {
  cwd?: string;
  /** Extra environment variables (merged over process.env unless `extendEnv` is false). */
  env?: Record<string, string | undefined>;
  extendEnv?: boolean;
  signal?: AbortSignal;
  /** Milliseconds before the command is killed (SIGTERM, then SIGKILL after 5 s). */
  timeoutMs?: number;
  /** Receives the command and each output line as progress events. */
  onProgress?: OnProgress | undefined;
  /** Phase name attached to streamed lines. */
  phase?: string;
  /** Stream stdout/stderr lines to onProgress (default true when onProgress is set). */
  streamLines?: boolean;
  /** Data written to stdin. */
  input?: string | Buffer;
  /** Exit codes that count as success (default [0]). */
  okExitCodes?: number[];
  /** Arguments to hide when reporting the command (replaced by `***`). */
  redact?: string[];
  /** `inherit`: the command uses this process's terminal (interactive; output is not captured). */
  stdio?: 'pipe' | 'inherit';
}

/** The outcome of a finished command. */
export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  durationMs: number;
}

/** Runs `argv[0]` with the rest as arguments; resolves with its output or throws CommandFailedError. */
export async function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new TypeError('run(): empty argv');
  const shown = argv.map((a) => (options.redact?.includes(a) ? '***' : a));
  const { execa } = await loadExeca();
  options.onProgress?.({ type: 'command', argv: shown });
  const t0 = performance.now();
  const child: ResultPromise = execa(file, args, {
    cwd: options.cwd,
    env: options.env,
    extendEnv: options.extendEnv ?? true,
    cancelSignal: options.signal,
    timeout: options.timeoutMs,
    forceKillAfterDelay: 5000,
    input: options.input,
    reject: false,
    stripFinalNewline: true,
    maxBuffer: 256 * 1024 * 1024,
    ...(options.stdio === 'inherit' ? { stdio: 'inherit' as const } : { stdin: options.input === undefined ? ('ignore' as const) : ('pipe' as const) }),
  });
  const stream = options.streamLines ?? options.onProgress !== undefined;
  if (stream && options.onProgress) {
    const emit = options.onProgress;
    for (const [name, s] of [['stdout', child.stdout], ['stderr', child.stderr]] as const) {
      if (!s) continue;
      let buf = '';
      s.on('data', (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          emit({ type: 'log', line, stream: name, ...(options.phase ? { phase: options.phase } : {}) });
        }
      });
    }
  }
  const r = await child;
  const durationMs = Math.round(performance.now() - t0);
  options.onProgress?.({ type: 'command-end', argv: shown, durationMs, exitCode: r.exitCode });
  const stdout = typeof r.stdout === 'string' ? r.stdout : '';
  const stderr = typeof r.stderr === 'string' ? r.stderr : '';
  const ok = options.okExitCodes ?? [0];
  if (r.isCanceled) {
    throw new CommandFailedError(shown, r.exitCode, stderr, { code: 'COSA_EXEC_ABORTED', message: `${file} was aborted: ${shown.join(' ')}`, cause: r.cause });
  }
  if (r.timedOut) {
    throw new CommandFailedError(shown, r.exitCode, stderr, { code: 'COSA_EXEC_TIMEOUT', message: `${file} timed out after ${options.timeoutMs} ms: ${shown.join(' ')}` });
  }
  if (r.failed && r.exitCode === undefined) {
    const notFound = (r.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
    throw new CommandFailedError(shown, undefined, stderr, {
      code: notFound ? 'COSA_EXEC_NOT_FOUND' : 'COSA_EXEC_FAILED',
      message: notFound ? `${file}: command not found` : `${file} could not be run: ${r.shortMessage}`,
      ...(notFound ? { hint: 'run the setup script (scripts/setup.sh) to install the host tools' } : {}),
      cause: r.cause,
    });
  }
  if (!ok.includes(r.exitCode ?? -1)) {
    throw new CommandFailedError(shown, r.exitCode, stderr || stdout);
  }
  return { stdout, stderr, exitCode: r.exitCode ?? 0, durationMs };
}

/** True when `tool` is found on PATH. */
export async function hasTool(tool: string): Promise<boolean> {
  const { execa } = await loadExeca();
  const r = await execa('sh', ['-c', 'command -v "$1"', 'sh', tool], { reject: false });
  return r.exitCode === 0;
}

/** Returns the tools from `tools` that are not on PATH. */
export async function missingTools(tools: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const t of tools) if (!(await hasTool(t))) out.push(t);
  return out;
}
