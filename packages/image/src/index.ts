export {};
export * from './platforms.js';
export * from './set-platform.js';
export * from './convert.js';
export * from './ova.js';
export * from './platform-image.js';
