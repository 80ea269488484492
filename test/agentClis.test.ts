import assert from "node:assert/strict";
import {after, before, describe, it} from "node:test";
import {agentWorkspace, claudeCode, codex, jsonLines, qwenCode, runAgentCli} from "./helpers/agentClis.js";
import type {ProcessResult} from "./helpers/agentClis.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {testModel} from "./helpers/testModels.js";

/**
 * The coding agents people run, unchanged: Claude Code, Codex and Qwen Code, pinned and installed from npm, each in
 * its default configuration (only the base URL, a dummy key, the model name and telemetry off), against `hearth
 * serve` on the scripted models. Each must finish the scripted task at its real prompt size: the model calls a tool
 * (the grammar maps the script's `get_weather` to one of the agent's own tools), the agent runs it and sends its
 * result, and the model's answer, "It is sunny in Paris.", ends the run.
 */

const task = "What is the weather in Paris?";
const answer = "It is sunny in Paris.";
const long = "qwen3-script-long";

type AuditEntry = {id: number, path: string, model: string | null, status: number, prompt_tokens: number | null, request_body: string | null};

type Hearth = {url: string, stop(): Promise<void>};

/** `hearth serve` in its own process, with its audit log keeping request bodies; ready once its models have loaded. */
async function serve(args: readonly string[]): Promise<Hearth> {
    const hearth = spawnHearth(["serve", ...args, "--port", "0", "--audit-prompts"]);
    const [, address] = await hearth.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    await hearth.waitForOutput(/Ready/);
    return {url: address!, stop: async () => {
        hearth.child.kill("SIGTERM");
        await hearth.exited;
    }};
}

let url = "";
/** The long Qwen3 with 16,384 tokens per slot: room for an agent's prompt, not for the history a long first turn left. */
let small: Hearth | undefined;
let main: Hearth | undefined;

before(async () => {
    const files = ["scripted/qwen3-script-long.gguf", "scripted/gpt-oss-script.gguf", "scripted/llama3.1-script.gguf"];
    const paths = await Promise.all(files.map((file) => testModel(file)));
    // Each model's trained context: 40,960 tokens per slot for the long Qwen3, 8,192 for the others.
    [main, small] = await Promise.all([
        serve([...paths.flatMap((file) => ["--model", file]), "--parallel", "2"]),
        serve(["--model", paths[0]!, "--parallel", "1", "--ctx-size", "16384"])
    ]);
    url = main.url;
});

after(async () => {
    await Promise.all([main?.stop(), small?.stop()]);
});

/** The audit log's entries for requests after `afterId`, oldest first. */
async function auditAfter(afterId: number, server = url): Promise<AuditEntry[]> {
    const response = await fetch(`${server}/api/audit?limit=1000`);
    const {entries} = await response.json() as {entries: AuditEntry[]};
    return entries.filter((entry) => entry.id > afterId).sort((a, b) => a.id - b.id);
}

async function lastAuditId(server = url): Promise<number> {
    const entries = await auditAfter(0, server);
    return entries.at(-1)?.id ?? 0;
}

function explain(run: ProcessResult): string {
    return `exit ${run.code ?? run.signal}\nstdout: ${run.stdout.slice(-3000)}\nstderr: ${run.stderr.slice(-3000)}`;
}

type Block = {type: string, id?: string, name?: string, tool_use_id?: string, text?: string};
type StreamMessage = {type: string, message?: {content?: Block[] | string}, result?: string, is_error?: boolean};

/** Claude Code's and Qwen Code's `stream-json` output: the tool calls, the results sent back, and the run's result. */
function readAgentStream(run: ProcessResult) {
    const events = jsonLines(run.stdout) as StreamMessage[];
    const blocks = (type: string) => events.filter((event) => event.type === type)
        .flatMap((event) => Array.isArray(event.message?.content) ? event.message.content : []);
    return {
        toolUses: blocks("assistant").filter((block) => block.type === "tool_use"),
        toolResults: blocks("user").filter((block) => block.type === "tool_result"),
        result: events.find((event) => event.type === "result")
    };
}

