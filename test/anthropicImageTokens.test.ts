import assert from "node:assert/strict";
import {describe, it} from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import type {BetaMessageParam} from "@anthropic-ai/sdk/resources/beta/messages";
import {CLEARED_TOOL_RESULT} from "../server/anthropic/contextEdits.js";
import {fixtureImage} from "./helpers/imageBytes.js";
import {useTestServer} from "./helpers/testServer.js";

/**
 * An image's tokens on `/v1/messages` wherever a prompt's length is told or weighed: the stream's `message_start`,
 * `count_tokens`, the final usage and the `input_tokens` thresholds of `context_management` all count them alike,
 * on the vision fixture (a Gemma 4 text model and its projector, whose images are 81 to 85 tokens each).
 */

const model = "gemma4-vision-script";
// Its projector lies beside it, and is found there.
const server = useTestServer({modelFiles: [`vision/${model}.gguf`], ctxSize: 4096, parallel: 1});
const client = () => new Anthropic({baseURL: server.url, apiKey: "x", maxRetries: 0});
const image = async (name: string) => ({type: "image" as const, source: {type: "base64" as const, media_type: "image/png" as const, data: (await fixtureImage(name)).toString("base64")}});

/** A streamed reply's `message_start` usage, and its final usage (the SDK folds `message_delta`'s into it). */
async function streamed(request: Anthropic.Beta.MessageCreateParamsStreaming) {
    const stream = client().beta.messages.stream(request);
    let started: Anthropic.Beta.BetaUsage | undefined;
    for await (const event of stream)
        // A copy: the SDK folds the later usage into the very object this event carries.
        if (event.type === "message_start")
            started = {...event.message.usage};
    const final = await stream.finalMessage();
    assert.ok(started != null, "a message_start came");
    return {started, final};
}

describe("an image's tokens on /v1/messages", () => {
    it("message_start's input_tokens counts the image as count_tokens and the final usage do", async () => {
        const messages: BetaMessageParam[] = [{role: "user", content: [await image("checker.png"), await image("magenta-wide.png"), {type: "text", text: "What colour is this image?"}]}];
        const counted = (await client().beta.messages.countTokens({model, messages})).input_tokens;
        const {started, final} = await streamed({model, max_tokens: 8, messages, stream: true});
        assert.equal(started.input_tokens, counted, "message_start says what count_tokens says");
        assert.equal(final.usage.input_tokens + (final.usage.cache_read_input_tokens ?? 0), counted, "and what the final usage says");
        assert.ok(counted > 81 + 85, `${counted} tokens hold both images' 166`);
    });

    it("clear_tool_uses_20250919's input_tokens trigger weighs a screenshot's tokens, in count_tokens and in the reply", async () => {
        const tools = [{name: "screenshot", input_schema: {type: "object" as const}}];
        const screenshot = async (id: string, name: string): Promise<BetaMessageParam[]> => [
            {role: "assistant", content: [{type: "tool_use", id, name: "screenshot", input: {}}]},
            {role: "user", content: [{type: "tool_result", tool_use_id: id, content: [await image(name)]}]}
        ];
        const messages: BetaMessageParam[] = [{role: "user", content: "Take a screenshot"}, ...await screenshot("toolu_1", "red.png"), ...await screenshot("toolu_2", "green.png")];
        const full = (await client().beta.messages.countTokens({model, tools, messages})).input_tokens;
        const placeholder = messages.with(2, {role: "user", content: [{type: "tool_result", tool_use_id: "toolu_1", content: CLEARED_TOOL_RESULT}]});
        const cleared = (await client().beta.messages.countTokens({model, tools, messages: placeholder})).input_tokens;
        // The placeholder's few words stand where the screenshot's 81 image tokens were.
        assert.ok(full - cleared > 60, `clearing the first screenshot frees most of its image tokens (${full} → ${cleared})`);

        // Just past the trigger only when the images are counted: without them the prompt is some 160 tokens shorter.
        const edit = {type: "clear_tool_uses_20250919" as const, trigger: {type: "input_tokens" as const, value: full - 1}, keep: {type: "tool_uses" as const, value: 1}};
        const counted = await client().beta.messages.countTokens({model, tools, messages, context_management: {edits: [edit]}});
        assert.deepEqual(counted, {input_tokens: cleared, context_management: {original_input_tokens: full}});
        const {started, final} = await streamed({model, max_tokens: 8, tools, messages, context_management: {edits: [edit]}, stream: true});
        assert.deepEqual(final.context_management, {applied_edits: [{type: "clear_tool_uses_20250919", cleared_tool_uses: 1, cleared_input_tokens: full - cleared}]});
        assert.equal(started.input_tokens, cleared);
        assert.equal(final.usage.input_tokens + (final.usage.cache_read_input_tokens ?? 0), cleared);

        const atTrigger = {...edit, trigger: {type: "input_tokens" as const, value: full}};
        assert.equal((await client().beta.messages.countTokens({model, tools, messages, context_management: {edits: [atTrigger]}})).input_tokens, full);
    });
});
