import assert from "node:assert/strict";
import {describe, it} from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import type {BetaMessage, BetaMessageParam, BetaToolUnion, MessageCreateParamsNonStreaming} from "@anthropic-ai/sdk/resources/beta/messages";
import {CLEARED_TOOL_RESULT} from "../server/anthropic/contextEdits.js";
import {useTestServer} from "./helpers/testServer.js";

/**
 * The request shapes coding agents send to `/v1/messages` beyond the SDK's everyday ones (Claude Code's: a system
 * turn in the middle of `messages`, adaptive thinking with `display: "updates"`, `context_management`, `cache_control`
 * everywhere, deferred tools, `?beta=true` with its `anthropic-beta` headers), on the scripted models of
 * ../shared/models/scripted, which must still follow their scripts.
 */

const families = [
    {model: "qwen3-script", answer: "Hello from Qwen."},
    {model: "llama3.1-script", answer: "Hello from Llama."},
    {model: "gpt-oss-script", answer: "Hello from gpt-oss."},
    {model: "gemma4-script", answer: "Hello from Gemma."}
];
const server = useTestServer({modelFiles: families.map((family) => `scripted/${family.model}.gguf`), ctxSize: 4096, parallel: 1});
const client = () => new Anthropic({baseURL: server.url, apiKey: "x", maxRetries: 0});

/** What Claude Code 2.1 sends in `anthropic-beta`. */
const BETAS = [
    "claude-code-20250219", "interleaved-thinking-2025-05-14", "context-management-2025-06-27", "mid-conversation-tool-changes-2026-07-01",
    "thinking-token-count-2026-05-13", "advanced-tool-use-2025-11-20", "effort-2025-11-24", "thinking-display-updates-2026-08-18",
    "mid-conversation-system-2026-04-07"
];
const ephemeral = {type: "ephemeral"} as const;
const weather: BetaToolUnion = {
    name: "get_weather",
    description: "The weather in a city",
    input_schema: {$schema: "https://json-schema.org/draft/2020-12/schema", type: "object", properties: {city: {type: "string"}}, required: ["city"]},
    strict: true,
    input_examples: [{city: "Rome"}],
    cache_control: ephemeral
};
/** A deferred tool: left out of the prompt until a tool result loads it. */
const forecast: BetaToolUnion = {
    name: "get_forecast",
    description: "The forecast of a city for the days to come, with temperatures, winds and rain for each hour of each day",
    input_schema: {type: "object", properties: {city: {type: "string"}, days: {type: "integer"}}},
    defer_loading: true
};
const question = "What is the weather in Paris?";
const systemTurn = (text: string): BetaMessageParam => ({role: "system", content: [{type: "text", text, cache_control: ephemeral}]});

function text(message: BetaMessage): string {
    return message.content.flatMap((block) => block.type === "text" ? [block.text] : []).join("").trim();
}

function weatherCall(message: BetaMessage): {id: string, input: unknown} {
    assert.equal(message.stop_reason, "tool_use", JSON.stringify(message.content));
    const use = message.content.find((block) => block.type === "tool_use");
    assert.ok(use?.type === "tool_use" && use.name === "get_weather", JSON.stringify(message.content));
    assert.deepEqual(use.input, {city: "Paris"});
    return use;
}

type Created = MessageCreateParamsNonStreaming;
/** A greedy request (`temperature` is sent though this SDK's types no longer list it), so a scripted model follows its script. */
const create = async (request: Omit<Created, "max_tokens"> & {max_tokens?: number}) =>
    await client().beta.messages.create({max_tokens: 300, betas: BETAS, ...request, temperature: 0} as Created);
const count = async (request: Parameters<Anthropic["beta"]["messages"]["countTokens"]>[0]) =>
    await client().beta.messages.countTokens({betas: BETAS, ...request});

