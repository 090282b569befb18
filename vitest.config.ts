import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Decides once per run which Redis the Redis-backed suites use (see the file's header).
    globalSetup: ['test/support/global-setup.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 30000,
    hookTimeout: 60000,
    pool: 'forks',
  },
});
