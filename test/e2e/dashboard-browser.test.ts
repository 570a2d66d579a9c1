/**
 * The live dashboard in a real browser: Debian's headless Chromium driven by
 * playwright-core (which downloads no browser of its own). With no traffic the
 * bars sit at 0; with traffic over three backends each carries about a third;
 * when one backend fails until outlier detection ejects it, the page says
 * "ejected", its bar shrinks while the others take the traffic, and the recent
 * changes list the ejection. Screenshots go to test-output/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { startEchoSetup, startProxy, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { steadyLoad, type SteadyLoad } from '../helpers/load.ts';
import { adminUrl } from '../helpers/admin.ts';
import { launchChromium, openDashboard } from '../helpers/dashboard-page.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';

const OUTPUT_DIR = fileURLToPath(new URL('../../test-output/', import.meta.url));
const WAIT = { timeout: 10_000, polling: 100 } as const;
const CONCURRENCY = 4;

/** The little of the page's DOM that the in-page predicates use (tests compile without the DOM lib). */
interface PageElement {
  readonly dataset: Record<string, string | undefined>;
  querySelector(selector: string): PageElement | null;
  getBoundingClientRect(): { readonly width: number };
}
declare const document: { querySelector(selector: string): PageElement | null; querySelectorAll(selector: string): Iterable<PageElement> };

describe('dashboard in headless Chromium', () => {
  let setup: EchoSetup | undefined;
  let backends: EchoServerHandle[];
  let proxy: RunningProxy;
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
        // Ejected for longer than the test runs, so the page can be watched while it lasts.
        outlier_detection: { consecutive_gateway_errors: 3, base_ejection_time: '60s', max_ejection_time: '60s' },
      },
    });
    ({ backends, proxy } = setup);
    failingKey = `127.0.0.1:${backends[0]!.port}`;
    ({ browser, page, pageErrors } = await openDashboard(proxy.proxy, { width: 1100, height: 800 }));
  });

  after(async () => {
    await load?.stop();
    await browser?.close();
    await setup?.close();
  });

  const endpoint = (key: string) => page.locator(`[data-cluster="echo"] [data-endpoint="${key}"]`);

  test('with no traffic, every endpoint is listed with its bar at 0', async () => {
    await page.locator('#connection[data-connection="connected"]').waitFor(WAIT);
    const rows = page.locator('[data-cluster="echo"] .endpoint');
    assert.equal(await rows.count(), 3);
    for (const backend of backends) {
      const row = endpoint(`127.0.0.1:${backend.port}`);
      assert.equal(await row.getAttribute('data-share'), '0');
      assert.equal(await row.getAttribute('data-state'), 'up');
      assert.equal(await row.locator('.fill').evaluate((fill) => fill.getBoundingClientRect().width), 0);
    }
    assert.equal(await page.locator('[data-cluster="echo"]').getAttribute('data-rps'), '0');
    assert.match(await page.locator('[data-cluster="echo"] .codes').innerText(), /no RPCs/);
    assert.equal(await page.locator('[data-cluster="echo"] .policy').innerText(), 'round_robin');
  });

  test('when traffic flows, the bars move: each endpoint carries about a third', async () => {
    load = steadyLoad(setup!.client, { concurrency: CONCURRENCY });
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('[data-cluster="echo"] .endpoint')];
      const card = document.querySelector('[data-cluster="echo"]')!;
      return rows.length === 3 && Number(card.dataset.rps) > 0 && rows.every((row) => {
        const share = Number(row.dataset.share);
        const fill = row.querySelector('.fill')!.getBoundingClientRect().width;
        const track = row.querySelector('.bar')!.getBoundingClientRect().width;
        // The drawn bar, not only the attribute, has moved to about a third (its width animates).
        return share > 0.25 && share < 0.42 && Math.abs(fill / track - share) < 0.02;
      });
    }, undefined, WAIT);
    assert.ok(Number(await page.locator('[data-stat="rps"]').innerText()) > 0);
    assert.match(await page.locator('[data-stat="p50"]').innerText(), /^\d+(\.\d+)? ms$/);
    assert.match(await page.locator('[data-cluster="echo"] [data-code="OK"]').innerText(), /^OK \d+ \(100\.0%\)$/);
    assert.match(await endpoint(failingKey).locator('.numbers').innerText(), /^\d+\.\d% · \d+ RPCs in 10 s · \d+ active · EWMA [\d.]+ ms$/);
    await page.screenshot({ path: `${OUTPUT_DIR}/dashboard.png`, fullPage: true });
  });

  test('an ejected endpoint is shown as such, its bar shrinking while the others carry the traffic', async () => {
    backends[0]!.behaviour.unavailableEvery = 1;
    const failing = endpoint(failingKey);
    await page.locator(`[data-endpoint="${failingKey}"][data-state="ejected"]`).waitFor(WAIT);
    assert.equal(await failing.locator('.badge').innerText(), 'ejected');
    assert.match(await failing.locator('.detail').innerText(), /consecutive_gateway_errors · 1 ejection so far/);
    // The UNAVAILABLE answers that led to it are in the status mix, marked as non-OK in words too.
    assert.match(await page.locator('[data-cluster="echo"] [data-code="UNAVAILABLE"]').innerText(), /^⚠ UNAVAILABLE \d+ /);

    await page.waitForFunction((key) => {
      const rows = [...document.querySelectorAll('[data-cluster="echo"] .endpoint')];
      const ejected = rows.find((row) => row.dataset.endpoint === key)!;
      const others = rows.filter((row) => row !== ejected);
      return Number(ejected.dataset.share) < 0.2 && others.every((row) => Number(row.dataset.share) > 0.4 && row.dataset.state === 'up');
    }, failingKey, { ...WAIT, timeout: 15_000 }); // the 10 s window has to move on past the balanced traffic
    assert.equal(await failing.getAttribute('data-state'), 'ejected', 'still ejected');
  });

  test('the recent changes list the ejection', async () => {
    const change = page.locator(`#changes li[data-kind="ejected"][data-endpoint="${failingKey}"]`);
    await change.waitFor(WAIT);
    assert.match(await change.innerText(), new RegExp(`^\\d\\d:\\d\\d:\\d\\d ejected echo ${failingKey.replaceAll('.', '\\.')} ejected by outlier detection`));
    assert.ok(await change.locator('time').getAttribute('datetime'));
    await page.screenshot({ path: `${OUTPUT_DIR}/dashboard-ejected.png`, fullPage: true });
    assert.deepEqual(pageErrors, [], 'no script errors or blocked resources in the page');
  });

  test('when the admin listener goes away, the page says disconnected and keeps the last figures', async () => {
    await load?.stop();
    await proxy.close();
    await page.locator('#connection[data-connection="disconnected"]').waitFor(WAIT);
    assert.match(await page.locator('#connection').innerText(), /Disconnected .*retrying/);
    assert.equal(await page.locator('[data-cluster="echo"] .endpoint').count(), 3);
  });
});

test('dashboard with zero clusters says so', async () => {
  const proxy = await startProxy({ admin: { port: 0 } });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(adminUrl(proxy.proxy, '/dashboard/'));
    await page.locator('#connection[data-connection="connected"]').waitFor(WAIT);
    assert.equal(await page.locator('#no-clusters').isVisible(), true);
    assert.equal(await page.locator('.cluster').count(), 0);
  } finally {
    await browser.close();
    await proxy.close();
  }
});
