import { readFileSync } from 'node:fs';
import { Command, CommanderError, Help, Option } from 'commander';
import { CosaError, SchemaError, CommandFailedError } from '@cosa/schema';
import { resultLine, type CommandContext } from './_context.js';
import { humanProgress, jsonProgress, useColor, type ProgressRenderer } from './_progress.js';
import { commands } from './commands/index.js';

/** Options for {@link main} (tests pass their own streams, directory and environment). */
export interface MainOptions {
  cwd?: string;
  stdout?: NodeJS.WritableStream & import('node:stream').Writable;
  stderr?: NodeJS.WritableStream & import('node:stream').Writable;
  /** The environment (NO_COLOR, TERM); default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Where SIGINT and SIGTERM arrive; default `process`. */
  signals?: NodeJS.EventEmitter;
}

/** Exit statuses: 0 ok, 1 failure, 2 usage, 130 interrupted (SIGINT), 143 terminated (SIGTERM), 129 terminal closed (SIGHUP), 141 stdout closed (EPIPE). */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_SIGINT = 130;
export const EXIT_EPIPE = 141;
export const EXIT_SIGTERM = 143;
export const EXIT_SIGHUP = 129;

/** The state of one run of the program, shared by the entry point and the commands. */
export interface ProgramState {
  /** The exit status a command set with `setExitCode`. */
  code: number;
  /** `--json` was in effect for the command that ran. */
  json?: boolean;
  /** The result line went out. */
  printed?: boolean;
  /** Progress renderers to close before an error is printed. */
  renderers?: { close(): void }[];
}

/** The environment variables cosa reads, for `--help`. */
const ENVIRONMENT_HELP = `
Environment:
  COSA_ACCEL=kvm|tcg      force the qemu accelerator (default: kvm when a stock kernel boots under it)
  COSA_SUPERMIN_MEMORY    memory of the image-writing VM in MiB (default 2048)
  AWS_PROFILE, AWS_CONFIG_FILE, AWS_REGION, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL,
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
                          s3:// stores (buildfetch, buildupload): the standard AWS settings
  NO_COLOR                no colours in progress output (also off when stderr is not a terminal)

--json: stdout carries JSON Lines only: progress events, then exactly one {"event":"result",…}
line, or one {"event":"error","code":…,"message":…} line on failure (usage errors included).
Exit status: 0 ok, 1 failure, 2 usage error, 130 interrupted, 141 stdout closed.
`;

/** The version of @cosa/cli (its package.json, next to dist/ and src/). */
export function cliVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/**
 * `-V, --version` is handled before commander parses anything (commander would take
 * `cosa build --version ID` as the program's version flag); this option only lists it in the help.
 */
const versionHelpOption = new Option('-V, --version', 'print the version of cosa and exit');

