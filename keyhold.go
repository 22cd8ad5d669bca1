// Package keyhold holds Keyhold's domain: the types that every part shares
// (tenants, principals, environments, rows, files, audit entries), the error
// type that carries an Azure error code, and the contracts between the parts:
// the Store that persists opaque bytes, and the KeyWrapper through which the
// platform reaches a root key.
//
// Nothing in this package imports a driver, a network client or a
// cryptographic primitive. Technology lives in subpackages:
//
//   - crypt: envelope encryption, ciphertext formats, the key cache. All
//     cryptography lives there.
//   - sqlstore, sqlite, postgres: storage behind the Store contract.
//   - platform: the services that combine storage and cryptography.
//   - http: the HTTPS API and a Go client for it.
//   - cli: the cobra commands, built on the Go client.
//   - cmd/keyhold: wiring only.
//
// # Key hierarchy
//
// A root key (the platform's MMK, or later a customer's CMK) wraps a 256-bit
// environment key (EK), one per environment per epoch. HKDF-SHA256 derives a
// store key per (environment, store) from the EK, and each item is sealed with
// AES-256-GCM bound by its additional data to environment, store, item and
// version. Unwrapped EKs live only in memory, in a cache that zeroes them when
// it drops them.
package keyhold

import "time"

// Clock tells the time. Services take one so that the 7-, 28- and 30-day rules
// can be tested without waiting.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
