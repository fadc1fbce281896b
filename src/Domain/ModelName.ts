/** Model names as Ollama compares them: case-insensitive, with `:latest` when no tag is given. */

/** The canonical form of a model name: lower case, `:latest` added when there is no tag. */
export const normalizeName = (name: string): string => {
  const lower = name.trim().toLowerCase()
  const slash = lower.lastIndexOf("/")
  return lower.indexOf(":", slash + 1) === -1 ? `${lower}:latest` : lower
}
