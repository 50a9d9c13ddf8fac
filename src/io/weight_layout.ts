/**
 * The older 3-D attention weight layout of saved models. The code lives in `src/models/weight_layout.ts`
 * (the model loader uses it, and models import nothing from io); this module keeps the old import path.
 */
export { flatShape, withFlatAttentionWeights } from '../models/weight_layout.js';
