// eslint (make lint) for the web page's modules, as browsers run them, and their node tests.
import js from "@eslint/js";
import globals from "globals";

export default [
  // The linted files are ours alone: not the virtual environment's packages, not run output.
  { ignores: [".venv/", "node_modules/", "var/", "build/", "bench/results/"] },
  js.configs.recommended,
  {
    rules: {
      eqeqeq: "error",
      "no-var": "error",
      "prefer-const": "error",
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "none" }],
    },
  },
  {
    files: ["api/ui/js/**/*.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: globals.browser },
  },
  {
    files: ["tests/ui/**/*.mjs", "eslint.config.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: globals.node },
  },
];
