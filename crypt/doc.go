// Package crypt holds all of Keyhold's cryptography: the master key that
// seals key material at rest, environment keys (EKs) and their binding to an
// environment, the HKDF-derived store keys, the versioned ciphertext formats
// for items and streams, the in-memory key cache, the generation of TLS
// certificates and token-signing keys, and the hashing of client secrets and
// users' passwords (password.go: argon2id).
//
// # Formats
//
// Every ciphertext starts with a version byte, so that a new format can be
// added beside the old one. The formats written today are all version 1:
//
//	sealed (Seal)       0x01 | nonce(12) | AES-256-GCM ciphertext+tag
//	                    AAD  "keyhold sealed v1\x00" | purpose
//	item (StoreKey)     0x01 | epoch(4) | nonce(12) | AES-256-GCM ciphertext+tag
//	                    AAD  header(5) | "keyhold item v1" | lp(envID) | lp(store) | lp(itemID) | version(8)
//	stream (StoreKey)   0x01 | epoch(4) | tink AES-GCM-HKDF streaming ciphertext
//	                    (HKDF-SHA256 from the store key, AES-256, 64 KiB segments)
//	                    AAD  header(5) | "keyhold stream v1" | lp(envID) | lp(store) | lp(itemID) | version(8)
//	EK payload          0x01 | epoch(4) | len(envID)(1) | envID | ek(32)
//
// Integers are big endian; lp(s) is len(s) as a 4-byte integer followed by s,
// which keeps the fields of the additional data unambiguous whatever bytes
// the ids hold. Store keys are HKDF-SHA256(EK, salt none, info
// "keyhold store key v1\x00" | lp(envID) | lp(store)).
//
// # Errors
//
// Anything that refuses to return plaintext or key material from given bytes
// (a wrong key, purpose, environment, store, item, version or epoch; a
// truncated, reordered or modified ciphertext; an unknown format version)
// returns an error wrapping ErrDecrypt, whose message says which check failed
// without quoting key material.
//
// # Backwards compatibility
//
// A format, once written, is read forever: testdata/vectors.json, and the
// multi-segment stream beside it, hold ciphertexts made by the first version
// of each format; the tests decrypt them and check that the current code
// still produces them byte for byte. Changing a format means a new version
// byte, never an edit of the old one. The stream segment size is part of the
// stream format for the same reason.
//
// # Key material in memory
//
// Key and StoreKey zero their own bytes on Destroy. Go offers no way to zero
// the copies that crypto/aes key schedules and tink keep inside their
// unexported state; those become garbage once the owner is destroyed, which
// is the best a Go program can do without the experimental runtime/secret.
package crypt
