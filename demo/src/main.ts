/**
 * The tfjs-gta browser demo: pick a backend, train attention variants side by side on a small text,
 * compare loss curves, speed and KV-cache size, look at attention maps, generate text, and save/load the
 * models (IndexedDB, downloaded files). Built by demo/build.mjs; see docs/DEMO.md.
 *
 * The package is imported by its name, as an app imports it; the bundler maps `tfjs-gta` to the package.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-webgpu'; // registers webgpu where the browser exposes navigator.gpu
import {
  CausalLM,
  CharTokenizer,
  COMPARE_PRESETS,
  exportHF,
  serializeSafetensors,
  causalLMCacheElementsPerToken,
  decodeUtf8Strict,
  setBackendStrict,
  splitTokens,
  tokenizerFromJSON,
  variantConfig,
  VARIANTS,
  type AttentionConfig,
  type CausalLMConfig,
  type Tokenizer,
  type VariantName,
} from 'tfjs-gta';
import { drawLineChart } from './chart.js';
import { drawHeatmap } from './heatmap.js';
import { TrainingRun } from './train.js';

/** The built-in text, put into the bundle by demo/build.mjs. */
declare const __DEMO_CORPUS__: { text: string; title: string; source: string; license: string };

// ------------------------------------------------------------------ setup

// tfjs-backend-wasm fetches its .wasm binaries from here (copied next to the page by the build).
setWasmPaths(new URL('./wasm/', window.location.href).href);
// Shapes as uniforms: one compiled WebGL program serves every sequence length, so decoding (whose cache
// grows by one each step) and training do not compile a new shader for each new shape.
tf.env().set('WEBGL_USE_SHAPES_UNIFORMS', true);

const BACKENDS = ['webgl', 'webgpu', 'wasm', 'cpu'] as const;
// Not 0: tfjs's random initializers treat seed 0 as "no seed" (rand_util.js: `seed ? seed : Math.random()`),
// and CausalLM.create gives the token embedding the model's seed itself, so seed 0 would not repeat.
const SEED = 1;
const MAX_SEQUENCE = 512;
const IDB_PREFIX = 'tfjs-gta-demo-';
const PROBE_PROMPT = 'Call me Ishmael.';
const COLORS: Record<VariantName, string> = { gta: '#d62728', gqa: '#1f77b4', mla: '#2ca02c', mha: '#ff7f0e', mqa: '#9467bd' };
const ORDER: VariantName[] = ['gta', 'gqa', 'mha', 'mqa', 'mla'];
const SIZES = {
  tiny: { hiddenSize: 64, numLayers: 2, numHeads: 8, intermediateSize: 160 },
  small: { hiddenSize: 128, numLayers: 4, numHeads: 8, intermediateSize: 344 },
} as const;

/** What the page stores with a saved model so it can be used again (in the model's user metadata). */
interface DemoMetadata {
  tokenizer: object;
  variant: VariantName;
  steps: number;
  text: string;
}

interface ModelEntry {
  key: string;
  variant: VariantName;
  lm: CausalLM;
  tokenizer: Tokenizer;
  origin: 'trained' | 'IndexedDB' | 'files';
  run: TrainingRun | null;
  steps: number;
  textTitle: string;
  kvMeasured: number;
  kvFormula: number;
  decodeTokensPerSecond: number | null;
  /** Backend it was trained (or loaded) on. */
  backend: string;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el as T;
};
const root = document.documentElement;
const models = new Map<string, ModelEntry>();
let corpus = { ...__DEMO_CORPUS__ };
let tokenizer: Tokenizer = CharTokenizer.fromText(corpus.text);
let busy = false;
let stopRequested = false;

// ------------------------------------------------------------------ helpers

/** Lets the browser paint without the ~16 ms of tf.nextFrame() (used between generated tokens). */
function yieldToBrowser(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}

const fmt = (x: number | null | undefined, digits = 3) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));
const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

function numberInput(id: string, { min, max, integer }: { min: number; max: number; integer: boolean }): number {
  const input = $<HTMLInputElement>(id);
  const v = Number(input.value);
  if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    const label = input.closest('label')?.textContent?.trim() ?? id;
    throw new Error(`${label}: enter ${integer ? 'an integer' : 'a number'} from ${min} to ${max} (got "${input.value}").`);
  }
  return v;
}

/** GQA with as many KV heads as query heads is MHA, with one KV head MQA. */
function variantOf(attention: AttentionConfig): VariantName {
  const a = attention as AttentionConfig & Record<string, number>;
  if (a.kind === 'gta' || a.kind === 'mla') return a.kind;
  if (a.numKeyValueHeads === a.numQueryHeads) return 'mha';
  if (a.numKeyValueHeads === 1) return 'mqa';
  return 'gqa';
}

