/** Types of chromium_args.mjs (shared by the .mjs test scripts and the TypeScript runners). */
export declare const HEADLESS_ARGS: readonly string[];
export declare const WEBGPU_ARGS: readonly string[];
