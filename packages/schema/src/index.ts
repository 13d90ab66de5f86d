export * from './errors.js';
export * from './progress.js';