describe("a system turn in the middle of /v1/messages", () => {
    for (const family of families)
        it(`${family.model}: the plain answer, the get_weather call and the answer after its result, with system turns between`, async () => {
            const plain = await create({model: family.model, messages: [{role: "user", content: "Hi"}, systemTurn("Answer in one sentence.")]});
            assert.equal(text(plain), family.answer);

            const asked: BetaMessageParam[] = [{role: "user", content: [{type: "text", text: question, cache_control: ephemeral}]}, systemTurn("Use the tools you have.")];
            const call = await create({model: family.model, tools: [weather, forecast], messages: asked});
            const use = weatherCall(call);
            const answered = await create({
                model: family.model, tools: [weather, forecast],
                messages: [
                    ...asked,
                    {role: "assistant", content: call.content.filter((block) => block.type === "tool_use")},
                    // As Claude Code sends it: the system turn stays where it was. (One after the result would hide the result
                    // from the scripted Gemma 4, which sees Gemma4ChatWrapper's result only at the end of the prompt.)
                    {role: "user", content: [{type: "tool_result", tool_use_id: use.id, content: [{type: "text", text: "sunny, 22 °C"}], cache_control: ephemeral}]}
                ]
            });
            assert.equal(answered.stop_reason, "end_turn");
            assert.equal(text(answered), "It is sunny in Paris.");

            const without = await count({model: family.model, messages: [{role: "user", content: "Hi"}]});
            const withTurn = await count({model: family.model, messages: [{role: "user", content: "Hi"}, systemTurn("Answer in one sentence.")]});
            assert.ok(withTurn.input_tokens > without.input_tokens + 4, `${withTurn.input_tokens} > ${without.input_tokens}`);
        });

    it("an empty system turn, or one cleared at the next user message, adds nothing to the prompt", async () => {
        const model = "qwen3-script";
        const base = await count({model, messages: [{role: "user", content: "Hi"}, {role: "assistant", content: "Hello."}, {role: "user", content: "Again"}]});
        const withCleared = await count({
            model,
            messages: [
                {role: "user", content: "Hi"}, {role: "system", content: "Only for this turn.", clear_at: "next_user_message"}, {role: "assistant", content: "Hello."},
                {role: "system", content: [], output_config: {effort: "low"}}, {role: "user", content: "Again"}
            ]
        });
        assert.equal(withCleared.input_tokens, base.input_tokens);
        const current = await count({model, messages: [{role: "user", content: "Hi"}, {role: "system", content: "Only for this turn.", clear_at: "next_user_message"}]});
        const bare = await count({model, messages: [{role: "user", content: "Hi"}]});
        assert.ok(current.input_tokens > bare.input_tokens, "shown until a later user message comes");
    });
});

