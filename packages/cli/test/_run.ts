import { PassThrough } from 'node:stream';
import { main } from '../src/index.js';

/** Runs the CLI in-process with captured output. */
export async function runCli(argv: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c: Buffer) => (stdout += c.toString()));
  err.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await main(argv, { cwd, stdout: out, stderr: err });
  return { code, stdout, stderr };
}
