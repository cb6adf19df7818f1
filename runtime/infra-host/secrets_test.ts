import { equal, ok, rejects } from "node:assert/strict";
import { decryptSecret, encryptSecret, importMasterKey, newMasterKeyText } from "./secrets.ts";

Deno.test("secrets: AES-GCM round trip; name and version are authenticated; another key fails", async () => {
  const key = await importMasterKey(newMasterKeyText(), "test key");
  const sealed = await encryptSecret(key, "db-password", 1, "hunter2");
  ok(!atob(sealed.ciphertext).includes("hunter2"));
  equal(await decryptSecret(key, "db-password", 1, sealed), "hunter2");
  await rejects(() => decryptSecret(key, "other", 1, sealed), /does not decrypt/);
  await rejects(() => decryptSecret(key, "db-password", 2, sealed), /does not decrypt/);
  const other = await importMasterKey(newMasterKeyText(), "other key");
  await rejects(() => decryptSecret(other, "db-password", 1, sealed), /does not decrypt/);
  const again = await encryptSecret(key, "db-password", 1, "hunter2");
  ok(again.iv !== sealed.iv && again.ciphertext !== sealed.ciphertext, "a fresh IV per encryption");
});

Deno.test("secrets: a bad master key file is refused naming the flag, never echoing the text", async () => {
  await rejects(
    () => importMasterKey("c2hvcnQ=", "--secrets-key-file k"),
    /--secrets-key-file k: holds 5 bytes/,
  );
  await rejects(
    () => importMasterKey("not base64 !!", "--secrets-key-file k"),
    /--secrets-key-file k: not base64/,
  );
});