describe("Claude Code's request shapes on /v1/messages?beta=true", () => {
    it("takes a request shaped as Claude Code's first one, by fetch, and streams the scripted call", async () => {
        const response = await fetch(`${server.url}/v1/messages?beta=true`, {
            method: "POST",
            headers: {"content-type": "application/json", "anthropic-version": "2023-06-01", "anthropic-beta": BETAS.join(","), "x-api-key": "dummy", "x-app": "cli"},
            body: JSON.stringify({
                model: "qwen3-script",
                messages: [
                    {role: "user", content: [{type: "text", text: "<system-reminder>\nA reminder.\n</system-reminder>\n"}, {type: "text", text: question}]},
                    systemTurn("# Environment\nA working directory.")
                ],
                system: [{type: "text", text: "A header line."}, {type: "text", text: "You are an agent.", cache_control: ephemeral}],
                tools: [weather, {name: "DeferredToolPlaceholder", description: "", input_schema: {type: "object", properties: {}}, defer_loading: true}],
                metadata: {user_id: JSON.stringify({device_id: "0123", account_uuid: "", session_id: "4b18"})},
                max_tokens: 32000,
                thinking: {type: "adaptive", display: "updates"},
                context_management: {edits: [{type: "clear_thinking_20251015", keep: "all"}]},
                output_config: {effort: "high"},
                stream: true
            })
        });
        assert.equal(response.status, 200, await response.clone().text());
        const events = (await response.text()).trim().split("\n\n").map((frame) => JSON.parse(frame.split("\n")[1]!.replace(/^data: /, "")) as {
            type: string, content_block?: {type: string, name?: string}, delta?: {partial_json?: string, stop_reason?: string}, context_management?: unknown
        });
        const start = events.find((event) => event.type === "content_block_start" && event.content_block?.type === "tool_use");
        assert.equal(start?.content_block?.name, "get_weather");
        assert.deepEqual(JSON.parse(events.flatMap((event) => event.delta?.partial_json ?? []).join("")), {city: "Paris"});
        const delta = events.find((event) => event.type === "message_delta")!;
        assert.equal(delta.delta!.stop_reason, "tool_use");
        assert.deepEqual(delta.context_management, {applied_edits: []});
    });

    it("takes adaptive thinking with any display, and shows the thinking unless it is omitted", async () => {
        for (const display of ["updates", "summarized", "something-new"] as const) {
            const message = await create({model: "qwen3-script", messages: [{role: "user", content: "Hi"}], thinking: {type: "adaptive", display: display as "updates"}});
            assert.deepEqual(message.content.map((block) => block.type), ["thinking", "text"], display);
            assert.equal(text(message), "Hello from Qwen.");
        }
        const enabled = await create({model: "qwen3-script", messages: [{role: "user", content: "Hi"}], thinking: {type: "enabled", budget_tokens: 1024, display: "updates"}});
        assert.deepEqual(enabled.content.map((block) => block.type), ["thinking", "text"]);
        const omitted = await create({model: "qwen3-script", messages: [{role: "user", content: "Hi"}], thinking: {type: "adaptive", display: "omitted"}});
        assert.deepEqual(omitted.content.map((block) => block.type), ["text"]);
        const off = await create({model: "qwen3-script", messages: [{role: "user", content: "Hi"}], thinking: {type: "disabled"}});
        assert.deepEqual(off.content.map((block) => block.type), ["text"]);
    });

    it("leaves deferred tools out of the prompt until a tool result loads them with a tool_reference", async () => {
        const model = "qwen3-script";
        const messages: BetaMessageParam[] = [{role: "user", content: question}];
        const offered = await count({model, tools: [weather], messages});
        assert.equal((await count({model, tools: [weather, forecast], messages})).input_tokens, offered.input_tokens);
        const onlyDeferred = await create({model, tools: [{...weather, defer_loading: true}], messages, thinking: {type: "disabled"}});
        assert.equal(text(onlyDeferred), "Hello from Qwen.", "no tool was offered");

        const searched: BetaMessageParam[] = [
            ...messages,
            {role: "assistant", content: [{type: "tool_use", id: "toolu_1", name: "get_weather", input: {city: "Paris"}}]},
            {role: "user", content: [{type: "tool_result", tool_use_id: "toolu_1", content: [{type: "tool_reference", tool_name: "get_forecast"}]}]}
        ];
        const before = await count({model, tools: [weather], messages: searched});
        const loaded = await count({model, tools: [weather, forecast], messages: searched});
        assert.ok(loaded.input_tokens > before.input_tokens + 20, `${loaded.input_tokens} > ${before.input_tokens}: the loaded tool is in the prompt`);
    });

    it("offers and withdraws tools where a system turn's tool_addition and tool_removal say", async () => {
        const model = "qwen3-script";
        const asked: BetaMessageParam[] = [{role: "user", content: question}];
        const adding = (tool: BetaMessageParam["content"]): BetaMessageParam[] => [...asked, {role: "system", content: tool} as BetaMessageParam];
        const defined = await create({
            model, messages: adding([{type: "tool_addition", tool: {type: "tool_definition", definition: weather}}, {type: "text", text: "A tool is here."}])
        });
        weatherCall(defined);
        const referenced = await create({model, tools: [{...weather, defer_loading: true}], messages: adding([{type: "tool_addition", tool: {type: "tool_reference", name: "get_weather"}}])});
        weatherCall(referenced);
        const withdrawn = await create({model, tools: [weather], messages: adding([{type: "tool_removal", tool: {type: "tool_reference", name: "get_weather"}}]), thinking: {type: "disabled"}});
        assert.equal(text(withdrawn), "Hello from Qwen.");
        await assert.rejects(create({model, messages: adding([{type: "tool_addition", tool: {type: "tool_reference", name: "no_such_tool"}}])}), (error: unknown) => {
            assert.ok(error instanceof Anthropic.BadRequestError, String(error));
            assert.match(error.message, /no_such_tool/);
            return true;
        });
    });
});

