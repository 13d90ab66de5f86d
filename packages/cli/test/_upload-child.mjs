// `cosa buildupload` to a file store, through the built SDK (packages/store/dist): the CLI only
// uploads to S3, and the kill runs need a process to SIGKILL. argv = workdir storeDir.
import { buildUpload } from '@cosa/core';

const [workdir, url] = process.argv.slice(2);
await buildUpload({ workdir, url });
