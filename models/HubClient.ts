import {listFiles, listModels, modelInfo} from "@huggingface/hub";
import {HubError} from "./errors.js";
import {chooseProjector, isProjectorFileName} from "./findProjector.js";
import {groupQuantizations} from "./quantization.js";
import type {QuantEntry, QuantFile} from "./quantization.js";
import {isNetworkError, isTransientStatus, withRetries} from "./withRetries.js";

export type HubClientOptions = {
    /** The Hub's base URL (`HF_ENDPOINT`). Defaults to `https://huggingface.co`. */
    endpoint?: string,
    /** A Hugging Face access token (`HF_TOKEN`), for gated and private repos. Sent to the Hub only. */
    token?: string,
    fetch?: typeof fetch,
    /**
     * Attempts after a network error or a transient answer (5xx, 408, 429), with the downloads' backoff.
     * Fewer than a download's 6, since someone waits on the answer. Defaults to 3 (about 3.5 s in all).
     */
    retries?: number,
    /** First retry delay; it doubles on each attempt. Defaults to 500 ms. */
    retryDelayMs?: number
};

export type HubModel = {id: string, downloads: number, likes: number, updatedAt: string, gated: boolean};

/**
 * `projectors`: the repo's vision projectors (mmproj GGUFs); `projector`: the one a pull brings with any of its
 * quantizations (see `chooseProjector`), undefined when the repo has none and its models cannot see.
 */
export type HubRepoFiles = {repo: string, commit: string, quantizations: QuantEntry[], projectors: QuantFile[], projector: QuantFile | undefined};

const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The parts of the Hugging Face Hub API Hearth uses: search GGUF repos, list a repo's quantizations, file URLs. */
export class HubClient {
    readonly endpoint: string;
    readonly #token: string | undefined;
    readonly #fetch: typeof fetch;
    readonly #retries: number;
    readonly #retryDelayMs: number | undefined;

    constructor({endpoint = "https://huggingface.co", token, fetch: fetchImpl = fetch, retries = 3, retryDelayMs}: HubClientOptions = {}) {
        this.endpoint = endpoint.replace(/\/+$/, "");
        this.#token = token === "" ? undefined : token;
        this.#fetch = fetchImpl;
        this.#retries = retries;
        this.#retryDelayMs = retryDelayMs;
    }

    #credentials() {
        return {hubUrl: this.endpoint, fetch: this.#fetch, ...(this.#token != null ? {accessToken: this.#token as `hf_${string}`} : {})};
    }

    /** GGUF model repos whose name contains `query`, most downloaded first. */
    async search(query: string, limit = 30): Promise<HubModel[]> {
        return this.#call(`search the Hub for "${query}"`, async () => {
            const found: HubModel[] = [];
            for await (const model of listModels({...this.#credentials(), search: {query, tags: ["gguf"]}, sort: "downloads", limit}))
                found.push({id: model.name, downloads: model.downloads, likes: model.likes, updatedAt: new Date(model.updatedAt).toISOString(), gated: model.gated !== false});
            return found;
        });
    }

    /** A repo's GGUF quantizations at its current commit, pinned to that commit so a later push cannot mix files. */
    async repoFiles(repo: string): Promise<HubRepoFiles> {
        if (!REPO_ID.test(repo) || repo.includes(".."))
            throw new HubError(`"${repo}" is not a Hub repo id; it looks like owner/name`, "invalid_repo");
        return this.#call(`list hf.co/${repo}`, async () => {
            const info = await modelInfo({...this.#credentials(), name: repo, additionalFields: ["sha"]});
            const commit = info.sha;
            if (typeof commit !== "string" || !/^[0-9a-f]{40}$/.test(commit))
                throw new HubError(`The Hub did not say which commit hf.co/${repo} is at`);
            const files: QuantFile[] = [];
            for await (const entry of listFiles({...this.#credentials(), repo, revision: commit, recursive: true})) {
                // Only LFS files carry a sha256 to check a download against; GGUF files on the Hub always are.
                if (entry.type === "file" && entry.lfs != null && /\.gguf$/i.test(entry.path) && isSafeRepoPath(entry.path))
                    files.push({path: entry.path, sizeBytes: entry.lfs.size, sha256: entry.lfs.oid});
            }
            const projectors = files.filter((file) => isProjectorFileName(file.path));
            return {repo, commit, quantizations: groupQuantizations(files), projectors, projector: chooseProjector(projectors)};
        });
    }

    /** Where a file of a repo at a commit is downloaded from; the Hub redirects it to its storage. */
    fileUrl(repo: string, commit: string, path: string): string {
        return `${this.endpoint}/${repo}/resolve/${commit}/${path.split("/").map(encodeURIComponent).join("/")}`;
    }

    /** The token goes to the Hub itself only, never to the storage host a download is redirected to. */
    headersFor(url: string): Record<string, string> {
        return this.#token != null && new URL(url).origin === new URL(this.endpoint).origin ? {authorization: `Bearer ${this.#token}`} : {};
    }

    /** Runs one Hub call, from its first request, again after a transient failure; errors become {@link HubError}s. */
    async #call<T>(what: string, run: () => Promise<T>): Promise<T> {
        try {
            return await withRetries(run, isTransient, {retries: this.#retries, retryDelayMs: this.#retryDelayMs});
        } catch (error) {
            throw toHubError(what, error, this.endpoint);
        }
    }
}

/** A path inside a repo that is safe to mirror under the data folder: plain segments, no `..`, no backslashes. */
export function isSafeRepoPath(path: string): boolean {
    return path.length <= 512 && path.split("/").every((segment) => /^[A-Za-z0-9_+][A-Za-z0-9._+ -]*$/.test(segment) && !segment.includes(".."));
}

function isTransient(error: unknown): boolean {
    const status = (error as {statusCode?: unknown}).statusCode;
    return typeof status === "number" ? isTransientStatus(status) : !(error instanceof HubError) && isNetworkError(error);
}

function toHubError(what: string, error: unknown, endpoint: string): Error {
    if (error instanceof HubError)
        return error;
    const status = (error as {statusCode?: unknown}).statusCode;
    if (typeof status === "number") {
        const detail = ((error as Error).message.split(". URL:")[0] ?? "").trim();
        // Without a token the Hub answers 401 for a repo that does not exist, so as not to reveal private ones.
        if (status === 404 || (status === 401 && /not.?found/i.test(detail)))
            return new HubError(`Could not ${what}: it was not found on the Hub (${detail}). Check the name; a private repo also needs HF_TOKEN.`, "repo_not_found");
        if (status === 401 || status === 403)
            return new HubError(`Could not ${what}: the Hub refused access (${detail}). For a gated or private repo, accept its terms on the Hub and set HF_TOKEN.`, "hub_access_denied");
        if (status === 429)
            return new HubError(`Could not ${what}: the Hub is rate-limiting requests. Try again in a minute.`, "hub_rate_limited");
        return new HubError(`Could not ${what}: the Hub answered HTTP ${status} (${detail}).`);
    }
    const cause = (error as {cause?: {code?: string, message?: string}}).cause;
    return new HubError(`Could not ${what}: the Hub at ${endpoint} could not be reached (${cause?.code ?? cause?.message ?? (error as Error).message}).`);
}
