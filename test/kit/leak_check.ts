/**
 * `it` with a leak check: the test body runs inside an engine scope; afterwards the scope is closed,
 * variables the test created are disposed, and the number of live tensors must be back where it
 * started. Tensors a test merely forgets are reclaimed by the scope; what fails the test is a tensor
 * that escaped every scope (a `tf.keep` nobody disposes, a cache a layer never frees).
 */
import * as tf from '@tensorflow/tfjs';

type Body = () => unknown | Promise<unknown>;

function variableIds(): Set<string> {
  const engine = tf.engine() as unknown as { state: { registeredVariables: Record<string, unknown> } };
  return new Set(Object.keys(engine.state.registeredVariables));
}

function disposeNewVariables(before: Set<string>): void {
  const engine = tf.engine() as unknown as { state: { registeredVariables: Record<string, tf.Variable> } };
  for (const [name, v] of Object.entries(engine.state.registeredVariables)) {
    if (!before.has(name)) v.dispose();
  }
}

function wrap(body: Body): () => Promise<void> {
  return async () => {
    const before = tf.memory().numTensors;
    const vars = variableIds();
    tf.engine().startScope();
    try {
      await body();
    } finally {
      tf.engine().endScope();
      disposeNewVariables(vars);
    }
    const after = tf.memory().numTensors;
    if (after !== before) throw new Error(`leak check: ${after - before} tensor(s) outlived the test (${before} -> ${after})`);
  };
}

/** Mocha `it` with the leak check. */
export function it(title: string, body: Body): Mocha.Test {
  return globalThis.it(title, wrap(body));
}
