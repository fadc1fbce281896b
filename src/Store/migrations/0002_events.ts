/** Placeholder: the owning area fills in its tables and indexes. */
import { Effect } from "effect"

export default Effect.void
