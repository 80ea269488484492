import assert from "node:assert/strict";
import {existsSync} from "node:fs";
import path from "node:path";
import {describe, it} from "node:test";
import {Ollama} from "ollama";
import type {Message, Tool} from "ollama";
import type OpenAI from "openai";
import {ollamaReply, ollamaStreamedReply, openaiReply, openaiStreamedReply} from "./helpers/chatReplies.js";
import type {ChatReply} from "./helpers/chatReplies.js";
import {testModelsDir} from "./helpers/testModels.js";
import {useTestServer} from "./helpers/testServer.js";

/**
 * Reasoning and native tool calls on the real chat formats of Qwen3, Llama 3.1, gpt-oss and Gemma 4, through
 * the scripted models of ../shared/models/scripted (README.md there, "Scripted real-format models"): the real
 * tokenizers and templates, with weights that follow fixed scripts under greedy decoding. Hearth must return
 * what llama-server returns for them: the thinking apart from the answer, the native call as a tool call, and
 * no special token in any text.
 */

type Family = {
    name: string,
    /** Under the models folder; the model is served under the file name without `.gguf`. */
    file: string,
    /** The plain chat's answer. */
    answer: string,
    /** Whether a plain chat thinks first ("Let me think."). */
    thinks: boolean,
    /** Whether the template can turn thinking off (gpt-oss thinks whatever it is told). */
    thinkingSwitch: boolean
};

const families: Family[] = [
    {name: "Qwen3", file: "scripted/qwen3-script.gguf", answer: "Hello from Qwen.", thinks: true, thinkingSwitch: true},
    {name: "Llama 3.1", file: "scripted/llama3.1-script.gguf", answer: "Hello from Llama.", thinks: false, thinkingSwitch: false},
    {name: "gpt-oss", file: "scripted/gpt-oss-script.gguf", answer: "Hello from gpt-oss.", thinks: true, thinkingSwitch: false},
    {name: "Gemma 4", file: "scripted/gemma4-script.gguf", answer: "Hello from Gemma.", thinks: true, thinkingSwitch: true}
];
const REASONING = "Let me think.";
const TOOL_RESULT_ANSWER = "It is sunny in Paris.";
/** Far above every script (a few dozen tokens), so a reply that runs on past its end token is cut short. */
const MAX_TOKENS = 100;

const scriptedDir = path.join(testModelsDir(), "scripted");
if (!families.every((family) => existsSync(path.join(testModelsDir(), family.file))))
    throw new Error(`The scripted real-format models (${families.map((family) => family.file).join(", ")}) are not all in ${scriptedDir}; ` +
        "see the models README, \"Scripted real-format models\", or set HEARTH_TEST_MODELS to the folder that has them");

const server = useTestServer({modelFiles: families.map((family) => family.file), ctxSize: 4096, parallel: 2});
const ollama = () => new Ollama({host: server.url});
const modelOf = (family: Family) => path.basename(family.file, ".gguf");

const weatherParameters = {type: "object", properties: {city: {type: "string", description: "The city"}}, required: ["city"]};
const openaiWeather: OpenAI.Chat.ChatCompletionTool = {type: "function", function: {name: "get_weather", description: "The weather in a city", parameters: weatherParameters}};
const openaiTime: OpenAI.Chat.ChatCompletionTool = {type: "function", function: {name: "get_time", description: "The local time in a city", parameters: weatherParameters}};
const ollamaWeather: Tool = {type: "function", function: {name: "get_weather", description: "The weather in a city", parameters: weatherParameters}};
const question = "What is the weather in Paris?";

type OpenaiBody = Parameters<typeof openaiReply>[1];
type OllamaRequest = Parameters<typeof ollamaReply>[1];
const openaiModes = [
    {mode: "non-streamed", chat: (body: OpenaiBody, label: string) => openaiReply(server.client, body, label)},
    {mode: "streamed", chat: (body: OpenaiBody, label: string) => openaiStreamedReply(server.client, body, label)}
];
const ollamaModes = [
    {mode: "non-streamed", chat: (request: OllamaRequest, label: string) => ollamaReply(ollama(), request, label)},
    {mode: "streamed", chat: (request: OllamaRequest, label: string) => ollamaStreamedReply(ollama(), request, label)}
];

