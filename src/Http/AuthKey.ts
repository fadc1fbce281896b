/**
 * API key material: the format, how a key is made, and how a presented key is checked against a stored digest.
 *
 * A key reads `sk-sluice-<id>-<secret>`: `id` is 12 letters and digits, stored in clear (it finds the row);
 * `secret` is 32 random bytes in base64url (43 characters), stored only as its SHA-256 digest.
 *
 * Choices:
 * - SHA-256, not scrypt or argon2: a slow hash protects guessable passwords, but a secret of 256 random bits
 *   cannot be guessed whatever the hash speed, and a stolen digest does not give it back. A slow hash would only
 *   add tens of milliseconds (and a CPU lever for a flood of bad keys) to every request.
 * - Digests are compared with `crypto.timingSafeEqual` (both 32 bytes). An unknown id or a malformed key is
 *   still compared against a dummy digest, so timing tells little about which part was wrong.
 * - The id uses letters and digits only, so it never starts with `-` on a command line (`sluice keys revoke <id>`).
 */
import { Effect, Option } from "effect"
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"

export const prefix = "sk-sluice-"
const idLength = 12
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
const idPattern = /^[A-Za-z0-9]{12}$/

/** 12 random letters and digits, unbiased (bytes >= 248 are dropped: 248 = 4 x 62). */
const newId = (): string => {
  let id = ""
  while (id.length < idLength) {
    for (const byte of randomBytes(idLength * 2)) {
      if (byte < 248 && id.length < idLength) id += alphabet[byte % alphabet.length]
    }
  }
  return id
}

/** The SHA-256 digest of `text`. */
const sha256 = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest()

/** The stored form of a secret: its SHA-256 digest in hex. */
export const digest = (secret: string): string => sha256(secret).toString("hex")

const dummy = sha256("sluice: no such key")

/** Whether two digests are equal, in time independent of where they differ. */
const sameDigest = (a: Buffer, b: Buffer): boolean => a.length === b.length && timingSafeEqual(a, b)

/** Whether `secret` is the one whose digest (hex) is `storedHex`. */
export const matches = (secret: string, storedHex: string): boolean => {
  const stored = Buffer.from(storedHex, "hex")
  const wellFormed = stored.length === dummy.length
  return sameDigest(sha256(secret), wellFormed ? stored : dummy) && wellFormed
}

/** Burns one comparison, so a key that fails early takes as long as one that fails on its secret. */
export const compareDummy = (secret: string): false => {
  sameDigest(sha256(secret), dummy)
  return false
}

/** Whether `presented` is one of `keys` (raw keys, e.g. SLUICE_API_KEY); every one is compared. */
export const matchesAny = (presented: string, keys: ReadonlyArray<string>): boolean => {
  const digestOf = sha256(presented)
  let found = false
  for (const key of keys) found = sameDigest(digestOf, sha256(key)) || found
  return found
}

/** A new key: the full key to hand out once, its id, and the digest to store. */
export interface NewKey {
  readonly key: string
  readonly id: string
  readonly secretHash: string
}

export const generate: Effect.Effect<NewKey> = Effect.sync(() => {
  const id = newId()
  const secret = randomBytes(32).toString("base64url")
  return { key: `${prefix}${id}-${secret}`, id, secretHash: digest(secret) }
})

/** Splits `sk-sluice-<id>-<secret>`; none when the key is not in that shape. */
export const parse = (key: string): Option.Option<{ readonly id: string; readonly secret: string }> => {
  if (!key.startsWith(prefix)) return Option.none()
  const rest = key.slice(prefix.length)
  const id = rest.slice(0, idLength)
  const secret = rest.slice(idLength + 1)
  return idPattern.test(id) && rest[idLength] === "-" && secret.length > 0 ? Option.some({ id, secret }) : Option.none()
}
