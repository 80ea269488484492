export {compileJsonSchema, jsonGrammarStop} from "./compileJsonSchema.js";