/** The round trip, read from the agent's own output: a call, its result sent back, and the model's answer last. */
function assertScriptedTask(run: ProcessResult): void {
    const {toolUses, toolResults, result} = readAgentStream(run);
    assert.ok(toolUses.length >= 1, `the model called no tool\n${explain(run)}`);
    assert.ok(toolResults.some((block) => block.tool_use_id === toolUses[0]!.id), `the agent sent back no result for ${toolUses[0]!.name}\n${explain(run)}`);
    assert.equal(result?.is_error, false, explain(run));
    assert.equal(result?.result?.trim(), answer, explain(run));
    assert.equal(run.code, 0, explain(run));
}

/** A first question long enough (about 6,500 tokens) that the history it leaves no longer fits the small server's slots. */
const longTask = `${Array.from({length: 450}, (_, index) => `The quick brown fox jumps over the lazy dog number ${index}.`).join(" ")} ${task}`;

const claudeEnv = (base: string): Record<string, string> => ({
    ANTHROPIC_BASE_URL: base,
    ANTHROPIC_API_KEY: "dummy",
    ANTHROPIC_MODEL: long,
    DISABLE_TELEMETRY: "1",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1"
});
const qwenEnv = (base: string): Record<string, string> => ({OPENAI_BASE_URL: `${base}/v1`, OPENAI_API_KEY: "dummy", OPENAI_MODEL: long});
const qwenSettings = {".qwen/settings.json": JSON.stringify({privacy: {usageStatisticsEnabled: false}, telemetry: {enabled: false}})};

/** The number of messages a request sent, from the audit log's copy of its body. */
function messageCount(entry: AuditEntry): number {
    return (JSON.parse(entry.request_body ?? "{}") as {messages?: unknown[]}).messages?.length ?? 0;
}

/**
 * The agent acted on Hearth's refusal: the first request on the small server was refused (400) for its length, and a
 * later one, answered, carried a shorter history than it.
 */
function assertShortenedAfterRefusal(requests: AuditEntry[]): void {
    const statuses = requests.map((entry) => entry.status);
    assert.equal(statuses[0], 400, JSON.stringify(statuses));
    const refused = requests[0]!;
    const answered = requests.filter((entry) => entry.status === 200);
    assert.ok(answered.length > 0, JSON.stringify(statuses));
    assert.ok(answered.some((entry) => messageCount(entry) < messageCount(refused) && (entry.prompt_tokens ?? 0) < 16_384),
        `no answered request had a shorter history than the refused one (${messageCount(refused)} messages)`);
}

describe("Claude Code, in its default configuration", () => {
    it("finishes the scripted task through /v1/messages at its real prompt size", async () => {
        const since = await lastAuditId();
        const run = await runAgentCli(claudeCode, ["-p", task, "--output-format", "stream-json", "--verbose"], {env: claudeEnv(url)});
        assertScriptedTask(run);
        const requests = (await auditAfter(since)).filter((entry) => entry.path.startsWith("/v1/messages"));
        assert.ok(requests.length >= 2, JSON.stringify(requests.map(({path, status}) => ({path, status}))));
        // Its first request already succeeds: no 400 taken back by a fallback.
        assert.deepEqual(requests.filter((entry) => entry.status !== 200).map(({path, status}) => ({path, status})), []);
        const largest = Math.max(...requests.map((entry) => entry.prompt_tokens ?? 0));
        assert.ok(largest > 10_000, `Claude Code's prompts were ${largest} tokens at most`);
    });

    it("compacts its conversation on Hearth's \"prompt is too long\" and goes on", async () => {
        const workspace = await agentWorkspace("claude");
        try {
            const first = await runAgentCli(claudeCode, ["-p", longTask, "--output-format", "stream-json", "--verbose"], {env: claudeEnv(url), workspace});
            assertScriptedTask(first);
            // The same session, continued on a server whose slots hold its prompt but not its history as well.
            const since = await lastAuditId(small!.url);
            const next = await runAgentCli(claudeCode, ["-p", "--continue", "And tomorrow?", "--output-format", "stream-json", "--verbose"], {env: claudeEnv(small!.url), workspace});
            const events = jsonLines(next.stdout) as {type: string, subtype?: string}[];
            assert.ok(events.some((event) => event.type === "system" && event.subtype === "compact_boundary"), `Claude Code did not compact\n${explain(next)}`);
            const result = readAgentStream(next).result;
            assert.equal(result?.is_error, false, explain(next));
            assert.equal(result?.result?.trim(), answer, explain(next));
            assertShortenedAfterRefusal((await auditAfter(since, small!.url)).filter((entry) => entry.path.startsWith("/v1/messages")));
        } finally {
            await workspace.dispose();
        }
    });
});

