// Lint: typescript-eslint's recommended type-aware rules; no `any` escapes.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  // examples/ are separate projects that their own test compiles against the installed package.
  { ignores: ["dist/**", "node_modules/**", "native/**", "examples/**", "eslint.config.js"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      // node:test's test()/describe() return promises the runner tracks itself.
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            { from: "package", package: "node:test", name: ["test", "it", "describe", "suite"] },
          ],
        },
      ],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    },
  },
);
