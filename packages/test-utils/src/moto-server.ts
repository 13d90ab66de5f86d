import { spawn, type ChildProcess } from 'node:child_process';

/** A running moto_server (AWS API mock: S3, EC2, …) on 127.0.0.1. */
export interface MotoServer {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  port: number;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts `moto_server` on a free port (it binds port 0 and prints the port it got). Its default
 * AMIs are not loaded (`MOTO_EC2_LOAD_DEFAULT_AMIS=false`), so each region starts empty and fast.
 * Fails when moto_server is not installed.
 */
export async function startMotoServer(): Promise<MotoServer> {
  const child: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', '0'], {
    env: { ...process.env, MOTO_EC2_LOAD_DEFAULT_AMIS: 'false', PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`moto_server did not start within 60 s: ${out}`)), 60_000);
    const onData = (c: Buffer) => {
      out += c.toString();
      const m = /Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`moto_server exited with ${code}: ${out}`));
    });
  });
  // Keep draining its request log so the pipe never fills.
  child.stdout?.resume();
  child.stderr?.resume();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
  };
  return { endpoint: `http://127.0.0.1:${port}`, port, stop, [Symbol.asyncDispose]: stop };
}
