import {createHash} from "node:crypto";
import {createReadStream} from "node:fs";
import {stat} from "node:fs/promises";
import {createServer} from "node:http";
import type {IncomingMessage, OutgoingHttpHeaders, ServerResponse} from "node:http";
import type {AddressInfo} from "node:net";
import {setTimeout as sleep} from "node:timers/promises";
import {writeDrained} from "../../server/sse.js";

/**
 * A fake Hugging Face Hub on loopback: the model search, info and tree APIs that `@huggingface/hub`
 * calls, `resolve/` with its redirect to a file host (`/cdn/`), Range requests, gated repos, and
 * faults a downloader must survive (cut bodies, 5xx answers, slow bodies, an ignored Range).
 */

export type FakeHubFile = {
    path: string,
    /** A file on disk (streamed, never read whole) or the bytes themselves. */
    source: string | Buffer,
    /** Size advertised in the tree listing and X-Linked-Size, to fake a huge file. */
    declaredSize?: number,
    /** lfs.oid advertised, to fake a file whose bytes do not match its hash. */
    declaredSha256?: string,
    /** Default true for *.gguf; non-LFS files have no `lfs` field and are served without a redirect. */
    lfs?: boolean
};
export type FakeHubRepo = {id: string, sha?: string, files: FakeHubFile[], tags?: string[], downloads?: number, likes?: number, gated?: boolean};
export type FakeHubFaults = {
    /** The next `times` body responses for this file (or any file when path is omitted) are cut: the socket is destroyed after `afterBytes` body bytes. */
    cut?: {path?: string, afterBytes: number, times: number},
    /** The next `times` requests to resolve/ or the file host answer 500 (or `status`). */
    fail?: {path?: string, times: number, status?: number},
    /** The next `times` requests to the model API (`/api/models/…`: info and file listings) answer 500 (or `status`). */
    apiFail?: {times: number, status?: number},
    /** Throttle bodies to this many bytes per second (for cancel tests). */
    bytesPerSecond?: number,
    /** Answer 200 with the whole file even when a Range is asked for. */
    ignoreRange?: boolean
};
export type FakeHubRequest = {method: string, path: string, range?: string, authorization?: string};
export type FakeHub = {
    url: string,
    token: string,
    requests: FakeHubRequest[],
    faults: FakeHubFaults,
    addRepo(repo: FakeHubRepo): Promise<void>,
    close(): Promise<void>
};

type StoredFile = {
    path: string, source: string | Buffer, lfs: boolean,
    size: number, sha256: string, gitOid: string,
    advertisedSize: number, advertisedSha256: string, pointerSize: number
};
type StoredRepo = {
    id: string, mongoId: string, sha: string, files: StoredFile[], tags: string[],
    downloads: number, likes: number, gated: boolean, lastModified: string
};

const sha1 = (text: string): string => createHash("sha1").update(text).digest("hex");

