#!/usr/bin/env node
import { main } from '../dist/index.js';

// The AWS SDK warns on every S3/EC2 command that its releases after January 2027 need Node 22;
// cosa pins an SDK that runs on 20.19+, so a CLI user cannot act on it. SDK users still see it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// After main() returns nothing more is written; a late EPIPE must not become a stack trace.
for (const s of [process.stdout, process.stderr]) s.on('error', () => {});
process.exitCode = await main(process.argv.slice(2));
