// Question: how fast is our repo tar writer (tar-stream, hashed while written) compared with the
// `tar` command (+ sha256sum) on the same archive repo, and what do bare-user vs archive commits
// and the bare-user → archive pull-local cost?
// Run: pnpm --filter @cosa/schema --filter @cosa/ostree build && node packages/ostree/bench/repo-tar.mjs [TREE] [RUNS]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { commit, initRepo, pullLocal, run, setRef, tarDirectory } from '../dist/index.js';

const tree = process.argv[2] ?? '/usr/lib/python3.11';
const runs = Number(process.argv[3] ?? 5);
const work = await mkdtemp(path.join(tmpdir(), 'cosa-bench-'));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const time = async (fn) => { const t = performance.now(); await fn(); return performance.now() - t; };
try {
  const bu = path.join(work, 'bu');
  const ar = path.join(work, 'ar');
  const ar2 = path.join(work, 'ar2');
  await initRepo({ path: bu, mode: 'bare-user' });
  await initRepo({ path: ar, mode: 'archive' });
  await initRepo({ path: ar2, mode: 'archive' });
  let c = '';
  const tBu = await time(async () => { c = (await commit({ repo: bu, branch: 'b', tree })).commit; });
  const tAr = await time(() => commit({ repo: ar, branch: 'b', tree }));
  const tPull = await time(() => pullLocal({ repo: ar2, srcRepo: bu, revs: [c] }));
  await setRef({ repo: ar2, ref: 'r', rev: c });

  const ours = [];
  const cmd = [];
  let size = 0;
  for (let i = 0; i < runs; i++) {
    const a = path.join(work, `ours-${i}.tar`);
    ours.push(await time(async () => { size = (await tarDirectory({ dir: ar2, output: a, mtime: new Date(0) })).size; }));
    await rm(a);
    const b = path.join(work, `cmd-${i}.tar`);
    cmd.push(await time(async () => { await run(['tar', '-C', ar2, '-cf', b, '.']); await run(['sha256sum', b]); }));
    await rm(b);
  }
  const { stdout: files } = await run(['sh', '-c', `find ${ar2} -type f | wc -l`]);
  console.log(`tree ${tree}; archive repo ${(size / 1e6).toFixed(1)} MB in ${files.trim()} files; load ${(await run(['cat', '/proc/loadavg'])).stdout.split(' ')[0]}`);
  console.log('| step | ms |\n|---|---|');
  for (const [k, v] of [
    ['ostree commit → bare-user', tBu], ['ostree commit → archive', tAr], ['pull-local bare-user → archive', tPull],
    [`repo tar, ours: tarDirectory (median of ${runs})`, median(ours)], [`repo tar, tar -cf + sha256sum (median of ${runs})`, median(cmd)],
  ]) console.log(`| ${k} | ${v.toFixed(0)} |`);
  console.log(`ratio ours / tar+sha256sum: ${(median(ours) / median(cmd)).toFixed(2)}; archive / bare-user commit: ${(tAr / tBu).toFixed(2)}`);
} finally {
  await rm(work, { recursive: true, force: true });
}
