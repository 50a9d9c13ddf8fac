/**
 * Initializers, regularizers and constraints given as Keras-style identifiers.
 *
 * tfjs-layers keeps its own `getInitializer`/`serializeInitializer` private, so layers of this package
 * accept three forms and store the serializable one in `getConfig()`:
 * - a camelCase or snake_case string (`'glorotUniform'`, `'glorot_uniform'`, `'zeros'`, `'l2'`);
 * - a serialized object `{className: 'RandomNormal', config: {stddev: 0.02}}`;
 * - an instance (`tf.initializers.randomNormal({stddev: 0.02})`), serialized as the object form.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from './errors.js';

type Initializer = ReturnType<typeof tf.initializers.zeros>;
type Constraint = ReturnType<typeof tf.constraints.nonNeg>;
type Serializable = tf.serialization.Serializable;

export interface SerializedObject {
  className: string;
  config?: Record<string, unknown>;
}

export type InitializerIdentifier = string | SerializedObject | Initializer;
export type RegularizerIdentifier = string | SerializedObject | Serializable;
export type ConstraintIdentifier = string | SerializedObject | Constraint;

type Factory<T> = (args?: Record<string, unknown>) => T;

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function pascal(name: string): string {
  const c = camel(name);
  return c.charAt(0).toUpperCase() + c.slice(1);
}

function isSerializedObject(value: unknown): value is SerializedObject {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as SerializedObject).className === 'string' &&
    !(value instanceof tf.serialization.Serializable)
  );
}

function fromClassName<T>(kind: string, owner: string, arg: string, className: string, config: Record<string, unknown>): T {
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  const entry = map[className];
  if (entry === undefined) {
    throw new ValueError(`${owner}: ${arg} names an unknown ${kind} class ${JSON.stringify(className)}.`);
  }
  const [cls, fromConfig] = entry;
  return fromConfig(cls, config as tf.serialization.ConfigDict) as T;
}

/**
 * tfjs treats a seed of 0 as "no seed" (`seed ? seed : Math.random()` in its random utilities), so
 * seeds are shifted into a range without 0: s >= 0 maps to s + 1, negative seeds stay. The map is
 * one-to-one, so distinct seeds still give distinct initial weights, and seed 0 is reproducible.
 */
export function tfjsSeed(seed: number): number {
  return seed >= 0 ? seed + 1 : seed;
}

function resolve<T>(kind: string, factories: Record<string, Factory<T>>, owner: string, arg: string, id: unknown, seed: number | null): T {
  if (id instanceof tf.serialization.Serializable) return id as unknown as T;
  if (typeof id === 'string') {
    const factory = factories[camel(id)];
    if (factory !== undefined) {
      // Random initializers take a seed; the others ignore unknown args.
      return factory(seed === null ? {} : { seed: tfjsSeed(seed) });
    }
    return fromClassName<T>(kind, owner, arg, pascal(id), seed === null ? {} : { seed: tfjsSeed(seed) });
  }
  if (isSerializedObject(id)) {
    const config = { ...(id.config ?? {}) };
    if (seed !== null && !('seed' in config)) config.seed = tfjsSeed(seed);
    return fromClassName<T>(kind, owner, arg, id.className, config);
  }
  throw new ValueError(
    `${owner}: ${arg} must be a ${kind} name, a {className, config} object or a ${kind} ` + `instance, got ${JSON.stringify(id)}.`,
  );
}

const SEEDED = new Set([
  'glorotUniform',
  'glorotNormal',
  'heNormal',
  'heUniform',
  'leCunNormal',
  'leCunUniform',
  'randomNormal',
  'randomUniform',
  'truncatedNormal',
  'varianceScaling',
  'orthogonal',
]);

const initializerFactories: Record<string, Factory<Initializer>> = Object.fromEntries(
  Object.entries(tf.initializers).map(([name, make]) => [
    name,
    (args?: Record<string, unknown>) => (make as Factory<Initializer>)(SEEDED.has(name) ? (args ?? {}) : {}),
  ]),
);

const regularizerFactories: Record<string, Factory<Serializable>> = {
  l1: (args) => tf.regularizers.l1(args as never),
  l2: (args) => tf.regularizers.l2(args as never),
  l1l2: (args) => tf.regularizers.l1l2(args as never),
};

const constraintFactories: Record<string, Factory<Constraint>> = {
  maxNorm: (args) => tf.constraints.maxNorm((args ?? {}) as never),
  minMaxNorm: (args) => tf.constraints.minMaxNorm((args ?? {}) as never),
  nonNeg: () => tf.constraints.nonNeg(),
  unitNorm: (args) => tf.constraints.unitNorm((args ?? {}) as never),
};

/** Builds an initializer; `seed` (if not null) is passed to random initializers. */
export function getInitializer(owner: string, arg: string, id: InitializerIdentifier, seed: number | null = null): Initializer {
  return resolve('initializer', initializerFactories, owner, arg, id, seed);
}

/** Builds a regularizer, or returns null when `id` is null/undefined. */
export function getRegularizer(owner: string, arg: string, id: RegularizerIdentifier | null | undefined): Serializable | null {
  if (id === null || id === undefined) return null;
  return resolve('regularizer', regularizerFactories, owner, arg, id, null);
}

/** Builds a constraint, or returns null when `id` is null/undefined. */
export function getConstraint(owner: string, arg: string, id: ConstraintIdentifier | null | undefined): Constraint | null {
  if (id === null || id === undefined) return null;
  return resolve('constraint', constraintFactories, owner, arg, id, null);
}

/** The JSON form of an identifier for `getConfig()`: strings stay, instances become objects. */
export function serializeIdentifier(id: unknown): string | SerializedObject | null {
  if (id === null || id === undefined) return null;
  if (typeof id === 'string') return id;
  if (id instanceof tf.serialization.Serializable) {
    const cls = id.constructor as unknown as { className: string };
    return { className: cls.className, config: id.getConfig() as Record<string, unknown> };
  }
  if (isSerializedObject(id)) return { className: id.className, config: { ...(id.config ?? {}) } };
  return null;
}
