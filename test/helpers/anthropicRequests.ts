import type {MessageCreateParamsNonStreaming, MessageParam, Tool} from "@anthropic-ai/sdk/resources/messages";

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