function setStatus(text: string): void {
  $('status').textContent = text;
}

function showError(e: unknown): void {
  const message = e instanceof Error ? e.message : String(e);
  console.error(e);
  root.dataset.error = message;
  const box = $('error');
  box.textContent = `Error: ${message}`;
  box.hidden = false;
}

function clearError(): void {
  root.dataset.error = '';
  $('error').hidden = true;
}

/** Runs one user action at a time; the page's state (data-state) says which, for people and tests. */
async function task(state: string, fn: () => Promise<void>): Promise<void> {
  if (busy) return;
  busy = true;
  root.dataset.state = state;
  clearError();
  updateControls();
  try {
    await fn();
  } catch (e) {
    showError(e);
  } finally {
    busy = false;
    root.dataset.state = 'idle';
    updateControls();
  }
}

function updateControls(): void {
  const has = models.size > 0;
  for (const id of [
    'train',
    'maps-show',
    'gen-run',
    'save-idb',
    'save-download',
    'save-hf',
    'load-idb',
    'delete-idb',
    'backend',
    'file',
    'load-files',
  ]) {
    ($(id) as HTMLButtonElement).disabled = busy;
  }
  for (const id of ['maps-show', 'gen-run', 'save-idb', 'save-download', 'save-hf']) ($(id) as HTMLButtonElement).disabled = busy || !has;
  ($('stop') as HTMLButtonElement).disabled = root.dataset.state !== 'training';
  const saved = $<HTMLSelectElement>('saved-list').options.length > 0;
  for (const id of ['load-idb', 'delete-idb']) ($(id) as HTMLButtonElement).disabled = busy || !saved;
}

const labelOf = (e: ModelEntry) => `${e.variant.toUpperCase()}${e.origin === 'trained' ? '' : ` (${e.origin})`}`;

function orderedEntries(): ModelEntry[] {
  return [...models.values()].sort(
    (a, b) => ORDER.indexOf(a.variant) - ORDER.indexOf(b.variant) || (a.origin === 'trained' ? 0 : 1) - (b.origin === 'trained' ? 0 : 1),
  );
}

// ------------------------------------------------------------------ backend

function webglRenderer(): string {
  try {
    const gl = document.createElement('canvas').getContext('webgl2');
    if (gl === null) return 'no WebGL 2';
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    return ext ? String(gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)) : 'WebGL 2';
  } catch {
    return 'WebGL 2';
  }
}

async function switchBackend(name: string): Promise<void> {
  await setBackendStrict(name); // throws rather than silently falling back to another backend
  const active = tf.getBackend();
  root.dataset.backend = active;
  $<HTMLSelectElement>('backend').value = active;
  let info: string;
  if (active === 'webgl') {
    const renderer = webglRenderer();
    info = `WebGL ${tf.env().getNumber('WEBGL_VERSION')} · ${renderer}`;
    // Software WebGL (no GPU): every op is a shader run on the CPU; wasm is much faster for these small models.
    if (/swiftshader|llvmpipe|software/i.test(renderer)) info += ' · software rendering: wasm is faster on this machine';
  } else if (active === 'webgpu') {
    const a = (tf.backend() as unknown as { adapterInfo?: { vendor?: string; architecture?: string } }).adapterInfo;
    const adapter = [a?.vendor, a?.architecture].filter(Boolean).join(' ') || 'unknown adapter';
    info = `WebGPU · ${adapter}`;
    // SwiftShader's WebGPU runs every kernel on the CPU; wasm is much faster for these small models.
    if (/swiftshader/i.test(adapter)) info += ' · software WebGPU: wasm is faster on this machine';
  } else if (active === 'wasm') {
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    info = `WebAssembly · SIMD ${simd ? 'on' : 'off'} · threads ${threads ? 'on' : 'off'}`;
  } else info = 'plain JavaScript';
  $('backend-info').textContent = info;
  setStatus(`backend ${active} ready`);
}

// ------------------------------------------------------------------ text

function describeCorpus(): void {
  const chars = [...corpus.text].length;
  $('corpus-info').innerHTML =
    `<b>${escapeHtml(corpus.title)}</b> · ${chars.toLocaleString('en-US')} characters · ` +
    `${tokenizer.vocabSize - 1} distinct · ${escapeHtml(corpus.source)}${corpus.license ? ` (${escapeHtml(corpus.license)})` : ''}`;
  root.dataset.corpusCharacters = String(chars);
}

