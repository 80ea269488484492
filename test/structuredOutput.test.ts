import assert from "node:assert/strict";
import {describe, it} from "node:test";
import type OpenAI from "openai";
import {useTestServer} from "./helpers/testServer.js";

const model = "stories260K";
const server = useTestServer();

const personSchema = {
    type: "object",
    properties: {
        name: {type: "string", maxLength: 24},
        age: {type: "integer"},
        mood: {type: "string", enum: ["happy", "sad"]},
        pets: {type: "array", items: {type: "string", maxLength: 12}, maxItems: 2}
    },
    required: ["name", "age", "mood", "pets"],
    additionalProperties: false
};

function assertPerson(value: unknown): void {
    const person = value as {name: unknown, age: unknown, mood: unknown, pets: unknown};
    assert.deepEqual(Object.keys(person), ["name", "age", "mood", "pets"]);
    assert.equal(typeof person.name, "string");
    assert.ok((person.name as string).length <= 24);
    assert.ok(Number.isInteger(person.age));
    assert.ok(["happy", "sad"].includes(person.mood as string));
    assert.ok(Array.isArray(person.pets) && person.pets.length <= 2);
}

const weatherTools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
    {type: "function", function: {name: "get_weather", description: "Weather in a city", parameters: {
        type: "object", properties: {city: {type: "string", maxLength: 20}, unit: {type: "string", enum: ["celsius", "fahrenheit"]}}, required: ["city"]
    }}},
    {type: "function", function: {name: "get_time", description: "Time in a zone", parameters: {
        type: "object", properties: {zone: {type: "string", maxLength: 20}}, required: ["zone"]
    }}}
];

