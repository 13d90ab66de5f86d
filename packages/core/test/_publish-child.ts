// Child process for the SIGKILL test: publishes a build's aws image to the endpoint in the
// environment (AWS_ENDPOINT_URL). argv: workdir bucket
import { publishAws } from '@cosa/core';

async function main(): Promise<void> {
  const [workdir, bucket] = process.argv.slice(2);
  await publishAws({ workdir: workdir!, bucket: bucket!, region: 'us-east-1', arch: 'x86_64', pollIntervalMs: 50 });
}
main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