async function useFile(file: File): Promise<void> {
  const text = decodeUtf8Strict(new Uint8Array(await file.arrayBuffer()), `file ${JSON.stringify(file.name)}`).replace(/^\uFEFF/, '');
  if ([...text].length < 2000) throw new Error(`${file.name}: the text has ${[...text].length} characters; give at least 2,000.`);
  corpus = { text, title: file.name, source: 'dropped file', license: '' };
  tokenizer = CharTokenizer.fromText(text);
  describeCorpus();
  setStatus(`using ${file.name}; train again to use it`);
}

// ------------------------------------------------------------------ training

function modelConfig(variant: VariantName, size: keyof typeof SIZES, vocabSize: number, sequenceLength: number): CausalLMConfig {
  // The same architecture as `npm start` (variantConfig): only the attention differs between variants.
  const preset = { ...COMPARE_PRESETS.quick, ...SIZES[size], sequenceLength };
  return { ...variantConfig(variant, preset, vocabSize, SEED), maxSequenceLength: MAX_SEQUENCE };
}

/** KV-cache bytes per token, read from a real cache after a short prefill. */
function measuredCacheBytes(lm: CausalLM, ids: number[]): number {
  const { logits, cache } = lm.callWithCache([ids], null);
  const bytes = cache.bytesPerToken();
  logits.dispose();
  cache.dispose();
  return bytes;
}

function removeEntry(key: string): void {
  const old = models.get(key);
  if (!old) return;
  old.run?.dispose();
  old.lm.dispose();
  models.delete(key);
}

function addEntry(entry: ModelEntry): void {
  removeEntry(entry.key);
  models.set(entry.key, entry);
  refreshModelLists();
}

async function trainSelected(): Promise<void> {
  const variants = [...document.querySelectorAll<HTMLInputElement>('#variants input:checked')].map((c) => c.value as VariantName);
  if (variants.length === 0) throw new Error('choose at least one attention variant to train.');
  const steps = numberInput('steps', { min: 1, max: 5000, integer: true });
  const batchSize = numberInput('batch', { min: 1, max: 256, integer: true });
  const sequenceLength = numberInput('seq', { min: 2, max: MAX_SEQUENCE, integer: true });
  const learningRate = numberInput('lr', { min: 1e-6, max: 1, integer: false });
  const size = $<HTMLSelectElement>('size').value as keyof typeof SIZES;
  const ids = Int32Array.from(tokenizer.encode(corpus.text));
  const { train, validation } = splitTokens(ids, { validationFraction: 0.1, sequenceLength });
  const backend = tf.getBackend();
  const runs: TrainingRun[] = [];
  for (const variant of variants) {
    const config = modelConfig(variant, size, tokenizer.vocabSize, sequenceLength);
    const lm = CausalLM.create(config, `lm_${variant}`);
    const run = new TrainingRun(variant, lm, train, { batchSize, sequenceLength, steps, learningRate, seed: SEED });
    runs.push(run);
    addEntry({
      key: variant,
      variant,
      lm,
      tokenizer,
      origin: 'trained',
      run,
      steps: 0,
      textTitle: corpus.title,
      kvMeasured: measuredCacheBytes(lm, Array.from(ids.subarray(0, 8))),
      kvFormula: 4 * causalLMCacheElementsPerToken(config),
      decodeTokensPerSecond: null,
      backend,
    });
  }
  stopRequested = false;
  renderTable();
  const started = performance.now();
  for (let step = 0; step < steps && !stopRequested; step++) {
    for (const run of runs) {
      await run.trainStep();
      models.get(run.variant)!.steps = run.step;
      await tf.nextFrame(); // keep the page responsive between steps
    }
    renderTable();
    drawChart();
    const seconds = (performance.now() - started) / 1000;
    const last = runs.map((r) => `${r.variant} ${fmt(r.losses[r.losses.length - 1][1])}`).join(' · ');
    $('train-status').textContent = `step ${step + 1}/${steps} · ${seconds.toFixed(0)} s · loss ${last}`;
  }
  $('train-status').textContent += ' · validating…';
  for (const run of runs) {
    run.validate(validation);
    await tf.nextFrame();
  }
  renderTable();
  drawChart();
  const summaryText = runs.map((r) => `${r.variant} ${fmt(r.validationLoss)} (${r.tokensPerSecond.toFixed(0)} tok/s)`).join(' · ');
  $('train-status').textContent =
    `${stopRequested ? 'stopped' : 'done'} after ${runs[0].step} steps on ${backend} · validation loss ${summaryText}`;
  root.dataset.trainedSteps = String(runs[0].step);
  refreshModelLists();
}