/** What a reply without a call must hold. `reasoning`: "yes" thought, "no" did not, "separate" either (but never in the content). */
function assertAnswer(reply: ChatReply, label: string, answer: string, reasoning: "yes" | "no" | "separate"): void {
    assert.deepEqual(reply.toolCalls, [], `${label}: no tool call`);
    assert.equal(reply.content, answer, `${label}: the answer in the content`);
    assert.equal(reply.finishReason, "stop", `${label}: finish reason`);
    const thought = reply.reasoning?.trim() ?? "";
    if (reasoning === "yes")
        assert.equal(thought, REASONING, `${label}: the thinking apart from the answer`);
    else if (reasoning === "no")
        assert.equal(thought, "", `${label}: no thinking`);
    else
        assert.ok(thought === "" || thought === REASONING, `${label}: the thinking, if any, is the model's: ${JSON.stringify(reply.reasoning)}`);
    assert.ok(!reply.reasoningAfterContent, `${label}: the thinking is streamed before the answer`);
}

function assertWeatherCall(reply: ChatReply, label: string, api: "openai" | "ollama"): void {
    assert.equal(reply.toolCalls.length, 1, `${label}: one tool call, got ${JSON.stringify(reply.toolCalls)} and content ${JSON.stringify(reply.content)}`);
    const call = reply.toolCalls[0]!;
    assert.equal(call.name, "get_weather", `${label}: the called function`);
    assert.ok(reply.content == null || reply.content === "", `${label}: a reply that is only a call has no content, got ${JSON.stringify(reply.content)}`);
    if (api === "ollama") {
        assert.deepEqual(call.arguments, {city: "Paris"}, `${label}: the arguments, as an object`);
        return;
    }
    assert.equal(typeof call.arguments, "string", `${label}: the arguments, as a JSON string`);
    assert.deepEqual(parseArguments(call.arguments as string, label), {city: "Paris"}, `${label}: the arguments`);
    assert.ok(typeof call.id === "string" && call.id !== "", `${label}: the call has an id`);
    assert.equal(call.type, "function", `${label}: the call's type`);
    assert.equal(reply.finishReason, "tool_calls", `${label}: finish reason`);
}

function parseArguments(text: string, label: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        assert.fail(`${label}: the arguments are not JSON: ${JSON.stringify(text)}`);
    }
}

/** A call as the client sends it back in the history. */
function openaiAssistantTurn(reply: ChatReply): OpenAI.Chat.ChatCompletionAssistantMessageParam {
    return {
        role: "assistant",
        content: reply.content,
        tool_calls: reply.toolCalls.map((call) => ({id: call.id!, type: "function" as const, function: {name: call.name, arguments: call.arguments as string}}))
    };
}

