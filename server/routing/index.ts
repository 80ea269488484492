export {Router, RouteChangeError} from "./Router.js";
export type {RouterOptions, RouteSource} from "./Router.js";
export {RouteStore} from "./RouteStore.js";
export {routeRequests, isShadowCopy} from "./routeRequests.js";
export {routeRoutes} from "./routeRoutes.js";
export {parseRouteFlags, parseRouteText, parseShadowText, checkRoute, RouteSpecError} from "./routeSpec.js";
export type {RouteSpec, RouteTarget} from "./routeSpec.js";
