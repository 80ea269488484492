import type {OffloadPlan} from "../native/planOffload.js";

/** An offload plan as the API and `hearth estimate --json` give it. */
export function offloadPlanJson(plan: OffloadPlan) {
    return {
        fits: plan.fits,
        placement: plan.placement,
        layers_total: plan.layersTotal,
        gpu_layers: plan.gpuLayers,
        vram_bytes: plan.vramBytes,
        ram_bytes: plan.ramBytes,
        context_size: plan.contextSize,
        context_reason: plan.contextReason,
        kv_cache_type: plan.kvCacheType,
        parallel: plan.parallel,
        projector_bytes: plan.projectorBytes,
        projector_on_gpu: plan.projectorOnGpu,
        // The draft model's part of ram_bytes and vram_bytes (--draft-model), where it has one.
        ...plan.draft != null ? {draft_model: {ram_bytes: plan.draft.ramBytes, vram_bytes: plan.draft.vramBytes, gpu_layers: plan.draft.gpuLayers, layers_total: plan.draft.layersTotal}} : {},
        ...plan.message != null ? {message: plan.message} : {}
    };
}
