/**
 * The dashboard's 15-minute history in a real browser (Debian's headless Chromium through
 * playwright-core): with traffic over three backends, one backend fails until outlier detection
 * ejects it, then heals and comes back. The share chart shows its line dropping to about 0 after
 * an "ejected" mark and rising again after a "back" mark, while the RPC/s, p99 and failed-RPC charts
 * fill in. Screenshot: test-output/dashboard-history.png.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { startEchoSetup, type EchoSetup } from '../helpers/harness.ts';
import { steadyLoad, type SteadyLoad } from '../helpers/load.ts';
import { openDashboard } from '../helpers/dashboard-page.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';

const OUTPUT_DIR = fileURLToPath(new URL('../../test-output/', import.meta.url));
const CONCURRENCY = 4;
/** Longer than two 5 s history steps, so at least one whole step falls inside the ejection. */
const EJECTION = '12s';

interface PageElement {
  readonly dataset: Record<string, string | undefined>;
  getAttribute(name: string): string | null;
}
declare const document: { querySelector(selector: string): PageElement | null; querySelectorAll(selector: string): Iterable<PageElement> };

describe('dashboard history in headless Chromium', () => {
  let setup: EchoSetup | undefined;
  let backends: EchoServerHandle[];
  let browser: Browser;
  let page: Page;
  let failingKey: string;
  let pageErrors: string[] = [];
  let load: SteadyLoad | undefined;

  before(async () => {
    mkdirSync(OUTPUT_DIR, { recursive: true });
    setup = await startEchoSetup(3, { admin: { port: 0 } }, {
      cluster: {
        lb_policy: 'round_robin',
        outlier_detection: { consecutive_gateway_errors: 3, base_ejection_time: EJECTION, max_ejection_time: EJECTION },
      },
    });
    backends = setup.backends;
    failingKey = `127.0.0.1:${backends[0]!.port}`;
    load = steadyLoad(setup.client, { concurrency: CONCURRENCY });
    ({ browser, page, pageErrors } = await openDashboard(setup.proxy.proxy, { width: 1100, height: 1000 }));
  });

  after(async () => {
    await load?.stop();
    await browser?.close();
    await setup?.close();
  });

  /** The failing endpoint's share per history step (NaN where a step had no traffic), oldest first. */
  const shares = (p: Page, key: string) => p.evaluate((k) => {
    const line = document.querySelector(`[data-cluster="echo"] [data-chart="share"] path[data-for="${k}"]`);
    return (line?.getAttribute('data-values') ?? '').split(',').map((value) => (value === '' ? Number.NaN : Number(value)));
  }, key);

  test('with traffic flowing, every chart fills in and each endpoint carries about a third', async () => {
    await page.waitForFunction((key) => {
      const line = document.querySelector(`[data-cluster="echo"] [data-chart="share"] path[data-for="${key}"]`);
      const values = (line?.getAttribute('data-values') ?? '').split(',').filter(Boolean).map(Number);
      // A whole 5 s step (not only the one being filled) at about a third.
      return values.slice(0, -1).some((value) => value > 0.25 && value < 0.42);
    }, failingKey, { timeout: 15_000, polling: 200 });
    const legend = await page.locator('[data-cluster="echo"] .legend li').allInnerTexts();
    assert.deepEqual(legend.map((text) => text.trim()).sort(), backends.map((backend) => `127.0.0.1:${backend.port}`).sort());
    for (const chart of ['rps', 'p99']) {
      const values = (await page.locator(`[data-cluster="echo"] [data-chart="${chart}"] path`).getAttribute('data-values'))!.split(',').filter(Boolean).map(Number);
      assert.ok(values.some((value) => value > 0), `${chart} has data`);
    }
    const note = await page.locator('[data-cluster="echo"] .marks-note').textContent();
    for (const backend of backends) assert.match(note!, new RegExp(`joined 127\\.0\\.0\\.1:${backend.port}`), 'the endpoints joining at start are marks too');
  });

  test('an ejection and the recovery show in the history: the share drops to about 0 after the mark and comes back', async () => {
    backends[0]!.behaviour.unavailableEvery = 1;
    const ejected = page.locator(`[data-cluster="echo"] [data-chart="share"] .mark[data-kind="ejected"][data-for="${failingKey}"]`);
    await ejected.waitFor({ timeout: 10_000 });
    backends[0]!.behaviour.unavailableEvery = 0; // healed: it serves again once the ejection ends

    // A whole step inside the ejection: the failing endpoint's line at (about) 0.
    await page.waitForFunction((key) => {
      const line = document.querySelector(`[data-cluster="echo"] [data-chart="share"] path[data-for="${key}"]`);
      const values = (line?.getAttribute('data-values') ?? '').split(',').filter(Boolean).map(Number);
      return values.slice(0, -1).some((value) => value < 0.05);
    }, failingKey, { timeout: 20_000, polling: 200 });
    const returned = page.locator(`[data-cluster="echo"] [data-chart="share"] .mark[data-kind="returned"][data-for="${failingKey}"]`);
    await returned.waitFor({ timeout: 20_000 });
    // Back in the rotation: the latest step gives it about a third again.
    await page.waitForFunction((key) => {
      const line = document.querySelector(`[data-cluster="echo"] [data-chart="share"] path[data-for="${key}"]`);
      const values = (line?.getAttribute('data-values') ?? '').split(',').filter(Boolean).map(Number);
      return values.at(-1)! > 0.2;
    }, failingKey, { timeout: 15_000, polling: 200 });

    const history = await shares(page, failingKey);
    const low = history.findIndex((value) => value < 0.05);
    const high = history.findLastIndex((value) => value > 0.2);
    assert.ok(low > 0 && history.slice(0, low).some((value) => value > 0.25), `a third before the ejection, then about 0: ${history.join(',')}`);
    assert.ok(high > low, `back above 20% after it: ${history.join(',')}`);
    const ejectedAt = Number(await ejected.getAttribute('data-time'));
    const returnedAt = Number(await returned.getAttribute('data-time'));
    assert.ok(returnedAt - ejectedAt >= 11_000, `ejected for the configured ${EJECTION} (${returnedAt - ejectedAt} ms)`);
    assert.equal(await ejected.locator('text').textContent(), 'ejected');
    assert.equal(await returned.locator('text').textContent(), 'back');
    assert.equal(await ejected.locator('title').textContent().then((text) => text?.endsWith(`ejected ${failingKey}`)), true);
    // The same changes in words under the charts, and the UNAVAILABLE answers on the failure chart.
    const note = await page.locator('[data-cluster="echo"] .marks-note').innerText();
    assert.match(note, new RegExp(`ejected ${failingKey.replaceAll('.', '\\.')}.*back ${failingKey.replaceAll('.', '\\.')}`));
    const failures = (await page.locator('[data-cluster="echo"] [data-chart="errors"] path').getAttribute('data-values'))!.split(',').filter(Boolean).map(Number);
    assert.ok(failures.some((value) => value > 0), 'the failed RPCs show');
    // Marks are drawn on every chart, not only the share chart.
    assert.equal(await page.locator(`[data-cluster="echo"] [data-chart="rps"] .mark[data-kind="ejected"]`).count(), 1);

    await page.locator('[data-cluster="echo"] .history').screenshot({ path: `${OUTPUT_DIR}/dashboard-history.png` });
    await page.screenshot({ path: `${OUTPUT_DIR}/dashboard-history-page.png`, fullPage: true });
    assert.deepEqual(pageErrors, [], 'no script errors or blocked resources in the page');
  });
});
