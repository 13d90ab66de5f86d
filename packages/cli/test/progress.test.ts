import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { bar, humanProgress, shortDuration, useColor } from '../src/_progress.js';

/** A stream that records what is written and says it is a terminal when asked to. */
function sink(tty: boolean, colors = true): PassThrough & { text(): string; isTTY?: boolean; columns?: number; hasColors?: () => boolean } {
  const s = new PassThrough() as PassThrough & { text(): string; isTTY?: boolean; columns?: number; hasColors?: () => boolean };
  let text = '';
  s.on('data', (c: Buffer) => (text += c.toString()));
  s.text = () => text;
  if (tty) {
    s.isTTY = true;
    s.columns = 100;
    s.hasColors = () => colors;
  }
  return s;
}

const MiB = 1048576;

describe('human progress', () => {
  it('on a terminal, rewrites one status line in place with the phase, a bar, the rate and the ETA', async () => {
    const out = sink(true);
    const p = humanProgress(out, { verbose: false, isTTY: true, color: false });
    p.onProgress({ type: 'phase', phase: 'upload', status: 'start' });
    p.onProgress({ type: 'transfer', name: 'disk.qcow2', bytes: 50 * MiB, total: 200 * MiB, rateBps: 10 * MiB, etaSeconds: 15 });
    await new Promise((r) => setTimeout(r, 120));
    p.onProgress({ type: 'transfer', name: 'disk.qcow2', bytes: 100 * MiB, total: 200 * MiB, rateBps: 10 * MiB, etaSeconds: 10 });
    p.onProgress({ type: 'transfer', name: 'disk.qcow2', bytes: 200 * MiB, total: 200 * MiB, done: true });
    p.onProgress({ type: 'phase', phase: 'upload', status: 'end', elapsedMs: 20_000 });
    p.close();
    const text = out.text();
    // Every redraw starts by returning to the start of the line and erasing it.
    const frames = text.split('\r\x1b[2K').filter(Boolean);
    expect(frames).toContain('upload 0s · disk.qcow2 [#####...............] 25% 50.0 MiB/200.0 MiB 10.0 MiB/s ETA 15s');
    expect(frames).toContain('upload 0s · disk.qcow2 [##########..........] 50% 100.0 MiB/200.0 MiB 10.0 MiB/s ETA 10s');
    expect(text).toMatch(/disk\.qcow2: 200\.0 MiB done\n/);
    expect(text).toMatch(/upload done in 20\.0s\n/);
    // No colour asked for: no SGR sequences at all.
    expect(text).not.toMatch(/\x1b\[\d+m/);
    // close() leaves the line empty.
    expect(text.endsWith('\r\x1b[2K') || text.endsWith('\n')).toBe(true);
  });

  it('computes the rate and ETA itself when the events carry none', async () => {
    const out = sink(true);
    const p = humanProgress(out, { verbose: false, isTTY: true, color: false });
    p.onProgress({ type: 'transfer', name: 'x', bytes: 0, total: 100 * MiB });
    await new Promise((r) => setTimeout(r, 1100));
    p.onProgress({ type: 'transfer', name: 'x', bytes: 50 * MiB, total: 100 * MiB });
    await new Promise((r) => setTimeout(r, 150));
    p.close();
    expect(out.text()).toMatch(/x \[#{10}\.{10}\] 50% 50\.0 MiB\/100\.0 MiB \d+\.\d MiB\/s ETA \ds/);
  });

  it('writes plain lines without escape sequences when stderr is not a terminal', () => {
    const out = sink(false);
    const p = humanProgress(out, { verbose: false, isTTY: false, color: false });
    p.onProgress({ type: 'phase', phase: 'compose', status: 'start' });
    p.onProgress({ type: 'transfer', name: 'a', bytes: MiB, total: 2 * MiB });
    p.onProgress({ type: 'transfer', name: 'a', bytes: 1.5 * MiB, total: 2 * MiB });
    p.onProgress({ type: 'warning', message: 'careful' });
    p.onProgress({ type: 'phase', phase: 'compose', status: 'end', elapsedMs: 1500 });
    p.close();
    const lines = out.text().split('\n');
    expect(lines[0]).toMatch(/^ +\d+\.\ds {2}compose…$/);
    // Transfers at most every 5 s: the second event is dropped.
    expect(lines.filter((l) => l.includes(' a: '))).toHaveLength(1);
    expect(out.text()).toContain('warning: careful\n');
    expect(out.text()).toMatch(/compose done in 1\.5s\n$/);
    expect(out.text()).not.toContain('\x1b');
  });

  it('colours only a terminal, and never with NO_COLOR set', () => {
    expect(useColor(sink(true), {})).toBe(true);
    expect(useColor(sink(true), { NO_COLOR: '1' })).toBe(false);
    expect(useColor(sink(true, false), {})).toBe(false);
    expect(useColor(sink(false), {})).toBe(false);
    const out = sink(true);
    const p = humanProgress(out, { verbose: false, isTTY: true, color: true });
    p.onProgress({ type: 'warning', message: 'w' });
    p.close();
    expect(out.text()).toContain('\x1b[33mwarning:\x1b[0m w\n');
  });

  it('formats durations and bars for the status line', () => {
    expect([shortDuration(5), shortDuration(64), shortDuration(3725)]).toEqual(['5s', '1m04s', '1h02m']);
    expect(bar(0.5, 4)).toBe('[##..]');
    expect(bar(2, 2)).toBe('[##]');
  });
});
