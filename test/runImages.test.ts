import assert from "node:assert/strict";
import {copyFile, mkdtemp, truncate, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {describe, it} from "node:test";
import {crafted} from "./helpers/imageBytes.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {testModel} from "./helpers/testModels.js";

describe("hearth run --image", () => {
    it("says which --image it cannot read and which model cannot see, before loading it", async () => {
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-run-images-"));
        const env = {HEARTH_HOME: home};
        const imported = await spawnHearth(["import", await testModel("stories260K.gguf")], env).exited;
        assert.equal(imported.code, 0, imported.stderr);
        const red = await testModel("vision/images/red.png");

        const missing = path.join(home, "nope.png");
        const noFile = await spawnHearth(["run", "stories260K", "--image", red, "--image", missing, "What colour?"], env).exited;
        assert.equal(noFile.code, 2);
        assert.equal(noFile.stderr.trim(), `hearth: --image ${missing}: no such file`);
        const notes = path.join(home, "notes.txt");
        await writeFile(notes, "not an image");
        const notImage = await spawnHearth(["run", "stories260K", "--image", notes, "What colour?"], env).exited;
        assert.equal(notImage.code, 2);
        assert.match(notImage.stderr, /--image .*notes\.txt: not a PNG, JPEG, WebP, GIF or BMP file/);

        const blind = await spawnHearth(["run", "stories260K", "--image", red, "What colour?", "--threads", "1"], env).exited;
        assert.equal(blind.code, 2);
        assert.match(blind.stderr, /^hearth: The model "stories260K" cannot see images/);
        assert.equal(blind.stdout, "", "no model was loaded and nothing answered");

        const elsewhere = await spawnHearth(["ls", "--image", red], env).exited;
        assert.equal(elsewhere.code, 2);
        assert.match(elsewhere.stderr, /--image is for run; ls takes no images/);
        const answered = await spawnHearth(["run", "stories260K", "Once upon a time", "--threads", "1"], env).exited;
        assert.equal(answered.code, 0, "without --image it answers as before");
    });

    it("refuses a file every API would refuse, with the check's one-line reason, before loading a model that sees", async () => {
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-run-bad-images-"));
        const env = {HEARTH_HOME: home};
        const imported = await spawnHearth(["import", await testModel("vision/gemma4-vision-script.gguf"), "seeing"], env).exited;
        assert.equal(imported.code, 0, imported.stderr);
        const file = (name: string) => path.join(home, name);
        await writeFile(file("empty.png"), new Uint8Array());
        await writeFile(file("oversized.png"), crafted.png(64, 64));
        // Sparse: the size is what is checked, and the file must be refused without being read.
        await truncate(file("oversized.png"), 21 * 1024 * 1024);
        await copyFile(await testModel("vision/images/yellow.jpg"), file("mislabelled.png"));
        await writeFile(file("garbage.webp"), "RIFF, but not really an image at all");
        await writeFile(file("enormous.png"), crafted.png(10_000, 10_000));
        await writeFile(file("sliver.bmp"), crafted.bmp(4000, 10));
        const cases: [string, RegExp][] = [
            ["empty.png", /is an empty image \(0 bytes\)$/],
            ["oversized.png", /is 21 MiB; an image may be at most 20 MiB$/],
            ["mislabelled.png", /is declared as image\/png, but its bytes are a JPEG image \(image\/jpeg\)$/],
            ["garbage.webp", /cannot be read as an image: /],
            ["enormous.png", /is a PNG image of 10000×10000 pixels \(100 megapixels\); an image may have at most \d+(\.\d)? megapixels$/],
            ["sliver.bmp", /is a BMP image of 4000×10 pixels; its long side may be at most 200 times its short side$/]
        ];
        for (const [name, reason] of cases) {
            const refused = await spawnHearth(["run", "seeing", "--image", file(name), "What colour?", "--threads", "1"], env).exited;
            assert.equal(refused.code, 2, `${name}: ${refused.stderr}`);
            const lines = refused.stderr.trim().split("\n");
            assert.equal(lines.length, 1, `${name}: one line, no stack trace: ${refused.stderr}`);
            assert.ok(lines[0]!.startsWith(`hearth: --image ${file(name)} `), lines[0]);
            assert.match(lines[0]!, reason);
            assert.equal(refused.stdout, "", `${name}: no model was loaded and nothing answered`);
        }
    });
});
