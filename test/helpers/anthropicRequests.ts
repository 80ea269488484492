import assert from "node:assert/strict";
import type {Message, MessageCreateParamsNonStreaming, MessageParam, ToolUseBlock, Tool} from "@anthropic-ai/sdk/resources/messages";

/** The scripted models' tool: offered, they call it for Paris. */
export const weather: Tool = {
    name: "get_weather",
    description: "The weather in a city",
    input_schema: {type: "object", properties: {city: {type: "string"}}, required: ["city"]}
};
export const hello: MessageParam[] = [{role: "user", content: "Hi"}];

/** A greedy request for `model`, so a scripted model follows its script; `temperature` is sent though this SDK's types no longer list it. */
export function greedyRequest(model: string): MessageCreateParamsNonStreaming {
    return {model, max_tokens: 200, temperature: 0, messages: hello} as MessageCreateParamsNonStreaming;
}

/** Asserts that `message` is a scripted model's call of {@link weather} for Paris, and returns its tool_use block. */
export function assertWeatherCall(message: Message): ToolUseBlock {
    assert.equal(message.stop_reason, "tool_use");
    const use = message.content.find((block) => block.type === "tool_use");
    assert.ok(use != null && use.type === "tool_use", JSON.stringify(message.content));
    assert.match(use.id, /^toolu_/);
    assert.equal(use.name, "get_weather");
    assert.deepEqual(use.input, {city: "Paris"});
    return use;
}
