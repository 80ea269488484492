/** Images as clients send them, checked at the edge and turned into the engine's prompt images. */
export {checkImage, checkImageSize} from "./checkImage.js";
export {decodeBase64} from "./decodeBase64.js";
export {fetchRemoteImage} from "./fetchRemoteImage.js";
export {hasImages} from "./hasImages.js";
export type {RemoteImageLimits} from "./fetchRemoteImage.js";
export {imageFromDataUri} from "./imageFromDataUri.js";
export {IMAGE_LIMITS, REMOTE_IMAGE_LIMITS} from "./imageLimits.js";
export {ImageReader} from "./ImageReader.js";
export type {ImageReaderOptions} from "./ImageReader.js";
export {joinImageParts, stripPlaceholders} from "./joinImageParts.js";
export type {MessagePart} from "./joinImageParts.js";
export {readImageHeader} from "./readImageHeader.js";
export type {ImageHeader, UnreadableImage} from "./readImageHeader.js";
