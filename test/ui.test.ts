import assert from "node:assert/strict";
import {mkdtemp} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import type {Browser} from "playwright-core";
import {ConversationStore} from "../server/conversations/ConversationStore.js";
import {launchBrowser, openApp, screenshot} from "./helpers/browser.js";
import {startFakeHub} from "./helpers/fakeHub.js";
import type {FakeHub} from "./helpers/fakeHub.js";
import {freePort} from "./helpers/freePort.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {testModel} from "./helpers/testModels.js";

/**
 * The app as a new user meets it: `hearth serve` in a real process, Debian's Chromium driving the UI
 * it serves at `/`, models found and downloaded from a fake Hub on loopback.
 */

const REPO = "ggml-org/stories260K-GGUF";
const Q8_NAME = `hf.co/${REPO}:Q8_0`;
const EXPECT_MS = 30_000;

/** Waits until `check` passes, retrying; the UI streams and polls, so what it shows arrives over time. */
async function eventually<T>(check: () => Promise<T>, what: string, timeoutMs = EXPECT_MS): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
        try {
            return await check();
        } catch (error) {
            lastError = error;
            await new Promise((resolve) => setTimeout(resolve, 100));
        }
    }
    throw new Error(`Timed out waiting for ${what}: ${(lastError as Error | undefined)?.message ?? ""}`);
}

/** Text as the page shows it, without the layout's whitespace or Markdown's punctuation. */
const letters = (text: string) => text.replace(/[^\p{L}\p{N}]/gu, "");

/**
 * `hearth serve` in its own process with a new data folder, on a port fixed up front so that it can be
 * killed and started again at the same address the page has open.
 */
async function serveHearth(hub: FakeHub, extraArgs: string[] = []) {
    const home = await mkdtemp(path.join(os.tmpdir(), "hearth-ui-"));
    const port = await freePort();
    const start = async () => {
        const hearth = spawnHearth(["serve", "--port", String(port), "--parallel", "1", ...extraArgs], {HEARTH_HOME: home, HF_ENDPOINT: hub.url});
        await hearth.waitForOutput(/listening on/);
        return hearth;
    };
    let current = await start();
    return {
        origin: `http://127.0.0.1:${port}`,
        home,
        get process() {
            return current;
        },
        async stop(signal: NodeJS.Signals = "SIGTERM") {
            current.child.kill(signal);
            await current.exited;
        },
        async restart() {
            current = await start();
        }
    };
}

