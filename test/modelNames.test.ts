import assert from "node:assert/strict";
import {describe, it} from "node:test";
import {formatModelName, parseModelName} from "../models/modelNames.js";
import {defaultQuantization, groupQuantizations, parseQuantization, splitPartPath, withoutSplitPart} from "../models/quantization.js";
import {parseDuration} from "../server/config.js";

describe("quantization labels", () => {
    it("reads the quantization from the ways GGUF files are named", () => {
        const cases: [string, string | undefined][] = [
            ["Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"],
            ["qwen2.5-0.5b-instruct-q8_0.gguf", "Q8_0"],
            ["model.IQ4_XS.gguf", "IQ4_XS"],
            ["Meta-Llama-3-8B-Instruct.fp16.gguf", "F16"],
            ["gemma-2-2b-it-BF16-00001-of-00002.gguf", "BF16"],
            ["Phi-3-mini-4k-instruct-IQ2_XXS.gguf", "IQ2_XXS"],
            ["DeepSeek-R1-UD-Q2_K_XL-00001-of-00005.gguf", "Q2_K_XL"],
            ["tinyllama-1.1b-chat-v1.0.Q5_K_S.gguf", "Q5_K_S"],
            ["stories260K.gguf", undefined]
        ];
        for (const [file, expected] of cases)
            assert.equal(parseQuantization(file), expected, file);
    });

    it("groups split parts into one entry with their total size, and leaves out incomplete sets and projectors", () => {
        const file = (path: string, sizeBytes: number) => ({path, sizeBytes, sha256: "a".repeat(64)});
        const entries = groupQuantizations([
            file("m-Q8_0-00002-of-00002.gguf", 5),
            file("m-Q8_0-00001-of-00002.gguf", 10),
            file("m-Q4_K_M.gguf", 8),
            file("F16/m-F16-00001-of-00003.gguf", 10),
            file("F16/m-F16-00002-of-00003.gguf", 10),
            file("mmproj-m-F16.gguf", 1),
            file("README.md", 1)
        ]);
        assert.deepEqual(entries.map((entry) => [entry.quantization, entry.sizeBytes, entry.files.map((part) => part.path)]), [
            ["Q4_K_M", 8, ["m-Q4_K_M.gguf"]],
            ["Q8_0", 15, ["m-Q8_0-00001-of-00002.gguf", "m-Q8_0-00002-of-00002.gguf"]]
        ]);
        assert.equal(defaultQuantization(entries)?.quantization, "Q4_K_M");
        assert.equal(splitPartPath("a/m-Q8_0-00001-of-00003.gguf", 2, 3), "a/m-Q8_0-00002-of-00003.gguf");
        assert.equal(splitPartPath("local/m.gguf", 1, 12), "local/m-00001-of-00012.gguf");
        assert.equal(withoutSplitPart("m-Q8_0-00003-of-00003.gguf"), "m-Q8_0.gguf");
    });
});

describe("model names", () => {
    it("parses Hub names as Ollama spells them, and local names", () => {
        assert.deepEqual(parseModelName("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:q4_k_m"),
            {kind: "hub", owner: "bartowski", repo: "Llama-3.2-1B-Instruct-GGUF", quantization: "Q4_K_M"});
        assert.deepEqual(parseModelName("https://huggingface.co/ggml-org/models"), {kind: "hub", owner: "ggml-org", repo: "models", quantization: undefined});
        assert.deepEqual(parseModelName("hf.co/a/b:latest"), {kind: "hub", owner: "a", repo: "b", quantization: undefined});
        assert.deepEqual(parseModelName("stories260K"), {kind: "local", name: "stories260K"});
        assert.equal(formatModelName(parseModelName("hf.co/a/b:q8_0")), "hf.co/a/b:Q8_0");
    });

    it("refuses names that could reach outside the data folder", () => {
        for (const bad of ["hf.co/../etc:Q4_0", "hf.co/a/..", "hf.co/a/b/c", "../x", "a/b", "x:Q4_0", "", "hf.co/a\\b/c", "hf.co/a/b:Q4/../../x"])
            assert.throws(() => parseModelName(bad), /is not a valid model name/, bad);
    });
});

describe("keep_alive durations", () => {
    it("reads seconds and Go-style durations, with 0 for at once and negatives for forever", () => {
        assert.equal(parseDuration(30), 30_000);
        assert.equal(parseDuration("5m"), 300_000);
        assert.equal(parseDuration("1h30m"), 5_400_000);
        assert.equal(parseDuration("0"), 0);
        assert.equal(parseDuration("-1"), -1);
        assert.equal(parseDuration("-5m"), -1);
        assert.equal(parseDuration("soon"), undefined);
    });
});
