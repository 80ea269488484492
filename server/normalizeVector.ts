/** Unit length, as OpenAI's and Ollama's embeddings are, so a dot product is the cosine similarity. */
export function normalizeVector(vector: readonly number[]): number[] {
    const norm = Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0));
    return norm > 0 ? vector.map((value) => value / norm) : [...vector];
}
