/**
 * examples/ci: no CI service or cluster is reachable from here, so the files are checked offline.
 * The GitHub Actions workflow is validated by GitHub's own parser and schema
 * (@actions/workflow-parser, pinned); the Kubernetes Jobs are parsed and checked for the fields
 * an Indexed Job fan-out needs (no package ships a Kubernetes schema we can pin here); every
 * `cosa …` line in either file must parse with this CLI's own commands and options; every shell
 * script passes `bash -n`; run.sh runs against a stand-in `kubectl` that records what it applies
 * (a fake: no local server implements the Kubernetes API).
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertWorkflowTemplate, NoOperationTraceWriter, parseWorkflow } from '@actions/workflow-parser';
import { listPlatforms } from '@cosa/core';
import { parseYamlText } from '@cosa/schema';
import { tempDir } from '@cosa/test-utils';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { createProgram } from '../src/index.js';

const root = fileURLToPath(new URL('../../../examples/ci/', import.meta.url));
const workflowPath = join(root, 'github-actions.yml');
const jobsPath = join(root, 'kubernetes/cosa-jobs.yaml');

/** `cosa …` command lines of a shell script (continuation lines are not used in the examples). */
function cosaLines(script: string): string[][] {
  return script
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^cosa[\s-]/.test(l) || /^cosa$/.test(l))
    .map((l) => l.replace(/\$\{\{[^}]*\}\}/g, 'X').replace(/"[^"]*"/g, 'X').split(/\s+/).slice(1));
}

/** Throws unless `args` names a cosa command and only options it (or its s3 subcommand) knows. */
function checkCosaArgs(program: Command, args: string[]): void {
  const name = args[0]!.replace(/\$\{?\w+\}?$|X$/, 'aws');
  const top = program.commands.find((c) => c.name() === name);
  if (!top) throw new Error(`unknown command: cosa ${args.join(' ')}`);
  let cmd: Command = top;
  for (let i = 1; i < args.length; i++) {
    const t = args[i]!;
    const sub: Command | undefined = cmd.commands.find((c) => c.name() === t);
    if (sub) {
      cmd = sub;
      continue;
    }
    if (!t.startsWith('-')) continue;
    const opt = [...cmd.options, ...program.options].find((o) => o.long === t.split('=')[0] || o.short === t);
    if (!opt) throw new Error(`cosa ${name}: unknown option ${t}`);
    if ((opt.required || opt.optional) && !t.includes('=')) i++;
  }
}

describe('examples/ci/github-actions.yml', () => {
  it('is a valid workflow by GitHub’s own parser: build, then one extend job per platform, then finalize', async () => {
    const content = await readFile(workflowPath, 'utf8');
    const parsed = parseWorkflow({ name: 'github-actions.yml', content }, new NoOperationTraceWriter());
    expect(parsed.context.errors.getErrors().map((e) => e.message)).toEqual([]);
    const wf = await convertWorkflowTemplate(parsed.context, parsed.value!);
    expect(wf.errors ?? []).toEqual([]);
    const jobs = Object.fromEntries(wf.jobs.map((j) => [j.id.value, j as unknown as { needs?: Array<{ value: string }>; strategy?: unknown }]));
    expect(Object.keys(jobs).sort()).toEqual(['build', 'extend', 'finalize']);
    expect(jobs.extend!.needs?.map((n) => n.value)).toEqual(['build']);
    expect(jobs.finalize!.needs?.map((n) => n.value).sort()).toEqual(['build', 'extend']);
    const doc = parseYamlText(content, workflowPath) as { jobs: { extend: { strategy: { matrix: { platform: string[] } } } } };
    const platforms = doc.jobs.extend.strategy.matrix.platform;
    expect(platforms.length).toBeGreaterThanOrEqual(4);
    for (const p of platforms) expect(listPlatforms()).toContain(p);
  });

  it('the parser really rejects a broken workflow (so the check above can fail)', () => {
    const bad = 'on: push\njobs:\n  build:\n    runs-onn: ubuntu-latest\n    steps:\n      - run: true\n';
    const parsed = parseWorkflow({ name: 'bad.yml', content: bad }, new NoOperationTraceWriter());
    expect(parsed.context.errors.getErrors().length).toBeGreaterThan(0);
  });

  it('uses only cosa commands and options that exist, in shell that parses', async () => {
    const doc = parseYamlText(await readFile(workflowPath, 'utf8'), workflowPath) as { jobs: Record<string, { steps: Array<{ run?: string }> }> };
    const program = createProgram();
    let n = 0;
    for (const job of Object.values(doc.jobs)) {
      for (const step of job.steps) {
        if (!step.run) continue;
        execFileSync('bash', ['-n', '-c', step.run.replace(/\$\{\{[^}]*\}\}/g, 'X')]);
        for (const args of cosaLines(step.run)) {
          checkCosaArgs(program, args);
          n++;
        }
      }
    }
    expect(n).toBeGreaterThanOrEqual(10);
    expect(() => checkCosaArgs(program, ['buildupload', '--bogus', 's3', 'b/p'])).toThrow(/unknown option --bogus/);
    expect(() => checkCosaArgs(program, ['buildupload', '--artifact', 'aws', 's3', '--enable-gz-peel', 'b/p'])).not.toThrow();
  });
});

