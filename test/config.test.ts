import assert from "node:assert/strict";
import {describe, it} from "node:test";
import path from "node:path";
import {ConfigError, DEFAULT_PORT, defaultHome, parseServeArgs} from "../server/config.js";
import {testModel} from "./helpers/testModels.js";
import {defaultPromptCacheBytes} from "../native/decode/PromptCache.js";

describe("serve configuration", () => {
    it("has safe defaults: loopback only, its own port", () => {
        const {config} = parseServeArgs([], {}, "/work");
        assert.equal(config.host, undefined);
        assert.equal(config.port, DEFAULT_PORT);
        assert.equal(config.parallel, 4);
        assert.equal(config.ctxSize, "auto");
        assert.equal(config.kvCacheType, "f16");
        assert.equal(config.threads, "auto");
        assert.equal(config.gpu, "auto");
        assert.equal(config.gpuLayers, "auto");
        assert.deepEqual(config.gpuDevices, []);
        assert.equal(config.flashAttention, "auto");
        assert.deepEqual(config.models, []);
        assert.equal(config.cacheRamBytes, defaultPromptCacheBytes());
    });

    it("sizes the RAM prompt cache with --cache-ram or HEARTH_CACHE_RAM, 0 turning it off, by default 8 GiB or an eighth of memory", () => {
        assert.equal(parseServeArgs(["--cache-ram", "512MiB"], {HEARTH_CACHE_RAM: "0"}, "/work").config.cacheRamBytes, 512 * 1024 ** 2);
        assert.equal(parseServeArgs([], {HEARTH_CACHE_RAM: "0"}, "/work").config.cacheRamBytes, 0);
        assert.equal(parseServeArgs(["--cache-ram", "2gb"], {}, "/work").config.cacheRamBytes, 2 * 1024 ** 3);
        assert.throws(() => parseServeArgs(["--cache-ram", "lots"], {}, "/work"), (error: unknown) => error instanceof ConfigError && /--cache-ram must be a size/.test(error.message));
        assert.equal(defaultPromptCacheBytes(128 * 1024 ** 3), 8 * 1024 ** 3);
        assert.equal(defaultPromptCacheBytes(16 * 1024 ** 3), 2 * 1024 ** 3);
    });

    it("reads flags over HEARTH_* variables", () => {
        const env = {HEARTH_PORT: "9000", HEARTH_THREADS: "3", HEARTH_MODEL: "/m/a.gguf:/m/b.gguf", HEARTH_HOME: "/data", HEARTH_GPU_LAYERS: "max", HEARTH_FLASH_ATTN: "on"};
        const {config} = parseServeArgs(["--port", "9100", "--gpu", "cpu", "--ctx-size", "4096"], env, "/work");
        assert.equal(config.port, 9100);
        assert.equal(config.threads, 3);
        assert.equal(config.gpu, "cpu");
        assert.equal(config.gpuLayers, "max");
        assert.equal(config.ctxSize, 4096);
        assert.equal(config.home, "/data");
        assert.equal(config.flashAttention, "on");
        assert.equal(parseServeArgs(["--flash-attn", "off"], env, "/work").config.flashAttention, "off");
        assert.deepEqual(parseServeArgs([], {HEARTH_GPU_DEVICES: "0, RTX 4090"}, "/work").config.gpuDevices, ["0", "RTX 4090"]);
        assert.deepEqual(parseServeArgs(["--gpu-devices", "llvmpipe"], {HEARTH_GPU_DEVICES: "1"}, "/work").config.gpuDevices, ["llvmpipe"]);
        assert.equal(parseServeArgs(["--ctx-size", "auto"], {HEARTH_CTX_SIZE: "8192"}, "/work").config.ctxSize, "auto");
        assert.equal(parseServeArgs([], {HEARTH_CTX_SIZE: "8192"}, "/work").config.ctxSize, 8192);
        assert.equal(parseServeArgs(["--kv-cache-type", "q8_0"], {HEARTH_KV_CACHE_TYPE: "q4_0"}, "/work").config.kvCacheType, "q8_0");
        assert.equal(parseServeArgs([], {HEARTH_KV_CACHE_TYPE: "q4_0"}, "/work").config.kvCacheType, "q4_0");
        assert.deepEqual(config.models.map((model) => model.names), [["a"], ["b"]]);
    });

    it("fetches remote image URLs only when told to, by flag or variable", () => {
        assert.equal(parseServeArgs([], {}, "/work").config.allowRemoteImages, false);
        assert.equal(parseServeArgs(["--allow-remote-images"], {}, "/work").config.allowRemoteImages, true);
        assert.equal(parseServeArgs([], {HEARTH_ALLOW_REMOTE_IMAGES: "1"}, "/work").config.allowRemoteImages, true);
        assert.equal(parseServeArgs([], {HEARTH_ALLOW_REMOTE_IMAGES: "0"}, "/work").config.allowRemoteImages, false);
    });

    it("names a model after its file and adds aliases by position", () => {
        const {config} = parseServeArgs(["-m", "models/Llama-3.Q4_K_M.gguf", "-m", "x.GGUF", "--alias", "llama", "--gpu-layers", "12"], {}, "/work");
        assert.deepEqual(config.models, [
            {path: "/work/models/Llama-3.Q4_K_M.gguf", names: ["Llama-3.Q4_K_M", "llama"]},
            {path: "/work/x.GGUF", names: ["x"]}
        ]);
        assert.equal(config.gpuLayers, 12);
    });

    it("takes a library name or an hf.co name for --model as a model to serve from the library, with its alias", () => {
        const {config} = parseServeArgs(["-m", "hf.co/owner/repo:Q8_0", "-m", "stories260K", "-m", "./stories260K", "-m", "https://huggingface.co/o/r",
            "--alias", "tiny", "--alias", "story"], {}, "/nonexistent-folder");
        assert.deepEqual(config.modelNames, [{name: "hf.co/owner/repo:Q8_0", alias: "tiny"}, {name: "stories260K", alias: "story"}, {name: "https://huggingface.co/o/r", alias: undefined}]);
        assert.deepEqual(config.models, [{path: "/nonexistent-folder/stories260K", names: ["stories260K"]}], "a path stays a file");
        // HEARTH_MODEL's ":" separator does not split a Hub name from its scheme or its quantization.
        const env = {HEARTH_MODEL: "/m/a.gguf:hf.co/o/r:Q4_K_M:https://hf.co/o/s:b.gguf:hf.co/o/t"};
        const fromEnv = parseServeArgs([], env, "/nonexistent-folder").config;
        assert.deepEqual(fromEnv.models.map((model) => model.path), ["/m/a.gguf", "/nonexistent-folder/b.gguf"]);
        assert.deepEqual(fromEnv.modelNames?.map((model) => model.name), ["hf.co/o/r:Q4_K_M", "https://hf.co/o/s", "hf.co/o/t"]);
        assert.equal(parseServeArgs(["-m", "x.gguf"], {}, "/work").config.modelNames, undefined);
    });

    it("gives each --model the --mmproj at its position, none for none, HEARTH_MMPROJ to a single model, and reads --no-mmproj-offload", async () => {
        const vision = path.dirname(await testModel("vision/mmproj-gemma4-vision-script.gguf"));
        const {config} = parseServeArgs(["-m", `${vision}/gemma4-vision-script.gguf`, "--mmproj", `${vision}/mmproj-gemma4-vision-script.gguf`,
            "-m", "/m/text.gguf", "--mmproj", "none", "-m", "hf.co/o/r:Q4_K_M"], {}, "/work");
        assert.deepEqual(config.models.map((model) => model.mmproj), [`${vision}/mmproj-gemma4-vision-script.gguf`, false]);
        assert.equal(config.modelNames?.[0]?.mmproj, undefined, "a model without --mmproj finds its own");
        assert.equal(config.mmprojOffload, true);
        const fromEnv = parseServeArgs(["--no-mmproj-offload"], {HEARTH_MODEL: "/m/a.gguf", HEARTH_MMPROJ: `${vision}/mmproj-gemma4-vision-script.gguf`}, "/work").config;
        assert.equal(fromEnv.models[0]!.mmproj, `${vision}/mmproj-gemma4-vision-script.gguf`);
        assert.equal(fromEnv.mmprojOffload, false);
        assert.equal(parseServeArgs([], {HEARTH_NO_MMPROJ_OFFLOAD: "1"}, "/work").config.mmprojOffload, false);
        assert.equal(parseServeArgs(["-m", "/m/a.gguf", "--mmproj", "", "-m", "/m/b.gguf", "--mmproj", "none"], {}, "/work").config.models[0]!.mmproj, undefined,
            "an empty --mmproj skips a position");
        assert.throws(() => parseServeArgs([], {HEARTH_MODEL: "/m/a.gguf:/m/b.gguf", HEARTH_MMPROJ: `${vision}/mmproj-gemma4-vision-script.gguf`}, "/work"),
            /HEARTH_MMPROJ names the projector of a single --model, and 2 are given; use --mmproj once per --model instead/);
    });

    it("refuses bad values with messages a person can act on", () => {
        const cases: [string[], RegExp][] = [
            [["--port", "99999"], /--port must be between 0 and 65535/],
            [["--parallel", "0"], /--parallel must be between 1/],
            [["--threads", "two"], /--threads must be a whole number/],
            [["--gpu", "tpu"], /--gpu must be one of auto, cuda, metal, vulkan, cpu/],
            [["--gpu-layers", "most"], /--gpu-layers must be a whole number/],
            [["--gpu-devices", "0,,1"], /--gpu-devices must name devices by index or name, separated by commas/],
            [["--flash-attn", "yes"], /--flash-attn must be one of auto, on, off, got "yes"/],
            [["--ctx-size", "big"], /--ctx-size must be auto or a whole number of tokens, got "big"/],
            [["--ctx-size", "32"], /--ctx-size must be between 64 and 1048576, got 32/],
            [["--kv-cache-type", "q3_k"], /--kv-cache-type must be one of f32, f16, bf16, q8_0, q5_1, q5_0, q4_1, q4_0, iq4_nl, got "q3_k"/],
            [["--kv-cache-type", "q8_0", "--flash-attn", "off"], /--kv-cache-type q8_0 needs flash attention .*drop --flash-attn off, or use --kv-cache-type f16/],
            [["--alias", "x"], /--alias was given 1 times but --model only 0/],
            [["-m", "a.gguf", "--mmproj", "/no/such/mmproj.gguf"], /--mmproj \/no\/such\/mmproj\.gguf: there is no such file/],
            [["-m", "a.gguf", "--mmproj", "none", "--mmproj", "none"], /--mmproj was given 2 times but --model only 1; each projector belongs to the model at the same position/],
            [["-m", "a/x.gguf", "-m", "b/x.gguf"], /two models are served under the name "x"/],
            [["--bogus"], /Unknown option '--bogus'/]
        ];
        for (const [argv, pattern] of cases)
            assert.throws(() => parseServeArgs(argv, {}, "/work"), (error: unknown) => error instanceof ConfigError && pattern.test(error.message), argv.join(" "));
    });

    it("puts the data folder where each OS expects it", () => {
        assert.equal(defaultHome({}, "linux", "/home/ada"), "/home/ada/.local/share/hearth");
        assert.equal(defaultHome({XDG_DATA_HOME: "/xdg"}, "linux", "/home/ada"), "/xdg/hearth");
        assert.equal(defaultHome({}, "darwin", "/Users/ada"), "/Users/ada/Library/Application Support/Hearth");
        assert.match(defaultHome({APPDATA: "C:\\Users\\ada\\AppData\\Roaming"}, "win32", "C:\\Users\\ada"), /Roaming.Hearth$/);
    });
});
