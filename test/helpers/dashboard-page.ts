/**
 * A proxy's live dashboard open in a real browser: Debian's headless Chromium, driven by
 * playwright-core (which downloads no browser of its own).
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Switchyard } from '../../src/switchyard.ts';
import { adminUrl } from './admin.ts';

const CHROMIUM = '/usr/bin/chromium';

export interface DashboardPage {
  readonly browser: Browser;
  readonly page: Page;
  /** Script errors, and console errors such as blocked resources, in the order the page raised them. */
  readonly pageErrors: string[];
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}

/** Opens `proxy`'s /dashboard in a new headless Chromium; close it with `browser.close()`. */
export async function openDashboard(proxy: Switchyard, viewport: { width: number; height: number }): Promise<DashboardPage> {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => { if (message.type() === 'error') pageErrors.push(`${message.text()} ${message.location().url}`); });
    await page.goto(adminUrl(proxy, '/dashboard'));
    return { browser, page, pageErrors };
  } catch (error) {
    await browser.close();
    throw error;
  }
}
