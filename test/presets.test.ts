import assert from "node:assert/strict";
import {copyFile, mkdtemp, rm, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import Database from "better-sqlite3";
import {Ollama} from "ollama";
import OpenAI from "openai";
import {Registry} from "../models/Registry.js";
import {testModel} from "./helpers/testModels.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {useTestServer} from "./helpers/testServer.js";

const plain = "stories260K";
const chatml = "stories260K-chatml";
const scripted = "llama3.1-script";
const server = useTestServer({modelFiles: ["stories260K.gguf", "derived/stories260K-chatml.gguf", "scripted/llama3.1-script.gguf"]});
const client = () => new Ollama({host: server.url});

async function post(route: string, body: unknown) {
    const response = await fetch(`${server.url}${route}`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
    return {status: response.status, body: await response.json() as Record<string, unknown>};
}

const story = {role: "user", content: "Once upon a time"};

describe("presets through the ollama client", () => {
    it("creates a preset with from, system and parameters, shows, lists and serves it with its settings", async () => {
        const statuses: string[] = [];
        for await (const part of await client().create({model: "teller", from: chatml, system: "You tell short stories.", parameters: {temperature: 0, num_predict: 7}, stream: true}))
            statuses.push(part.status);
        assert.equal(statuses.at(-1), "success");
        assert.ok(statuses.includes("creating system layer"), statuses.join(", "));

        const shown = await client().show({model: "teller"});
        assert.equal(shown.system, "You tell short stories.");
        assert.match(shown.parameters, /^temperature\s+0$/m);
        assert.match(shown.parameters, /^num_predict\s+7$/m);
        assert.match(shown.modelfile, new RegExp(`^FROM ${chatml}$`, "m"));
        assert.match(shown.modelfile, /^SYSTEM You tell short stories\.$/m);
        assert.equal(shown.details.parent_model, chatml);
        assert.equal(shown.details.family, "llama");
        assert.match(shown.template, /im_start/, "the base's own template");

        const listed = (await client().list()).models.find((model) => model.name === "teller");
        assert.ok(listed != null, "listed by /api/tags");
        assert.equal(listed.details.parent_model, chatml);
        const openaiModels = await server.client.models.list();
        assert.ok(openaiModels.data.some((model) => model.id === "teller"), "listed by /v1/models");
        assert.equal((await server.client.models.retrieve("teller")).id, "teller");

        // num_predict from the preset limits the reply; the system prompt adds its tokens to the prompt.
        const viaPreset = await client().chat({model: "teller", messages: [story]});
        assert.equal(viaPreset.model, "teller");
        assert.equal(viaPreset.eval_count, 7);
        assert.equal(viaPreset.done_reason, "length");
        const direct = await client().chat({model: chatml, messages: [story], options: {temperature: 0, num_predict: 7}});
        const withSystem = await client().chat({model: chatml, messages: [{role: "system", content: "You tell short stories."}, story], options: {temperature: 0, num_predict: 7}});
        assert.ok(viaPreset.prompt_eval_count > direct.prompt_eval_count, `${viaPreset.prompt_eval_count} > ${direct.prompt_eval_count}`);
        assert.equal(viaPreset.prompt_eval_count, withSystem.prompt_eval_count, "the preset's system turn is rendered by the model's template");
        assert.equal(viaPreset.message.content, withSystem.message.content, "greedy: the same reply as the system prompt sent by hand");

        // A request's own system prompt replaces the preset's, as in Ollama; its options override the preset's.
        const own = await client().chat({model: "teller", messages: [{role: "system", content: "Hi"}, story], options: {num_predict: 3}});
        assert.equal(own.eval_count, 3);
        assert.ok(own.prompt_eval_count < viaPreset.prompt_eval_count);
    });

    it("renders a preset's system turn in a real chat template (Llama 3.1's)", async () => {
        await client().create({model: "llama-preset", from: scripted, system: "You are a helpful assistant named Hearth."});
        const shown = await client().show({model: "llama-preset"});
        assert.match(shown.template, /start_header_id/, "the base's own template");
        const viaPreset = await client().chat({model: "llama-preset", messages: [{role: "user", content: "Hi"}], options: {temperature: 0}});
        const bySystem = await client().chat({model: scripted, messages: [{role: "system", content: "You are a helpful assistant named Hearth."}, {role: "user", content: "Hi"}], options: {temperature: 0}});
        const bare = await client().chat({model: scripted, messages: [{role: "user", content: "Hi"}], options: {temperature: 0}});
        assert.equal(viaPreset.message.content, "Hello from Llama.");
        assert.equal(viaPreset.prompt_eval_count, bySystem.prompt_eval_count);
        assert.ok(viaPreset.prompt_eval_count > bare.prompt_eval_count, `${viaPreset.prompt_eval_count} > ${bare.prompt_eval_count}`);
    });

    it("applies the preset on /api/generate, with seed and stop", async () => {
        await client().create({model: "greedy-stop", from: plain, parameters: {temperature: 0, num_predict: 60, stop: ["Lily"]}});
        const plainReply = await client().generate({model: plain, prompt: "Once upon a time", raw: true, options: {temperature: 0, num_predict: 60}});
        const full = String(plainReply.response);
        assert.ok(full.includes("Lily"), full);
        const stopped = await client().generate({model: "greedy-stop", prompt: "Once upon a time", raw: true});
        assert.equal(stopped.response, full.slice(0, full.indexOf("Lily")));
        assert.equal(stopped.done_reason, "stop");

        await client().create({model: "seeded", from: plain, parameters: {temperature: 1.5, seed: 42, num_predict: 20}});
        const first = await client().generate({model: "seeded", prompt: "Once upon a time", raw: true});
        const second = await client().generate({model: "seeded", prompt: "Once upon a time", raw: true});
        assert.equal(first.response, second.response, "the preset's seed makes it repeatable");
        const otherSeed = await client().generate({model: "seeded", prompt: "Once upon a time", raw: true, options: {seed: 7}});
        assert.notEqual(otherSeed.response, first.response, "the request's seed wins");
    });

    it("copies a preset and deletes it without touching its base", async () => {
        await client().create({model: "to-copy", from: chatml, system: "Be brief.", parameters: {num_predict: 4}});
        await client().copy({source: "to-copy", destination: "copied"});
        const shown = await client().show({model: "copied"});
        assert.equal(shown.system, "Be brief.");
        assert.match(shown.parameters, /num_predict\s+4/);
        await assert.rejects(client().copy({source: "no-such-thing", destination: "copied-nothing"}), /"no-such-thing" does not exist/);
        await client().copy({source: plain, destination: "plain-copy"});
        assert.equal((await client().show({model: "plain-copy"})).details.parent_model, plain);

        await client().delete({model: "copied"});
        await assert.rejects(client().show({model: "copied"}));
        assert.equal((await client().show({model: "to-copy"})).system, "Be brief.", "the copy's source stays");
        const reply = await client().chat({model: chatml, messages: [story], options: {num_predict: 2}});
        assert.equal(reply.eval_count, 2, "the base model still serves");
    });

    it("makes a preset of a library model, and deleting it leaves the model in the library", async () => {
        const imported = await server.library.import(await testModel("stories260K.gguf"), "lib-stories");
        await client().create({model: "lib-preset", from: imported.name, parameters: {num_predict: 3}});
        assert.equal((await client().generate({model: "lib-preset", prompt: "Once upon a time"})).eval_count, 3);
        await client().delete({model: "lib-preset"});
        assert.ok(server.library.find("lib-stories") != null, "the base stays in the library");
        assert.ok((await client().list()).models.some((model) => model.name === "lib-stories"));
        assert.ok(!(await client().list()).models.some((model) => model.name === "lib-preset"));
    });
});

describe("presets from a Modelfile", () => {
    it("reads FROM, a multi-line SYSTEM, PARAMETERs and MESSAGEs", async () => {
        const modelfile = [
            "# a storyteller",
            `FROM ${chatml}`,
            'SYSTEM """You tell stories.',
            'Short ones."""',
            "PARAMETER temperature 0",
            "PARAMETER num_predict 5",
            'PARAMETER stop "The end"',
            "PARAMETER stop <|im_end|>",
            "MESSAGE user Tell me one",
            "MESSAGE assistant Once there was a cat.",
            "TEMPLATE {{ .Prompt }}"
        ].join("\n");
        const created = await post("/api/create", {name: "from-file", modelfile, stream: false});
        assert.equal(created.status, 200, JSON.stringify(created.body));
        const shown = await client().show({model: "from-file"});
        assert.equal(shown.system, "You tell stories.\nShort ones.");
        assert.match(shown.parameters, /^stop\s+"The end"$/m);
        assert.match(shown.parameters, /^stop\s+"<\|im_end\|>"$/m);
        assert.equal(shown.template, "{{ .Prompt }}", "the template is kept and shown");
        assert.match(shown.modelfile, /^MESSAGE assistant Once there was a cat\.$/m);
        const reply = await client().chat({model: "from-file", messages: [story]});
        assert.equal(reply.eval_count, 5);
        const withTurns = await client().chat({model: chatml, options: {temperature: 0, num_predict: 5}, messages: [
            {role: "system", content: "You tell stories.\nShort ones."}, {role: "user", content: "Tell me one"}, {role: "assistant", content: "Once there was a cat."}, story
        ]});
        assert.equal(reply.prompt_eval_count, withTurns.prompt_eval_count, "few-shot turns come before the request's");
    });

    it("takes FROM a file in the data folder and refuses one outside it", async () => {
        const inside = path.join(server.library.home, "stories-copy.gguf");
        await copyFile(await testModel("stories260K.gguf"), inside);
        const created = await post("/api/create", {model: "from-path", modelfile: `FROM ${inside}\nPARAMETER num_predict 2`, stream: false});
        assert.equal(created.status, 200, JSON.stringify(created.body));
        assert.equal((await client().generate({model: "from-path", prompt: "Once"})).eval_count, 2);

        const outside = await post("/api/create", {model: "outside", modelfile: `FROM ${await testModel("stories260K.gguf")}`, stream: false});
        assert.equal(outside.status, 400);
        assert.match(String(outside.body.error), /only inside Hearth's data folder/);
        const climbing = await post("/api/create", {model: "outside", modelfile: "FROM ../../etc/passwd.gguf", stream: false});
        assert.equal(climbing.status, 400);
    });

    it("refuses bad Modelfiles with a 400 in Ollama's error shape", async () => {
        const cases: [string, RegExp][] = [
            [`FROM ${plain}\nFLAVOUR vanilla`, /line 2: unknown instruction "FLAVOUR"/],
            [`FROM ${plain}\nPARAMETER mirostat 1`, /line 2: unknown parameter "mirostat"/],
            [`FROM ${plain}\nPARAMETER temperature hot`, /line 2: the parameter temperature takes a number/],
            ["FROM no-such-model", /FROM no-such-model: there is no model or preset/],
            ["SYSTEM hi", /no FROM line/],
            [`FROM ${plain}\nMESSAGE robot hi`, /line 2: MESSAGE takes a role/],
            [`FROM ${plain}\nSYSTEM """never closed`, /never closed/]
        ];
        for (const [modelfile, message] of cases) {
            const response = await post("/api/create", {model: "bad", modelfile});
            assert.equal(response.status, 400, modelfile);
            assert.deepEqual(Object.keys(response.body), ["error"]);
            assert.match(String(response.body.error), message);
        }
        const unknownParameter = await post("/api/create", {model: "bad", from: plain, parameters: {mirostat: 1}});
        assert.equal(unknownParameter.status, 400);
        assert.match(String(unknownParameter.body.error), /unknown parameter "mirostat"/);
        const overModel = await post("/api/create", {model: plain, from: chatml});
        assert.equal(overModel.status, 409, "a preset cannot take a model's name");
        await assert.rejects(client().show({model: "bad"}));
    });
});

describe("presets on the OpenAI and Anthropic APIs", () => {
    it("serves a preset by name with its defaults, which the request overrides", async () => {
        await client().create({model: "oa-preset", from: chatml, system: "You tell short stories.", parameters: {temperature: 0, num_predict: 6}});
        const openai = new OpenAI({baseURL: server.baseURL, apiKey: "none", maxRetries: 0});
        const completion = await openai.chat.completions.create({model: "oa-preset", messages: [{role: "user", content: "Once upon a time"}]});
        assert.equal(completion.model, "oa-preset");
        assert.equal(completion.usage?.completion_tokens, 6);
        assert.equal(completion.choices[0]!.finish_reason, "length");
        const direct = await openai.chat.completions.create({model: chatml, temperature: 0, max_tokens: 6,
            messages: [{role: "system", content: "You tell short stories."}, {role: "user", content: "Once upon a time"}]});
        assert.equal(completion.usage?.prompt_tokens, direct.usage?.prompt_tokens);
        assert.equal(completion.choices[0]!.message.content, direct.choices[0]!.message.content);

        const overridden = await openai.chat.completions.create({model: "oa-preset", max_tokens: 2, messages: [{role: "user", content: "Once upon a time"}]});
        assert.equal(overridden.usage?.completion_tokens, 2, "the request's max_tokens wins");

        const response = await openai.responses.create({model: "oa-preset", input: "Once upon a time"});
        assert.equal(response.usage?.output_tokens, 6);

        const anthropic = await fetch(`${server.url}/v1/messages`, {method: "POST", headers: {"content-type": "application/json"},
            body: JSON.stringify({model: "oa-preset", max_tokens: 4, messages: [{role: "user", content: "Once upon a time"}]})});
        const message = await anthropic.json() as {usage: {input_tokens: number, output_tokens: number, cache_read_input_tokens?: number | null}};
        assert.equal(message.usage.output_tokens, 4);
        // Anthropic counts the prompt's cached part apart.
        assert.equal(message.usage.input_tokens + (message.usage.cache_read_input_tokens ?? 0), direct.usage?.prompt_tokens);
        const counted = await fetch(`${server.url}/v1/messages/count_tokens`, {method: "POST", headers: {"content-type": "application/json"},
            body: JSON.stringify({model: "oa-preset", messages: [{role: "user", content: "Once upon a time"}]})});
        assert.equal((await counted.json() as {input_tokens: number}).input_tokens, direct.usage?.prompt_tokens, "count_tokens counts the preset's system prompt");
    });
});

describe("presets with an API key", () => {
    const keyed = useTestServer({apiKeys: ["preset-key"]});

    it("creating, copying and deleting a preset need the key, as pulling and deleting models do", async () => {
        const send = (route: string, method: string, body: unknown, key?: string) => fetch(`${keyed.url}${route}`, {
            method, body: JSON.stringify(body), headers: {"content-type": "application/json", ...key != null ? {authorization: `Bearer ${key}`} : {}}
        });
        const refused = await send("/api/create", "POST", {model: "keyed", from: plain, stream: false});
        assert.equal(refused.status, 401);
        assert.ok(typeof (await refused.json() as {error: unknown}).error === "string");
        assert.equal((await send("/api/create", "POST", {model: "keyed", from: plain, stream: false}, "preset-key")).status, 200);
        assert.equal((await send("/api/copy", "POST", {source: "keyed", destination: "keyed2"})).status, 401);
        assert.equal((await send("/api/delete", "DELETE", {model: "keyed"})).status, 401);
        assert.equal((await send("/api/delete", "DELETE", {model: "keyed"}, "preset-key")).status, 200);
    });
});

describe("hearth create", () => {
    it("makes a preset from a Modelfile in the running server's library, which serves it; ls, show and rm know presets", async () => {
        const folder = await mkdtemp(path.join(os.tmpdir(), "hearth-modelfile-"));
        try {
            await copyFile(await testModel("stories260K.gguf"), path.join(folder, "tiny.gguf"));
            const modelfile = path.join(folder, "Modelfile");
            await writeFile(modelfile, "FROM ./tiny.gguf\nPARAMETER num_predict 4\nPARAMETER temperature 0\nSYSTEM Be brief.\n");
            const env = {HEARTH_HOME: server.library.home};
            const created = await spawnHearth(["create", "cli-preset", "-f", modelfile], env).exited;
            assert.equal(created.code, 0, created.stderr);
            assert.match(created.stdout, /created the preset cli-preset \(from tiny\)/);
            assert.equal((await client().generate({model: "cli-preset", prompt: "Once upon a time"})).eval_count, 4, "the running server serves it");
            const listed = await spawnHearth(["ls"], env).exited;
            assert.match(listed.stdout, /cli-preset\s+preset of tiny/);
            const shown = await spawnHearth(["show", "cli-preset"], env).exited;
            assert.match(shown.stdout, /^PARAMETER num_predict 4$/m);
            const removed = await spawnHearth(["rm", "cli-preset"], env).exited;
            assert.equal(removed.code, 0, removed.stderr);
            assert.ok(server.library.find("tiny") != null, "its base stays");
            const bad = await spawnHearth(["create", "bad", "-f", modelfile + "-missing"], env).exited;
            assert.equal(bad.code, 2);
            await writeFile(modelfile, "FROM tiny\nPARAMETER flavour 3\n");
            const unknown = await spawnHearth(["create", "bad", "-f", modelfile], env).exited;
            assert.equal(unknown.code, 2);
            assert.match(unknown.stderr, /line 2: unknown parameter "flavour"/);
        } finally {
            await rm(folder, {recursive: true, force: true});
        }
    });
});

describe("the registry with presets", () => {
    let home: string;
    before(async () => {
        home = await mkdtemp(path.join(os.tmpdir(), "hearth-presets-"));
    });
    after(async () => {
        await rm(home, {recursive: true, force: true});
    });

    it("keeps presets across opens, names compared without case", () => {
        const file = path.join(home, "library.db");
        const registry = new Registry(file);
        registry.presets.put({name: "kept", base: "m", system: "s", parameters: {stop: ["x"]}, messages: [{role: "user", content: "u"}], mcpServers: [], createdAt: "2026-01-01T00:00:00Z"});
        registry.close();
        const again = new Registry(file);
        assert.deepEqual(again.presets.get("KEPT")?.parameters, {stop: ["x"]});
        again.close();
    });

    it("brings a registry from before presets up to date, and an older Hearth still refuses a newer one", () => {
        const file = path.join(home, "older.db");
        new Registry(file).close();
        const db = new Database(file);
        db.exec("DROP TABLE presets");
        db.pragma("user_version = 4");
        db.close();
        const upgraded = new Registry(file);
        assert.deepEqual(upgraded.presets.list(), []);
        upgraded.close();
        const newer = new Database(file);
        newer.pragma("user_version = 99");
        newer.close();
        assert.throws(() => new Registry(file), /written by a newer Hearth \(schema 99\)/);
    });
});
