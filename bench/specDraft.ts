import {existsSync} from "node:fs";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {startTestServer} from "../test/helpers/testServer.js";
import type {TestServer} from "../test/helpers/testServer.js";
import type {SpeculationMode} from "../native/decode/speculation.js";
import {writeDraftPair} from "./draftPair.js";

/**
 * bench:spec's draft-model part: the draft-pair target (bench/draftPair.ts, `npm run bench:draft-pair`; written with
 * its defaults when bench/results/draft-pair holds none) served with its draft twin as `--draft-model`. Its random
 * weights are never confident, even where the two models agree, so the draft model drafts with `--draft-p-min 0`.
 */

const pairFolder = path.join(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", ".."), "bench", "results", "draft-pair");

/** The model bench:spec runs for the draft mode, beside its test models: served under this name. */
export const DRAFT_PAIR_MODEL = {file: "draft-pair", name: "draft-pair-target"} as const;

async function draftPair(): Promise<{target: string, draft: string}> {
    const target = path.join(pairFolder, "target.gguf");
    const draft = path.join(pairFolder, "draft.gguf");
    return existsSync(target) && existsSync(draft) ? {target, draft} : writeDraftPair(pairFolder);
}

/**
 * A server for one mode of bench:spec: the draft pair's target (with its draft model in every mode, so that each loads
 * the same memory) for {@link DRAFT_PAIR_MODEL}; otherwise undefined, and bench:spec starts a test model's server.
 * The draft mode has no server for a test model, which has no draft model.
 */
export async function draftPairServer(model: string, mode: SpeculationMode, options: {parallel: number, ctxSize: number, draftMax: number}): Promise<TestServer | undefined> {
    if (model !== DRAFT_PAIR_MODEL.file)
        return undefined;
    const {target, draft} = await draftPair();
    return startTestServer({
        models: [{path: target, names: [DRAFT_PAIR_MODEL.name], draftModel: draft}],
        parallel: options.parallel, ctxSize: options.ctxSize,
        speculation: {mode, draftMax: options.draftMax, draftMinProbability: 0}
    });
}