for (const family of families) {
    const model = modelOf(family);
    const plainReasoning = family.thinks ? "yes" : "no";
    /** Thinking turned off: none where the template has a switch; gpt-oss thinks anyway, but apart. */
    const offReasoning = family.thinkingSwitch || !family.thinks ? "no" : "separate";
    const base = {model, temperature: 0, max_tokens: MAX_TOKENS};
    const ask: OpenAI.Chat.ChatCompletionMessageParam[] = [{role: "user", content: question}];

    describe(`${family.name} (${model}) over /v1/chat/completions`, () => {
        for (const {mode, chat} of openaiModes) {
            const label = (what: string) => `${family.name}, ${mode}, ${what}`;

            it(`${mode}: a plain chat ${family.thinks ? "thinks in reasoning_content, then answers" : "answers"} in content`, async () => {
                const reply = await chat({...base, messages: [{role: "user", content: "Hello!"}]}, label("plain chat"));
                assertAnswer(reply, label("plain chat"), family.answer, plainReasoning);
                if (family.thinks)
                    assert.ok((reply.reasoningTokens ?? 0) > 0, `${label("plain chat")}: usage.completion_tokens_details.reasoning_tokens > 0, got ${reply.reasoningTokens}`);
                else
                    assert.equal(reply.reasoningTokens ?? 0, 0, `${label("plain chat")}: no reasoning tokens`);
            });

            it(`${mode}: offered get_weather, calls it natively with {"city": "Paris"} (tool_choice auto by default)`, async () => {
                assertWeatherCall(await chat({...base, messages: ask, tools: [openaiWeather]}, label("tools offered")), label("tools offered"), "openai");
            });

            it(`${mode}: tool_choice "required" gives the call`, async () => {
                assertWeatherCall(await chat({...base, messages: ask, tools: [openaiWeather], tool_choice: "required"}, label("tool_choice required")), label("tool_choice required"), "openai");
            });

            it(`${mode}: tool_choice naming get_weather gives the call`, async () => {
                const body: OpenaiBody = {...base, messages: ask, tools: [openaiWeather], tool_choice: {type: "function", function: {name: "get_weather"}}};
                assertWeatherCall(await chat(body, label("named tool_choice")), label("named tool_choice"), "openai");
            });

            it(`${mode}: get_weather among other tools, parallel_tool_calls false, gives the one call`, async () => {
                const body: OpenaiBody = {...base, messages: ask, tools: [openaiTime, openaiWeather], parallel_tool_calls: false};
                assertWeatherCall(await chat(body, label("two tools, no parallel calls")), label("two tools, no parallel calls"), "openai");
            });

            it(`${mode}: tool_choice "none" offers no tools: the plain answer, no call`, async () => {
                const reply = await chat({...base, messages: ask, tools: [openaiWeather], tool_choice: "none"}, label("tool_choice none"));
                assertAnswer(reply, label("tool_choice none"), family.answer, plainReasoning);
            });

            it(`${mode}: agent round trip: the call, its result in a tool message, then "${TOOL_RESULT_ANSWER}"`, async () => {
                const call = await chat({...base, messages: ask, tools: [openaiWeather]}, label("round trip, the call"));
                assertWeatherCall(call, label("round trip, the call"), "openai");
                const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
                    ...ask,
                    openaiAssistantTurn(call),
                    {role: "tool", tool_call_id: call.toolCalls[0]!.id!, content: "sunny"}
                ];
                const answer = await chat({...base, messages, tools: [openaiWeather]}, label("round trip, the answer"));
                assertAnswer(answer, label("round trip, the answer"), TOOL_RESULT_ANSWER, "no");
            });

            it(`${mode}: reasoning_effort "none" ${describeOff(family)}`, async () => {
                const reply = await chat({...base, messages: [{role: "user", content: "Hello!"}], reasoning_effort: "none"}, label("reasoning_effort none"));
                assertAnswer(reply, label("reasoning_effort none"), family.answer, offReasoning);
            });

            it(`${mode}: chat_template_kwargs.enable_thinking false ${describeOff(family)}`, async () => {
                const body: OpenaiBody = {...base, messages: [{role: "user", content: "Hello!"}], chat_template_kwargs: {enable_thinking: false}};
                assertAnswer(await chat(body, label("enable_thinking false")), label("enable_thinking false"), family.answer, offReasoning);
            });
        }

        it("a second user turn after the answer gets the plain script again", async () => {
            const label = `${family.name}, second turn`;
            const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
                {role: "user", content: "Hello!"},
                {role: "assistant", content: family.answer},
                {role: "user", content: "And again?"}
            ];
            assertAnswer(await openaiReply(server.client, {...base, messages}, label), label, family.answer, plainReasoning);
        });
    });

    describe(`${family.name} (${model}) over /api/chat`, () => {
        // The client sets `stream` on the object it is given, so each request is a fresh object.
        const request = (messages: Message[], extra: Partial<OllamaRequest> = {}): OllamaRequest =>
            ({model, messages, options: {temperature: 0, num_predict: MAX_TOKENS}, ...extra});
        const askOllama: Message[] = [{role: "user", content: question}];

        for (const {mode, chat} of ollamaModes) {
            const label = (what: string) => `${family.name}, /api/chat ${mode}, ${what}`;

            it(`${mode}: a plain chat ${family.thinks ? "thinks in message.thinking, then answers" : "answers"} in message.content`, async () => {
                const reply = await chat(request([{role: "user", content: "Hello!"}]), label("plain chat"));
                assertAnswer(reply, label("plain chat"), family.answer, plainReasoning);
            });

            it(`${mode}: think false ${describeOff(family)}`, async () => {
                const reply = await chat(request([{role: "user", content: "Hello!"}], {think: false}), label("think false"));
                assertAnswer(reply, label("think false"), family.answer, offReasoning);
            });

            it(`${mode}: offered get_weather, calls it with arguments {city: "Paris"}`, async () => {
                assertWeatherCall(await chat(request(askOllama, {tools: [ollamaWeather]}), label("tools offered")), label("tools offered"), "ollama");
            });

            it(`${mode}: agent round trip: the call, its result in a tool message, then "${TOOL_RESULT_ANSWER}"`, async () => {
                const call = await chat(request(askOllama, {tools: [ollamaWeather]}), label("round trip, the call"));
                assertWeatherCall(call, label("round trip, the call"), "ollama");
                const messages: Message[] = [
                    ...askOllama,
                    {role: "assistant", content: call.content ?? "", tool_calls: call.toolCalls.map((toolCall) => ({function: {name: toolCall.name, arguments: toolCall.arguments as Record<string, unknown>}}))},
                    {role: "tool", content: "sunny", tool_name: "get_weather"}
                ];
                const answer = await chat(request(messages, {tools: [ollamaWeather]}), label("round trip, the answer"));
                assertAnswer(answer, label("round trip, the answer"), TOOL_RESULT_ANSWER, "no");
            });
        }
    });
}

function describeOff(family: Family): string {
    if (!family.thinks)
        return "gives the same answer (no thinking either way)";
    return family.thinkingSwitch ? "answers without thinking" : "still thinks (gpt-oss cannot stop), apart from the answer";
}
