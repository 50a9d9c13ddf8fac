/**
 * Training progress for the CLI: a progress bar with loss, tokens per second and ETA on a terminal
 * (with the optional package cli-progress), plain log lines elsewhere (CI, notebooks, pipes).
 */
import type * as CliProgress from 'cli-progress';
import type { EvalRecord, StepRecord } from '../train/trainer.js';
import { MissingPackageError, importOptional } from '../utils/optional.js';

export interface Progress {
  start(label: string, total: number): void;
  step(record: StepRecord): void;
  evaluation(record: EvalRecord): void;
  stop(): void;
  log(line: string): void;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

async function loadBars(): Promise<typeof CliProgress | null> {
  try {
    const mod = await importOptional<{ default: typeof CliProgress }>('cli-progress', 'progress bars');
    return mod.default;
  } catch (e) {
    if (e instanceof MissingPackageError) return null; // plain lines instead
    throw e;
  }
}

export async function createProgress(interactive = Boolean(process.stdout.isTTY)): Promise<Progress> {
  const cliProgress = interactive ? await loadBars() : null;
  if (cliProgress !== null) {
    let bar: CliProgress.SingleBar | null = null;
    return {
      start(label, total) {
        bar?.stop();
        bar = new cliProgress.SingleBar(
          {
            format: `${label.padEnd(4)} {bar} {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_text}`,
            hideCursor: true,
            clearOnComplete: false,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, 0, { loss: '-', tps: '-', eta_text: '?' });
      },
      step(r) {
        bar?.update(r.step, { loss: r.loss.toFixed(3), tps: r.tokensPerSecond.toFixed(0), eta_text: duration(r.eta) });
      },
      evaluation(e) {
        bar?.update({ loss: `${e.loss.toFixed(3)} (val)` });
      },
      stop() {
        bar?.stop();
        bar = null;
      },
      log(line) {
        if (bar) bar.stop();
        console.log(line);
      },
    };
  }
  let label = '';
  let total = 0;
  let every = 1;
  return {
    start(l, t) {
      label = l;
      total = t;
      every = Math.max(1, Math.round(t / 10));
      console.log(`[${label}] training ${t} steps`);
    },
    step(r) {
      if (r.step % every === 0 || r.step === total) {
        console.log(
          `[${label}] step ${r.step}/${total} loss ${r.loss.toFixed(4)} lr ${r.learningRate.toExponential(2)} ` +
            `${r.tokensPerSecond.toFixed(0)} tok/s elapsed ${duration(r.elapsed)} ETA ${duration(r.eta)}`,
        );
      }
    },
    evaluation(e) {
      console.log(`[${label}] step ${e.step} validation loss ${e.loss.toFixed(4)} (perplexity ${e.perplexity.toFixed(3)})`);
    },
    stop() {},
    log(line) {
      console.log(line);
    },
  };
}
