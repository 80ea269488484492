import {existsSync} from "node:fs";
import {fileURLToPath} from "node:url";
import fastifyStatic from "@fastify/static";
import type {FastifyInstance} from "fastify";

/** The built React app, beside the compiled server: `dist/renderer`. */
export const RENDERER_DIR = fileURLToPath(new URL("../../renderer/", import.meta.url));

/**
 * Nothing the app loads may come from anywhere but this server: no fonts, scripts or images from the
 * internet, and no inline scripts a model's output could smuggle in.
 */
const CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/** Serves the desktop app's UI at `/`, so a browser on a machine without a display gets the same app. */
export async function rendererRoutes(app: FastifyInstance, {rendererDir = RENDERER_DIR}: {rendererDir?: string} = {}): Promise<void> {
    if (!existsSync(`${rendererDir}/index.html`)) {
        app.get("/", async (_request, reply) => reply.type("text/plain; charset=utf-8")
            .send("Hearth's API is running, but its app has not been built here: run `npm run build`, then reload.\n"));
        return;
    }
    await app.register(fastifyStatic, {
        root: rendererDir,
        prefix: "/",
        index: "index.html",
        wildcard: true,
        dotfiles: "deny",
        setHeaders: (reply) => {
            void reply.header("content-security-policy", CONTENT_SECURITY_POLICY);
            void reply.header("x-content-type-options", "nosniff");
            void reply.header("referrer-policy", "no-referrer");
        }
    });
}
