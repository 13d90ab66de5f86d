import { describe, expect, it } from 'vitest';
import { CommandFailedError, type ProgressEvent } from '@cosa/schema';
import { run } from '@cosa/ostree/internal';

describe('run', () => {
  it('returns the output of a successful command and streams its lines', async () => {
    const events: ProgressEvent[] = [];
    const r = await run(['sh', '-c', 'echo one; echo two >&2'], { onProgress: (e) => events.push(e) });
    expect(r.stdout).toBe('one');
    expect(r.exitCode).toBe(0);
    expect(events[0]).toEqual({ type: 'command', argv: ['sh', '-c', 'echo one; echo two >&2'] });
    expect(events.filter((e) => e.type === 'log').map((e) => (e as { line: string }).line).sort()).toEqual(['one', 'two']);
  });

  it('throws CommandFailedError carrying the exit code and stderr', async () => {
    const err = await run(['sh', '-c', 'echo broken >&2; exit 3']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandFailedError);
    expect((err as CommandFailedError).exitCode).toBe(3);
    expect((err as CommandFailedError).stderr).toContain('broken');
    expect((err as CommandFailedError).code).toBe('COSA_EXEC_FAILED');
  });

  it('reports a missing tool with its own code', async () => {
    const err = await run(['cosa-no-such-tool-xyz']).catch((e: unknown) => e);
    expect((err as CommandFailedError).code).toBe('COSA_EXEC_NOT_FOUND');
  });

  it('kills the command when the signal aborts', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    const err = await run(['sleep', '30'], { signal: ac.signal }).catch((e: unknown) => e);
    expect((err as CommandFailedError).code).toBe('COSA_EXEC_ABORTED');
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('hides redacted arguments from progress events', async () => {
    const events: ProgressEvent[] = [];
    await run(['echo', 'secret-token'], { onProgress: (e) => events.push(e), redact: ['secret-token'] });
    expect(events[0]).toEqual({ type: 'command', argv: ['echo', '***'] });
  });
});