describe("response_format", () => {
    it("json_schema output always parses and matches the schema", async () => {
        for (const seed of [1, 2, 3]) {
            const response = await server.client.chat.completions.create({
                model, messages: [{role: "user", content: "Describe a person"}], max_tokens: 300, temperature: 1, seed,
                response_format: {type: "json_schema", json_schema: {name: "person", schema: personSchema}}
            });
            const choice = response.choices[0]!;
            assert.equal(choice.finish_reason, "stop");
            assertPerson(JSON.parse(choice.message.content!));
        }
    });

    it("json_schema works when streaming", async () => {
        const stream = await server.client.chat.completions.create({
            model, messages: [{role: "user", content: "Describe a person"}], max_tokens: 300, temperature: 0, stream: true,
            response_format: {type: "json_schema", json_schema: {name: "person", schema: personSchema}}
        });
        let text = "";
        for await (const chunk of stream)
            text += chunk.choices[0]?.delta.content ?? "";
        assertPerson(JSON.parse(text));
    });

    it("json_object constrains the reply to JSON, which parses when it finishes", async () => {
        const request = {model, messages: [{role: "user" as const, content: "Reply in JSON"}], max_tokens: 400, temperature: 0};
        const free = await server.client.chat.completions.create(request);
        assert.doesNotMatch(free.choices[0]!.message.content!, /^\s*\{/, "without the grammar this model writes prose");
        const response = await server.client.chat.completions.create({...request, response_format: {type: "json_object"}});
        const content = response.choices[0]!.message.content!;
        assert.match(content, /^\s*\{\s*"/, "an object, opening with a key");
        // The tiny model writes one endless string value under the generic JSON grammar, so it usually
        // reaches max_tokens; json_schema above is where complete, parsed output is checked.
        if (response.choices[0]!.finish_reason === "stop")
            assert.equal(typeof JSON.parse(content), "object");
    });
});

describe("tools", () => {
    const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{role: "user", content: "What is the weather in Paris?"}];

    it("returns a tool call when a tool is required", async () => {
        const response = await server.client.chat.completions.create({model, messages, tools: weatherTools, tool_choice: "required", temperature: 0, max_tokens: 200});
        const choice = response.choices[0]!;
        assert.equal(choice.finish_reason, "tool_calls");
        assert.equal(choice.message.content, null);
        const call = choice.message.tool_calls![0]!;
        assert.equal(call.type, "function");
        assert.match(call.id, /^call_/);
        assert.ok(call.type === "function" && ["get_weather", "get_time"].includes(call.function.name));
        const args = JSON.parse(call.type === "function" ? call.function.arguments : "") as Record<string, unknown>;
        assert.equal(typeof args, "object");
    });

    it("calls the function named by tool_choice, with arguments matching its schema", async () => {
        const response = await server.client.chat.completions.create({
            model, messages, tools: weatherTools, tool_choice: {type: "function", function: {name: "get_weather"}}, temperature: 0, max_tokens: 200
        });
        const call = response.choices[0]!.message.tool_calls![0]!;
        assert.ok(call.type === "function");
        assert.equal(call.function.name, "get_weather");
        const args = JSON.parse(call.function.arguments) as {city: unknown, unit: unknown};
        assert.equal(typeof args.city, "string");
        // `unit` is optional: it may be left out, and when written it is one of the enum's values.
        assert.ok(args.unit === undefined || ["celsius", "fahrenheit"].includes(args.unit as string));
    });

    it("streams tool calls as deltas the way OpenAI does", async () => {
        const request = {model, messages, tools: weatherTools, tool_choice: {type: "function" as const, function: {name: "get_time"}}, temperature: 0, max_tokens: 200};
        const whole = await server.client.chat.completions.create(request);
        const stream = await server.client.chat.completions.create({...request, stream: true});
        let id: string | undefined;
        let name: string | undefined;
        let args = "";
        let argumentChunks = 0;
        let finishReason: string | null = null;
        for await (const chunk of stream) {
            const choice = chunk.choices[0];
            if (choice == null)
                continue;
            finishReason = choice.finish_reason ?? finishReason;
            for (const delta of choice.delta.tool_calls ?? []) {
                assert.equal(delta.index, 0);
                if (delta.id != null) {
                    assert.equal(id, undefined, "id and name come once, in the first delta");
                    id = delta.id;
                    name = delta.function?.name;
                    assert.equal(delta.type, "function");
                    assert.equal(delta.function?.arguments, "");
                } else {
                    args += delta.function?.arguments ?? "";
                    argumentChunks++;
                }
            }
        }
        const call = whole.choices[0]!.message.tool_calls![0]!;
        assert.ok(call.type === "function");
        assert.equal(name, "get_time");
        assert.equal(args, call.function.arguments);
        assert.ok(argumentChunks > 1, "arguments arrive in pieces");
        assert.equal(finishReason, "tool_calls");
        assert.equal(typeof (JSON.parse(args) as {zone: unknown}).zone, "string");
    });

    it("continues a conversation with tool results, and tool_choice none answers in text", async () => {
        const response = await server.client.chat.completions.create({
            model,
            tools: weatherTools,
            tool_choice: "none",
            temperature: 0,
            max_tokens: 20,
            messages: [
                ...messages,
                {role: "assistant", content: null, tool_calls: [{id: "call_1", type: "function", function: {name: "get_weather", arguments: "{\"city\":\"Paris\"}"}}]},
                {role: "tool", tool_call_id: "call_1", content: "{\"temperature\": 21}"}
            ]
        });
        const choice = response.choices[0]!;
        assert.equal(choice.message.tool_calls, undefined);
        assert.ok(choice.message.content!.length > 0);
        assert.notEqual(choice.finish_reason, "tool_calls");
    });

    it("calls a tool whose schema the grammar cannot enforce with any JSON object, instead of refusing the request", async () => {
        const exotic: OpenAI.Chat.ChatCompletionTool = {type: "function", function: {name: "tag_items", parameters: {
            type: "object", properties: {tags: {type: "array", items: {type: "string"}, uniqueItems: true}, link: {type: "string", format: "iri-reference"}}
        }}};
        const response = await server.client.chat.completions.create({
            model, messages, tools: [...weatherTools, exotic], tool_choice: {type: "function", function: {name: "tag_items"}}, temperature: 0, max_tokens: 60
        });
        const choice = response.choices[0]!;
        const call = choice.message.tool_calls![0]!;
        assert.ok(call.type === "function" && call.function.name === "tag_items");
        if (choice.finish_reason === "tool_calls") {
            const args = JSON.parse(call.function.arguments) as unknown;
            assert.ok(args != null && typeof args === "object" && !Array.isArray(args), call.function.arguments);
        }
        // The other tools keep their schemas: a call to one still matches it.
        const weather = await server.client.chat.completions.create({
            model, messages, tools: [...weatherTools, exotic], tool_choice: {type: "function", function: {name: "get_weather"}}, temperature: 0, max_tokens: 200
        });
        const weatherCall = weather.choices[0]!.message.tool_calls![0]!;
        assert.ok(weatherCall.type === "function");
        assert.equal(typeof (JSON.parse(weatherCall.function.arguments) as {city: unknown}).city, "string");
    });

    it("with tool_choice auto, a model that answers in text gets a text reply", async () => {
        const response = await server.client.chat.completions.create({model, messages, tools: weatherTools, temperature: 0, max_tokens: 20});
        const choice = response.choices[0]!;
        assert.ok(choice.message.content!.length > 0);
        assert.equal(choice.message.tool_calls, undefined);
        assert.equal(choice.finish_reason, "length");
    });
});
