import { defineConfig } from 'vite';

// Built into src/admin/ui/dist, which the gyre binary embeds (src/admin/ui.rs). Fixed file names
// (no content hashes) and relative URLs: the UI is served at `{admin.handler_prefix}/`, whatever
// the prefix, and the committed build stays byte-for-byte reproducible (web/admin/check.sh).
export default defineConfig({
  base: './',
  build: {
    outDir: '../../src/admin/ui/dist',
    emptyOutDir: true,
    target: 'es2020',
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    rollupOptions: {
      output: {
        entryFileNames: 'assets/index.js',
        chunkFileNames: 'assets/[name].js',
        assetFileNames: 'assets/[name][extname]',
      },
    },
  },
});
