/**
 * Test helpers for other folders' tests, the folder's face for test code (`_testing.ts` stays private to this
 * folder; production code imports neither).
 */

export * from "./_testing.ts";
