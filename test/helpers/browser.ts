import {mkdir} from "node:fs/promises";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {chromium} from "playwright-core";
import type {Browser, Page} from "playwright-core";

/** Debian's Chromium; `.ci/run` installs it with apt-get. Override with `HEARTH_TEST_CHROMIUM`. */
const CHROMIUM = process.env.HEARTH_TEST_CHROMIUM ?? "/usr/bin/chromium";

/** Screenshots of each view, kept after the run for a person to look at. */
export const SCREENSHOT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "test-results", "screenshots");

export async function launchBrowser(): Promise<Browser> {
    return chromium.launch({
        executablePath: CHROMIUM,
        args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
    });
}

/**
 * A page on `url` that fails its test on any request off the server's origin, and on any error the app
 * throws: the UI must work offline, with nothing from the internet.
 */
export async function openApp(browser: Browser, url: string): Promise<{page: Page, problems: string[]}> {
    const {origin} = new URL(url);
    const context = await browser.newContext({viewport: {width: 1280, height: 860}});
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("request", (request) => {
        const url = request.url();
        if (!url.startsWith(origin) && !url.startsWith("data:"))
            problems.push(`request to ${url}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
        if (message.type() === "error" && !/Failed to load resource|net::ERR_/.test(message.text()))
            problems.push(`console error: ${message.text()}`);
    });
    await page.goto(url);
    return {page, problems};
}

export async function screenshot(page: Page, name: string): Promise<void> {
    await mkdir(SCREENSHOT_DIR, {recursive: true});
    await page.screenshot({path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true});
}
