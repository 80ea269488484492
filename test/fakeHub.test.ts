import assert from "node:assert/strict";
import {createHash} from "node:crypto";
import {readFile} from "node:fs/promises";
import {after, test} from "node:test";
import {downloadFile, listFiles, listModels, modelInfo} from "@huggingface/hub";
import type {ListFileEntry} from "@huggingface/hub";
import {startFakeHub} from "./helpers/fakeHub.js";
import {testModel} from "./helpers/testModels.js";

const modelPath = await testModel("derived/stories260K-Q8_0.gguf");
const modelBytes = await readFile(modelPath);
const modelSha256 = createHash("sha256").update(modelBytes).digest("hex");
const modelSize = modelBytes.length;
const readme = Buffer.from("# stories260K\nA tiny model.\n");
const shard = (n: number) => Buffer.alloc(3000 + n, n);

const repo = "fake-org/stories260K-GGUF";
const fake = await startFakeHub([
    {id: repo, downloads: 500, likes: 7, files: [
        {path: "stories260K-Q8_0.gguf", source: modelPath},
        {path: "README.md", source: readme},
        {path: "sub/x-00001-of-00002.gguf", source: shard(1)},
        {path: "sub/x-00002-of-00002.gguf", source: shard(2)}
    ]},
    {id: "other/Gated-GGUF", gated: true, downloads: 50, files: [{path: "gated.gguf", source: Buffer.from("secret gguf")}]},
    {id: "other/safetensors-model", tags: ["safetensors"], downloads: 10000, files: [{path: "model.safetensors", source: Buffer.from("st"), lfs: true}]},
    {id: "fake-org/Liar-GGUF", downloads: 5, files: [{path: "liar.gguf", source: Buffer.from("not what it claims"), declaredSize: 40e9, declaredSha256: "ab".repeat(32)}]}
]);
after(() => fake.close());

const ggufUrl = `${fake.url}/${repo}/resolve/main/stories260K-Q8_0.gguf`;
const sha256 = (bytes: ArrayBuffer | Buffer) => createHash("sha256").update(Buffer.from(bytes as ArrayBuffer)).digest("hex");
const gitBlobSha1 = (bytes: Buffer) => createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");

/** Reads a body until it ends or breaks, returning how many bytes came and the error, if any. */
async function readAll(response: Response): Promise<{bytes: number, error?: unknown}> {
    const reader = response.body!.getReader();
    let bytes = 0;
    try {
        for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
            bytes += chunk.value.length;
        return {bytes};
    } catch (error) {
        return {bytes, error};
    }
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
    const all: T[] = [];
    for await (const item of items)
        all.push(item);
    return all;
}

test("listModels searches by name, tag and owner, most downloaded first", async () => {
    const gguf = await collect(listModels({hubUrl: fake.url, search: {tags: ["gguf"]}, sort: "downloads"}));
    assert.deepEqual(gguf.map((model) => model.name), [repo, "other/Gated-GGUF", "fake-org/Liar-GGUF"]);
    const [first] = gguf;
    assert.match(first!.id, /^[0-9a-f]{24}$/);
    assert.equal(first!.downloads, 500);
    assert.equal(first!.likes, 7);
    assert.equal(first!.task, "text-generation");
    assert.ok(!Number.isNaN(first!.updatedAt.getTime()));
    assert.equal(gguf[1]!.gated, "manual");
    assert.equal(first!.gated, false);

    const searched = await collect(listModels({hubUrl: fake.url, search: {query: "STORIES", tags: ["gguf"]}}));
    assert.deepEqual(searched.map((model) => model.name), [repo]);
    const byOwner = await collect(listModels({hubUrl: fake.url, search: {owner: "other"}, sort: "downloads"}));
    assert.deepEqual(byOwner.map((model) => model.name), ["other/safetensors-model", "other/Gated-GGUF"]);
    const limited = await collect(listModels({hubUrl: fake.url, search: {tags: ["gguf"]}, limit: 1}));
    assert.equal(limited.length, 1);
    assert.match(fake.requests.at(-1)!.path, /[?&]limit=1(&|$)/);
});

test("/api/models pages with a Link header @huggingface/hub can follow", async () => {
    const names: string[] = [];
    let url: string | undefined = `${fake.url}/api/models?filter=gguf&limit=2&sort=downloads`;
    while (url != null) {
        const response = await fetch(url);
        assert.equal(response.status, 200);
        names.push(...(await response.json() as {id: string}[]).map((model) => model.id));
        const link = response.headers.get("link");
        // The same pattern as @huggingface/hub's parseLinkHeader.
        url = link == null ? undefined : /<(https?:[/][/][^>]+)>;\s+rel="next"/.exec(link)?.[1];
        if (link != null)
            assert.ok(url?.startsWith(fake.url));
    }
    assert.deepEqual(names, [repo, "other/Gated-GGUF", "fake-org/Liar-GGUF"]);
});

