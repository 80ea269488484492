import assert from "node:assert/strict";
import {after, before, describe, it} from "node:test";
import {getLlama} from "node-llama-cpp";
import type {LlamaModel, ResolvableChatWrapperTypeName} from "node-llama-cpp";
import {ChatFormat} from "../native/chat/ChatFormat.js";
import type {ChatMessage, ToolDefinition} from "../native/types.js";
import {testModel} from "./helpers/testModels.js";

/**
 * Every chat format node-llama-cpp knows, rendered with Qwen3's real vocabulary: tools, a past call with its result
 * and past thinking go into the prompt, and the reply's syntax (call starts, thinking delimiters) is read off the
 * family's wrapper. Generation in these formats is tested end to end on the scripted models (chatFormats.test.ts).
 */
const families: {type: ResolvableChatWrapperTypeName, thinks: boolean, callStart: string}[] = [
    {type: "qwen", thinks: true, callStart: "<tool_call>"},
    {type: "harmony", thinks: true, callStart: " to=functions."},
    {type: "gemma4", thinks: true, callStart: "<|tool_call>call:"},
    {type: "deepSeek", thinks: true, callStart: "<function="},
    {type: "seed", thinks: true, callStart: "<seed:tool_call>"},
    {type: "llama3.1", thinks: false, callStart: "<function="},
    {type: "llama3.2-lightweight", thinks: false, callStart: "{\"name\": \""},
    {type: "mistral", thinks: false, callStart: "[TOOL_CALLS]"},
    {type: "functionary", thinks: false, callStart: ">>>"},
    {type: "llama3", thinks: false, callStart: "<tool_call>"},
    {type: "gemma", thinks: false, callStart: "<tool_call>"},
    {type: "chatML", thinks: false, callStart: "<tool_call>"},
    {type: "llama2Chat", thinks: false, callStart: "<tool_call>"},
    {type: "general", thinks: false, callStart: "<tool_call>"}
];

const tool: ToolDefinition = {name: "get_weather", description: "Get the weather", parameters: {type: "object", properties: {city: {type: "string"}}}};
const history: ChatMessage[] = [
    {role: "system", content: "Be brief."},
    {role: "user", content: "What is the weather in Paris?"},
    {role: "assistant", content: "", reasoning: "The user asks about Paris.", toolCalls: [{id: "call_1", name: "get_weather", arguments: "{\"city\": \"Paris\"}"}]},
    {role: "tool", toolCallId: "call_1", content: "sunny-and-21"}
];

