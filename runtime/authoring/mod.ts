/**
 * Authoring tools for slice developers: `slice build` (bundle a slice and derive its manifest, write and read
 * built slices) and `slice init` (scaffold a slice project). The CLI uses them; tests use them to build
 * fixtures.
 */

export {
  type BuildOptions,
  buildSlice,
  type BuiltSlice,
  builtSliceFileNames,
  bundleSlice,
  readBuiltSlice,
  writeBuiltSlice,
} from "./build.ts";
export { initSlice, type InitSliceOptions } from "./init.ts";
