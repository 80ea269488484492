import assert from "node:assert/strict";
import {readFile} from "node:fs/promises";
import {after, before, describe, it} from "node:test";
import type {Browser, Locator, Page} from "playwright-core";
import type {ModelToLoad} from "../native/engineTypes.js";
import {launchBrowser, openApp, screenshot} from "./helpers/browser.js";
import {eventually} from "./helpers/eventually.js";
import {freePort} from "./helpers/freePort.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {startTestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

/**
 * Images in the app's chat, in Debian's Chromium: a model that can see takes them from the button, a paste or a
 * drop, shows them in the message it sent and again after a reload; a model that cannot see says so.
 */

type ImageFile = {name: string, mimeType: string, base64: string};

const VISION_MODEL = "vision/gemma4-vision-script.gguf";
const VISION_PROJECTOR = "vision/mmproj-gemma4-vision-script.gguf";

async function imageFile(name: string): Promise<ImageFile> {
    const data = await readFile(await testModel(`vision/images/${name}`));
    return {name, mimeType: name.endsWith(".jpg") ? "image/jpeg" : "image/png", base64: data.toString("base64")};
}

/** What the functions run in the page use of its DOM, which the tests' compilation (no DOM library) does not declare. */
type PageGlobals = {
    DataTransfer: new () => {items: {add(file: object): void}},
    File: new (parts: Uint8Array[], name: string, options: {type: string}) => object,
    DragEvent: new (type: string, init: object) => object,
    ClipboardEvent: new (type: string, init: object) => object
};
type PageElement = {dispatchEvent(event: object): boolean};

