import type {FastifyInstance} from "fastify";
import Type from "typebox";
import type {Static} from "typebox";
import type {DownloadManager} from "../../models/DownloadManager.js";
import {useOllamaConventions} from "../ollama/ollamaConventions.js";
import {QUIET} from "../routeConfig.js";

/**
 * `/api/downloads`: pulls that keep running when the page that started them reloads. The app polls the
 * list for progress; pausing keeps the partial files, resuming is starting again, cancelling deletes them.
 */

const DownloadRequest = Type.Object({model: Type.String({minLength: 1, maxLength: 500})}, {additionalProperties: false});
type DownloadRequest = Static<typeof DownloadRequest>;

export async function downloadRoutes(app: FastifyInstance, {downloads}: {downloads: DownloadManager}): Promise<void> {
    useOllamaConventions(app);

    app.get("/api/downloads", QUIET, async () => ({downloads: downloads.list()}));

    app.post<{Body: DownloadRequest}>("/api/downloads", {schema: {body: DownloadRequest}}, async (request, reply) => {
        void reply.status(202);
        return downloads.start(request.body.model);
    });

    app.post<{Body: DownloadRequest}>("/api/downloads/pause", {schema: {body: DownloadRequest}}, async (request) =>
        downloads.pause(request.body.model));

    app.delete<{Body: DownloadRequest}>("/api/downloads", {schema: {body: DownloadRequest}}, async (request) => {
        await downloads.cancel(request.body.model);
        return {cancelled: true};
    });
}
