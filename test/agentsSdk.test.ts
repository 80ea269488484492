import assert from "node:assert/strict";
import {before, describe, it} from "node:test";
import {Agent, run, setTracingDisabled, tool} from "@openai/agents";
import {z} from "zod";
import {useTestServer} from "./helpers/testServer.js";

/**
 * The OpenAI Agents SDK pointed at Hearth with nothing but a base URL: it speaks the Responses API (/v1/responses),
 * runs the get_weather tool the scripted models call, sends its result back and gets their answer. No model-specific code.
 */
const server = useTestServer({modelFiles: ["scripted/qwen3-script.gguf", "scripted/gpt-oss-script.gguf", "scripted/llama3.1-script.gguf"], ctxSize: 4096, parallel: 2});

describe("the OpenAI Agents SDK", () => {
    before(() => {
        // As a user points it at Hearth: the environment's base URL (any key).
        process.env.OPENAI_BASE_URL = server.baseURL;
        process.env.OPENAI_API_KEY = "unused";
        setTracingDisabled(true);
    });

    for (const model of ["qwen3-script", "gpt-oss-script", "llama3.1-script"]) {
        for (const stream of [false, true]) {
            it(`completes the get_weather round trip on ${model}, ${stream ? "streamed" : "not streamed"}`, async () => {
                const cities: string[] = [];
                const getWeather = tool({
                    name: "get_weather",
                    description: "Get the current weather for a city",
                    parameters: z.object({city: z.string()}),
                    execute: async ({city}) => {
                        cities.push(city);
                        return "sunny";
                    }
                });
                const agent = new Agent({name: "Weather", instructions: "Answer briefly.", model, tools: [getWeather], modelSettings: {temperature: 0}});
                const question = "What is the weather in Paris?";
                let finalOutput: unknown;
                if (stream) {
                    const result = await run(agent, question, {stream: true});
                    let events = 0;
                    for await (const _event of result.toStream())
                        events++;
                    await result.completed;
                    assert.ok(events > 0, "the run streamed its events");
                    finalOutput = result.finalOutput;
                } else {
                    finalOutput = (await run(agent, question)).finalOutput;
                }
                assert.deepEqual(cities, ["Paris"], `${model}: the tool ran once, with the city the model chose`);
                assert.equal(finalOutput, "It is sunny in Paris.", `${model}: the answer from the tool's result`);
            });
        }
    }
});
