import type {FastifyInstance} from "fastify";
import Type from "typebox";
import type {Static} from "typebox";
import {InvalidRequestError} from "../../native/errors.js";
import {ApiError} from "../errors.js";
import {isLoopback} from "../boundUrl.js";
import {normalizeOrigin} from "../config.js";
import {useOllamaConventions} from "../ollama/ollamaConventions.js";
import type {AccessStore} from "./AccessStore.js";
import type {AccessSettingsReply} from "./accessTypes.js";
import {LOCAL_ONLY, QUIET} from "../routeConfig.js";

/**
 * `/api/server/keys` and `/api/server/settings`: the Server view's API keys, LAN access and allowed
 * origins. Changes are accepted from this machine only (see `accessControl`).
 */

const NewKey = Type.Object({name: Type.Optional(Type.String({maxLength: 100}))}, {additionalProperties: false});
type NewKey = Static<typeof NewKey>;
const KeyParams = Type.Object({id: Type.String({maxLength: 100})});
type KeyParams = Static<typeof KeyParams>;
const SettingsChange = Type.Object({
    lan_access: Type.Optional(Type.Boolean()),
    allowed_origins: Type.Optional(Type.Array(Type.String({minLength: 1, maxLength: 300}), {maxItems: 100}))
}, {additionalProperties: false});
type SettingsChange = Static<typeof SettingsChange>;

export async function accessRoutes(app: FastifyInstance, {store, host, startupOrigins}: {store: AccessStore, host: string, startupOrigins: readonly string[]}): Promise<void> {
    useOllamaConventions(app);

    const settingsReply = (): AccessSettingsReply => {
        const settings = store.settings();
        return {
            ...settings,
            // Listening on the network is chosen when the server starts.
            lan_access_now: !isLoopback(host),
            restart_required: settings.lan_access !== !isLoopback(host),
            startup_origins: startupOrigins,
            keys_required: store.hasKeys() || !isLoopback(host)
        };
    };

    app.get("/api/server/keys", QUIET, async () => ({keys: store.list()}));

    app.post<{Body: NewKey}>("/api/server/keys", {schema: {body: NewKey}, ...LOCAL_ONLY}, async (request, reply) => {
        void reply.status(201);
        return store.create(request.body.name ?? "");
    });

    app.delete<{Params: KeyParams}>("/api/server/keys/:id", {schema: {params: KeyParams}, ...LOCAL_ONLY}, async (request, reply) => {
        const {id} = request.params;
        if (store.isStartupKey(id))
            throw new InvalidRequestError("This key was given with --api-key when the server started; restart the server without it to stop accepting it.", "id", "startup_key");
        if (!store.revoke(id))
            throw new ApiError(404, `There is no API key "${id}"; it may have been revoked already.`, {code: "not_found"});
        return reply.status(204).send();
    });

    app.get("/api/server/settings", QUIET, async () => settingsReply());

    app.patch<{Body: SettingsChange}>("/api/server/settings", {schema: {body: SettingsChange}, ...LOCAL_ONLY}, async (request) => {
        const change = request.body;
        if (change.lan_access === true && !store.hasKeys())
            throw new ApiError(409, "Create an API key first: with LAN access on, anyone on your network could otherwise use this server.", {code: "api_key_required"});
        let origins: string[] | undefined;
        if (change.allowed_origins != null) {
            origins = [];
            for (const origin of change.allowed_origins) {
                const normalized = normalizeOrigin(origin.trim());
                if (normalized == null)
                    throw new InvalidRequestError(`"${origin}" is not an origin: write it as https://app.example or http://host:port, without a path.`, "allowed_origins");
                if (!origins.includes(normalized))
                    origins.push(normalized);
            }
        }
        store.updateSettings({lan_access: change.lan_access, allowed_origins: origins});
        return settingsReply();
    });
}