describe('examples/ci/kubernetes', () => {
  type Job = { apiVersion: string; kind: string; metadata: { name: string }; spec: Record<string, unknown> & { template: { spec: { restartPolicy: string; containers: Array<{ args: string[]; env?: Array<{ name: string; value: string }> }> } } } };
  const docs = async () => (await readFile(jobsPath, 'utf8')).split(/^---$/m).map((d, i) => parseYamlText(d, `${jobsPath}#${i}`) as Job);

  it('holds a build Job, an Indexed Job with one index per platform, and a finalize Job', async () => {
    const [build, extend, finalize] = await docs();
    for (const j of [build, extend, finalize]) {
      expect(j).toMatchObject({ apiVersion: 'batch/v1', kind: 'Job' });
      expect(j!.spec.template.spec.restartPolicy).toBe('Never');
    }
    expect(extend!.spec.completionMode).toBe('Indexed');
    const platforms = extend!.spec.template.spec.containers[0]!.env!.find((e) => e.name === 'PLATFORMS')!.value.split(' ');
    expect(extend!.spec.completions).toBe(platforms.length);
    expect(extend!.spec.parallelism).toBe(platforms.length);
    for (const p of platforms) expect(listPlatforms()).toContain(p);
    const program = createProgram();
    for (const j of [build, extend, finalize]) {
      const script = j!.spec.template.spec.containers[0]!.args[0]!;
      execFileSync('bash', ['-n', '-c', script]);
      for (const args of cosaLines(script)) checkCosaArgs(program, args);
    }
  });

  it('run.sh applies build, extend and finalize in order with the build id filled in (against a stand-in kubectl)', async () => {
    await using t = await tempDir('cosa-k8s-');
    const bin = join(t.dir, 'bin');
    await mkdir(bin);
    const log = join(t.dir, 'log');
    await writeFile(join(bin, 'kubectl'), `#!/bin/sh\nif [ "$1" = apply ]; then n=$(ls ${t.dir}/applied-* 2>/dev/null | wc -l); cat > ${t.dir}/applied-$n; fi\necho "$*" >> ${log}\n`);
    await chmod(join(bin, 'kubectl'), 0o755);
    execFileSync('bash', [join(root, 'kubernetes/run.sh'), 'registry.example/cosa:1', '7.20261127.1'], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    expect((await readFile(log, 'utf8')).trim().split('\n')).toEqual([
      'apply -f -', 'wait --for=condition=complete --timeout=3h job/cosa-build-7-20261127-1',
      'apply -f -', 'wait --for=condition=complete --timeout=3h job/cosa-extend-7-20261127-1',
      'apply -f -', 'wait --for=condition=complete --timeout=3h job/cosa-finalize-7-20261127-1',
    ]);
    for (const [i, step] of ['build', 'extend', 'finalize'].entries()) {
      const text = await readFile(join(t.dir, `applied-${i}`), 'utf8');
      const doc = parseYamlText(text, step) as Job;
      expect(doc.metadata.name).toBe(`cosa-${step}-7-20261127-1`);
      expect(text).not.toContain('@');
      expect(text).toContain('7.20261127.1');
      expect(text).toContain('registry.example/cosa:1');
    }
  });
});