describe("the app in a browser", {timeout: 240_000}, () => {
    let browser: Browser;
    let hub: FakeHub;

    before(async () => {
        browser = await launchBrowser();
        hub = await startFakeHub([{
            id: REPO,
            downloads: 1200,
            likes: 31,
            files: [
                {path: "stories260K-Q8_0.gguf", source: await testModel("derived/stories260K-Q8_0.gguf")},
                {path: "stories260K-Q4_0.gguf", source: await testModel("derived/stories260K-Q4_0.gguf")},
                {path: "stories260K-F16.gguf", source: await testModel("derived/stories260K-F16.gguf")}
            ]
        }]);
    });

    after(async () => {
        await browser?.close();
        await hub?.close();
    });

    it("finds, downloads, loads and chats with a model, and the conversation survives a reload", async () => {
        const hearth = await serveHearth(hub);
        const {origin} = hearth;
        const {page, problems} = await openApp(browser, origin);
        try {
            await page.getByRole("link", {name: "Models"}).click();
            await page.getByRole("searchbox", {name: "Search Hugging Face"}).fill("stories");
            await page.getByRole("searchbox", {name: "Search Hugging Face"}).press("Enter");
            await page.getByRole("button", {name: new RegExp(REPO)}).click();
            const quants = page.getByRole("table", {name: `Quantizations of ${REPO}`});
            await quants.waitFor();
            const q8Row = quants.getByRole("row").filter({hasText: "Q8_0"});
            assert.match(await q8Row.innerText(), /379 kB/);
            assert.match(await q8Row.innerText(), /CPU only|Full GPU|layers on GPU/, "every quantization shows whether it fits");
            await screenshot(page, "models-search");

            // Slow enough to watch: the progress bar moves, and pausing then resuming finishes the download.
            hub.faults.bytesPerSecond = 120_000;
            await q8Row.getByRole("button", {name: "Download Q8_0"}).click();
            const progress = page.getByRole("progressbar", {name: `Download of ${Q8_NAME}`});
            await progress.waitFor();
            await eventually(async () => assert.ok(Number(await progress.getAttribute("aria-valuenow")) > 0), "the progress bar to move");
            assert.match(await page.locator(".download").innerText(), /kB\/s/, "the download shows its speed");
            await screenshot(page, "models-downloading");
            await page.getByRole("button", {name: "Pause"}).click();
            await eventually(async () => assert.match(await page.locator(".download").innerText(), /Paused/), "the download to pause");
            const pausedAt = Number(await progress.getAttribute("aria-valuenow"));
            assert.ok(pausedAt < 100, `paused part-way, at ${pausedAt}%`);
            hub.faults.bytesPerSecond = undefined;
            await page.getByRole("button", {name: "Resume"}).click();

            const library = page.getByRole("table", {name: "Library"});
            await eventually(async () => assert.match(await library.innerText(), /stories260K-GGUF:Q8_0/), "the model to appear in the library");
            await progress.waitFor({state: "detached"});
            assert.match(await library.getByRole("row").filter({hasText: "Q8_0"}).innerText(), /llama/);
            const resumed = hub.requests.filter((request) => request.path.endsWith("stories260K-Q8_0.gguf") && request.range != null && !request.range.startsWith("bytes=0-"));
            assert.ok(resumed.length > 0, "resuming asked the Hub for the rest of the file only");

            // Load it from the library with settings, as the load form offers them.
            await library.getByRole("button", {name: "Load…"}).click();
            await page.getByLabel("Context size (tokens per slot)").fill("512");
            await page.getByRole("button", {name: `Load ${Q8_NAME}`}).click();
            await eventually(async () => assert.match(await page.getByRole("region", {name: "Loaded now"}).innerText(), /context 512 tokens/), "the model to load");
            await screenshot(page, "models-library");

            await page.getByRole("link", {name: "Chat"}).click();
            await page.getByRole("combobox", {name: "Model"}).selectOption(Q8_NAME);
            const box = page.getByRole("textbox", {name: "Message"});
            await box.fill("Once upon a time");
            await box.press("Shift+Enter");
            await box.pressSequentially("there was");
            assert.equal(await box.inputValue(), "Once upon a time\nthere was", "Shift+Enter starts a new line");
            await box.press("Enter");
            const reply = page.locator('[data-role="assistant"]');
            await eventually(async () => assert.equal(await reply.getAttribute("data-status"), "complete"), "the reply to finish");
            // The app reads the stored conversation back after the stream ends; Regenerate shows once it has.
            await reply.getByRole("button", {name: "Regenerate"}).waitFor();
            const replyText = await reply.innerText();
            assert.ok(letters(replyText).length > 0, "the reply has text");
            assert.match(replyText, /tokens\/s/, "the reply shows its speed");
            assert.equal(await box.inputValue(), "", "sending empties the box");
            await screenshot(page, "chat");

            await page.reload();
            await eventually(async () => assert.equal(await page.locator('[data-role="assistant"]').innerText(), replyText), "the reply after a reload");
            assert.match(await page.locator('[data-role="user"]').innerText(), /Once upon a time\s+there was/);
            assert.match(await page.getByRole("complementary", {name: "Conversations"}).innerText(), /Once upon a time/);

            await page.getByRole("link", {name: "Server"}).click();
            await page.getByLabel("base_url").waitFor();
            assert.equal(await page.getByLabel("base_url").innerText(), `${origin}/v1`);
            const connect = await page.locator(".server-page").innerText();
            assert.match(connect, new RegExp(`base_url = "${origin}/v1"\\s+wire_api = "responses"`), "the Codex CLI snippet");
            assert.ok(connect.includes(`ANTHROPIC_BASE_URL="${origin}"`), "the Claude Code snippet");
            assert.ok(connect.includes(`OPENAI_BASE_URL="${origin}/v1"`), "the Qwen Code snippet");
            assert.match(connect, /Claude Code \/ Anthropic SDK[\s\S]*Needs about 32,000 tokens of context per slot/, "what context Claude Code needs");
            assert.match(connect, /Qwen Code[\s\S]*Needs about 16,000 tokens of context per slot/, "what context Qwen Code needs");
            await eventually(async () => assert.match(await page.getByRole("table", {name: "Request log"}).innerText(), /POST\s+\/api\/conversations/), "the request log");
            await screenshot(page, "server");

            await page.getByRole("link", {name: "Benchmarks"}).click();
            await page.getByText("No benchmarks yet.").waitFor();
            await page.getByRole("checkbox", {name: Q8_NAME}).check();
            await page.getByLabel("Repetitions").fill("1");
            await page.getByLabel("Prompt tokens").fill("32");
            await page.getByLabel("Generated tokens").fill("8");
            await page.getByRole("button", {name: "Run benchmark"}).click();
            await eventually(async () => assert.match(await page.locator("table.bench-results").innerText(), /Q8_0/), "the benchmark's results", 60_000);
            assert.equal(await page.getByRole("img", {name: /against size/}).count(), 2, "a speed chart and a quality chart");
            assert.match(await page.locator("table.bench-history").innerText(), /complete/);
            await screenshot(page, "benchmarks");
            assert.deepEqual(problems, []);
        } finally {
            await page.context().close();
            await hearth.stop();
        }
    });

    it("says which models can see: the quantizations of a Hub repo with a projector, and the library model one of them downloads", async () => {
        const gemma = "ggml-org/gemma-3-4b-it-GGUF";
        await hub.addRepo({id: gemma, files: [
            {path: "gemma-3-4b-it-Q4_K_M.gguf", source: await testModel("vision/gemma4-vision-script.gguf")},
            {path: "mmproj-model-f16.gguf", source: await testModel("vision/mmproj-gemma4-vision-script.gguf")}
        ]});
        const hearth = await serveHearth(hub);
        const {page, problems} = await openApp(browser, hearth.origin);
        try {
            await page.getByRole("link", {name: "Models"}).click();
            const search = page.getByRole("searchbox", {name: "Search Hugging Face"});
            await search.fill("stories");
            await search.press("Enter");
            await page.getByRole("button", {name: new RegExp(REPO)}).click();
            const stories = page.getByRole("table", {name: `Quantizations of ${REPO}`});
            await stories.waitFor();
            assert.equal(await stories.locator(".badge-vision").count(), 0, "a repo without a projector cannot see");

            await search.fill("gemma");
            await search.press("Enter");
            await page.getByRole("button", {name: new RegExp(gemma)}).click();
            const quants = page.getByRole("table", {name: `Quantizations of ${gemma}`});
            await quants.waitFor();
            const row = quants.getByRole("row").filter({hasText: "Q4_K_M"});
            assert.equal(await row.locator(".badge-vision").innerText(), "Vision");
            assert.match(await row.locator(".badge-vision").getAttribute("title") ?? "", /brings its projector \(687 kB\)/);
            await row.getByRole("button", {name: "Download Q4_K_M"}).click();
            const library = page.getByRole("table", {name: "Library"});
            await eventually(async () => assert.match(await library.innerText(), /gemma-3-4b-it-GGUF:Q4_K_M/), "the model to appear in the library");
            assert.equal(await library.getByRole("row").filter({hasText: "Q4_K_M"}).locator(".badge-vision").innerText(), "Vision");
            await screenshot(page, "models-vision");
            assert.deepEqual(problems, []);
        } finally {
            await page.context().close();
            await hearth.stop();
        }
    });

    it("keeps everything a reply had shown when the server is killed mid-reply", async () => {
        const model = await testModel("synthetic/synthetic-llama-23M-Q4_K_M.gguf");
        const args = ["--model", model, "--ctx-size", "4096"];
        const hearth = await serveHearth(hub, args);
        await hearth.process.waitForOutput(/Ready/);
        const {origin} = hearth;
        const {page} = await openApp(browser, origin);
        try {
            // Greedy sampling, so the reply is the same text however far it got.
            await page.getByRole("button", {name: "Settings"}).click();
            await page.getByLabel("Temperature").fill("0");
            await page.getByLabel("Max tokens").fill("3000");
            await page.getByRole("button", {name: "Save settings"}).click();
            const box = page.getByRole("textbox", {name: "Message"});

            // Stop keeps what was written, marked as stopped; Regenerate writes it again.
            await box.fill("Say something");
            await box.press("Enter");
            const first = page.locator('[data-role="assistant"]').first();
            await eventually(async () => assert.ok(letters(await first.locator(".markdown").innerText()).length >= 10), "the first reply to stream");
            await page.getByRole("button", {name: "Stop"}).click();
            await eventually(async () => assert.equal(await first.getAttribute("data-status"), "stopped"), "the reply to stop");
            assert.match(await first.innerText(), /Stopped/);
            await page.getByRole("button", {name: "Regenerate"}).click();
            await eventually(async () => assert.equal(await first.getAttribute("data-status"), "streaming"), "the reply to be regenerated");
            await page.getByRole("button", {name: "Stop"}).click();
            await eventually(async () => assert.equal(await first.getAttribute("data-status"), "stopped"), "the regenerated reply to stop");
            assert.equal(await page.locator('[data-role="assistant"]').count(), 1, "regenerating replaces the reply");

            // Editing a message continues the conversation from it.
            await page.locator('[data-role="user"]').getByRole("button", {name: "Edit"}).click();
            await page.getByRole("textbox", {name: "Edit message"}).fill("Tell me a long story");
            await page.getByRole("button", {name: "Save and reply"}).click();
            await box.press("Enter");
            const reply = page.locator('[data-role="assistant"]');
            const shown = await eventually(async () => {
                // The stopped reply stays on screen until the edit is saved: wait for the new one.
                assert.equal(await reply.count(), 1);
                assert.equal(await reply.getAttribute("data-status"), "streaming");
                const text = letters(await reply.locator(".markdown").innerText());
                assert.ok(text.length >= 40);
                return text;
            }, "the reply to stream");
            assert.equal(await reply.getAttribute("data-status"), "streaming");
            assert.equal(await page.locator('[data-role="user"]').count(), 1, "the edit replaced the message and what followed it");
            await screenshot(page, "chat-streaming");
            await hearth.stop("SIGKILL");

            await hearth.restart();
            await page.reload();
            await eventually(async () => assert.equal(await page.locator('[data-role="assistant"]').getAttribute("data-status"), "interrupted"), "the stored reply");
            const stored = letters(await page.locator('[data-role="assistant"] .markdown').innerText());
            assert.ok(stored.startsWith(shown), "everything shown before the crash is there after the restart");
            assert.match(await page.locator('[data-role="user"]').innerText(), /Tell me a long story/);
            await screenshot(page, "chat-after-crash");
        } finally {
            await page.context().close();
            await hearth.stop();
        }
    });

    it("shows routes in the Server view with their shadow's comparison, saves new weights, and adds and removes an upstream", async () => {
        const [primary, quant] = await Promise.all([testModel("stories260K.gguf"), testModel("derived/stories260K-Q8_0.gguf")]);
        const hearth = await serveHearth(hub, ["--model", primary, "--model", quant, "--route", "story=stories260K:90,stories260K-Q8_0:10", "--shadow", "story=stories260K-Q8_0"]);
        const {origin} = hearth;
        await eventually(async () => assert.equal((await (await fetch(`${origin}/health`)).json() as {status: string}).status, "ok"), "the models to load");
        for (let index = 0; index < 3; index++) {
            const response = await fetch(`${origin}/v1/chat/completions`, {method: "POST", headers: {"content-type": "application/json"},
                body: JSON.stringify({model: "story", messages: [{role: "user", content: "Once upon a time"}], max_tokens: 4, temperature: 0, user: "reader"})});
            assert.equal(response.status, 200);
        }
        const {page, problems} = await openApp(browser, `${origin}/#/server`);
        try {
            const route = page.getByLabel("Route story");
            await route.waitFor();
            assert.match(await page.getByRole("table", {name: "Models of story"}).innerText(), /stories260K\s+90(\.0)?%/);
            await eventually(async () => assert.match(await page.getByLabel("Shadow of story").innerText(), /Compared\s+3\b/), "the shadow's comparison");
            assert.match(await page.getByLabel("Shadow of story").innerText(), /Same text\s+\d/);
            await route.scrollIntoViewIfNeeded();
            await screenshot(page, "server-routes");

            await page.getByLabel("Weight of stories260K-Q8_0 in story").fill("30");
            await page.getByLabel("Weight of stories260K in story").fill("70");
            await route.getByRole("button", {name: "Save weights"}).click();
            await eventually(async () => {
                const saved = await (await fetch(`${origin}/api/routes/story`)).json() as {source: string, targets: {weight: number}[]};
                assert.deepEqual([saved.source, ...saved.targets.map((target) => target.weight)], ["stored", 70, 30]);
            }, "the new weights");
            await eventually(async () => assert.match(await page.getByRole("table", {name: "Models of story"}).innerText(), /stories260K\s+70\s*%/), "the new share");

            await page.getByRole("textbox", {name: "Upstream URL"}).fill("http://127.0.0.1:9");
            await page.getByRole("button", {name: "Add upstream"}).click();
            await eventually(async () => assert.match(await page.getByRole("table", {name: "Upstreams"}).innerText(), /127\.0\.0\.1:9\s+down/), "the upstream, down");
            await page.getByRole("button", {name: "Remove http://127.0.0.1:9"}).click();
            await eventually(async () => assert.equal(await page.getByRole("table", {name: "Upstreams"}).count(), 0), "the upstream removed");
            assert.deepEqual(problems, []);
        } finally {
            await page.context().close();
            await hearth.stop();
        }
    });

    it("makes API keys in the Server view and keeps working with them; a browser without one is asked for it; LAN access applies at restart", async () => {
        const hearth = await serveHearth(hub);
        const {origin} = hearth;
        const {page, problems} = await openApp(browser, `${origin}/#/server`);
        let stranger: Awaited<ReturnType<typeof openApp>> | undefined;
        try {
            await page.getByRole("textbox", {name: "Key name"}).fill("phone");
            await page.getByRole("button", {name: "Create key"}).click();
            const key = (await page.getByLabel("New API key").innerText()).trim();
            assert.match(key, /^hk-/);
            await page.getByRole("table", {name: "API keys"}).getByText("phone").waitFor();
            assert.equal((await fetch(`${origin}/v1/models`)).status, 401, "a key now is required of every client");
            assert.equal((await fetch(`${origin}/v1/models`, {headers: {authorization: `Bearer ${key}`}})).status, 200);

            await page.getByRole("textbox", {name: "Origin"}).fill("https://notes.example");
            await page.getByRole("button", {name: "Add origin"}).click();
            await page.getByRole("list", {name: "Allowed origins"}).getByText("https://notes.example").waitFor();
            await page.getByRole("textbox", {name: "Origin"}).fill("notes");
            await page.getByRole("button", {name: "Add origin"}).click();
            await page.getByRole("alert").filter({hasText: "is not an origin"}).waitFor();

            await page.getByRole("checkbox", {name: "Serve other devices on the local network"}).click();
            await page.getByText("Applies when Hearth restarts.").waitFor();
            await screenshot(page, "server-access");

            // The app kept the key it made, so a reload still works without asking.
            await page.reload();
            await page.getByRole("table", {name: "API keys"}).waitFor();
            assert.equal(await page.getByRole("dialog").count(), 0);

            stranger = await openApp(browser, `${origin}/#/server`);
            const dialog = stranger.page.getByRole("dialog", {name: "This server needs an API key"});
            await dialog.waitFor();
            await screenshot(stranger.page, "api-key-dialog");
            await dialog.getByLabel("API key").fill(key);
            await dialog.getByRole("button", {name: "Use key"}).click();
            await stranger.page.getByRole("table", {name: "API keys"}).waitFor();
            await stranger.page.waitForTimeout(1500);
            assert.equal(await stranger.page.getByRole("dialog").count(), 0);
            assert.deepEqual(problems, []);

            await hearth.stop();
            await hearth.restart();
            assert.match(hearth.process.child.spawnargs.join(" ") + (await hearth.process.waitForOutput(/listening on (\S+)/))[1], /0\.0\.0\.0/);
            await page.reload();
            await page.getByText("On now: other machines reach this server").waitFor();
        } finally {
            await stranger?.page.context().close();
            await page.context().close();
            await hearth.stop();
        }
    });

    it("shows replies as Markdown with highlighted code, and never runs HTML a model wrote", async () => {
        const hearth = await serveHearth(hub);
        const {origin} = hearth;
        try {
            const post = async <T>(url: string, body: unknown) => await (await fetch(`${origin}${url}`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)})).json() as T;
            const conversation = await post<{id: string}>("/api/conversations", {title: "Markdown"});
            await post("/api/conversations/" + conversation.id + "/messages", {role: "user", content: "Show me code"});
            await post("/api/conversations/" + conversation.id + "/messages", {role: "assistant", content:
                "Here is **bold** and `inline`:\n\n```js\nconst answer = 42; // the answer\n```\n\n<img src=x onerror=\"document.title='owned'\"><script>document.title='owned'</script>"});
            const {page, problems} = await openApp(browser, `${origin}/#/chat/${conversation.id}`);
            try {
                const reply = page.locator('[data-role="assistant"]');
                await reply.waitFor();
                assert.equal(await reply.locator("strong").innerText(), "bold");
                assert.equal(await reply.locator("pre code.hljs .hljs-keyword").first().innerText(), "const");
                assert.equal(await reply.locator("img, script").count(), 0, "raw HTML is not rendered");
                assert.notEqual(await page.title(), "owned");
                await screenshot(page, "chat-markdown");
                assert.deepEqual(problems, []);
            } finally {
                await page.context().close();
            }
        } finally {
            await hearth.stop();
        }
    });

    it("shows a reply's thinking folded above its answer, and tool calls and results as such", async () => {
        const hearth = await serveHearth(hub);
        const {origin} = hearth;
        try {
            const post = async <T>(url: string, body: unknown) => await (await fetch(`${origin}${url}`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)})).json() as T;
            const conversation = await post<{id: string}>("/api/conversations", {title: "Weather"});
            const messages = `/api/conversations/${conversation.id}/messages`;
            await post(messages, {role: "user", content: "What is the weather in Paris?"});
            await post(messages, {
                role: "assistant", content: "", reasoning: "The user asks about Paris.\nI should call get_weather.",
                tool_calls: [{id: "call_1", name: "get_weather", arguments: "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}]
            });
            await post(messages, {role: "tool", content: "{\"sky\":\"sunny\",\"temperature_c\":21}", tool_call_id: "call_1", name: "get_weather"});
            // The answer as the reply route stores one, with how long the model thought.
            const store = new ConversationStore(hearth.home);
            try {
                const reply = store.addMessage(conversation.id, {role: "assistant", content: "", status: "streaming", model: "qwen3-script"});
                store.appendReasoningToReply(reply.id, "The tool says sunny, 21 degrees. ");
                store.appendReasoningToReply(reply.id, "Answer **briefly**.");
                store.appendToReply(reply.id, "It is **sunny** in Paris, 21 °C.");
                store.finishReply(reply.id, "complete", {stats: {
                    prompt_tokens: 80, completion_tokens: 60, tokens_per_second: 20, time_to_first_token_ms: 40, reasoning_tokens: 48, reasoning_ms: 3200
                }});
            } finally {
                store.close();
            }

            const {page, problems} = await openApp(browser, `${origin}/#/chat/${conversation.id}`);
            try {
                const replies = page.locator('[data-role="assistant"]');
                await replies.nth(1).waitFor();
                const [calling, answer] = [replies.nth(0), replies.nth(1)];

                // Opened again, every thinking is folded away, the answer below it.
                const answerThinking = answer.getByRole("button", {name: "Thought for 3 s"});
                assert.equal(await answerThinking.getAttribute("aria-expanded"), "false");
                assert.equal(await answer.getByRole("region", {name: "Thinking"}).isVisible(), false);
                assert.equal(await answer.locator(".markdown").innerText(), "It is sunny in Paris, 21 °C.", "the thinking is not in the answer");
                assert.equal(await answer.locator(".markdown strong").innerText(), "sunny");
                const toggleBox = (await answerThinking.boundingBox())!;
                const answerBox = (await answer.locator(".markdown").boundingBox())!;
                assert.ok(toggleBox.y + toggleBox.height <= answerBox.y, "the thinking is above the answer");
                // A reply stored without its thinking time still has its thinking, unlabelled by time.
                const callingThinking = calling.getByRole("button", {name: "Thoughts"});
                assert.equal(await callingThinking.getAttribute("aria-expanded"), "false");
                await screenshot(page, "chat-thinking-folded");

                await answerThinking.click();
                assert.equal(await answerThinking.getAttribute("aria-expanded"), "true");
                const thought = answer.getByRole("region", {name: "Thinking"});
                assert.equal(await thought.innerText(), "The tool says sunny, 21 degrees. Answer **briefly**.", "thinking is shown as written, not as Markdown");
                await callingThinking.click();
                assert.equal(await calling.getByRole("region", {name: "Thinking"}).innerText(), "The user asks about Paris.\nI should call get_weather.");

                const call = calling.getByRole("group", {name: "Call to get_weather"});
                assert.match(await call.locator(".tool-head").innerText(), /Tool call\s+get_weather/i);
                assert.equal(await call.locator("pre").innerText(), JSON.stringify({city: "Paris", unit: "celsius"}, null, 2), "arguments as formatted JSON");
                const result = page.getByRole("article", {name: "Result of get_weather"});
                assert.equal(await result.getAttribute("data-role"), "tool");
                assert.match(await result.locator(".tool-head").innerText(), /Tool result\s+get_weather\s+call_1/i);
                assert.equal(await result.locator("pre").innerText(), JSON.stringify({sky: "sunny", temperature_c: 21}, null, 2));
                assert.equal(await result.locator(".markdown").count(), 0, "a tool's result is not shown as a reply");
                assert.equal(await page.getByRole("button", {name: "Regenerate"}).count(), 1, "only the last reply can be regenerated");
                await screenshot(page, "chat-thinking-tools");
                assert.deepEqual(problems, []);
            } finally {
                await page.context().close();
            }
        } finally {
            await hearth.stop();
        }
    });

    it("shows a thinking model's reply with its thinking folded above the answer, once streamed and after a reload", async () => {
        const hearth = await serveHearth(hub, ["--model", await testModel("scripted/qwen3-script.gguf")]);
        await hearth.process.waitForOutput(/Ready/);
        const {page, problems} = await openApp(browser, hearth.origin);
        try {
            const box = page.getByRole("textbox", {name: "Message"});
            await box.fill("Hello");
            await box.press("Enter");
            const reply = page.locator('[data-role="assistant"]');
            await reply.getByRole("button", {name: "Regenerate"}).waitFor();
            const check = async (when: string) => {
                const thinking = reply.getByRole("button", {name: /^Thought for /});
                assert.equal(await thinking.getAttribute("aria-expanded"), "false", `${when}: folded once the answer came`);
                assert.equal(await reply.locator(".markdown").innerText(), "Hello from Qwen.", `${when}: the answer without the thinking`);
                assert.ok((await thinking.boundingBox())!.y < (await reply.locator(".markdown").boundingBox())!.y, `${when}: the thinking above the answer`);
                await thinking.click();
                assert.equal((await reply.getByRole("region", {name: "Thinking"}).innerText()).trim(), "Let me think.", when);
            };
            await check("streamed");
            await screenshot(page, "chat-thinking-streamed");
            await page.reload();
            await reply.getByRole("button", {name: "Regenerate"}).waitFor();
            await check("after a reload");
            assert.deepEqual(problems, []);
        } finally {
            await page.context().close();
            await hearth.stop();
        }
    });
});
