// Runs the BUILT direct executor (packages/image/dist) on a script and a disk, so that a test can
// SIGKILL this process in the middle: argv = script disk tmpDir workDir.
import { directExecutor } from '@cosa/image';

const [script, disk, tmpDir, workDir] = process.argv.slice(2);
await directExecutor().run({ script, disk, tmpDir, workDir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
