import assert from "node:assert/strict";
import {mkdtemp, rm, stat} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import {writeDraftPair} from "../bench/draftPair.js";
import {ConfigError, parseServeArgs} from "../server/config.js";
import type {ServeConfig} from "../server/config.js";
import {metricValue} from "./helpers/metrics.js";
import {testModel} from "./helpers/testModels.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

// Speculative decoding with a draft model (--draft-model) on pairs written by bench/draftPair.ts, small enough for a
// test: a 3-layer target and its 1-layer twin. With `scale` 1 the target's later layers change its mind often (drafts
// are refused); with 0 the two agree on every token. Random weights are never confident, so the draft model drafts
// with --draft-p-min 0.
const shape = {layers: 3, draftLayers: 1, width: 64, ffn: 128, heads: 4, seed: 7};
const speculation = (mode: "off" | "draft" | "auto") => ({speculation: {mode, draftMax: 8, draftMinProbability: 0}});

let folder: string;
const pairs: Record<"apart" | "same", {target: string, draft: string}> = {} as never;
const servers: Record<"off" | "draft" | "same" | "auto", TestServer> = {} as never;

async function serve(pair: {target: string, draft: string}, withDraft: boolean, options: Partial<ServeConfig>): Promise<TestServer> {
    return startTestServer({models: [{path: pair.target, names: ["target"], ...withDraft ? {draftModel: pair.draft} : {}}], parallel: 2, ...options});
}

before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "hearth-draft-model-"));
    pairs.apart = await writeDraftPair(path.join(folder, "apart"), {...shape, scale: 1});
    pairs.same = await writeDraftPair(path.join(folder, "same"), {...shape, scale: 0});
    servers.off = await serve(pairs.apart, false, speculation("off"));
    servers.draft = await serve(pairs.apart, true, speculation("draft"));
    servers.same = await serve(pairs.same, true, speculation("draft"));
    servers.auto = await serve(pairs.same, true, speculation("auto"));
});

after(async () => {
    for (const server of Object.values(servers))
        await server.close();
    await rm(folder, {recursive: true, force: true});
});

async function complete(server: TestServer, body: Record<string, unknown>): Promise<string> {
    const response = await server.client.completions.create({model: "target", max_tokens: 60, temperature: 0, ...body} as never) as unknown as {choices: {text: string}[]};
    return response.choices[0]!.text;
}

type Ps = {models: {name: string, speculation: {mode: string, draft_model: string | null, drafted_tokens: number, accepted_tokens: number, acceptance: number | null}}[]};
const speculationOf = async (server: TestServer) => (await fetch(`${server.url}/api/ps`).then((response) => response.json()) as Ps).models[0]!.speculation;

async function draftMetrics(server: TestServer): Promise<{accepted: number, rejected: number}> {
    const text = await fetch(`${server.url}/metrics`).then((response) => response.text());
    const value = (outcome: string) => metricValue(text, "hearth_draft_tokens_total", {model: "target", outcome, source: "draft"}) ?? 0;
    return {accepted: value("accepted"), rejected: value("rejected")};
}

const prompts = ["Once upon a time", "The quick brown fox", "def main():", "Lily and Ben went to the park."];

