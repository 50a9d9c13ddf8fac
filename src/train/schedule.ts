/** Learning-rate schedule: linear warm-up to the peak, then cosine decay to `minLearningRate`. */
export interface ScheduleOptions {
  peakLearningRate: number;
  warmupSteps: number;
  totalSteps: number;
  /** Floor of the cosine. Default peak / 10. */
  minLearningRate?: number;
}

/** Learning rate at `step` (0-based). */
export function warmupCosine(step: number, o: ScheduleOptions): number {
  const min = o.minLearningRate ?? o.peakLearningRate / 10;
  if (o.warmupSteps > 0 && step < o.warmupSteps) return (o.peakLearningRate * (step + 1)) / o.warmupSteps;
  const span = Math.max(1, o.totalSteps - o.warmupSteps);
  const progress = Math.min(1, (step - o.warmupSteps) / span);
  return min + 0.5 * (o.peakLearningRate - min) * (1 + Math.cos(Math.PI * progress));
}