function drawChart(): void {
  const trained = orderedEntries().filter((e) => e.run !== null);
  const xMax = Math.max(1, ...trained.map((e) => e.run!.options.steps));
  drawLineChart(
    $<HTMLCanvasElement>('loss-chart'),
    trained.map((e) => ({
      name: e.variant.toUpperCase(),
      color: COLORS[e.variant],
      points: e.run!.losses,
    })),
    { xMax, xLabel: 'step', yLabel: 'training loss (nats/char)', smoothing: 0.2, emptyText: 'press Train to see the loss curves' },
  );
}

function renderTable(): void {
  const entries = orderedEntries();
  const maxKv = Math.max(1, ...entries.map((e) => e.kvMeasured));
  $('variant-table').querySelector('tbody')!.innerHTML = entries
    .map((e) => {
      const run = e.run;
      const loss = run && run.losses.length > 0 ? run.losses[run.losses.length - 1][1] : null;
      const name = `${e.variant.toUpperCase()}${e.origin === 'trained' ? '' : ` <span class="muted">(${e.origin})</span>`}`;
      return `<tr data-key="${escapeHtml(e.key)}" data-variant="${e.variant}">
      <td><span class="swatch" style="background:${COLORS[e.variant]}"></span>${name}</td>
      <td>${e.lm.countParams().toLocaleString('en-US')}</td>
      <td data-kv="${e.kvMeasured}">${e.kvMeasured}<span class="bar" style="width:${Math.round((60 * e.kvMeasured) / maxKv)}px"></span></td>
      <td>${e.kvFormula}</td>
      <td>${e.steps}</td>
      <td>${fmt(loss)}</td>
      <td>${fmt(run?.validationLoss)}</td>
      <td>${run && run.step > 0 ? run.tokensPerSecond.toFixed(0) : '–'}</td>
      <td>${e.decodeTokensPerSecond === null ? '–' : e.decodeTokensPerSecond.toFixed(1)}</td>
      <td>${e.backend}</td></tr>`;
    })
    .join('');
}

// ------------------------------------------------------------------ attention maps

/**
 * The attention probabilities `[maps, T, T]` of block `layer` for `ids`, with the eager API: the model's
 * embedding and the blocks before `layer`, then that block's norm and attention layer with
 * `returnAttentionScores: true`.
 */
async function attentionMaps(lm: CausalLM, ids: number[], layer: number): Promise<number[][][]> {
  const input = tf.tensor2d([ids], [1, ids.length], 'int32');
  const scores = tf.tidy(() => {
    let h = lm.embedding.call(input, {}) as tf.Tensor; // [1, T, D]
    for (let i = 0; i < layer; i++) h = lm.blocks[i].call(h, {}) as tf.Tensor;
    const block = lm.blocks[layer];
    const [, s] = block.attention.call(block.attentionNorm.call(h, {}), { returnAttentionScores: true }) as tf.Tensor[];
    return s; // [1, maps, T, T]
  });
  const maps = (await scores.array()) as number[][][][];
  tf.dispose([input, scores]);
  return maps[0];
}

/** How a variant's maps relate to its heads: groups of maps (boxes) with a caption per map. */
function mapLayout(attention: AttentionConfig, maps: number): { title: string; groups: Array<Array<{ index: number; caption: string }>> } {
  const a = attention as AttentionConfig & Record<string, number>;
  const variant = variantOf(attention);
  if (a.kind === 'gta') {
    const perMap = a.numHeads / a.numQueryHeads;
    return {
      title:
        `GTA · ${maps} maps for ${a.numHeads} heads: each map is shared by a group of ${perMap} heads ` +
        `(${a.numKeyHeads} key head, ${a.numValueHeads} value latent of ${a.valueDim})`,
      groups: Array.from({ length: maps }, (_, g) => [{ index: g, caption: `map ${g} · heads ${g * perMap}–${(g + 1) * perMap - 1}` }]),
    };
  }
  if (a.kind === 'mla') {
    return {
      title: `MLA · ${maps} maps, one per head (keys and values decompressed from one ${a.kvLoraRank}-d latent)`,
      groups: [Array.from({ length: maps }, (_, h) => ({ index: h, caption: `head ${h}` }))],
    };
  }
  const perKv = a.numQueryHeads / a.numKeyValueHeads;
  const sharing =
    variant === 'mha'
      ? 'each head has its own key/value head'
      : variant === 'mqa'
        ? 'all heads share one key/value head'
        : `heads in a box share one of ${a.numKeyValueHeads} key/value heads`;
  return {
    title: `${variant.toUpperCase()} · ${maps} maps, one per query head; ${sharing}`,
    groups: Array.from({ length: a.numKeyValueHeads }, (_, k) =>
      Array.from({ length: perKv }, (_, j) => ({
        index: k * perKv + j,
        caption: `head ${k * perKv + j}`,
      })),
    ),
  };
}