describe("Qwen Code, in its default configuration", () => {
    it("finishes the scripted task through /v1/chat/completions at its real prompt size", async () => {
        const since = await lastAuditId();
        const run = await runAgentCli(qwenCode, [task, "--output-format", "stream-json"], {env: qwenEnv(url), files: qwenSettings});
        assertScriptedTask(run);
        const requests = (await auditAfter(since)).filter((entry) => entry.path === "/v1/chat/completions");
        assert.ok(requests.length >= 2);
        assert.deepEqual(requests.filter((entry) => entry.status !== 200).map(({status}) => status), []);
        assert.ok(Math.max(...requests.map((entry) => entry.prompt_tokens ?? 0)) > 8_000);
    });

    it("compresses its history on Hearth's context_length_exceeded and goes on", async () => {
        const workspace = await agentWorkspace("qwen");
        try {
            const first = await runAgentCli(qwenCode, [longTask, "--output-format", "stream-json"], {env: qwenEnv(url), files: qwenSettings, workspace});
            assertScriptedTask(first);
            const since = await lastAuditId(small!.url);
            const next = await runAgentCli(qwenCode, ["--continue", "And tomorrow?", "--output-format", "stream-json"], {env: qwenEnv(small!.url), workspace});
            const result = readAgentStream(next).result;
            assert.equal(result?.is_error, false, explain(next));
            assert.equal(result?.result?.trim(), answer, explain(next));
            assertShortenedAfterRefusal((await auditAfter(since, small!.url)).filter((entry) => entry.path === "/v1/chat/completions"));
        } finally {
            await workspace.dispose();
        }
    });
});

/** Codex's configuration: a model provider on Hearth's Responses API, its key read from an environment variable. */
function codexConfig(model: string): string {
    return [
        `model = "${model}"`,
        `model_provider = "hearth"`,
        "check_for_update_on_startup = false",
        "",
        "[model_providers.hearth]",
        `name = "Hearth"`,
        `base_url = "${url}/v1"`,
        `wire_api = "responses"`,
        `env_key = "HEARTH_API_KEY"`,
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[otel]",
        `exporter = "none"`,
        ""
    ].join("\n");
}

/**
 * Codex's prompt is 7,500–9,100 tokens with its sub-agent tools (a `namespace`): gpt-oss's fits 8,192 tokens and the long
 * Qwen3 has room as Codex comes; on Llama 3.1's 8,192 Codex's own switch leaves the sub-agent tools out.
 */
const codexRuns = [
    {model: "gpt-oss-script", options: []},
    {model: long, options: []},
    {model: "llama3.1-script", options: ["--disable", "multi_agent"]}
];

describe("Codex, in its default configuration", () => {
    for (const {model, options} of codexRuns) {
        it(`finishes the scripted task through /v1/responses on ${model}${options.length > 0 ? ` (${options.join(" ")})` : ""}`, async () => {
            const since = await lastAuditId();
            const run = await runAgentCli(codex, ["exec", ...options, "--skip-git-repo-check", "--json", task], {
                env: {HEARTH_API_KEY: "dummy"},
                files: {".codex/config.toml": codexConfig(model)}
            });
            const events = jsonLines(run.stdout) as {type: string, item?: {type: string, text?: string}}[];
            const messages = events.filter((event) => event.type === "item.completed" && event.item?.type === "agent_message");
            assert.equal(messages.at(-1)?.item?.text?.trim(), answer, explain(run));
            assert.equal(run.code, 0, explain(run));
            const requests = (await auditAfter(since)).filter((entry) => entry.path === "/v1/responses");
            assert.deepEqual(requests.map((entry) => entry.status), requests.map(() => 200));
            // The second request carries the model's call and Codex's output for it.
            const input = (entry: AuditEntry) => (JSON.parse(entry.request_body ?? "{}") as {input?: {type: string}[]}).input ?? [];
            const roundTrip = requests.find((entry) => input(entry).some((item) => item.type === "function_call_output"));
            assert.ok(roundTrip != null, `no request sent a tool's output back\n${explain(run)}`);
            assert.ok(input(roundTrip).some((item) => item.type === "function_call"));
            assert.ok(Math.max(...requests.map((entry) => entry.prompt_tokens ?? 0)) > 4_000);
        });
    }
});
