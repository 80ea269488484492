import assert from "node:assert/strict";
import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {describe, it} from "node:test";
import {writeDraftPair} from "../bench/draftPair.js";
import {startTestServer} from "./helpers/testServer.js";

const tiny = {layers: 3, draftLayers: 1, width: 64, ffn: 128, heads: 4, seed: 7};

async function greedyReplies(scale: number): Promise<{target: string[], draft: string[]}> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "hearth-draft-pair-"));
    try {
        const {target, draft} = await writeDraftPair(dir, {...tiny, scale});
        const server = await startTestServer({models: [{path: target, names: ["target"]}, {path: draft, names: ["draft"]}], parallel: 1});
        try {
            const replies = {target: [] as string[], draft: [] as string[]};
            for (const prompt of ["Once upon a time", "The quick brown fox", "def main():"])
                for (const model of ["target", "draft"] as const) {
                    const completion = await server.client.completions.create({model, prompt, max_tokens: 12, temperature: 0});
                    replies[model].push(completion.choices[0]!.text);
                }
            return replies;
        } finally {
            await server.close();
        }
    } finally {
        await rm(dir, {recursive: true, force: true});
    }
}

describe("bench:draft-pair", () => {
    it("writes a target whose first layers are its draft: with nothing added by the rest, their greedy text is the same", async () => {
        const same = await greedyReplies(0);
        assert.deepEqual(same.target, same.draft);
        assert.ok(same.target.every((text) => text.length > 0));
        const apart = await greedyReplies(1);
        assert.notDeepEqual(apart.target, apart.draft, "with full-size later layers the target says something else");
    });
});
