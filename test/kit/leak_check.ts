/**
 * `it` with a leak check: the test body runs outside any engine scope, so a tensor it creates and
 * forgets to dispose (outside a `tf.tidy`) stays alive and fails the test, as does a tensor that code
 * under test keeps and never frees (a `tf.keep` nobody disposes, a cache a layer never frees). The one
 * thing reclaimed for the test is the variables it created (layers and models it did not dispose);
 * tensors the layers derived from them are not, so a layer kept for inference must be disposed.
 */
import * as tf from '@tensorflow/tfjs';

/** A test body, as mocha runs it. */
export type Body = () => unknown | Promise<unknown>;

interface EngineInternals {
  state: { registeredVariables: Record<string, tf.Variable>; scopeStack: unknown[] };
}

function engineState(): EngineInternals['state'] {
  return (tf.engine() as unknown as EngineInternals).state;
}

function variableIds(): Set<string> {
  return new Set(Object.keys(engineState().registeredVariables));
}

function disposeNewVariables(before: Set<string>): void {
  for (const [name, v] of Object.entries(engineState().registeredVariables)) {
    if (!before.has(name)) v.dispose();
  }
}

/**
 * `body` wrapped in the leak check: it resolves when the body passes and the number of live tensors
 * (`tf.memory().numTensors`, counted outside any scope) is back where it started once the variables the
 * body created are disposed; it rejects with the count otherwise.
 */
export function leakChecked(body: Body): () => Promise<void> {
  return async () => {
    const open = engineState().scopeStack.length;
    if (open > 0) throw new Error(`leak check: ${open} engine scope(s) are open before the test; it counts only outside scopes`);
    const before = tf.memory().numTensors;
    const vars = variableIds();
    try {
      await body();
    } finally {
      disposeNewVariables(vars);
    }
    const left = engineState().scopeStack.length;
    if (left > 0) throw new Error(`leak check: the test left ${left} engine scope(s) open`);
    const after = tf.memory().numTensors;
    if (after !== before) throw new Error(`leak check: ${after - before} tensor(s) outlived the test (${before} -> ${after})`);
  };
}

/** Mocha `it` with the leak check. */
export function it(title: string, body: Body): Mocha.Test {
  return globalThis.it(title, leakChecked(body));
}
