import http from "node:http";
import type {IncomingHttpHeaders, IncomingMessage} from "node:http";
import https from "node:https";
import {HubError} from "./errors.js";

export type HttpAnswer = {status: number, headers: IncomingHttpHeaders, body: IncomingMessage};

const MAX_REDIRECTS = 10;

/**
 * A GET that follows redirects itself, so each hop gets the headers meant for its URL: credentials for
 * the Hub are never sent on to the storage host it redirects to. Resolves with the first answer that is
 * not a redirect; its body is the caller's to read or destroy.
 */
export async function getFollowingRedirects(url: string, headersFor: (url: string) => Record<string, string>, signal?: AbortSignal): Promise<HttpAnswer> {
    let at = url;
    for (let redirects = 0; ; redirects++) {
        const answer = await get(at, {...headersFor(at), "user-agent": "hearth"}, signal);
        if (answer.status < 300 || answer.status >= 400 || answer.headers.location == null)
            return answer;
        answer.body.resume();
        if (redirects >= MAX_REDIRECTS)
            throw new HubError(`Fetching ${url} failed: more than ${MAX_REDIRECTS} redirects`);
        at = new URL(answer.headers.location, at).href;
    }
}

function get(url: string, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<HttpAnswer> {
    const client = new URL(url).protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
        const sent = client.get(url, {headers, signal}, (body) => resolve({status: body.statusCode ?? 0, headers: body.headers, body}));
        sent.once("error", reject);
    });
}
