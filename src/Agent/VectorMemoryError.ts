/**
 * VectorMemory's own error, and the union its operations fail with. A namespace is pinned to one embedding model
 * and dimension by its first write; vectors of another space cannot be compared with its contents.
 */
import { Schema } from "effect"
import type { LlmError } from "../Domain/LlmError.js"
import type { StorageError } from "../Store/StorageError.js"

/** A write or a query whose vector is not in the namespace's space (other dimension, or other model). */
export class DimensionMismatch extends Schema.TaggedError<DimensionMismatch>()("DimensionMismatch", {
  namespace: Schema.String,
  /** The pinned dimension. */
  expected: Schema.Number,
  actual: Schema.Number,
  /** The pinned model. */
  expectedModel: Schema.String,
  actualModel: Schema.String
}) {
  override get message() {
    return (
      `memory namespace "${this.namespace}" holds ${this.expectedModel} vectors of dimension ${this.expected}; ` +
      `got ${this.actualModel} of dimension ${this.actual} (use another namespace for another embedding model)`
    )
  }
}

export type VectorMemoryError = DimensionMismatch | StorageError | LlmError