async function showMaps(): Promise<void> {
  const layer = Number($<HTMLSelectElement>('maps-layer').value);
  const text = $<HTMLInputElement>('maps-text').value;
  if ([...text].length < 2) throw new Error('enter at least two characters to see attention maps.');
  const container = $('maps');
  container.innerHTML = '';
  let canvases = 0;
  for (const entry of orderedEntries()) {
    if (layer >= entry.lm.blocks.length) continue;
    const ids = Array.from(entry.tokenizer.encode(text));
    const maps = await attentionMaps(entry.lm, ids, layer);
    const layout = mapLayout(entry.lm.config.attention, maps.length);
    const section = document.createElement('div');
    section.className = 'maps-variant';
    section.dataset.variant = entry.variant;
    section.dataset.key = entry.key;
    section.dataset.maps = String(maps.length);
    section.innerHTML =
      `<h3><span class="swatch" style="background:${COLORS[entry.variant]}"></span>${escapeHtml(layout.title)}` +
      `${entry.origin === 'trained' ? '' : ` <span class="muted">(${entry.origin})</span>`}</h3>`;
    const row = document.createElement('div');
    row.className = 'maps-row';
    const labels = [...text];
    const cell = Math.max(3, Math.min(10, Math.floor(150 / ids.length)));
    for (const group of layout.groups) {
      const box = document.createElement('div');
      box.className = 'maps-group';
      for (const { index, caption } of group) {
        const figure = document.createElement('figure');
        const canvas = document.createElement('canvas');
        canvas.className = 'attention-map';
        drawHeatmap(canvas, maps[index], { labels, cell, causal: true });
        const cap = document.createElement('figcaption');
        cap.textContent = caption;
        figure.append(canvas, cap);
        box.append(figure);
        canvases += 1;
      }
      row.append(box);
    }
    section.append(row);
    container.append(section);
    await tf.nextFrame();
  }
  $('maps-status').textContent =
    `block ${layer}, ${[...text].length} tokens, ${canvases} maps · color: √probability (dark = 0, yellow = 1), gray = future (masked)`;
}

// ------------------------------------------------------------------ generation

async function generateText(): Promise<void> {
  const entry = models.get($<HTMLSelectElement>('gen-model').value);
  if (!entry) throw new Error('choose a model to generate with.');
  const prompt = $<HTMLInputElement>('gen-prompt').value;
  const promptIds = Array.from(entry.tokenizer.encode(prompt));
  if (promptIds.length === 0) throw new Error('enter a prompt.');
  const room = entry.lm.config.maxSequenceLength - promptIds.length;
  const maxNewTokens = Math.min(room, numberInput('gen-tokens', { min: 1, max: MAX_SEQUENCE, integer: true }));
  const temperature = numberInput('gen-temp', { min: 0, max: 10, integer: false });
  const topKText = $<HTMLInputElement>('gen-topk').value.trim();
  const topK = topKText === '' ? undefined : numberInput('gen-topk', { min: 1, max: entry.tokenizer.vocabSize, integer: true });
  const seed = numberInput('gen-seed', { min: 0, max: 2 ** 31, integer: true });
  const out = $('gen-output');
  out.innerHTML = `<span class="prompt">${escapeHtml(prompt)}</span>`;
  const generated = document.createTextNode('');
  out.append(generated);
  $('gen-stats').textContent = 'generating…';
  const tokens: number[] = [];
  const result = await entry.lm.generate(promptIds, {
    maxNewTokens,
    temperature,
    topK,
    seed,
    onToken: async ({ tokens: chosen }) => {
      tokens.push(chosen[0]);
      generated.appendData(entry.tokenizer.decode([chosen[0]]));
      await yieldToBrowser(); // let the page show the token
    },
  });
  const text = entry.tokenizer.decode(result.tokens[0]);
  out.dataset.generated = text;
  out.dataset.tokens = String(result.tokens[0].length);
  out.dataset.model = entry.key;
  entry.decodeTokensPerSecond = result.decodeTokensPerSecond;
  $('gen-stats').textContent =
    `${entry.key} on ${tf.getBackend()} · ${result.tokens[0].length} tokens · prefill ` +
    `${result.prefillMs.toFixed(0)} ms · decode ${result.decodeTokensPerSecond.toFixed(1)} tokens/s (KV cache, one token at a time)`;
  $('gen-stats').dataset.decodeTokensPerSecond = String(result.decodeTokensPerSecond);
  renderTable();
}

