package vault

import (
	"crypto/rsa"
	"crypto/sha256"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
)

// Opened software keys are cached for a while, so that a burst of unwraps
// under one version opens (decrypts, parses and validates) its private key
// once rather than every time.
const (
	keyCacheTTL = 5 * time.Minute
	keyCacheMax = 1024
)

// keyCache holds opened RSA private keys by version. An entry serves only
// the sealed material it was opened from (compared by SHA-256 on each
// use), and each use still reads that material through the caller's
// authorization, so a disabled, deleted or purged version, or a revoked
// caller, is never served from memory. Safe for concurrent use.
//
// The keys stay in memory until they expire (keyCacheTTL on the clock)
// or the cache is full; Go offers no way to zero an *rsa.PrivateKey, so
// dropping one leaves it to the garbage collector. The master key that
// opens every sealed key lives in the same memory anyway.
type keyCache struct {
	clock keyhold.Clock
	mu    sync.Mutex
	m     map[string]*cachedKey
}

type cachedKey struct {
	sum     [sha256.Size]byte
	priv    *rsa.PrivateKey
	expires time.Time
}

func newKeyCache(clock keyhold.Clock) *keyCache {
	return &keyCache{clock: clock, m: make(map[string]*cachedKey)}
}

// cacheID names a version; names compare case-insensitively.
func cacheID(kv *keyhold.KeyVersion) string {
	return strings.ToLower(kv.VaultName + "\x00" + kv.Name + "\x00" + kv.Version)
}

// get returns the key opened from kv's material, if cached and fresh.
func (c *keyCache) get(kv *keyhold.KeyVersion) (*rsa.PrivateKey, bool) {
	sum := sha256.Sum256(kv.Material)
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[cacheID(kv)]
	if !ok || e.sum != sum || !now.Before(e.expires) {
		return nil, false
	}
	return e.priv, true
}

// put caches priv, opened from kv's material.
func (c *keyCache) put(kv *keyhold.KeyVersion, priv *rsa.PrivateKey) {
	e := &cachedKey{sum: sha256.Sum256(kv.Material), priv: priv, expires: c.clock.Now().Add(keyCacheTTL)}
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= keyCacheMax {
		for id, old := range c.m {
			if !now.Before(old.expires) {
				delete(c.m, id)
			}
		}
		for id := range c.m {
			if len(c.m) < keyCacheMax {
				break
			}
			delete(c.m, id)
		}
	}
	c.m[cacheID(kv)] = e
}

// clear drops every entry.
func (c *keyCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}
