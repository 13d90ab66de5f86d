import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import type { OnProgress } from '@cosa/schema';

/** What every command gets from the entry point. */
export interface CommandContext {
  /** The workdir: the current directory unless `--workdir` was given. */
  cwd: string;
  /**
   * `--json`: stdout carries JSON Lines only — progress events, then exactly one
   * `{"event":"result",…}` (see {@link CommandContext.printJson}), or one `{"event":"error",…}`.
   */
  json: boolean;
  stdout: Writable;
  stderr: Writable;
  /** stderr (where progress goes) is a terminal. */
  isTTY: boolean;
  /** Renders progress events (a status line on a terminal, JSON Lines with --json, plain lines otherwise). */
  onProgress: OnProgress;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
  /** Prints a line for a human: to stdout, or to stderr with --json (stdout is for JSON Lines then). */
  print(line: string): void;
  /**
   * Prints the command's result: one JSON line `{"event":"result", …value}` on stdout (an array or
   * a scalar comes as `{"event":"result","value":…}`). Only the first call of a run prints.
   */
  printJson(value: unknown): void;
  /** Sets the exit status for a command that finished without throwing but did not succeed. */
  setExitCode(code: number): void;
}

/** A command module registers one or more subcommands; `ctx` is built when the action runs. */
export type RegisterCommand = (program: Command, ctx: (cmd: Command) => CommandContext) => void;

/** The result line of the `--json` contract for `value`. */
export function resultLine(value: unknown): string {
  const body = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : { value };
  return `${JSON.stringify(Object.assign({ event: 'result' }, body, { event: 'result' }))}\n`;
}
