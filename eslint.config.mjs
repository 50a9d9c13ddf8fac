// ESLint: the recommended JavaScript and typescript-eslint rules (syntax-only, no type information, so a
// lint of the whole tree takes seconds), plus the line limit. Formatting itself is Prettier's job
// (.prettierrc.json); `npm run lint` runs both checks and `npm run format` rewrites.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'node_modules/',
      '.gpu/',
      '.cache/',
      '.venv-hf/',
      '.tfjs-node-build/',
      'test-artifacts/',
      'bench-results/',
      'results/',
      'checkpoints/',
      'demo/dist/',
      '**/*.d.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
    rules: {
      'max-len': ['error', { code: 140, ignoreUrls: true, ignoreRegExpLiterals: true, ignoreStrings: true, ignoreTemplateLiterals: true }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  {
    files: ['**/*.cjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
