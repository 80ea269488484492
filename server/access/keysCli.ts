import {mkdir} from "node:fs/promises";
import {parseArgs} from "node:util";
import {ConfigError, resolveHome} from "../config.js";
import {table} from "../libraryCli.js";
import {AccessStore} from "./AccessStore.js";

export const KEYS_USAGE = `API keys (all take --home DIR; HEARTH_HOME):
  keys create [--name NAME]  make an API key; it is shown once, keep it somewhere safe
  keys list [--json]         the keys a server in this data folder accepts (never the keys themselves)
  keys revoke ID             stop accepting a key, at once, also in a running server`;

/** `hearth keys …`: API keys in the data folder, shared with a running server through SQLite. */
export async function runKeysCommand(argv: readonly string[]): Promise<void> {
    let parsed;
    try {
        parsed = parseArgs({args: [...argv], options: {home: {type: "string"}, name: {type: "string"}, json: {type: "boolean"}}, allowPositionals: true, strict: true});
    } catch (error) {
        throw new ConfigError(`${(error as Error).message}\n${KEYS_USAGE}`);
    }
    const [action, ...rest] = parsed.positionals;
    const home = resolveHome(parsed.values.home);
    await mkdir(home, {recursive: true, mode: 0o700});
    const store = new AccessStore(home);
    try {
        switch (action) {
            case "create": {
                const created = store.create(parsed.values.name ?? rest.join(" "));
                console.log(`Created ${created.id} (${created.name}). The key, shown only this once:\n\n  ${created.key}\n`);
                console.log("Clients send it as \"Authorization: Bearer KEY\" (the OpenAI SDKs' api_key) or \"x-api-key: KEY\".");
                return;
            }
            case "list": {
                const keys = store.list();
                if (parsed.values.json === true)
                    console.log(JSON.stringify(keys, null, 2));
                else if (keys.length === 0)
                    console.log("No API keys: clients on this machine need none. hearth keys create makes one.");
                else
                    console.log(table([["ID", "NAME", "KEY", "CREATED", "LAST USED"],
                        ...keys.map((key) => [key.id, key.name, key.prefix, key.created_at ?? "", key.last_used_at ?? "never"])]));
                return;
            }
            case "revoke": {
                const id = rest[0];
                if (id == null)
                    throw new ConfigError(`keys revoke needs a key id (hearth keys list shows them)\n${KEYS_USAGE}`);
                if (!store.revoke(id))
                    throw new ConfigError(`there is no API key "${id}" (hearth keys list shows them)`);
                console.log(`Revoked ${id}: it no longer works, also in a running server.`);
                return;
            }
            default:
                throw new ConfigError(action == null ? KEYS_USAGE : `unknown keys command "${action}"\n${KEYS_USAGE}`);
        }
    } finally {
        store.close();
    }
}
