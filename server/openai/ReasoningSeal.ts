import {createCipheriv, createDecipheriv, randomBytes} from "node:crypto";
import {mkdirSync, readFileSync, writeFileSync} from "node:fs";
import path from "node:path";
import {HearthError} from "../../models/HearthError.js";

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 1;
/** Binds a sealed item to what it is, so no other sealed data of Hearth's could pass for reasoning. */
const CONTEXT = Buffer.from("hearth reasoning.encrypted_content v1");

/**
 * Seals a model's reasoning for a client that keeps its conversation itself (`store: false` with
 * `include: ["reasoning.encrypted_content"]`), and opens it when the client sends it back: AES-256-GCM, so a client
 * can carry the reasoning but can neither read a changed one back in nor forge one. The key is this data folder's
 * own, `reasoning.key`, made on first use, readable by its owner only; another data folder's items do not open.
 */
export class ReasoningSeal {
    readonly #keyPath: string;
    #key: Buffer | undefined;

    constructor(home: string) {
        this.#keyPath = path.join(home, "reasoning.key");
    }

    seal(text: string): string {
        const iv = randomBytes(IV_BYTES);
        const cipher = createCipheriv("aes-256-gcm", this.#keyOnce(), iv, {authTagLength: TAG_BYTES});
        cipher.setAAD(CONTEXT);
        const sealed = Buffer.concat([cipher.update(text, "utf8"), cipher.final()]);
        return Buffer.concat([Buffer.of(VERSION), iv, cipher.getAuthTag(), sealed]).toString("base64");
    }

    /** The reasoning sealed in `sealed`, or `undefined` when it was not sealed with this key or was changed since. */
    open(sealed: string): string | undefined {
        const bytes = Buffer.from(sealed, "base64");
        if (bytes.length < 1 + IV_BYTES + TAG_BYTES || bytes[0] !== VERSION || bytes.toString("base64") !== sealed)
            return undefined;
        const iv = bytes.subarray(1, 1 + IV_BYTES);
        const tag = bytes.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
        try {
            const decipher = createDecipheriv("aes-256-gcm", this.#keyOnce(), iv, {authTagLength: TAG_BYTES});
            decipher.setAAD(CONTEXT);
            decipher.setAuthTag(tag);
            return Buffer.concat([decipher.update(bytes.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]).toString("utf8");
        } catch {
            return undefined;
        }
    }

    #keyOnce(): Buffer {
        this.#key ??= this.#readOrCreateKey();
        return this.#key;
    }

    #readOrCreateKey(): Buffer {
        try {
            mkdirSync(path.dirname(this.#keyPath), {recursive: true, mode: 0o700});
            // `wx`: of two servers on one data folder that start at once, one writes the key and both read it.
            writeFileSync(this.#keyPath, randomBytes(KEY_BYTES), {mode: 0o600, flag: "wx"});
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== "EEXIST")
                throw error;
        }
        const key = readFileSync(this.#keyPath);
        if (key.length !== KEY_BYTES)
            throw new HearthError(`${this.#keyPath} is not a ${KEY_BYTES}-byte key; delete it and a new one is made (reasoning sealed with the old one can then no longer be read back)`, {code: "bad_reasoning_key"});
        return key;
    }
}
