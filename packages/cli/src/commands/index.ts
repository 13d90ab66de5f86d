import type { RegisterCommand } from '../_context.js';
import { registerBuildfetch } from './buildfetch.js';
import { registerBuildupload } from './buildupload.js';

/** Every command module. Each file under commands/ registers its own subcommands. */
export const commands: RegisterCommand[] = [
  registerBuildfetch,
  registerBuildupload,
];