async function storeFile(file: FakeHubFile): Promise<StoredFile> {
    const size = typeof file.source === "string" ? (await stat(file.source)).size : file.source.length;
    const sha256 = createHash("sha256");
    const gitBlob = createHash("sha1").update(`blob ${size}\0`);
    const chunks = typeof file.source === "string" ? createReadStream(file.source) : [file.source];
    for await (const chunk of chunks as AsyncIterable<Buffer>) {
        sha256.update(chunk);
        gitBlob.update(chunk);
    }
    const lfs = file.lfs ?? /\.gguf$/i.test(file.path);
    const advertisedSize = file.declaredSize ?? size;
    const actualSha256 = sha256.digest("hex");
    const advertisedSha256 = file.declaredSha256 ?? actualSha256;
    // An LFS file's git blob is its pointer, so its oid and pointerSize come from the pointer text.
    const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${advertisedSha256}\nsize ${advertisedSize}\n`;
    return {
        path: file.path, source: file.source, lfs, size,
        sha256: actualSha256,
        gitOid: lfs ? createHash("sha1").update(`blob ${pointer.length}\0${pointer}`).digest("hex") : gitBlob.digest("hex"),
        advertisedSize, advertisedSha256, pointerSize: pointer.length
    };
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {"Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(text), ...headers});
    res.end(res.req.method === "HEAD" ? undefined : text);
}

const repoNotFound = (res: ServerResponse) => sendJson(res, 404, {error: "Repository not found"}, {"X-Error-Code": "RepoNotFound"});
const entryNotFound = (res: ServerResponse) => sendJson(res, 404, {error: "Entry not found"}, {"X-Error-Code": "EntryNotFound"});

/** One bytes=N-, bytes=N-M or bytes=-K range; anything else (several ranges, junk) is ignored as HTTP allows. */
function parseRange(header: string | undefined, size: number): {start: number, end: number} | "unsatisfiable" | undefined {
    const match = /^bytes=(\d*)-(\d*)$/.exec(header?.trim() ?? "");
    if (match == null || (match[1] === "" && match[2] === ""))
        return undefined;
    if (match[1] === "") {
        const suffix = Number(match[2]);
        return suffix === 0 || size === 0 ? "unsatisfiable" : {start: Math.max(0, size - suffix), end: size - 1};
    }
    const start = Number(match[1]);
    const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
    if (start >= size)
        return "unsatisfiable";
    return end < start ? undefined : {start, end};
}

function takeFault<T extends {path?: string, times: number}>(fault: T | undefined, path: string): T | undefined {
    if (fault == null || fault.times <= 0 || (fault.path != null && fault.path !== path))
        return undefined;
    fault.times--;
    return fault;
}

async function* bytesOf(file: StoredFile, start: number, end: number): AsyncGenerator<Buffer> {
    if (end < start)
        return;
    if (typeof file.source !== "string")
        yield file.source.subarray(start, end + 1);
    else
        yield* createReadStream(file.source, {start, end}) as AsyncIterable<Buffer>;
}

export async function startFakeHub(repos: FakeHubRepo[] = []): Promise<FakeHub> {
    const stored = new Map<string, StoredRepo>();
    const byContent = new Map<string, StoredFile>();

    async function addRepo(repo: FakeHubRepo): Promise<void> {
        const files = await Promise.all(repo.files.map(storeFile));
        for (const file of files)
            if (!byContent.has(file.sha256))
                byContent.set(file.sha256, file);
        stored.set(repo.id, {
            id: repo.id,
            mongoId: sha1(repo.id).slice(0, 24),
            sha: repo.sha ?? sha1(`${repo.id}\n${files.map((file) => `${file.path} ${file.gitOid}`).join("\n")}`),
            files, tags: repo.tags ?? ["gguf"], downloads: repo.downloads ?? 0, likes: repo.likes ?? 0,
            gated: repo.gated ?? false, lastModified: new Date().toISOString()
        });
    }

    function summary(repo: StoredRepo, expand: string[]): Record<string, unknown> {
        return {
            _id: repo.mongoId, id: repo.id, private: false, pipeline_tag: "text-generation",
            downloads: repo.downloads, likes: repo.likes, gated: repo.gated ? "manual" : false,
            lastModified: repo.lastModified, tags: repo.tags,
            ...(expand.includes("sha") ? {sha: repo.sha} : {}),
            ...(expand.includes("siblings") ? {siblings: repo.files.map((file) => ({rfilename: file.path}))} : {})
        };
    }

    function listModels(res: ServerResponse, url: URL): void {
        const query = url.searchParams;
        const search = query.get("search")?.toLowerCase();
        const author = query.get("author");
        const tags = query.getAll("filter");
        const task = query.get("pipeline_tag");
        let found = [...stored.values()].filter((repo) => (search == null || repo.id.toLowerCase().includes(search)) &&
            (author == null || repo.id.split("/")[0] === author) && tags.every((tag) => repo.tags.includes(tag)) &&
            (task == null || task === "text-generation"));
        const sort = query.get("sort");
        if (sort === "downloads" || sort === "likes" || sort === "lastModified")
            found = found.sort((a, b) => a[sort] < b[sort] ? 1 : a[sort] > b[sort] ? -1 : 0);
        const offset = Number(query.get("cursor") ?? 0);
        const limit = Number(query.get("limit") ?? Infinity);
        const page = found.slice(offset, limit > 0 ? offset + limit : undefined);
        const headers: OutgoingHttpHeaders = {};
        if (offset + page.length < found.length) {
            const next = new URL(url);
            next.searchParams.set("cursor", String(offset + page.length));
            // @huggingface/hub only follows an absolute http(s) URL with whitespace after the ";".
            headers.Link = `<${next.href}>; rel="next"`;
        }
        sendJson(res, 200, page.map((repo) => summary(repo, query.getAll("expand"))), headers);
    }

    function listTree(res: ServerResponse, repo: StoredRepo, dir: string, recursive: boolean): void {
        const directories = new Set<string>();
        for (const file of repo.files)
            for (let slash = file.path.indexOf("/"); slash !== -1; slash = file.path.indexOf("/", slash + 1))
                directories.add(file.path.slice(0, slash));
        if (dir !== "" && !directories.has(dir))
            return entryNotFound(res);
        const prefix = dir === "" ? "" : `${dir}/`;
        const wanted = (path: string) => path.startsWith(prefix) && (recursive || !path.slice(prefix.length).includes("/"));
        const entries = [
            ...[...directories].filter(wanted).map((path) => ({type: "directory", oid: sha1(`${repo.sha}:${path}`), size: 0, path})),
            ...repo.files.filter((file) => wanted(file.path)).map((file) => ({
                type: "file", oid: file.gitOid, size: file.advertisedSize, path: file.path,
                ...(file.lfs ? {lfs: {oid: file.advertisedSha256, size: file.advertisedSize, pointerSize: file.pointerSize}} : {})
            }))
        ].sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
        sendJson(res, 200, entries);
    }

    /** The bytes of a file with Range, If-Range and the body faults; `etag` is what If-Range must match. */
    async function serveBytes(req: IncomingMessage, res: ServerResponse, file: StoredFile, etag: string, faultPath: string, headers: OutgoingHttpHeaders): Promise<void> {
        const ifRange = req.headers["if-range"];
        const range = hub.faults.ignoreRange || (ifRange != null && ifRange !== etag) ? undefined : parseRange(req.headers.range, file.size);
        const common = {...headers, "Accept-Ranges": "bytes", ETag: etag, "Content-Type": "application/octet-stream"};
        if (range === "unsatisfiable") {
            res.writeHead(416, {...common, "Content-Range": `bytes */${file.size}`, "Content-Length": 0}).end();
            return;
        }
        const {start, end} = range ?? {start: 0, end: file.size - 1};
        res.writeHead(range == null ? 200 : 206, {
            ...common, "Content-Length": end - start + 1,
            ...(range == null ? {} : {"Content-Range": `bytes ${start}-${end}/${file.size}`})
        });
        if (req.method === "HEAD")
            return void res.end();
        const cutAfter = takeFault(hub.faults.cut, faultPath)?.afterBytes;
        let closed = false;
        res.once("close", () => closed = true);
        let sent = 0;
        for await (const chunk of bytesOf(file, start, end)) {
            for (let offset = 0; offset < chunk.length;) {
                if (closed)
                    return;
                if (cutAfter != null && sent >= cutAfter) {
                    // end() flushes what was written, so the client gets exactly `afterBytes` before the close.
                    const socket = res.socket!;
                    res.flushHeaders();
                    socket.end(() => socket.destroy());
                    return;
                }
                const rate = hub.faults.bytesPerSecond;
                let take = chunk.length - offset;
                if (rate != null && rate > 0)
                    take = Math.min(take, Math.max(1, Math.floor(rate / 20)));
                if (cutAfter != null)
                    take = Math.min(take, cutAfter - sent);
                const piece = chunk.subarray(offset, offset + take);
                offset += take;
                sent += take;
                await writeDrained(res, piece);
                if (rate != null && rate > 0)
                    await sleep(take * 1000 / rate);
            }
        }
        res.end();
    }

    async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
        const url = new URL(req.url ?? "/", hub.url);
        const segments = url.pathname.split("/").slice(1).map(decodeURIComponent);
        if (req.method !== "GET" && req.method !== "HEAD")
            return sendJson(res, 405, {error: "Method not allowed"});
        if (url.pathname === "/api/models")
            return listModels(res, url);

        const api = segments[0] === "api" && segments[1] === "models";
        const [owner, name, kind, revision, ...rest] = api ? segments.slice(2) : segments;
        const isResolve = !api && kind === "resolve" && rest.length > 0;
        const isCdn = segments[0] === "cdn" && segments.length === 2;
        if (!api && !isResolve && !isCdn)
            return sendJson(res, 404, {error: "Not found"});

        const filePath = isCdn ? url.searchParams.get("path") ?? "" : rest.join("/");
        if (api) {
            const fail = takeFault(hub.faults.apiFail, "");
            if (fail != null)
                return sendJson(res, fail.status ?? 500, {error: "Internal Error"});
        } else {
            const fail = takeFault(hub.faults.fail, filePath);
            if (fail != null)
                return sendJson(res, fail.status ?? 500, {error: "Internal Error"});
        }
        if (isCdn) {
            const file = byContent.get(segments[1]!);
            return file == null ? entryNotFound(res) : serveBytes(req, res, file, `"${file.sha256}"`, filePath || file.path, {});
        }

        const repo = stored.get(`${owner}/${name}`);
        if (repo == null)
            return repoNotFound(res);
        if (repo.gated && req.headers.authorization !== `Bearer ${hub.token}`)
            return sendJson(res, 401, {error: `Access to model ${repo.id} is restricted. You must have access to it and be authenticated to access it. Please log in.`}, {"X-Error-Code": "GatedRepo"});
        const rev = kind == null ? "main" : revision;
        if (rev !== "main" && rev !== "HEAD" && rev !== repo.sha)
            return sendJson(res, 404, {error: `Invalid rev id: ${rev}`}, {"X-Error-Code": "RevisionNotFound"});

        if (api && (kind == null || (kind === "revision" && rest.length === 0)))
            return sendJson(res, 200, summary(repo, ["sha", "siblings"]));
        if (api && kind === "tree")
            return listTree(res, repo, rest.join("/"), url.searchParams.get("recursive") === "true");
        if (api)
            return sendJson(res, 404, {error: "Not found"});

        const file = repo.files.find((candidate) => candidate.path === filePath);
        if (file == null)
            return entryNotFound(res);
        if (!file.lfs)
            return serveBytes(req, res, file, `"${file.gitOid}"`, file.path, {"X-Repo-Commit": repo.sha});
        const location = `${hub.url}/cdn/${file.sha256}?${new URLSearchParams({repo: repo.id, path: file.path})}`;
        res.writeHead(302, {
            Location: location, "X-Repo-Commit": repo.sha, "X-Linked-Size": file.advertisedSize,
            "X-Linked-Etag": `"${file.advertisedSha256}"`, ETag: `"${file.advertisedSha256}"`, "Content-Length": 0
        }).end();
    }

    const server = createServer((req, res) => {
        hub.requests.push({
            method: req.method ?? "GET", path: req.url ?? "/",
            ...(req.headers.range != null ? {range: req.headers.range} : {}),
            ...(req.headers.authorization != null ? {authorization: req.headers.authorization} : {})
        });
        route(req, res).catch((error: unknown) => {
            if (!res.headersSent)
                sendJson(res, 500, {error: String(error)});
            else
                res.destroy();
        });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));

    const hub: FakeHub = {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        token: "hf_fakeHubToken",
        requests: [],
        faults: {},
        addRepo,
        close: () => new Promise<void>((resolve, reject) => {
            server.close((error) => error == null ? resolve() : reject(error));
            server.closeAllConnections();
        })
    };
    for (const repo of repos)
        await addRepo(repo);
    return hub;
}
