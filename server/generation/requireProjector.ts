import type {Engine} from "../../native/Engine.js";
import {ImagesNotSupportedError} from "../../native/errors.js";

/**
 * Refuses a prompt with images (at `param`) for a model served without a projector, before it is loaded or queued
 * for them. A name that is not served at all is left to the engine, whose answer is a 404.
 */
export function requireProjector(engine: Engine, model: string, param: string): void {
    if (engine.pathOf(model) != null && engine.projectorOf(model) == null)
        throw new ImagesNotSupportedError(model, param);
}