// ------------------------------------------------------------------ save and load

function attachMetadata(entry: ModelEntry): void {
  const meta = (entry.lm.model.getUserDefinedMetadata() ?? {}) as Record<string, unknown>;
  const demo: DemoMetadata = { tokenizer: entry.tokenizer.toJSON(), variant: entry.variant, steps: entry.steps, text: entry.textTitle };
  entry.lm.model.setUserDefinedMetadata({ ...meta, tfjsGtaDemo: demo });
}

async function loadEntry(source: string | tf.io.IOHandler, origin: ModelEntry['origin']): Promise<ModelEntry> {
  const lm = await CausalLM.load(source);
  const meta = (lm.model.getUserDefinedMetadata() as Record<string, DemoMetadata | undefined> | undefined)?.tfjsGtaDemo;
  let tok: Tokenizer;
  if (meta?.tokenizer) tok = tokenizerFromJSON(meta.tokenizer);
  else if (lm.config.vocabSize === tokenizer.vocabSize)
    tok = tokenizer; // saved elsewhere: assume the page's text
  else {
    lm.dispose();
    throw new Error(
      `the model has no tokenizer in its metadata and its vocabulary (${lm.config.vocabSize}) does not match the page's text.`,
    );
  }
  const variant = variantOf(lm.config.attention);
  const probe = Array.from(tok.encode(PROBE_PROMPT)).slice(0, 8);
  const entry: ModelEntry = {
    key: `${variant} (${origin})`,
    variant,
    lm,
    tokenizer: tok,
    origin,
    run: null,
    steps: meta?.steps ?? 0,
    textTitle: meta?.text ?? '',
    kvMeasured: measuredCacheBytes(lm, probe.length > 0 ? probe : [0]),
    kvFormula: 4 * causalLMCacheElementsPerToken(lm.config),
    decodeTokensPerSecond: null,
    backend: tf.getBackend(),
  };
  addEntry(entry);
  renderTable();
  return entry;
}

/** Logits at the last prompt position and a greedy continuation: what "the same model" must reproduce. */
async function probe(
  entry: ModelEntry,
  prompt = PROBE_PROMPT,
  tokens = 40,
): Promise<{ promptIds: number[]; lastLogits: number[]; greedy: number[]; text: string }> {
  const promptIds = Array.from(entry.tokenizer.encode(prompt));
  const logits = entry.lm.logits([promptIds]);
  const last = tf.tidy(() => tf.squeeze(tf.slice(logits, [0, promptIds.length - 1, 0], [1, 1, -1])));
  const lastLogits = Array.from(await last.data());
  tf.dispose([logits, last]);
  const g = await entry.lm.generate(promptIds, { maxNewTokens: tokens });
  return { promptIds, lastLogits, greedy: g.tokens[0], text: entry.tokenizer.decode(g.tokens[0]) };
}

async function saveToIndexedDB(): Promise<void> {
  const entry = models.get($<HTMLSelectElement>('save-model').value);
  if (!entry) throw new Error('choose a model to save.');
  attachMetadata(entry);
  const url = `indexeddb://${IDB_PREFIX}${entry.variant}`;
  const saved = await entry.lm.save(url);
  const before = await probe(entry);
  const loaded = await loadEntry(url, 'IndexedDB');
  const after = await probe(loaded);
  const maxDiff = Math.max(...before.lastLogits.map((v, i) => Math.abs(v - after.lastLogits[i])));
  const same = before.greedy.length === after.greedy.length && before.greedy.every((t, i) => t === after.greedy[i]);
  const status = $('save-status');
  status.dataset.url = url;
  status.dataset.maxLogitDiff = String(maxDiff);
  status.dataset.greedySame = String(same);
  status.innerHTML =
    `Saved <code>${url}</code> (${((saved.modelArtifactsInfo.weightDataBytes ?? 0) / 1024).toFixed(0)} KB of weights) and loaded it back as ` +
    `“${escapeHtml(loaded.key)}”: max |Δ logit| = ${maxDiff.toExponential(1)}, greedy ${before.greedy.length} tokens ` +
    `<span class="${same ? 'ok' : 'bad'}">${same ? 'identical ✓' : 'differ ✗'}</span>`;
  await refreshSavedList(url);
}

