// Minimal POSIX path helpers (no @std/path: JSR is unreachable from the build machines).

export function fromFileUrl(url: URL | string): string {
  const u = typeof url === "string" ? new URL(url) : url;
  if (u.protocol !== "file:") throw new TypeError(`not a file URL: ${u.href}`);
  return decodeURIComponent(u.pathname);
}

export function join(...parts: string[]): string {
  return normalize(parts.filter((p) => p.length > 0).join("/"));
}

export function resolve(path: string): string {
  return normalize(path.startsWith("/") ? path : `${Deno.cwd()}/${path}`);
}

export function normalize(path: string): string {
  const absolute = path.startsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
    } else out.push(part);
  }
  const joined = out.join("/");
  return absolute ? `/${joined}` : joined || ".";
}
