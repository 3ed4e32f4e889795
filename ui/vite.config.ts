import { defineConfig } from "vitest/config";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// The app loads the built files from disk through Tauri; no dev server is required.
export default defineConfig(({ mode }) => ({
  plugins: [svelte()],
  // Tests of runes ($effect) need Svelte's client build, not the server one Node would pick.
  resolve: mode === "test" ? { conditions: ["browser"] } : undefined,
  clearScreen: false,
  build: {
    target: "es2022",
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 800,
    // Rolldown warns when plugins take most of a build's time, which on a busy 2-core CI
    // machine is noise about the machine, not the code.
    rolldownOptions: { checks: { pluginTimings: false } },
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
}));
