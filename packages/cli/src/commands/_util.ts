import { InvalidArgumentError } from 'commander';
import type { OnProgress } from '@cosa/schema';
import type { CommandContext } from '../_context.js';

/** commander parser for a non-negative integer option. */
export function parseCount(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('must be a non-negative integer');
  return Number(value);
}

/** commander parser for a positive integer option (`abc`, `0`, `1.5` are refused, naming the option). */
export function parsePositiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('must be a positive integer');
  return Number(value);
}

/** commander collector for a repeatable option. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * Progress for commands whose own output is data: nothing in --json mode (stdout holds one JSON
 * document), otherwise warnings and (with --verbose) commands, but not the info lines the
 * command prints itself.
 */
export function quietProgress(c: CommandContext): OnProgress | undefined {
  if (c.json) return undefined;
  return (e) => {
    if (e.type !== 'info') c.onProgress(e);
  };
}
