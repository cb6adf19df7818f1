// sorted-btree is CommonJS with `exports.default = BTree`; Deno's default import is `module.exports`.
import sortedBtree from "sorted-btree";

export const BTree = sortedBtree.default;
export type BTree<K, V> = InstanceType<typeof sortedBtree.default<K, V>>;
