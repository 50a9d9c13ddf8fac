/**
 * Argument checking shared by every layer. Each check throws a `ValueError` whose message names the
 * layer, the argument, the value received and the rule it broke, so a bad configuration fails at
 * construction with a sentence the user can act on.
 */

/** Thrown for invalid configuration values and invalid call inputs. */
export class ValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValueError';
  }
}

function show(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(show).join(', ')}]`;
  return String(value);
}

/** The largest size any argument may have: tensors and typed arrays are indexed by 32-bit integers. */
export const MAX_SIZE = 2 ** 31 - 1;

/** A required integer in [1, MAX_SIZE]. */
export function positiveInt(owner: string, arg: string, value: unknown): number {
  if (value === undefined || value === null) {
    throw new ValueError(`${owner}: ${arg} is required (a positive integer).`);
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_SIZE) {
    throw new ValueError(`${owner}: ${arg} must be a positive integer up to ${MAX_SIZE}, got ${show(value)}.`);
  }
  return value;
}

/** An optional integer >= 1; `null`/`undefined` give `null`. */
export function optionalPositiveInt(owner: string, arg: string, value: unknown): number | null {
  if (value === undefined || value === null) return null;
  return positiveInt(owner, arg, value);
}

/** A finite number > 0 (epsilons, RoPE base, scales). */
export function positiveNumber(owner: string, arg: string, value: unknown, fallback?: number): number {
  if ((value === undefined || value === null) && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ValueError(`${owner}: ${arg} must be a finite number > 0, got ${show(value)}.`);
  }
  return value;
}

/** A rate in [0, 1). */
export function rate(owner: string, arg: string, value: unknown, fallback = 0): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value >= 1) {
    throw new ValueError(`${owner}: ${arg} must be a number in [0, 1), got ${show(value)}.`);
  }
  return value;
}

/** A boolean with a default. */
export function bool(owner: string, arg: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') {
    throw new ValueError(`${owner}: ${arg} must be a boolean, got ${show(value)}.`);
  }
  return value;
}

/** An optional integer seed. */
export function seed(owner: string, value: unknown): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ValueError(`${owner}: seed must be an integer or null, got ${show(value)}.`);
  }
  return value;
}

/** `a` must be a multiple of `b`. */
export function divisible(owner: string, argA: string, a: number, argB: string, b: number): void {
  if (a % b !== 0) {
    throw new ValueError(`${owner}: ${argA} (${a}) must be divisible by ${argB} (${b}).`);
  }
}

/** The value must be even (RoPE rotates pairs of dimensions). */
export function even(owner: string, arg: string, value: number, why: string): void {
  if (value % 2 !== 0) {
    throw new ValueError(`${owner}: ${arg} must be even (${why}), got ${value}.`);
  }
}

/** Rejects keys the layer does not know, so a misspelt option is not silently ignored. */
export function knownKeys(owner: string, args: object, allowed: readonly string[]): void {
  const allowedSet = new Set(allowed);
  for (const key of Object.keys(args)) {
    if (!allowedSet.has(key)) {
      throw new ValueError(`${owner}: unknown argument ${JSON.stringify(key)}. Known arguments: ${allowed.join(', ')}.`);
    }
  }
}
