/**
 * Optional packages: features that only some users need (plots, the built-in corpus, the CLI's progress
 * bar) load their package on first use, so a library user installs none of them. A missing one is a
 * `MissingPackageError` that says which package and how to install it.
 */
import { ValueError } from './errors.js';

/** Thrown when an optional package that a feature needs is not installed. */
export class MissingPackageError extends ValueError {
  constructor(
    readonly packageName: string,
    purpose: string,
  ) {
    super(`${purpose} needs the optional package ${packageName}, which is not installed: run \`npm install ${packageName}\`.`);
    this.name = 'MissingPackageError';
  }
}

function isNotFound(e: unknown, name: string): boolean {
  const err = e as NodeJS.ErrnoException;
  return (err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND') && String(err.message).includes(name);
}

/**
 * Imports the optional package `name` for `purpose`. The specifier is a variable so bundlers do not try
 * to resolve packages that the app did not install.
 */
export async function importOptional<T = unknown>(name: string, purpose: string): Promise<T> {
  try {
    return (await import(/* @vite-ignore */ name)) as T;
  } catch (e) {
    if (isNotFound(e, name)) throw new MissingPackageError(name, purpose);
    throw e;
  }
}