describe("a draft model", () => {
    it("leaves greedy replies as they are without it, alone and in two slots at once, and its drafts are counted by source", async () => {
        const expected: string[] = [];
        for (const prompt of prompts)
            expected.push(await complete(servers.off, {prompt}));
        for (const [index, prompt] of prompts.entries())
            assert.equal(await complete(servers.draft, {prompt}), expected[index], prompt);
        // Two slots drafting at once: their drafts are verified in one batch.
        const together = await Promise.all(prompts.slice(0, 2).map((prompt) => complete(servers.draft, {prompt, max_tokens: 80})));
        assert.deepEqual(together, await Promise.all(prompts.slice(0, 2).map((prompt) => complete(servers.off, {prompt, max_tokens: 80}))));
        const counts = await draftMetrics(servers.draft);
        assert.ok(counts.accepted > 0 && counts.rejected > 0, `a draft twin that disagrees is sometimes right and sometimes not: ${JSON.stringify(counts)}`);
        const ps = await speculationOf(servers.draft);
        assert.deepEqual([ps.mode, ps.draft_model], ["draft", "draft"]);
        assert.equal(ps.drafted_tokens, counts.accepted + counts.rejected);
        assert.deepEqual(await speculationOf(servers.off), {...await speculationOf(servers.off), mode: "off", draft_model: null, drafted_tokens: 0});
    });

    it("keeps a json_schema reply the same, its drafts cut where the grammar refuses them", async () => {
        const schema = {type: "object", properties: {name: {type: "string"}, tags: {type: "array", items: {type: "string"}}}, required: ["name", "tags"]};
        const chat = async (server: TestServer) => (await server.client.chat.completions.create({
            model: "target", messages: [{role: "user", content: "Tell me a story."}], max_tokens: 50, temperature: 0,
            response_format: {type: "json_schema", json_schema: {name: "story", schema}}
        })).choices[0]!.message.content!;
        const before = await draftMetrics(servers.draft);
        const expected = await chat(servers.off);
        assert.match(expected, /^\s*\{/);
        assert.equal(await chat(servers.draft), expected);
        const after = await draftMetrics(servers.draft);
        assert.ok(after.accepted + after.rejected > before.accepted + before.rejected, "it drafted under the grammar");
    });

    it("has the drafts of a twin that agrees accepted, and drafts in auto too", async () => {
        for (const prompt of prompts.slice(0, 2))
            await complete(servers.same, {prompt, max_tokens: 80});
        const counts = await draftMetrics(servers.same);
        assert.ok(counts.accepted >= 100, JSON.stringify(counts));
        assert.ok(counts.accepted / (counts.accepted + counts.rejected) > 0.9, JSON.stringify(counts));
        assert.ok((await speculationOf(servers.same)).acceptance! > 0.9);
        // auto drafts with the draft model while its drafts make a token cheaper than a step without them (here, where the
        // draft model costs about what the model does, that is for a while at most, so only that it drafted is certain).
        await complete(servers.auto, {prompt: prompts[0], max_tokens: 80});
        const auto = await draftMetrics(servers.auto);
        assert.ok(auto.accepted > 0 && auto.rejected === 0, JSON.stringify(auto));
        const ps = await speculationOf(servers.auto);
        assert.deepEqual([ps.mode, ps.draft_model], ["auto", "draft"]);
    });

    it("is counted in the model's memory estimate: its weights and KV cache", async () => {
        type Estimate = {ram_bytes: number, vram_bytes: number, draft_model?: {ram_bytes: number, vram_bytes: number}};
        const estimate = async (server: TestServer) => await fetch(`${server.url}/api/estimate?model=target`).then((response) => response.json()) as Estimate;
        const [without, withDraft] = [await estimate(servers.off), await estimate(servers.draft)];
        assert.equal(without.draft_model, undefined);
        const draftBytes = withDraft.draft_model!.ram_bytes + withDraft.draft_model!.vram_bytes;
        assert.equal(withDraft.ram_bytes + withDraft.vram_bytes, without.ram_bytes + without.vram_bytes + draftBytes);
        assert.ok(draftBytes > (await stat(pairs.apart.draft)).size, `${draftBytes} bytes: more than its weights, with its KV cache`);
    });

    it("with another vocabulary is refused at start, saying how it differs", async () => {
        const stories = await testModel("stories260K.gguf");
        await assert.rejects(
            startTestServer({models: [{path: stories, names: ["stories260K"], draftModel: pairs.same.draft}], ...speculation("draft")}),
            (error: Error) => error instanceof ConfigError && /draft\.gguf cannot draft for stories260K: its vocabulary does not match the model's \(.+\)/.test(error.message)
        );
        // A library name is resolved as --model's is: one the library does not have is refused, saying so.
        await assert.rejects(
            startTestServer({models: [{path: stories, names: ["stories260K"], draftModel: "tiny-draft"}]}),
            (error: Error) => error instanceof ConfigError && /^--draft-model tiny-draft: there is no such file, and no model of that name in the library/.test(error.message)
        );
    });

    it("pairs each --draft-model with the --model at its position, as --mmproj does", () => {
        const cwd = folder;
        const config = parseServeArgs(["-m", pairs.same.target, "-m", pairs.same.draft,
            "--draft-model", "", "--draft-model", pairs.apart.draft, "--speculative", "draft", "--draft-p-min", "0.5"], {}, cwd).config;
        assert.deepEqual(config.models.map((model) => model.draftModel), [undefined, pairs.apart.draft]);
        assert.deepEqual(config.speculation, {mode: "draft", draftMax: 16, draftMinProbability: 0.5});
        assert.equal(parseServeArgs(["-m", pairs.same.target], {HEARTH_DRAFT_MODEL: pairs.same.draft}, cwd).config.models[0]!.draftModel, pairs.same.draft);
        assert.equal(parseServeArgs(["-m", pairs.same.target, "--draft-model", "hf.co/owner/tiny-GGUF:Q8_0"], {}, cwd).config.models[0]!.draftModel, "hf.co/owner/tiny-GGUF:Q8_0");
        const refused = (argv: string[], pattern: RegExp, env: Record<string, string> = {}) =>
            assert.throws(() => parseServeArgs(argv, env, cwd), (error: Error) => error instanceof ConfigError && pattern.test(error.message), argv.join(" "));
        refused(["--draft-model", pairs.same.draft], /no --model is given/);
        refused(["-m", pairs.same.target, "--draft-model", pairs.same.draft, "--draft-model", pairs.same.draft], /each draft model belongs to the model at the same position/);
        refused(["-m", pairs.same.target, "-m", pairs.same.draft], /HEARTH_DRAFT_MODEL names the draft model of a single --model/, {HEARTH_DRAFT_MODEL: pairs.same.draft});
        refused(["-m", pairs.same.target, "--draft-model", "missing.gguf"], /no such file/);
        refused(["-m", pairs.same.target, "--speculative", "draft"], /give one with --draft-model/);
        refused(["-m", pairs.same.target, "--draft-model", pairs.same.draft, "--draft-p-min", "2"], /--draft-p-min must be a probability/);
    });
});
