import {HearthError} from "./HearthError.js";

/** Errors of the model library. Each is a {@link HearthError}; `server/` maps each class to a status and the API's error shape. */

export class InvalidModelNameError extends HearthError {
    override readonly name = "InvalidModelNameError";

    constructor(input: string, reason: string) {
        super(`"${input}" is not a valid model name: ${reason}.`, {param: "model", code: "invalid_model_name"});
    }
}

export class ModelNotInLibraryError extends HearthError {
    override readonly name = "ModelNotInLibraryError";

    constructor(name: string) {
        super(`The model "${name}" is not in the library. Pull it first (hearth pull ${name}), or list what is there with hearth ls.`,
            {param: "model", code: "model_not_found"});
    }
}

export class ModelExistsError extends HearthError {
    override readonly name = "ModelExistsError";

    constructor(name: string) {
        super(`A model named "${name}" is already in the library. Choose another name, or remove it first.`, {code: "model_exists"});
    }
}

/**
 * The Hub answered with an error, or could not be reached. `code`: `invalid_repo` (not a repo id), `repo_not_found`,
 * `file_not_found`, `hub_access_denied`, `hub_rate_limited`, or `hub_error` for anything else.
 */
export class HubError extends HearthError {
    override readonly name = "HubError";

    constructor(message: string, code: "invalid_repo" | "repo_not_found" | "file_not_found" | "hub_access_denied" | "hub_rate_limited" | "hub_error" = "hub_error") {
        super(message, {code});
    }
}

export class QuantizationNotFoundError extends HearthError {
    override readonly name = "QuantizationNotFoundError";

    constructor(repo: string, quantization: string, available: readonly string[]) {
        super(`hf.co/${repo} has no ${quantization} GGUF file. ` +
            (available.length > 0 ? `It has: ${available.join(", ")}.` : "It has no GGUF files at all."),
        {param: "model", code: "quantization_not_found"});
    }
}

export class NotEnoughDiskSpaceError extends HearthError {
    override readonly name = "NotEnoughDiskSpaceError";

    constructor(name: string, neededBytes: number, freeBytes: number, folder: string) {
        super(`Not enough disk space for ${name}: it needs ${formatBytes(neededBytes)}, ${formatBytes(freeBytes)} free in ${folder}.`,
            {code: "insufficient_storage"});
    }
}

/** The downloaded bytes are not the file the Hub listed. Nothing was added to the library. */
export class IntegrityError extends HearthError {
    override readonly name = "IntegrityError";

    constructor(file: string, what: string) {
        super(`The download of ${file} was rejected and deleted: ${what}. Pull again; if it happens again, the file on the Hub is not what its listing says.`,
            {code: "integrity_check_failed"});
    }
}

export class DownloadCancelledError extends HearthError {
    override readonly name = "DownloadCancelledError";

    constructor(name: string) {
        super(`The download of ${name} was cancelled. Pull again to resume it.`, {code: "cancelled"});
    }
}

export class ModelBusyError extends HearthError {
    override readonly name = "ModelBusyError";

    constructor(name: string, what: string) {
        super(`The model "${name}" ${what}. Try again when it is done.`, {code: "model_busy"});
    }
}

/** The disk filled up while a file was written; what was written is kept, so pulling again resumes. */
export class DiskFullError extends HearthError {
    override readonly name = "DiskFullError";

    constructor(file: string) {
        super(`The disk filled up while downloading ${file}. Free some space and pull again: it resumes where it stopped.`, {code: "insufficient_storage"});
    }
}

/** A file that is not a readable GGUF model: one given to import (`downloaded` false), or one the Hub served. */
export class InvalidGgufError extends HearthError {
    override readonly name = "InvalidGgufError";
    readonly downloaded: boolean;

    constructor(message: string, {downloaded}: {downloaded: boolean}) {
        super(message, {code: "invalid_gguf"});
        this.downloaded = downloaded;
    }
}

/** A stored path that would lead outside the data folder. */
export class UnsafePathError extends HearthError {
    override readonly name = "UnsafePathError";

    constructor(relative: string) {
        super(`Refusing a path outside the data folder: ${relative}`, {code: "unsafe_path"});
    }
}

export class DownloadNotFoundError extends HearthError {
    override readonly name = "DownloadNotFoundError";

    constructor(name: string) {
        super(`There is no download of ${name}; start it with POST /api/downloads {"model": "${name}"}`, {code: "not_found"});
    }
}

/** `4.1 GB`: decimal units, as disks and the Hub count. */
export function formatBytes(bytes: number): string {
    const units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
        value /= 1000;
        unit++;
    }
    return `${unit === 0 ? value : value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}
