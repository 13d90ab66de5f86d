import type { RegisterCommand } from '../_context.js';
import { registerManifest } from './manifest.js';

/** Every command module. Each file under commands/ registers its own subcommands. */
export const commands: RegisterCommand[] = [registerManifest];