test("modelInfo gives the commit and files at HEAD, main or the sha; unknown repos and revisions are 404", async () => {
    const info = await modelInfo({hubUrl: fake.url, name: repo, additionalFields: ["sha", "filePaths", "tags"]});
    assert.equal(info.name, repo);
    assert.match(info.sha, /^[0-9a-f]{40}$/);
    assert.deepEqual(info.filePaths, ["stories260K-Q8_0.gguf", "README.md", "sub/x-00001-of-00002.gguf", "sub/x-00002-of-00002.gguf"]);
    assert.deepEqual(info.tags, ["gguf"]);
    assert.match(fake.requests.at(-1)!.path, new RegExp(`^/api/models/${repo}/revision/HEAD\\?expand=`));
    const atSha = await modelInfo({hubUrl: fake.url, name: repo, revision: info.sha, additionalFields: ["sha"]});
    assert.equal(atSha.sha, info.sha);

    await assert.rejects(modelInfo({hubUrl: fake.url, name: repo, revision: "0".repeat(40)}), {statusCode: 404});
    await assert.rejects(modelInfo({hubUrl: fake.url, name: "nobody/nothing"}), (error: Error & {statusCode: number}) => {
        assert.equal(error.statusCode, 404);
        assert.match(error.message, /Repository not found/);
        return true;
    });
    const response = await fetch(`${fake.url}/api/models/nobody/nothing/revision/main`);
    assert.equal(response.headers.get("x-error-code"), "RepoNotFound");
    assert.deepEqual(await response.json(), {error: "Repository not found"});
});

test("listFiles lists the tree with git oids and LFS hashes, recursively or one folder", async () => {
    const all = await collect(listFiles({hubUrl: fake.url, repo, recursive: true}));
    assert.deepEqual(all.map((entry) => `${entry.type} ${entry.path}`), [
        "file README.md", "file stories260K-Q8_0.gguf", "directory sub",
        "file sub/x-00001-of-00002.gguf", "file sub/x-00002-of-00002.gguf"
    ]);
    const byPath = new Map(all.map((entry): [string, ListFileEntry] => [entry.path, entry]));
    const gguf = byPath.get("stories260K-Q8_0.gguf")!;
    assert.equal(gguf.size, modelSize);
    assert.equal(gguf.lfs?.oid, modelSha256);
    assert.equal(gguf.lfs?.size, modelSize);
    assert.ok(gguf.lfs!.pointerSize > 100 && gguf.lfs!.pointerSize < 200);
    assert.match(gguf.oid!, /^[0-9a-f]{40}$/);
    const readmeEntry = byPath.get("README.md")!;
    assert.equal(readmeEntry.lfs, undefined);
    assert.equal(readmeEntry.oid, gitBlobSha1(readme));
    assert.equal(readmeEntry.size, readme.length);
    assert.equal(byPath.get("sub")!.size, 0);

    const top = await collect(listFiles({hubUrl: fake.url, repo}));
    assert.deepEqual(top.map((entry) => entry.path), ["README.md", "stories260K-Q8_0.gguf", "sub"]);
    assert.match(fake.requests.at(-1)!.path, /\/tree\/main\?recursive=false&expand=false$/);
    const sub = await collect(listFiles({hubUrl: fake.url, repo, path: "sub"}));
    assert.deepEqual(sub.map((entry) => [entry.path, entry.lfs?.oid]), [
        ["sub/x-00001-of-00002.gguf", sha256(shard(1))], ["sub/x-00002-of-00002.gguf", sha256(shard(2))]
    ]);

    const [liar] = await collect(listFiles({hubUrl: fake.url, repo: "fake-org/Liar-GGUF"}));
    assert.deepEqual(liar!.lfs, {oid: "ab".repeat(32), size: 40e9, pointerSize: liar!.lfs!.pointerSize});
    assert.equal(liar!.size, 40e9);
});

