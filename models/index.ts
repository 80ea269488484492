export {HubClient} from "./HubClient.js";
export type {HubClientOptions, HubModel, HubRepoFiles} from "./HubClient.js";
export {Library} from "./Library.js";
export type {LibraryOptions, PullOptions, PullProgress} from "./Library.js";
export type {LibraryFile, LibraryModel} from "./Registry.js";
export {formatModelName, parseModelName} from "./modelNames.js";
export {fileTypeName, formatParameterCount} from "./readGgufSummary.js";
export {formatBytes} from "./errors.js";
