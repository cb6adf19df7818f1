/**
 * The browser tests' shared pieces: Debian's Chromium through playwright-core (headless, no sandbox as root,
 * no background traffic, a fresh profile per launch), axe-core's serious and critical violations on a page, and
 * screenshots into the artifacts directory.
 */

import { type Browser, chromium, type Page } from "playwright-core";

const ROOT = new URL("../..", import.meta.url).pathname;
export const CHROMIUM = "/usr/bin/chromium";
/** Where screenshots go (CI keeps it as the run's artifacts when set). */
export const ARTIFACTS = Deno.env.get("AETHER_TEST_ARTIFACTS") ??
  `${Deno.env.get("TMPDIR") ?? "/tmp"}/aether-dashboard`;

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
  });
}

/** axe-core's serious and critical violations on the page as it is now (empty when there are none). */
export async function accessibilityProblems(page: Page): Promise<string[]> {
  const source = await Deno.readTextFile(`${ROOT}node_modules/axe-core/axe.min.js`);
  // evaluate() runs through the DevTools protocol, outside the page's CSP (which refuses inline scripts).
  await page.evaluate(`${source}\n;0`);
  const violations = await page.evaluate(async () => {
    // deno-lint-ignore no-explicit-any
    const axe = (globalThis as any).axe;
    // deno-lint-ignore no-explicit-any
    const result = await axe.run((globalThis as any).document, { resultTypes: ["violations"] });
    // deno-lint-ignore no-explicit-any
    return result.violations.map((v: any) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.length,
    }));
  }) as { id: string; impact: string; help: string; nodes: number }[];
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}, ${v.nodes} element(s)): ${v.help}`);
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
}