describe("context_management edits", () => {
    // Llama 3.1's template renders an assistant turn's past thinking, so what the edits leave shows in its prompt's length.
    const model = "llama3.1-script";
    const thinking = (text: string) => ({type: "thinking" as const, thinking: text, signature: ""});
    const conversation: BetaMessageParam[] = [
        {role: "user", content: "Hi"},
        {role: "assistant", content: [thinking("The user greets me; a greeting back is all it takes."), {type: "text", text: "Hello."}]},
        {role: "user", content: "Hi again"},
        {role: "assistant", content: [thinking("Once more."), {type: "text", text: "Hello again."}]},
        {role: "user", content: "And again"}
    ];

    it("clear_thinking_20251015 drops the thinking of all but the latest turns that keep says, and reports it", async () => {
        const all = (await count({model, messages: conversation})).input_tokens;
        const kept = await count({model, messages: conversation, context_management: {edits: [{type: "clear_thinking_20251015", keep: "all"}]}});
        assert.equal(kept.input_tokens, all);
        assert.deepEqual(kept.context_management, {original_input_tokens: all});
        assert.equal((await count({model, messages: conversation, context_management: {edits: [{type: "clear_thinking_20251015", keep: {type: "thinking_turns", value: 2}}]}})).input_tokens, all);
        const latest = (await count({model, messages: conversation, context_management: {edits: [{type: "clear_thinking_20251015"}]}})).input_tokens;
        assert.ok(latest < all - 10, `${latest} < ${all}: the first turn's thinking is gone`);

        const message = await create({model, messages: conversation, context_management: {edits: [{type: "clear_thinking_20251015", keep: {type: "thinking_turns", value: 1}}]}});
        assert.equal(text(message), "Hello from Llama.");
        assert.equal(message.usage.input_tokens + message.usage.cache_read_input_tokens!, latest);
        assert.deepEqual(message.context_management, {applied_edits: [{type: "clear_thinking_20251015", cleared_thinking_turns: 1, cleared_input_tokens: all - latest}]});
        const streamed = await client().beta.messages.stream({
            model, max_tokens: 100, betas: BETAS, messages: conversation, context_management: {edits: [{type: "clear_thinking_20251015"}]}
        }).finalMessage();
        assert.deepEqual(streamed.context_management, message.context_management);
        const none = await create({model, messages: conversation});
        assert.equal(none.context_management, undefined);
    });

    it("clear_tool_uses_20250919 replaces old tool results past its trigger, keeping the latest and the excluded tools; other edits are ignored", async () => {
        const results = (id: string, result: string): BetaMessageParam[] => [
            {role: "assistant", content: [{type: "tool_use", id, name: "get_weather", input: {city: "Paris"}}]},
            {role: "user", content: [{type: "tool_result", tool_use_id: id, content: result}]}
        ];
        const messages: BetaMessageParam[] = [
            {role: "user", content: question},
            ...results("toolu_1", "Sunny all day with a light breeze from the west, 22 degrees at noon and 14 at night."),
            ...results("toolu_2", "Sunny.")
        ];
        const edit = {type: "clear_tool_uses_20250919" as const, trigger: {type: "tool_uses" as const, value: 1}, keep: {type: "tool_uses" as const, value: 1}};
        const full = (await count({model, tools: [weather], messages})).input_tokens;
        const cleared = (await count({model, tools: [weather], messages, context_management: {edits: [edit]}})).input_tokens;
        assert.ok(cleared < full, `${cleared} < ${full}`);
        const placeholder = messages.with(2, {role: "user", content: [{type: "tool_result", tool_use_id: "toolu_1", content: CLEARED_TOOL_RESULT}]});
        assert.equal((await count({model, tools: [weather], messages: placeholder})).input_tokens, cleared);

        const untouched = [
            {...edit, exclude_tools: ["get_weather"]},
            {...edit, trigger: {type: "tool_uses" as const, value: 2}},
            {...edit, trigger: {type: "input_tokens" as const, value: full}},
            {...edit, clear_at_least: {type: "input_tokens" as const, value: full}}
        ];
        for (const other of untouched)
            assert.equal((await count({model, tools: [weather], messages, context_management: {edits: [other]}})).input_tokens, full, JSON.stringify(other));
        const byTokens = {...edit, trigger: {type: "input_tokens" as const, value: full - 1}};
        assert.equal((await count({model, tools: [weather], messages, context_management: {edits: [byTokens]}})).input_tokens, cleared);

        const message = await create({model, tools: [weather], messages, context_management: {edits: [{type: "compact_20260112"}, edit]}});
        assert.equal(text(message), "It is sunny in Paris.");
        assert.deepEqual(message.context_management, {applied_edits: [{type: "clear_tool_uses_20250919", cleared_tool_uses: 1, cleared_input_tokens: full - cleared}]});
    });
});
