/** The shared test kit: backends, tolerances, tensor assertions, leak-checked `it`, references. */
export * from './backends.js';
export * from './tensors.js';
export { it } from './leak_check.js';
