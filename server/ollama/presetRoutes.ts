import type {FastifyInstance} from "fastify";
import Type from "typebox";
import type {Static} from "typebox";
import type {Library, PresetMessage} from "../../models/index.js";
import type {Engine} from "../../native/Engine.js";
import {InvalidRequestError, ModelNotFoundError} from "../../native/errors.js";
import {createPreset} from "../presets/createPreset.js";
import type {PresetRequest} from "../presets/createPreset.js";
import {parseModelfile} from "../presets/parseModelfile.js";
import {parametersFrom} from "../presets/presetParameters.js";
import {EventStream, NDJSON} from "../sse.js";
import {useOllamaConventions} from "./ollamaConventions.js";

/** `/api/create` and `/api/copy`: presets, a model with its settings under a name (see `models/Presets.ts`). */

const Maybe = <T extends Parameters<typeof Type.Optional>[0]>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));
const CreateMessage = Type.Object({
    role: Type.Union([Type.Literal("system"), Type.Literal("user"), Type.Literal("assistant")]),
    content: Type.String()
});
/** Both of Ollama's forms: the structured one current clients send, and `modelfile` text as older clients send it. */
const CreateRequest = Type.Object({
    model: Maybe(Type.String()),
    name: Maybe(Type.String()),
    from: Maybe(Type.String()),
    modelfile: Maybe(Type.String({maxLength: 1 << 20})),
    system: Maybe(Type.String()),
    template: Maybe(Type.String()),
    parameters: Maybe(Type.Record(Type.String(), Type.Unknown())),
    messages: Maybe(Type.Array(CreateMessage)),
    license: Maybe(Type.Unknown()),
    stream: Maybe(Type.Boolean()),
    quantize: Maybe(Type.String()),
    files: Maybe(Type.Record(Type.String(), Type.String())),
    adapters: Maybe(Type.Record(Type.String(), Type.String()))
});
type CreateRequest = Static<typeof CreateRequest>;
const CopyRequest = Type.Object({source: Type.String({minLength: 1}), destination: Type.String({minLength: 1})});
type CopyRequest = Static<typeof CopyRequest>;

/** What a create request asks for, in one shape whichever form it came in. */
function presetRequest(body: CreateRequest): PresetRequest {
    const name = body.model ?? body.name;
    if (name == null || name.trim() === "")
        throw new InvalidRequestError("model is required: the name of the preset to create", "model");
    for (const field of ["quantize", "files", "adapters"] as const) {
        const value = body[field];
        if (value != null && (typeof value === "string" ? value !== "" : Object.keys(value).length > 0))
            throw new InvalidRequestError(`${field} is not supported: Hearth makes presets of models already in its library (import a GGUF file with hearth import)`, field);
    }
    if (body.modelfile != null && body.modelfile.trim() !== "") {
        const draft = parseModelfile(body.modelfile);
        // Fields beside the Modelfile override it, as in Ollama.
        return {
            name, from: draft.from,
            ...body.system != null || draft.system != null ? {system: body.system ?? draft.system} : {},
            ...body.template != null || draft.template != null ? {template: body.template ?? draft.template} : {},
            parameters: {...draft.parameters, ...parametersFrom(body.parameters)},
            messages: body.messages != null && body.messages.length > 0 ? body.messages as PresetMessage[] : draft.messages
        };
    }
    if (body.from == null || body.from.trim() === "")
        throw new InvalidRequestError("from is required: the model or preset the new preset runs on (or send a modelfile)", "from");
    return {
        name, from: body.from,
        ...body.system != null ? {system: body.system} : {},
        ...body.template != null ? {template: body.template} : {},
        parameters: parametersFrom(body.parameters),
        messages: (body.messages ?? []) as PresetMessage[]
    };
}

export async function presetRoutes(app: FastifyInstance, {engine, library}: {engine: Engine, library: Library}): Promise<void> {
    useOllamaConventions(app);
    // A name served otherwise than from the library or as a preset: a --model file.
    const served = (name: string) => library.presets.get(name) == null && library.find(name) == null && engine.pathOf(name) != null;

    app.post<{Body: CreateRequest}>("/api/create", {schema: {body: CreateRequest}}, async (request, reply) => {
        const asked = presetRequest(request.body);
        // Made before the stream opens, so that a bad request still gets its own status code.
        const preset = await createPreset(library, asked, {served, param: request.body.modelfile != null ? "modelfile" : "from"});
        if (request.body.stream === false)
            return {status: "success"};
        // The status lines Ollama's clients show while a model is created.
        const stream = new EventStream(reply, NDJSON);
        await stream.send({status: "using existing layer"});
        if (preset.system != null)
            await stream.send({status: "creating system layer"});
        if (Object.keys(preset.parameters).length > 0)
            await stream.send({status: "creating parameters layer"});
        if (preset.messages.length > 0)
            await stream.send({status: "creating messages layer"});
        await stream.send({status: "writing manifest"});
        await stream.send({status: "success"});
        stream.end();
        return reply;
    });

    /** A preset or a model under a new name: a preset's settings are copied; a model's copy is a preset with none. */
    app.post<{Body: CopyRequest}>("/api/copy", {schema: {body: CopyRequest}}, async (request) => {
        const {source, destination} = request.body;
        const preset = library.presets.get(source);
        if (preset == null && library.find(source) == null && engine.pathOf(source) == null)
            throw new ModelNotFoundError(source, engine.servedNames);
        await createPreset(library, preset != null
            ? {name: destination, from: preset.base, parameters: preset.parameters, messages: preset.messages,
                ...preset.system != null ? {system: preset.system} : {}, ...preset.template != null ? {template: preset.template} : {}}
            : {name: destination, from: source, parameters: {}, messages: []}, {served, param: "source"});
        return {};
    });
}
