/** API keys and access settings as `/api/server/keys` and `/api/server/settings` send them. Types only, free of Node.js, for the app too. */

/** An API key as listed: never the key itself, which is shown once when it is created. */
export type ApiKeyInfo = {
    id: string,
    name: string,
    /** The first characters of the key, so a person can tell keys apart. */
    prefix: string,
    /** `stored`: created with `hearth keys` or the app, revocable; `startup`: given with `--api-key` for this run. */
    source: "stored" | "startup",
    created_at: string | null,
    last_used_at: string | null
};

export type CreatedApiKey = ApiKeyInfo & {key: string};

/** Settings the app changes at run time; each applies at once, except `lan_access`, which applies at the next start. */
export type AccessSettings = {
    /** Listen on every address (`0.0.0.0`) instead of loopback; needs an API key. */
    lan_access: boolean,
    /** Origins whose pages may call the API, besides localhost's and those given with `--allowed-origin`. */
    allowed_origins: string[]
};

/** What `/api/server/settings` answers: the settings, and what they mean for the running server. */
export type AccessSettingsReply = AccessSettings & {
    /** Whether the server listens beyond loopback now. */
    lan_access_now: boolean,
    /** `lan_access` differs from how the server listens now: it applies at the next start. */
    restart_required: boolean,
    /** Origins given with `--allowed-origin`, not editable from the app. */
    startup_origins: readonly string[],
    /** Whether every client must send a key. */
    keys_required: boolean
};