async function loadFromIndexedDB(): Promise<void> {
  const url = $<HTMLSelectElement>('saved-list').value;
  if (!url) throw new Error('nothing saved in IndexedDB yet.');
  const entry = await loadEntry(url, 'IndexedDB');
  $('save-status').innerHTML =
    `Loaded <code>${escapeHtml(url)}</code> as “${escapeHtml(entry.key)}” (${entry.lm.countParams().toLocaleString('en-US')} parameters, ${entry.steps} training steps).`;
  $<HTMLSelectElement>('gen-model').value = entry.key;
}

async function deleteFromIndexedDB(): Promise<void> {
  const url = $<HTMLSelectElement>('saved-list').value;
  if (!url) return;
  await tf.io.removeModel(url);
  $('save-status').textContent = `Deleted ${url}.`;
  await refreshSavedList();
}

async function download(): Promise<void> {
  const entry = models.get($<HTMLSelectElement>('save-model').value);
  if (!entry) throw new Error('choose a model to download.');
  attachMetadata(entry);
  const name = `${IDB_PREFIX}${entry.variant}`;
  await entry.lm.save(`downloads://${name}`);
  const status = $('save-status');
  status.dataset.download = name;
  status.innerHTML =
    `Downloaded <code>${name}.json</code> and <code>${name}.weights.bin</code>. In Node: ` +
    `<code>await CausalLM.load('file:///path/to/${name}.json')</code> (keep both files in one folder).`;
}

/** Saves a blob under `name` through a temporary link (what the browser shows as a download). */
function saveBlob(name: string, data: BlobPart, type: string): void {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** The model as a Hugging Face checkpoint for PyTorch: config.json, model.safetensors and our tokenizer. */
async function downloadForPyTorch(): Promise<void> {
  const entry = models.get($<HTMLSelectElement>('save-model').value);
  if (!entry) throw new Error('choose a model to download.');
  const { config, tensors } = exportHF(entry.lm);
  saveBlob('config.json', JSON.stringify(config, null, 2), 'application/json');
  saveBlob('model.safetensors', new Uint8Array(serializeSafetensors(tensors)), 'application/octet-stream');
  saveBlob('tfjs-gta-tokenizer.json', JSON.stringify(entry.tokenizer.toJSON()), 'application/json');
  const status = $('save-status');
  status.dataset.download = 'hf';
  status.innerHTML =
    `Downloaded <code>config.json</code>, <code>model.safetensors</code> (${String(config.architectures)}) and ` +
    '<code>tfjs-gta-tokenizer.json</code>. Put them in one folder: <code>AutoModelForCausalLM.from_pretrained(folder)</code> ' +
    "in PyTorch (GTA needs the authors' modeling code), or <code>npx tfjs-gta import --hf folder --out model</code>.";
}

async function loadFiles(files: FileList): Promise<void> {
  const list = [...files];
  const json = list.find((f) => f.name.endsWith('.json'));
  const weights = list.filter((f) => f.name.endsWith('.bin'));
  if (!json || weights.length === 0) throw new Error('choose both files of a model: <name>.json and <name>.weights.bin.');
  const entry = await loadEntry(tf.io.browserFiles([json, ...weights]), 'files');
  $('save-status').innerHTML = `Loaded ${escapeHtml(json.name)} as “${escapeHtml(entry.key)}”.`;
}

async function refreshSavedList(select?: string): Promise<void> {
  const saved = Object.keys(await tf.io.listModels())
    .filter((u) => u.startsWith(`indexeddb://${IDB_PREFIX}`))
    .sort();
  const list = $<HTMLSelectElement>('saved-list');
  list.innerHTML = saved.map((u) => `<option value="${escapeHtml(u)}">${escapeHtml(u.slice('indexeddb://'.length))}</option>`).join('');
  if (select && saved.includes(select)) list.value = select;
  root.dataset.savedModels = String(saved.length);
  updateControls();
}

function refreshModelLists(): void {
  const entries = orderedEntries();
  for (const id of ['gen-model', 'save-model']) {
    const select = $<HTMLSelectElement>(id);
    const previous = select.value;
    select.innerHTML = entries.map((e) => `<option value="${escapeHtml(e.key)}">${escapeHtml(labelOf(e))}</option>`).join('');
    if (entries.some((e) => e.key === previous)) select.value = previous;
  }
  const layers = Math.min(...entries.map((e) => e.lm.blocks.length));
  const layerSelect = $<HTMLSelectElement>('maps-layer');
  if (Number.isFinite(layers) && layerSelect.options.length !== layers) {
    layerSelect.innerHTML = Array.from({ length: layers }, (_, i) => `<option value="${i}">${i}</option>`).join('');
    layerSelect.value = String(layers - 1);
  }
  root.dataset.models = String(entries.length);
  updateControls();
}

// ------------------------------------------------------------------ wiring

/** A test and debugging hook: `window.tfjsGtaDemo` (the e2e test reads results through it). */
function summary() {
  return {
    backend: tf.getBackend(),
    state: root.dataset.state,
    models: orderedEntries().map((e) => ({
      key: e.key,
      variant: e.variant,
      origin: e.origin,
      params: e.lm.countParams(),
      kvMeasured: e.kvMeasured,
      kvFormula: e.kvFormula,
      steps: e.steps,
      losses: e.run?.losses.map((p) => p[1]) ?? [],
      validationLoss: e.run?.validationLoss ?? null,
      tokensPerSecond: e.run?.tokensPerSecond ?? null,
      decodeTokensPerSecond: e.decodeTokensPerSecond,
      backend: e.backend,
      numAttentionMaps: e.lm.blocks[0].attention.numAttentionMaps(),
    })),
  };
}

(window as unknown as Record<string, unknown>).tfjsGtaDemo = {
  tf,
  models,
  summary,
  probe: (key: string, prompt?: string, tokens?: number) => {
    const entry = models.get(key);
    if (!entry) throw new Error(`no model ${key}`);
    return probe(entry, prompt, tokens);
  },
};

window.addEventListener('error', (e) => showError(e.error ?? e.message));
window.addEventListener('unhandledrejection', (e) => showError(e.reason));

function wire(): void {
  $('backend').addEventListener('change', (e) => {
    const name = (e.target as HTMLSelectElement).value;
    void task('switching', () =>
      switchBackend(name).catch((err) => {
        $<HTMLSelectElement>('backend').value = tf.getBackend();
        throw err;
      }),
    );
  });
  $('train').addEventListener('click', () => void task('training', trainSelected));
  $('stop').addEventListener('click', () => {
    stopRequested = true;
  });
  $('maps-show').addEventListener('click', () => void task('maps', showMaps));
  $('gen-run').addEventListener('click', () => void task('generating', generateText));
  $('save-idb').addEventListener('click', () => void task('saving', saveToIndexedDB));
  $('load-idb').addEventListener('click', () => void task('loading-model', loadFromIndexedDB));
  $('delete-idb').addEventListener('click', () => void task('deleting', deleteFromIndexedDB));
  $('save-download').addEventListener('click', () => void task('downloading', download));
  $('save-hf').addEventListener('click', () => void task('downloading', downloadForPyTorch));
  $('load-files').addEventListener('change', (e) => {
    const files = (e.target as HTMLInputElement).files;
    if (files && files.length > 0) void task('loading-model', () => loadFiles(files));
  });
  const drop = $('drop');
  $('file').addEventListener('change', (e) => {
    const file = (e.target as HTMLInputElement).files?.[0];
    if (file) void task('reading', () => useFile(file));
  });
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const file = e.dataTransfer?.files[0];
    if (file) void task('reading', () => useFile(file));
  });
  window.addEventListener('resize', drawChart);
}

