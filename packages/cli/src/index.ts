import { Command, CommanderError } from 'commander';
import { CosaError, SchemaError, CommandFailedError } from '@cosa/schema';
import type { CommandContext } from './_context.js';
import { humanProgress, jsonProgress } from './_progress.js';
import { commands } from './commands/index.js';

export type { CommandContext, RegisterCommand } from './_context.js';

/** Options for {@link main} (tests pass their own streams and directory). */
export interface MainOptions {
  cwd?: string;
  stdout?: NodeJS.WritableStream & import('node:stream').Writable;
  stderr?: NodeJS.WritableStream & import('node:stream').Writable;
}

/** Exit statuses: 0 ok, 1 failure, 2 usage. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Builds the commander program with every command registered. */
export function createProgram(opts: MainOptions = {}, signal: AbortSignal = new AbortController().signal, exit: { code: number } = { code: 0 }): Command {
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const program = new Command('cosa')
    .description('Build OSTree-based operating systems and their disk images')
    .option('--workdir <dir>', 'the cosa workdir (default: the current directory)')
    .option('-v, --verbose', 'show every command cosa runs and its output')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => stdout.write(s),
      writeErr: (s) => stderr.write(s),
    });
  const ctx = (cmd: Command): CommandContext => {
    const all = cmd.optsWithGlobals() as { workdir?: string; json?: boolean; verbose?: boolean };
    const json = all.json === true;
    const isTTY = (stdout as { isTTY?: boolean }).isTTY === true;
    return {
      cwd: all.workdir ?? opts.cwd ?? process.cwd(),
      json,
      stdout,
      stderr,
      isTTY,
      signal,
      onProgress: json ? jsonProgress(stdout) : humanProgress(stderr, { verbose: all.verbose === true, isTTY }),
      print: (line) => void stdout.write(`${line}\n`),
      printJson: (value) => void stdout.write(`${JSON.stringify(value, null, 2)}\n`),
      setExitCode: (code) => {
        exit.code = code;
      },
    };
  };
  for (const register of commands) register(program, ctx);
  return program;
}

/** Renders an error for a human: message, the issues of a SchemaError, and the hint. */
export function formatError(e: unknown): string {
  if (e instanceof SchemaError) {
    const lines = [`error: ${e.file}: invalid`];
    for (const i of e.issues) lines.push(`  ${i.path || '(root)'}: ${i.message}`);
    if (e.hint) lines.push(`hint: ${e.hint}`);
    return lines.join('\n');
  }
  if (e instanceof CommandFailedError) {
    return `error: ${e.message}${e.hint ? `\nhint: ${e.hint}` : ''}`;
  }
  if (e instanceof CosaError) return `error: ${e.message}${e.hint ? `\nhint: ${e.hint}` : ''}`;
  if (e instanceof Error) return `error: ${e.message}`;
  return `error: ${String(e)}`;
}

/** Runs the `cosa` command line; returns the exit status (never calls process.exit). */
export async function main(argv: string[], opts: MainOptions = {}): Promise<number> {
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const stderr = opts.stderr ?? process.stderr;
  try {
    const exit = { code: EXIT_OK };
    const program = createProgram(opts, ac.signal, exit);
    await program.parseAsync(argv, { from: 'user' });
    return exit.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT_OK;
      return EXIT_USAGE;
    }
    if (e instanceof CosaError && e.code === 'COSA_USAGE') {
      stderr.write(`${formatError(e)}\n`);
      return EXIT_USAGE;
    }
    const json = argv.includes('--json');
    if (json && e instanceof CosaError) {
      const out = opts.stdout ?? process.stdout;
      out.write(`${JSON.stringify({ event: 'error', code: e.code, message: e.message, ...(e instanceof SchemaError ? { file: e.file, issues: e.issues } : {}), ...(e.hint ? { hint: e.hint } : {}) })}\n`);
    }
    stderr.write(`${formatError(e)}\n`);
    return EXIT_FAILURE;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
