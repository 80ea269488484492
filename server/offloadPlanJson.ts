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
        ...plan.message != null ? {message: plan.message} : {}
    };
}
