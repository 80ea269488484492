import {HearthError} from "../native/errors.js";

/** Errors of the model library. Each is a {@link HearthError}, so the API maps it to a status and a message. */

export class InvalidModelNameError extends HearthError {
    override readonly name = "InvalidModelNameError";

    constructor(input: string, reason: string) {
        super(`"${input}" is not a valid model name: ${reason}.`, {statusCode: 400, param: "model", code: "invalid_model_name"});
    }
}

export class ModelNotInLibraryError extends HearthError {
    override readonly name = "ModelNotInLibraryError";

    constructor(name: string) {
        super(`The model "${name}" is not in the library. Pull it first (hearth pull ${name}), or list what is there with hearth ls.`,
            {statusCode: 404, param: "model", code: "model_not_found"});
    }
}

export class ModelExistsError extends HearthError {
    override readonly name = "ModelExistsError";

    constructor(name: string) {
        super(`A model named "${name}" is already in the library. Choose another name, or remove it first.`, {statusCode: 409, code: "model_exists"});
    }
}

/** The Hub answered with an error, or could not be reached. */
export class HubError extends HearthError {
    override readonly name = "HubError";

    constructor(message: string, statusCode = 502, code = "hub_error") {
        super(message, {statusCode, code});
    }
}

export class QuantizationNotFoundError extends HearthError {
    override readonly name = "QuantizationNotFoundError";

    constructor(repo: string, quantization: string, available: readonly string[]) {
        super(`hf.co/${repo} has no ${quantization} GGUF file. ` +
            (available.length > 0 ? `It has: ${available.join(", ")}.` : "It has no GGUF files at all."),
        {statusCode: 404, param: "model", code: "quantization_not_found"});
    }
}

export class NotEnoughDiskSpaceError extends HearthError {
    override readonly name = "NotEnoughDiskSpaceError";

    constructor(name: string, neededBytes: number, freeBytes: number, folder: string) {
        super(`Not enough disk space for ${name}: it needs ${formatBytes(neededBytes)}, ${formatBytes(freeBytes)} free in ${folder}.`,
            {statusCode: 507, type: "server_error", code: "insufficient_storage"});
    }
}

/** The downloaded bytes are not the file the Hub listed. Nothing was added to the library. */
export class IntegrityError extends HearthError {
    override readonly name = "IntegrityError";

    constructor(file: string, what: string) {
        super(`The download of ${file} was rejected and deleted: ${what}. Pull again; if it happens again, the file on the Hub is not what its listing says.`,
            {statusCode: 502, type: "server_error", code: "integrity_check_failed"});
    }
}

export class DownloadCancelledError extends HearthError {
    override readonly name = "DownloadCancelledError";

    constructor(name: string) {
        super(`The download of ${name} was cancelled. Pull again to resume it.`, {statusCode: 499, code: "cancelled"});
    }
}

export class ModelBusyError extends HearthError {
    override readonly name = "ModelBusyError";

    constructor(name: string, what: string) {
        super(`The model "${name}" ${what}. Try again when it is done.`, {statusCode: 409, code: "model_busy"});
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
