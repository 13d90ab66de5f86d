export {};
export * from './compress.js';
