import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import type { OnProgress } from '@cosa/schema';

/** What every command gets from the entry point. */
export interface CommandContext {
  /** The workdir: the current directory unless `--workdir` was given. */
  cwd: string;
  /** `--json`: print data as JSON (one object per event for progress, then a result). */
  json: boolean;
  stdout: Writable;
  stderr: Writable;
  isTTY: boolean;
  /** Renders progress events (bars on a TTY, JSON Lines with --json, quiet lines otherwise). */
  onProgress: OnProgress;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
  /** Prints a line (human mode) to stdout. */
  print(line: string): void;
  /** Prints a JSON document to stdout. */
  printJson(value: unknown): void;
  /** Sets the exit status for a command that finished without throwing but did not succeed. */
  setExitCode(code: number): void;
}

/** A command module registers one or more subcommands; `ctx` is built when the action runs. */
export type RegisterCommand = (program: Command, ctx: (cmd: Command) => CommandContext) => void;