/** Drops a file on `target` as a file manager's drag does: dragenter, dragover, drop, with the file in their DataTransfer. */
async function drop(target: Locator, file: ImageFile): Promise<void> {
    await target.evaluate((element, file) => {
        const page = globalThis as unknown as PageGlobals;
        const transfer = new page.DataTransfer();
        transfer.items.add(new page.File([Uint8Array.from(atob(file.base64), (char) => char.charCodeAt(0))], file.name, {type: file.mimeType}));
        for (const type of ["dragenter", "dragover", "drop"])
            (element as unknown as PageElement).dispatchEvent(new page.DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
    }, file);
}

/** Pastes a file on `target` as a copied image arrives from the clipboard. */
async function paste(target: Locator, file: ImageFile): Promise<void> {
    await target.evaluate((element, file) => {
        const page = globalThis as unknown as PageGlobals;
        const transfer = new page.DataTransfer();
        transfer.items.add(new page.File([Uint8Array.from(atob(file.base64), (char) => char.charCodeAt(0))], file.name, {type: file.mimeType}));
        (element as unknown as PageElement).dispatchEvent(new page.ClipboardEvent("paste", {bubbles: true, cancelable: true, clipboardData: transfer}));
    }, file);
}

/** The width an `<img>` decoded to: 0 until its bytes arrived and decoded. */
const decodedWidth = async (image: Locator) => await image.evaluate((element) => {
    const decoded = element as unknown as {complete: boolean, naturalWidth: number};
    return decoded.complete ? decoded.naturalWidth : 0;
});

/** Clicks a thumbnail, checks the image shows large, and puts it away with Escape. */
async function enlargeAndClose(page: Page, thumbnail: Locator, label: string): Promise<void> {
    await thumbnail.getByRole("button", {name: `Enlarge ${label}`}).click();
    const dialog = page.getByRole("dialog", {name: label});
    await dialog.waitFor();
    const box = (await dialog.locator("img").boundingBox())!;
    assert.ok(box.width >= 256, `the enlarged image is large (${box.width} px wide)`);
    await page.keyboard.press("Escape");
    await dialog.waitFor({state: "detached"});
}

describe("images in the chat", {timeout: 180_000}, () => {
    let browser: Browser;
    const [red, blue, green] = [imageFile("red.png"), imageFile("blue.png"), imageFile("green.png")];

    before(async () => {
        browser = await launchBrowser();
    });
    after(async () => {
        await browser?.close();
    });

    it("takes images by drop, paste and the button, removes one, sends the rest and shows them in the message after a reload", async () => {
        // The engine's own spec of a model with its projector, as `--mmproj` gives it.
        const visionModel: ModelToLoad & {names: string[]} = {
            path: await testModel(VISION_MODEL), names: ["gemma4-vision-script"], projectorPath: await testModel(VISION_PROJECTOR)
        };
        const server = await startTestServer({models: [visionModel], parallel: 1});
        const {page, problems} = await openApp(browser, server.url);
        try {
            const composer = page.getByRole("form", {name: "Composer"});
            const attach = composer.getByRole("button", {name: "Attach images"});
            await eventually(async () => assert.equal(await attach.isEnabled(), true, "a model that can see takes images"));

            await drop(composer, await red);
            const toSend = composer.getByRole("list", {name: "Images to send"}).getByRole("listitem");
            await eventually(async () => assert.equal(await toSend.count(), 1));
            await paste(composer.getByRole("textbox", {name: "Message"}), await blue);
            await eventually(async () => assert.equal(await toSend.count(), 2));
            const chooser = page.waitForEvent("filechooser");
            await attach.click();
            const {name, mimeType, base64} = await green;
            await (await chooser).setFiles({name, mimeType, buffer: Buffer.from(base64, "base64")});
            await eventually(async () => assert.equal(await toSend.count(), 3));
            assert.equal(await decodedWidth(toSend.nth(0).locator("img")), 64);
            await enlargeAndClose(page, toSend.nth(0), "Image 1");
            await screenshot(page, "chat-images-composer");

            await toSend.getByRole("button", {name: "Remove image 2 (blue.png)"}).click();
            await toSend.getByRole("button", {name: "Remove image 2 (green.png)"}).click();
            assert.equal(await toSend.count(), 1);
            await composer.getByRole("textbox", {name: "Message"}).fill("What colour is this image?");
            await composer.getByRole("button", {name: "Send"}).click();

            const sent = page.getByRole("article", {name: "Your message"});
            const reply = page.locator('[data-role="assistant"]');
            const check = async (when: string) => {
                const shown = sent.getByRole("list", {name: "Images"}).getByRole("listitem");
                await eventually(async () => assert.equal(await decodedWidth(shown.locator("img")), 64, `${when}: the sent image shows`));
                assert.equal(await shown.count(), 1, `${when}: the removed images were not sent`);
                assert.match(await sent.innerText(), /What colour is this image\?/);
                await enlargeAndClose(page, shown, "Image 1");
                await reply.getByRole("button", {name: "Regenerate"}).waitFor();
            };
            await check("sent");
            assert.equal(await composer.getByRole("list", {name: "Images to send"}).count(), 0, "the composer is empty once sent");
            await screenshot(page, "chat-images-sent");
            await page.reload();
            await check("after a reload");

            // A message that cannot be stored (its conversation was deleted elsewhere) comes back into the composer.
            const conversationId = decodeURIComponent(new URL(page.url()).hash.split("/")[2]!);
            assert.equal((await fetch(`${server.url}/api/conversations/${conversationId}`, {method: "DELETE"})).status, 200);
            await drop(composer, await blue);
            await eventually(async () => assert.equal(await toSend.count(), 1));
            await composer.getByRole("textbox", {name: "Message"}).fill("And this one?");
            await composer.getByRole("button", {name: "Send"}).click();
            await page.getByRole("alert").filter({hasText: "There is no conversation"}).waitFor();
            await eventually(async () => assert.equal(await toSend.count(), 1, "the image is kept to send again"));
            assert.equal(await composer.getByRole("textbox", {name: "Message"}).inputValue(), "And this one?");
            assert.deepEqual(problems, []);
        } finally {
            await page.context().close();
            await server.close();
        }
    });

    it("says a model that cannot see cannot take images, and shows the images a conversation already has", async () => {
        const server = await startTestServer({modelFiles: ["scripted/qwen3-script.gguf"], parallel: 1});
        const {page, problems} = await openApp(browser, server.url);
        try {
            const composer = page.getByRole("form", {name: "Composer"});
            const attach = composer.getByRole("button", {name: "Attach images"});
            await eventually(async () => assert.equal(await attach.getAttribute("title"), "qwen3-script cannot see images"));
            assert.equal(await attach.isDisabled(), true);
            const note = composer.getByRole("status");
            await drop(composer, await red);
            await eventually(async () => assert.equal(await note.innerText(), "qwen3-script cannot see images"));
            await paste(composer.getByRole("textbox", {name: "Message"}), await blue);
            assert.equal(await composer.getByRole("listitem").count(), 0, "nothing was attached");
            await screenshot(page, "chat-images-cannot-see");
            // The model still answers text.
            await composer.getByRole("textbox", {name: "Message"}).fill("Hello");
            await composer.getByRole("button", {name: "Send"}).click();
            const reply = page.locator('[data-role="assistant"]');
            await reply.getByRole("button", {name: "Regenerate"}).waitFor();
            assert.equal(await reply.locator(".markdown").innerText(), "Hello from Qwen.");

            // A conversation with an image, as one written with a model that could see.
            const post = async <T>(url: string, body: unknown) =>
                await (await fetch(`${server.url}${url}`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)})).json() as T;
            const conversation = await post<{id: string}>("/api/conversations", {model: "qwen3-script"});
            await post(`/api/conversations/${conversation.id}/messages`, {role: "user", content: "Look", images: [`data:image/png;base64,${(await green).base64}`]});
            await page.goto(`${server.url}/#/chat/${conversation.id}`);
            await page.reload();
            const shown = page.getByRole("article", {name: "Your message"}).getByRole("listitem");
            await eventually(async () => assert.equal(await decodedWidth(shown.locator("img")), 64));
            await enlargeAndClose(page, shown, "Image 1");
            assert.deepEqual(problems, []);
        } finally {
            await page.context().close();
            await server.close();
        }
    });

    it("sends a dropped image to a model served with --mmproj, which sees it, before and after a reload", async () => {
        const port = await freePort();
        const hearth = spawnHearth(["serve", "--port", String(port), "--parallel", "1", "--threads", "1",
            "--model", await testModel(VISION_MODEL), "--mmproj", await testModel(VISION_PROJECTOR)]);
        await hearth.waitForOutput(/Ready/);
        const {page, problems} = await openApp(browser, `http://127.0.0.1:${port}`);
        try {
            const composer = page.getByRole("form", {name: "Composer"});
            await eventually(async () => assert.equal(await composer.getByRole("button", {name: "Attach images"}).isEnabled(), true));
            await drop(composer, await red);
            await eventually(async () => assert.equal(await composer.getByRole("listitem").count(), 1));
            await composer.getByRole("textbox", {name: "Message"}).fill("What colour is this image?");
            await composer.getByRole("textbox", {name: "Message"}).press("Enter");
            const reply = page.locator('[data-role="assistant"]');
            const check = async (when: string) => {
                await reply.getByRole("button", {name: "Regenerate"}).waitFor();
                assert.equal(await reply.locator(".markdown").innerText(), "The image is red.", when);
                const shown = page.getByRole("article", {name: "Your message"}).getByRole("listitem");
                await eventually(async () => assert.equal(await decodedWidth(shown.locator("img")), 64, `${when}: the sent image shows`));
            };
            await check("streamed");
            await screenshot(page, "chat-images-seen");
            await page.reload();
            await check("after a reload");
            assert.deepEqual(problems, []);
        } finally {
            await page.context().close();
            hearth.child.kill("SIGTERM");
            await hearth.exited;
        }
    });
});
