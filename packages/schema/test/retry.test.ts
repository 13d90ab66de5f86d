import { CosaError, type ProgressEvent } from '@cosa/schema';
import { backoffDelay, nextRetryDelay, retry, retryWarning } from '@cosa/schema/internal';
import { describe, expect, it } from 'vitest';

const flaky = (failures: number, error: () => unknown = () => new Error('boom')) => {
  const tries: number[] = [];
  const fn = async (attempt: number) => {
    tries.push(attempt);
    if (tries.length <= failures) throw error();
    return 'ok';
  };
  return { fn, tries };
};

describe('retry', () => {
  it('tries again until it succeeds, numbering the tries', async () => {
    const f = flaky(2);
    await expect(retry(f.fn, { attempts: 3, delayMs: 0 })).resolves.toBe('ok');
    expect(f.tries).toEqual([1, 2, 3]);
  });

  it('throws the last failure once the tries are spent', async () => {
    let n = 0;
    const err = await retry(async () => { throw new Error(`fail ${++n}`); }, { attempts: 4, delayMs: 0 }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('fail 4');
  });

  it('stops at the first failure retryIf refuses, and passes the try number', async () => {
    const seen: number[] = [];
    const f = flaky(5, () => new CosaError('COSA_USAGE', 'bad'));
    const err = await retry(f.fn, { attempts: 5, delayMs: 0, retryIf: (_e, n) => (seen.push(n), n < 2) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_USAGE' });
    expect(f.tries).toEqual([1, 2]);
    expect(seen).toEqual([1, 2]);
  });

  it('waits the delay it is given, per try', async () => {
    const waits: number[] = [];
    const f = flaky(3);
    await retry(f.fn, { attempts: 4, delayMs: (n) => n * 10, onRetry: (i) => waits.push(i.delayMs) });
    expect(waits).toEqual([10, 20, 30]);
  });

  it('reports every retry as the usual warning through onProgress', async () => {
    const events: ProgressEvent[] = [];
    const f = flaky(2, () => new Error('connection reset\nstack detail'));
    await retry(f.fn, { attempts: 5, delayMs: 0, onRetry: retryWarning((e) => events.push(e), 'GET http://x/blob') });
    expect(events).toEqual([
      { type: 'warning', message: 'GET http://x/blob: attempt 1 of 5 failed (connection reset); retrying' },
      { type: 'warning', message: 'GET http://x/blob: attempt 2 of 5 failed (connection reset); retrying' },
    ]);
  });

  it('gives up instead of waiting past the deadline', async () => {
    const f = flaky(10);
    const t0 = Date.now();
    await expect(retry(f.fn, { attempts: 10, delayMs: 100, deadlineMs: 250 })).rejects.toThrow('boom');
    expect(f.tries).toEqual([1, 2, 3]);
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('an abort ends the wait at once with the caller’s abort error, and no try follows', async () => {
    const ac = new AbortController();
    const f = flaky(10);
    setTimeout(() => ac.abort(new Error('user pressed ^C')), 50);
    const err = await retry(f.fn, {
      attempts: 10,
      delayMs: 60_000,
      signal: ac.signal,
      abortError: (cause) => new CosaError('COSA_STORE_ABORTED', 'transfer aborted', { cause }),
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_STORE_ABORTED', cause: { message: 'user pressed ^C' } });
    expect(f.tries).toEqual([1]);
  });

  it('an abort during a try is final too', async () => {
    const ac = new AbortController();
    const err = await retry(
      async () => {
        ac.abort();
        throw new Error('killed');
      },
      { attempts: 5, delayMs: 0, signal: ac.signal },
    ).catch((e: unknown) => e);
    expect((err as Error).message).toBe('killed');
  });
});

describe('backoffDelay and nextRetryDelay', () => {
  it('doubles from 200 ms up to 5 s with jitter in the upper half', () => {
    for (let i = 0; i < 200; i++) {
      for (const [n, base] of [[1, 200], [2, 400], [3, 800], [6, 5_000], [20, 5_000]] as const) {
        const d = backoffDelay(n);
        expect(d).toBeGreaterThanOrEqual(base / 2);
        expect(d).toBeLessThanOrEqual(base);
      }
    }
    expect(backoffDelay(3, { baseMs: 1_000, maxMs: 2_000 })).toBeGreaterThanOrEqual(1_000);
  });

  it('decides like retry does, for loops that are not ours', () => {
    const o = { attempts: 3, delayMs: 7, retryIf: (e: unknown) => e !== 'fatal' };
    expect(nextRetryDelay('x', 1, o)).toBe(7);
    expect(nextRetryDelay('x', 3, o)).toBeUndefined();
    expect(nextRetryDelay('fatal', 1, o)).toBeUndefined();
    expect(nextRetryDelay('x', 1, { ...o, signal: AbortSignal.abort() })).toBeUndefined();
  });
});