test("gated repos answer 401 GatedRepo without the token, and work with it", async () => {
    const gated = "other/Gated-GGUF";
    await assert.rejects(modelInfo({hubUrl: fake.url, name: gated}), {statusCode: 401});
    await assert.rejects(collect(listFiles({hubUrl: fake.url, repo: gated})), {statusCode: 401});
    const refused = await fetch(`${fake.url}/${gated}/resolve/main/gated.gguf`, {headers: {authorization: "Bearer hf_wrong"}});
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get("x-error-code"), "GatedRepo");
    assert.match((await refused.json() as {error: string}).error, /Access to model other\/Gated-GGUF is restricted/);

    const accessToken = fake.token as `hf_${string}`;
    assert.equal((await modelInfo({hubUrl: fake.url, name: gated, accessToken})).gated, "manual");
    assert.equal((await collect(listFiles({hubUrl: fake.url, repo: gated, accessToken}))).length, 1);
    const allowed = await fetch(`${fake.url}/${gated}/resolve/main/gated.gguf`, {headers: {authorization: `Bearer ${fake.token}`}});
    assert.equal(await allowed.text(), "secret gguf");
    assert.equal(fake.requests.at(-2)!.authorization, `Bearer ${fake.token}`);
});

test("resolve redirects LFS files to the file host and serves plain files itself", async () => {
    const info = await modelInfo({hubUrl: fake.url, name: repo, additionalFields: ["sha"]});
    const redirect = await fetch(ggufUrl, {redirect: "manual"});
    assert.equal(redirect.status, 302);
    const location = redirect.headers.get("location")!;
    assert.ok(location.startsWith(`${fake.url}/cdn/${modelSha256}?`), location);
    assert.equal(redirect.headers.get("x-repo-commit"), info.sha);
    assert.equal(redirect.headers.get("x-linked-size"), String(modelSize));
    assert.equal(redirect.headers.get("x-linked-etag"), `"${modelSha256}"`);

    const before = fake.requests.length;
    const response = await fetch(`${fake.url}/${repo}/resolve/${info.sha}/stories260K-Q8_0.gguf`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), String(modelSize));
    assert.equal(response.headers.get("etag"), `"${modelSha256}"`);
    assert.equal(response.headers.get("accept-ranges"), "bytes");
    assert.equal(response.headers.get("content-type"), "application/octet-stream");
    assert.equal(sha256(await response.arrayBuffer()), modelSha256);
    assert.deepEqual(fake.requests.slice(before).map((request) => request.path.split("?")[0]),
        [`/${repo}/resolve/${info.sha}/stories260K-Q8_0.gguf`, `/cdn/${modelSha256}`]);

    const head = await fetch(ggufUrl, {method: "HEAD"});
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(modelSize));

    const plain = await fetch(`${fake.url}/${repo}/resolve/main/README.md`, {redirect: "manual"});
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get("x-repo-commit"), info.sha);
    assert.equal(await plain.text(), readme.toString());
    const shardResponse = await fetch(`${fake.url}/${repo}/resolve/main/sub/${encodeURIComponent("x-00002-of-00002.gguf")}`);
    assert.deepEqual(Buffer.from(await shardResponse.arrayBuffer()), shard(2));

    const missing = await fetch(`${fake.url}/${repo}/resolve/main/nope.gguf`);
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get("x-error-code"), "EntryNotFound");
    assert.deepEqual(await missing.json(), {error: "Entry not found"});
    const liar = await fetch(`${fake.url}/fake-org/Liar-GGUF/resolve/main/liar.gguf`, {redirect: "manual"});
    assert.equal(liar.headers.get("x-linked-size"), String(40e9));
    assert.equal(liar.headers.get("x-linked-etag"), `"${"ab".repeat(32)}"`);
});

test("Range answers 206, 416 past the end, and If-Range with another ETag gives the whole file", async () => {
    const tail = await fetch(ggufUrl, {headers: {range: "bytes=379000-"}});
    assert.equal(tail.status, 206);
    assert.equal(tail.headers.get("content-range"), `bytes 379000-${modelSize - 1}/${modelSize}`);
    assert.deepEqual(Buffer.from(await tail.arrayBuffer()), modelBytes.subarray(379000));
    const middle = await fetch(ggufUrl, {headers: {range: "bytes=10-19"}});
    assert.equal(middle.status, 206);
    assert.equal(middle.headers.get("content-length"), "10");
    assert.deepEqual(Buffer.from(await middle.arrayBuffer()), modelBytes.subarray(10, 20));
    const plain = await fetch(`${fake.url}/${repo}/resolve/main/README.md`, {headers: {range: "bytes=2-"}});
    assert.equal(plain.status, 206);
    assert.equal(await plain.text(), readme.toString().slice(2));

    const past = await fetch(ggufUrl, {headers: {range: `bytes=${modelSize}-`}});
    assert.equal(past.status, 416);
    assert.equal(past.headers.get("content-range"), `bytes */${modelSize}`);
    await past.arrayBuffer();

    const stale = await fetch(ggufUrl, {headers: {range: "bytes=100-", "if-range": "\"0123\""}});
    assert.equal(stale.status, 200);
    assert.equal((await stale.arrayBuffer()).byteLength, modelSize);
    const fresh = await fetch(ggufUrl, {headers: {range: "bytes=100-", "if-range": `"${modelSha256}"`}});
    assert.equal(fresh.status, 206);
    assert.equal((await fresh.arrayBuffer()).byteLength, modelSize - 100);
    assert.equal(fake.requests.at(-1)!.range, "bytes=100-");
});

