import assert from "node:assert/strict";
import {execFileSync} from "node:child_process";
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from "node:fs";
import {tmpdir} from "node:os";
import {join} from "node:path";
import {describe, it} from "node:test";
import {addonFolder, manifestPath, projectRoot} from "../native/addon/addonPath.js";
import type {AddonManifest, BuiltAddon} from "../native/addon/addonPath.js";
import {llamaSource} from "../native/addon/llamaSource.js";
import {mtmdCacheFolder, mtmdObjects} from "../native/addon/mtmdObjects.js";
import {compilerIdentity} from "../native/addon/toolchain.js";

// What `npm run build` made of the native addon: these tests read the build this checkout has (dist/), and run
// the build again where they check that it is not redone.
const nodeLlamaCpp = join(projectRoot(), "node_modules", "node-llama-cpp");
const compiler = process.env.CXX ?? "c++";

function manifest(): AddonManifest {
    return JSON.parse(readFileSync(manifestPath(), "utf8")) as AddonManifest;
}

function copyFor(binary: string): BuiltAddon {
    const entry = manifest().addons.find((built) => built.bindingFolder.endsWith(`/${binary}`));
    assert.ok(entry != null, `npm run build built a copy for node-llama-cpp's ${binary} binary`);
    return entry;
}

function symbols(file: string, ...options: string[]): string[] {
    return execFileSync("nm", [...options, file]).toString().split("\n").filter(Boolean);
}

describe("the native addon's build", () => {
    it("links libmtmd into the copy for the CPU, Vulkan and CUDA binaries, and exports none of it", () => {
        assert.equal(manifest().noVision, undefined, `libmtmd was not built: ${manifest().noVision}`);
        for (const binary of ["linux-x64", "linux-x64-vulkan", "linux-x64-cuda"]) {
            const entry = copyFor(binary);
            assert.equal(entry.vision, true, binary);
            const addon = join(addonFolder(), entry.addon);
            const all = symbols(addon);
            for (const symbol of ["mtmd_init_from_file", "mtmd_tokenize", "mtmd_helper_eval_chunks", "mtmd_helper_bitmap_init_from_buf"])
                assert.ok(all.some((line) => line.endsWith(` t ${symbol}`)), `${binary}: ${symbol} is inside the addon, not exported`);
            const exported = symbols(addon, "-D", "--defined-only").map((line) => line.split(" ").at(-1)).sort();
            assert.deepEqual(exported, ["napi_register_module_v1", "node_api_module_get_api_version_v1"], binary);
            const undefinedMtmd = symbols(addon, "-D", "--undefined-only").filter((line) => /\b(mtmd|clip|hash|sha1|sha256|XXH)\w*$/i.test(line));
            assert.deepEqual(undefinedMtmd, [], binary);
        }
    });

    it("loads the CPU binary's copy with every symbol bound at once", () => {
        // RTLD_NOW: a symbol that nothing loaded defines fails the load, instead of ending the process at its first call.
        const script = `
            import {constants} from "node:os";
            import {getLlama, LlamaLogLevel} from ${JSON.stringify(import.meta.resolve("node-llama-cpp"))};
            await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
            const module = {exports: {}};
            process.dlopen(module, ${JSON.stringify(join(addonFolder(), copyFor("linux-x64").addon))}, constants.dlopen.RTLD_NOW);
            console.log(typeof module.exports.DecodeLoop);`;
        // A file, not -e: node-llama-cpp tests its binary in a child process started with this one's arguments.
        const folder = mkdtempSync(join(tmpdir(), "hearth-addon-load-"));
        let output: Buffer;
        try {
            writeFileSync(join(folder, "load.mjs"), script);
            output = execFileSync(process.execPath, [join(folder, "load.mjs")]);
        } finally {
            rmSync(folder, {recursive: true, force: true});
        }
        assert.equal(output.toString().trim(), "function");
    });

    it("compiles nothing and links nothing when built again", () => {
        const copies = manifest().addons.map((built) => join(addonFolder(), built.addon));
        const before = copies.map((file) => statSync(file).mtimeMs);
        const output = execFileSync(process.execPath, [join(addonFolder(), "buildAddon.js")], {cwd: projectRoot()}).toString();
        assert.doesNotMatch(output, /Compil|Built/, output);
        assert.deepEqual(copies.map((file) => statSync(file).mtimeMs), before);
        assert.ok(manifest().addons.every((built) => built.vision));
    });

    it("takes libmtmd's objects from the cache for another checkout's copy of the source", async () => {
        const checkout = mkdtempSync(join(tmpdir(), "hearth-checkout-"));
        try {
            const source = llamaSource(nodeLlamaCpp, checkout);
            assert.equal(source.noMtmd, undefined);
            assert.ok(source.root.startsWith(checkout), "a copy of its own, taken out of node-llama-cpp's bundle");
            let announced = 0;
            const built = await mtmdObjects(source, compiler, compilerIdentity(compiler), checkout, 2, (count) => announced += count);
            assert.equal(built.compiled, 0);
            assert.equal(announced, 0);
            assert.ok(built.folder.startsWith(mtmdCacheFolder()), built.folder);
            assert.ok(built.objects.length > 0 && built.objects.every((object) => existsSync(object)));
        } finally {
            rmSync(checkout, {recursive: true, force: true});
        }
    });

    it("says why libmtmd cannot be built from a llama.cpp source without it", () => {
        const fake = mkdtempSync(join(tmpdir(), "hearth-node-llama-cpp-"));
        try {
            const llamaCpp = join(fake, "llama", "llama.cpp");
            mkdirSync(join(llamaCpp, "include"), {recursive: true});
            mkdirSync(join(llamaCpp, "ggml", "include"), {recursive: true});
            writeFileSync(join(llamaCpp, "include", "llama.h"), "");
            const source = llamaSource(fake, join(fake, "build"));
            assert.equal(source.root, llamaCpp);
            assert.match(source.noMtmd ?? "", /^llama\.cpp's source has no tools\/mtmd, vendor\/hash/);
        } finally {
            rmSync(fake, {recursive: true, force: true});
        }
    });
});
