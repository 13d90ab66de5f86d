/**
 * Pins the times rpm writes into an installed sqlite rpmdb, so the same packages installed in the
 * same order give the same `rpmdb.sqlite` bytes: rpm 4.18 stamps every installed header with the
 * install time and transaction id (INSTALLTIME, INSTALLTID) and indexes the id (`Installtid`),
 * and cannot be told another time. They are rewritten to SOURCE_DATE_EPOCH, then the database is
 * rebuilt (VACUUM) so no page holds an old copy. Needs the `sqlite3` command.
 */
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CosaError } from '@cosa/schema';
import { run } from './_exec.js';

/** Header tags rpm sets at install time to the time of day (INT32). */
const INSTALL_TIME_TAGS = new Set([1008 /* INSTALLTIME */, 1128 /* INSTALLTID */]);
const RPM_INT32_TYPE = 4;

/**
 * Sets every INT32 entry of `tags` in an installed (immutable-region) header blob to `value`, in
 * place: the blob keeps its length and the signed region is untouched. Returns how many it set.
 */
export function setHeaderInt32(blob: Buffer, tags: ReadonlySet<number>, value: number): number {
  if (blob.length < 8) throw new CosaError('COSA_COMPOSE_FAILED', 'rpmdb: a header shorter than its preamble');
  const il = blob.readUInt32BE(0);
  const dl = blob.readUInt32BE(4);
  const dataStart = 8 + il * 16;
  if (dataStart + dl > blob.length) throw new CosaError('COSA_COMPOSE_FAILED', `rpmdb: a header of ${blob.length} bytes claims ${il} entries and ${dl} data bytes`);
  let set = 0;
  for (let i = 0; i < il; i++) {
    const e = 8 + i * 16;
    const tag = blob.readUInt32BE(e);
    if (!INSTALL_TIME_TAGS.has(tag) || !tags.has(tag) || blob.readUInt32BE(e + 4) !== RPM_INT32_TYPE) continue;
    const off = dataStart + blob.readInt32BE(e + 8);
    const count = blob.readUInt32BE(e + 12);
    if (off < dataStart || off + count * 4 > dataStart + dl) throw new CosaError('COSA_COMPOSE_FAILED', `rpmdb: tag ${tag} points outside its header`);
    for (let k = 0; k < count; k++) blob.writeUInt32BE(value >>> 0, off + k * 4);
    set++;
  }
  return set;
}

/**
 * Rewrites the install times of every package in the sqlite rpmdb `db` to `epoch` (seconds) and
 * rebuilds the file. Nothing to do when `db` does not exist (another rpmdb backend).
 */
export async function pinRpmdbTimes(db: string, epoch: number, o: { tmpDir: string; signal?: AbortSignal }): Promise<{ packages: number }> {
  if (!(await stat(db).then((s) => s.isFile(), () => false))) return { packages: 0 };
  const sig = o.signal ? { signal: o.signal } : {};
  const dir = await mkdtemp(path.join(o.tmpDir, 'rpmdb-'));
  try {
    const q = (p: string): string => `'${p.replace(/'/g, "''")}'`;
    // Each header to a file (sqlite3's writefile): no size limit on a pipe, no hex round trip.
    await run(['sqlite3', db, `SELECT writefile(${q(dir + '/')} || hnum, blob) FROM Packages;`], { ...sig, streamLines: false });
    const hnums = (await readdir(dir)).filter((n) => /^\d+$/.test(n));
    for (const n of hnums) {
      const f = path.join(dir, n);
      const blob = await readFile(f);
      if (setHeaderInt32(blob, INSTALL_TIME_TAGS, epoch) > 0) await writeFile(f, blob);
    }
    const tid = Buffer.alloc(4);
    tid.writeUInt32LE(epoch >>> 0); // the index key is the tid in the host's (x86/arm: little) byte order
    const sql = [
      'BEGIN;',
      `UPDATE Packages SET blob = readfile(${q(dir + '/')} || hnum);`,
      `UPDATE Installtid SET key = X'${tid.toString('hex')}';`,
      'COMMIT;',
      'VACUUM;',
      'PRAGMA wal_checkpoint(TRUNCATE);',
      '',
    ].join('\n');
    await writeFile(path.join(dir, 'pin.sql'), sql);
    await run(['sqlite3', '-bail', db, `.read ${q(path.join(dir, 'pin.sql'))}`], { ...sig, streamLines: false });
    return { packages: hnums.length };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
