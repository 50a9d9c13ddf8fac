/**
 * The loop both conformance runners end with: run every input, print each case's verdict, then the plain
 * line `N passed, N failed`; always closes the runner (a browser page, say).
 */

/**
 * Runs `inputs` one after another through `run`, counts the cases that `report` (which prints a case and
 * returns whether it passed) accepts, and returns the process exit code: 0 when all passed, else 1.
 */
export async function runCases<I, R>(
  inputs: readonly I[],
  run: (input: I) => Promise<R[]>,
  report: (result: R) => boolean,
  close: () => Promise<void>,
): Promise<number> {
  try {
    let failed = 0;
    let total = 0;
    for (const input of inputs) {
      for (const r of await run(input)) {
        total += 1;
        if (!report(r)) failed += 1;
      }
    }
    console.log(`${total - failed} passed, ${failed} failed`);
    return failed > 0 ? 1 : 0;
  } finally {
    await close();
  }
}