test("@huggingface/hub's downloadFile reads through the redirect with Range requests", async () => {
    const blob = await downloadFile({hubUrl: fake.url, repo, path: "stories260K-Q8_0.gguf"});
    assert.ok(blob != null);
    assert.equal(blob.size, modelSize);
    assert.equal(sha256(await blob.arrayBuffer()), modelSha256);
    assert.equal(await downloadFile({hubUrl: fake.url, repo, path: "missing.gguf"}), null);
});

test("fault: ignoreRange answers 200 with the whole file", async () => {
    fake.faults.ignoreRange = true;
    try {
        const response = await fetch(ggufUrl, {headers: {range: "bytes=100-"}});
        assert.equal(response.status, 200);
        assert.equal(response.headers.get("content-range"), null);
        assert.equal((await response.arrayBuffer()).byteLength, modelSize);
    } finally {
        fake.faults.ignoreRange = false;
    }
});

test("fault: fail answers 500 (or the status given) the next times, for resolve and the file host", async () => {
    fake.faults.fail = {path: "stories260K-Q8_0.gguf", times: 2};
    const other = await fetch(`${fake.url}/${repo}/resolve/main/README.md`);
    assert.equal(other.status, 200, "another file is not failed");
    await other.arrayBuffer();
    for (let i = 0; i < 2; i++) {
        const failed = await fetch(ggufUrl);
        assert.equal(failed.status, 500);
        await failed.arrayBuffer();
    }
    assert.equal(fake.faults.fail.times, 0);
    const ok = await fetch(ggufUrl);
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();

    const redirect = await fetch(ggufUrl, {redirect: "manual"});
    fake.faults.fail = {times: 1, status: 503};
    const cdn = await fetch(redirect.headers.get("location")!);
    assert.equal(cdn.status, 503);
    await cdn.arrayBuffer();
    assert.equal(fake.faults.fail.times, 0);
});

test("fault: cut closes the connection after afterBytes body bytes, then the file is whole again", async () => {
    fake.faults.cut = {path: "stories260K-Q8_0.gguf", afterBytes: 100_000, times: 1};
    const response = await fetch(ggufUrl);
    assert.equal(response.status, 200);
    const cut = await readAll(response);
    assert.equal(cut.bytes, 100_000);
    assert.ok(cut.error instanceof Error, "the body errors");
    assert.equal(fake.faults.cut.times, 0);

    const resumed = await fetch(ggufUrl, {headers: {range: "bytes=100000-"}});
    assert.equal(resumed.status, 206);
    assert.deepEqual(Buffer.from(await resumed.arrayBuffer()), modelBytes.subarray(100_000));

    fake.faults.cut = {afterBytes: 0, times: 1};
    const empty = await readAll(await fetch(`${fake.url}/${repo}/resolve/main/README.md`));
    assert.deepEqual([empty.bytes, empty.error instanceof Error], [0, true]);
});

test("fault: bytesPerSecond throttles bodies, and a client can abort mid-body", async () => {
    fake.faults.bytesPerSecond = 20_000;
    try {
        const started = Date.now();
        const slow = await fetch(ggufUrl, {headers: {range: "bytes=0-9999"}});
        assert.equal((await slow.arrayBuffer()).byteLength, 10_000);
        assert.ok(Date.now() - started >= 400, `10 kB at 20 kB/s took ${Date.now() - started} ms`);

        const controller = new AbortController();
        const aborted = await fetch(ggufUrl, {signal: controller.signal});
        setTimeout(() => controller.abort(), 100);
        const partial = await readAll(aborted);
        assert.ok(partial.error != null && partial.bytes < modelSize);
    } finally {
        delete fake.faults.bytesPerSecond;
    }
    const whole = await fetch(ggufUrl);
    assert.equal((await whole.arrayBuffer()).byteLength, modelSize);
});

test("addRepo adds a repo to a running hub", async () => {
    await fake.addRepo({id: "late/Added-GGUF", files: [{path: "a.gguf", source: Buffer.from("a")}]});
    const [entry] = await collect(listFiles({hubUrl: fake.url, repo: "late/Added-GGUF"}));
    assert.equal(entry!.lfs?.oid, sha256(Buffer.from("a")));
    const found = await collect(listModels({hubUrl: fake.url, search: {query: "added"}}));
    assert.deepEqual(found.map((model) => model.name), ["late/Added-GGUF"]);
});
