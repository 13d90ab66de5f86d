import { PassThrough, type Writable } from 'node:stream';
import { main, type MainOptions } from '../src/index.js';

/** Runs the CLI in-process with captured output (`extra` replaces streams, env or signals). */
export async function runCli(argv: string[], cwd: string, extra: MainOptions = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c: Buffer) => (stdout += c.toString()));
  err.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await main(argv, { cwd, stdout: out as PassThrough & Writable, stderr: err, ...extra });
  return { code, stdout, stderr };
}