describe("chat syntax of every family", () => {
    let model: LlamaModel;
    before(async () => {
        const llama = await getLlama({gpu: false, build: "never"});
        model = await llama.loadModel({modelPath: await testModel("scripted/qwen3-script.gguf"), vocabOnly: true});
    });
    after(async () => {
        await model?.dispose();
    });

    for (const family of families) {
        it(`${family.type}: tools, the past call and its result are in the prompt; the reply's syntax is the family's`, () => {
            const format = new ChatFormat(model, family.type);
            const turn = format.render(history, {tools: [tool]});
            const prompt = model.detokenize(turn.tokens, true);
            assert.ok(prompt.includes("get_weather"), `${family.type}: the tool is offered`);
            assert.ok(prompt.includes("Paris"), `${family.type}: the past call's arguments`);
            assert.ok(prompt.includes("sunny-and-21"), `${family.type}: the tool's result`);
            const call = turn.syntax.call;
            assert.ok(call != null, `${family.type}: tools offered, so calls are read`);
            assert.ok(call.starts.some((start) => start.text.startsWith(family.callStart)),
                `${family.type}: a call starts with ${family.callStart}, got ${JSON.stringify(call.starts.map((start) => start.text))}`);
            assert.equal(turn.syntax.thought != null, family.thinks, `${family.type}: thinking delimiters`);

            const plain = format.render([{role: "user", content: "Hi"}], {});
            assert.equal(plain.syntax.call, undefined, `${family.type}: no tools, no calls read`);
            assert.ok(!model.detokenize(plain.tokens, true).includes("get_weather"));
        });
    }

    it("turns thinking off with the template's own switch, or an empty thought where the reply is left open", () => {
        const hi: ChatMessage[] = [{role: "user", content: "Hi"}];
        for (const [type, ending] of [["qwen", "<think>\n\n</think>\n\n"], ["gemma4", "<|channel>thought\n<channel|>"], ["deepSeek", "<think></think>"]] as const) {
            const format = new ChatFormat(model, type);
            const off = model.detokenize(format.render(hi, {reasoning: {enabled: false}}).tokens, true);
            assert.ok(off.endsWith(ending), `${type}: thinking off ends the prompt with ${JSON.stringify(ending)}, got …${JSON.stringify(off.slice(-40))}`);
            const on = model.detokenize(format.render(hi, {}).tokens, true);
            assert.ok(!on.endsWith(ending), `${type}: thinking stays on by default`);
        }
        const harmony = new ChatFormat(model, "harmony");
        assert.match(model.detokenize(harmony.render(hi, {reasoning: {enabled: false}}).tokens, true), /Reasoning: low/);
        assert.match(model.detokenize(harmony.render(hi, {reasoning: {enabled: true, effort: "high"}}).tokens, true), /Reasoning: high/);
    });

    it("a model whose template has no tool support gets the Hermes format", () => {
        const turn = new ChatFormat(model, "llama2Chat").render(history, {tools: [tool]});
        const prompt = model.detokenize(turn.tokens, true);
        assert.match(prompt, /<tools>[\s\S]*get_weather[\s\S]*<\/tools>/);
        assert.match(prompt, /<tool_call>\n\{"name":"get_weather","arguments":\{"city":"Paris"\}\}\n<\/tool_call>/);
        assert.match(prompt, /<tool_response>\nsunny-and-21\n<\/tool_response>/);
    });

    it("a system message later in the chat is a system turn where it comes, else a <system-reminder> in the user's turn", () => {
        const chat: ChatMessage[] = [{role: "system", content: "Be brief."}, {role: "user", content: "USER-TEXT"}, {role: "system", content: "LATER-SYSTEM"}];
        // DeepSeek's wrapper moves system text in front of the conversation, Muse's drops it.
        const moved = new Set<ResolvableChatWrapperTypeName>(["deepSeek", "muse"]);
        for (const type of [...families.map((family) => family.type), "muse"] as ResolvableChatWrapperTypeName[]) {
            const prompt = model.detokenize(new ChatFormat(model, type).render(chat, {}).tokens, true);
            const user = prompt.indexOf("USER-TEXT");
            assert.ok(user >= 0 && prompt.indexOf("LATER-SYSTEM", user) > user, `${type}: the system text comes after the user's: ${JSON.stringify(prompt)}`);
            assert.equal(prompt.includes("<system-reminder>\nLATER-SYSTEM\n</system-reminder>"), moved.has(type), `${type}: ${JSON.stringify(prompt)}`);
            assert.ok(prompt.includes("Be brief."), `${type}: the system prompt stays`);
        }
    });

    it("the scripted families' own templates render a later system message as a system turn where it comes", async () => {
        const llama = await getLlama({gpu: false, build: "never"});
        const turns: [string, string][] = [
            ["qwen3-script", "<|im_start|>system\nLATER-SYSTEM<|im_end|>"],
            ["llama3.1-script", "<|start_header_id|>system<|end_header_id|>\n\nLATER-SYSTEM<|eot_id|>"],
            ["gpt-oss-script", "<|start|>developer<|message|>LATER-SYSTEM<|end|>"],
            ["gemma4-script", "<|turn>system\nLATER-SYSTEM<turn|>"]
        ];
        for (const [name, turn] of turns) {
            const own = await llama.loadModel({modelPath: await testModel(`scripted/${name}.gguf`), vocabOnly: true});
            try {
                const chat: ChatMessage[] = [{role: "user", content: "USER-TEXT"}, {role: "system", content: "LATER-SYSTEM"}];
                const prompt = own.detokenize(new ChatFormat(own).render(chat, {}).tokens, true);
                assert.ok(prompt.indexOf(turn) > prompt.indexOf("USER-TEXT"), `${name}: ${JSON.stringify(prompt)}`);
            } finally {
                await own.dispose();
            }
        }
    });
});
