import { fileURLToPath } from 'node:url';

/** Absolute path of a file shipped in the package's assets/ directory (from src/ or dist/). */
export function assetPath(name: string): string {
  return fileURLToPath(new URL(`../assets/${name}`, import.meta.url));
}