/** Builds the commander program with every command registered. */
export function createProgram(opts: MainOptions = {}, signal: AbortSignal = new AbortController().signal, state: ProgramState = { code: 0 }): Command {
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const env = opts.env ?? process.env;
  const program = new Command('cosa')
    .description('Build OSTree-based operating systems and their disk images')
    .option('--workdir <dir>', 'the cosa workdir (default: the current directory)')
    .option('-v, --verbose', 'show every command cosa runs and its output')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({
      showGlobalOptions: true,
      visibleOptions(cmd) {
        const shown = Help.prototype.visibleOptions.call(this, cmd);
        return cmd.parent ? shown : [versionHelpOption, ...shown];
      },
    })
    .addHelpText('afterAll', ENVIRONMENT_HELP)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => stdout.write(s),
      writeErr: (s) => stderr.write(s),
    });
  const ctx = (cmd: Command): CommandContext => {
    const all = cmd.optsWithGlobals() as { workdir?: string; json?: boolean; verbose?: boolean };
    const json = all.json === true;
    const isTTY = (stderr as { isTTY?: boolean }).isTTY === true;
    const renderer = json
      ? jsonProgress(stdout)
      : humanProgress(stderr, { verbose: all.verbose === true, isTTY: isTTY && env.TERM !== 'dumb', color: useColor(stderr, env) });
    state.json = json;
    (state.renderers ??= []).push(renderer);
    return {
      cwd: all.workdir ?? opts.cwd ?? process.cwd(),
      json,
      stdout,
      stderr,
      isTTY,
      signal,
      onProgress: renderer.onProgress,
      print: (line) => {
        renderer.close();
        (json ? stderr : stdout).write(`${line}\n`);
      },
      printJson: (value) => {
        if (state.printed) return;
        state.printed = true;
        renderer.close();
        stdout.write(resultLine(value));
      },
      setExitCode: (code) => {
        state.code = code;
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

/** The error line of the `--json` contract. */
export function errorLine(e: unknown): string {
  let body: Record<string, unknown>;
  if (e instanceof CommanderError) body = { code: 'COSA_USAGE', message: e.message.replace(/^error: /, '') };
  else if (e instanceof CosaError) {
    body = { code: e.code, message: e.message, ...(e instanceof SchemaError ? { file: e.file, issues: e.issues } : {}), ...(e.hint ? { hint: e.hint } : {}) };
  } else body = { code: 'COSA_INTERNAL', message: e instanceof Error ? e.message : String(e) };
  return `${JSON.stringify({ event: 'error', ...body })}\n`;
}

/** The exit status for an error: 2 for usage errors, else 1. */
function failureStatus(e: unknown): number {
  if (e instanceof CommanderError) return EXIT_USAGE;
  return e instanceof CosaError && e.code === 'COSA_USAGE' ? EXIT_USAGE : EXIT_FAILURE;
}

/** `cosa --version` / `cosa -V` (only as the first argument). */
function printVersion(argv: string[], stdout: NodeJS.WritableStream): boolean {
  if (argv[0] !== '--version' && argv[0] !== '-V') return false;
  const v = cliVersion();
  stdout.write(argv.includes('--json') ? resultLine({ version: v }) : `${v}\n`);
  return true;
}

/** A write that failed (EPIPE) reports it a tick later: lets such errors arrive before the exit status is decided. */
function writesSettled(): Promise<void> {
  return new Promise((res) => setImmediate(res));
}

/**
 * Runs the `cosa` command line; returns the exit status (never calls process.exit). SIGINT,
 * SIGTERM and SIGHUP abort the command, which cleans up as on any abort (exit 130 / 143 / 129); a closed stdout (`cosa list | head -1`) stops it
 * quietly (141).
 */
export async function main(argv: string[], opts: MainOptions = {}): Promise<number> {
  const ac = new AbortController();
  let interrupted: number | undefined;
  let brokenPipe = false;
  const onSigint = () => ((interrupted = EXIT_SIGINT), ac.abort());
  const onSigterm = () => ((interrupted = EXIT_SIGTERM), ac.abort());
  const onSighup = () => ((interrupted = EXIT_SIGHUP), ac.abort());
  const onStreamError = () => {
    // EPIPE (the reader went away) or any other write failure: nothing more can be shown.
    brokenPipe = true;
    ac.abort();
  };
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const signals = opts.signals ?? process;
  signals.once('SIGINT', onSigint);
  signals.once('SIGTERM', onSigterm);
  signals.once('SIGHUP', onSighup);
  stdout.on('error', onStreamError);
  stderr.on('error', onStreamError);
  const state: ProgramState = { code: EXIT_OK };
  try {
    if (printVersion(argv, stdout)) return EXIT_OK;
    const program = createProgram(opts, ac.signal, state);
    await program.parseAsync(argv, { from: 'user' });
    await writesSettled();
    if (brokenPipe) return EXIT_EPIPE;
    if (interrupted) return interrupted;
    if (state.json && !state.printed && state.code === EXIT_OK) stdout.write(resultLine({}));
    return state.code;
  } catch (e) {
    for (const r of state.renderers ?? []) r.close();
    await writesSettled();
    if (brokenPipe) return EXIT_EPIPE;
    if (e instanceof CommanderError && (e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version')) return EXIT_OK;
    const json = state.json === true || argv.includes('--json');
    if (json && !state.printed) stdout.write(errorLine(e));
    // commander has already told the user about its own errors.
    if (!(e instanceof CommanderError)) stderr.write(`${interrupted ? 'interrupted: ' : ''}${formatError(e)}\n`);
    return interrupted ?? failureStatus(e);
  } finally {
    signals.off('SIGINT', onSigint);
    signals.off('SIGTERM', onSigterm);
    signals.off('SIGHUP', onSighup);
    stdout.off('error', onStreamError);
    stderr.off('error', onStreamError);
    for (const r of state.renderers ?? []) r.close();
  }
}