async function init(): Promise<void> {
  wire();
  describeCorpus();
  const gpu = 'gpu' in navigator;
  $('webgpu-note').textContent =
    `WebGPU works where the browser exposes navigator.gpu with an adapter (this browser ${gpu ? 'does' : 'does not'}` +
    ' expose navigator.gpu); the page bundles @tensorflow/tfjs-backend-webgpu, an optional package for apps.';
  const wanted = new URLSearchParams(window.location.search).get('backend') ?? 'webgl';
  const order = [wanted, ...BACKENDS.filter((b) => b !== wanted)];
  let lastError: unknown = null;
  for (const name of order) {
    try {
      await switchBackend(name);
      break;
    } catch (e) {
      lastError = e;
      console.warn(`backend ${name} is not available: ${(e as Error).message}`);
    }
  }
  if (!root.dataset.backend) throw lastError ?? new Error('no tfjs backend could be started.');
  if (root.dataset.backend !== wanted) setStatus(`${wanted} is not available here; using ${root.dataset.backend}`);
  drawChart();
  renderTable();
  await refreshSavedList();
  refreshModelLists();
  root.dataset.state = 'idle';
}

init().catch((e) => {
  showError(e);
  root.dataset.state = 'failed';
});

// Keep VARIANTS referenced: the checkboxes list exactly the package's variants.
if (document.querySelectorAll('#variants input').length !== VARIANTS.length) console.warn('the page lists other variants than the package');
