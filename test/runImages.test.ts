import assert from "node:assert/strict";
import {mkdtemp, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {describe, it} from "node:test";
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
});
