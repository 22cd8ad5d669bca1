package crypt

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold"
)

// Cache holds unwrapped keys in memory for a time-to-live. Get returns a
// copy that the caller must Destroy; the cache zeroes its own copy when the
// entry expires, is dropped, or the cache is purged. Safe for concurrent use.
//
// Expired entries are zeroed when Get finds them or Sweep runs, whichever
// comes first; call Sweep periodically so that keys nobody asks for again
// don't stay in memory past their time.
type Cache struct {
	ttl   time.Duration
	clock keyhold.Clock

	mu      sync.Mutex
	entries map[string]*cacheEntry
	gen     uint64      // counts Drops and Purges (Gen, PutIfGen)
	drops   []cacheDrop // the latest drops, oldest first, at most maxDropLog

	hits   atomic.Uint64
	misses atomic.Uint64
}

// cacheDrop is one Drop: the generation it made and its prefix.
type cacheDrop struct {
	gen    uint64
	prefix string
}

// maxDropLog is how many drops the cache remembers for PutIfGen; a load
// that spans more drops than that is not cached.
const maxDropLog = 256

type cacheEntry struct {
	key     *Key
	expires time.Time
	// derived holds the store keys derived from key (StoreKey), at most
	// maxDerived, zeroed with it.
	derived []*StoreKey
}

// maxDerived bounds the store keys an entry keeps: one per store of its
// environment (rows, files, audit, …). A store beyond them is derived
// at each call, as without the cache.
const maxDerived = 8

// NewCache returns a cache whose entries live for ttl on clock.
// A nil clock means the wall clock.
func NewCache(ttl time.Duration, clock keyhold.Clock) *Cache {
	if clock == nil {
		clock = keyhold.SystemClock{}
	}
	return &Cache{ttl: ttl, clock: clock, entries: make(map[string]*cacheEntry)}
}

// Get returns a copy of the key cached under id, if present and not expired.
//
// An entry is expired from the moment its time-to-live has passed; Get
// zeroes and removes it then.
func (c *Cache) Get(id string) (*Key, bool) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if ok && !now.Before(e.expires) {
		c.removeLocked(id, e)
		ok = false
	}
	if !ok {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return e.key.Clone(), true
}

// StoreKey returns a copy of the store key of (envID, epoch, store)
// derived from the key cached under id (DeriveStoreKey), and ok true; ok
// false if no live entry is cached under id. The entry keeps what it
// derives, so the next call costs no HKDF and no AES key schedule (a
// third of a GET's key work: docs/benchmarks.md, issue 12), and the
// derived key lives and dies with the entry: it is zeroed when the entry
// expires, is replaced, dropped or purged, exactly as the entry's key.
// The copy shares the cached key's AES-GCM (read-only, safe for
// concurrent use) and holds its own copy of the key bytes, so either may
// be destroyed while the other is in use; the caller destroys it.
//
// A hit counts as Get's does; a miss is not counted, since the caller
// then loads the key and Get counts it.
func (c *Cache) StoreKey(id, envID string, epoch uint32, store string) (sk *StoreKey, ok bool, err error) {
	now := c.clock.Now()
	c.mu.Lock()
	e, ok := c.entries[id]
	if ok && !now.Before(e.expires) {
		c.removeLocked(id, e)
		ok = false
	}
	if !ok {
		c.mu.Unlock()
		return nil, false, nil
	}
	c.hits.Add(1)
	for _, d := range e.derived {
		if d.envID == envID && d.epoch == epoch && d.store == store {
			sk = d.share()
			c.mu.Unlock()
			return sk, true, nil
		}
	}
	ek := e.key.Clone()
	c.mu.Unlock()
	defer ek.Destroy()
	if sk, err = DeriveStoreKey(ek, envID, epoch, store); err != nil {
		return nil, true, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Only into the entry it was derived from: one dropped or replaced
	// meanwhile took its key with it.
	if cur, live := c.entries[id]; live && cur == e && len(e.derived) < maxDerived {
		e.derived = append(e.derived, sk.share())
	}
	return sk, true, nil
}

// Contains reports whether a live entry is cached under id, without copying
// the key or counting a hit or miss: for a caller that only re-checks the
// cache, say after waiting on another goroutine's unwrap.
func (c *Cache) Contains(id string) bool {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	return ok && now.Before(e.expires)
}

// Put caches a copy of k under id (the caller keeps and destroys k).
//
// It replaces, and zeroes, any entry under id, and restarts the
// time-to-live. A destroyed or nil k only removes the old entry.
func (c *Cache) Put(id string, k *Key) {
	var e *cacheEntry
	if !k.Destroyed() {
		e = &cacheEntry{key: k.Clone(), expires: c.clock.Now().Add(c.ttl)}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[id]; ok {
		c.removeLocked(id, old)
	}
	if e != nil {
		c.entries[id] = e
	}
}

// Gen returns the cache's generation, which every Drop and Purge
// advances. A caller that loads a key outside the cache takes Gen first and
// stores the key with PutIfGen, so that a drop that came while it loaded
// (the key was retired meanwhile) is not undone by the store.
func (c *Cache) Gen() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// PutIfGen is Put, unless a Drop since generation gen covered id: then it
// caches nothing and returns false. Drops of other ids don't matter; a load
// that spans more drops than the cache remembers is not cached either.
func (c *Cache) PutIfGen(id string, k *Key, gen uint64) bool {
	var e *cacheEntry
	if !k.Destroyed() {
		e = &cacheEntry{key: k.Clone(), expires: c.clock.Now().Add(c.ttl)}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.droppedSinceLocked(id, gen) {
		if e != nil {
			e.key.Destroy()
		}
		return false
	}
	if old, ok := c.entries[id]; ok {
		c.removeLocked(id, old)
	}
	if e != nil {
		c.entries[id] = e
	}
	return true
}

// droppedSinceLocked reports whether a drop after generation gen covered
// id, or may have (the log no longer reaches back to gen); c.mu is held.
func (c *Cache) droppedSinceLocked(id string, gen uint64) bool {
	if c.gen == gen {
		return false
	}
	if len(c.drops) == 0 || c.drops[0].gen > gen+1 {
		return true
	}
	for _, d := range c.drops {
		if d.gen > gen && strings.HasPrefix(id, d.prefix) {
			return true
		}
	}
	return false
}

// Drop zeroes and removes the entries whose id starts with prefix.
func (c *Cache) Drop(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if len(c.drops) == maxDropLog {
		c.drops = append(c.drops[:0], c.drops[1:]...)
	}
	c.drops = append(c.drops, cacheDrop{gen: c.gen, prefix: prefix})
	for id, e := range c.entries {
		if strings.HasPrefix(id, prefix) {
			c.removeLocked(id, e)
		}
	}
}

// Purge zeroes and removes every entry.
func (c *Cache) Purge() { c.Drop("") }

// Sweep zeroes and removes expired entries; a server calls it periodically.
func (c *Cache) Sweep() {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.entries {
		if !now.Before(e.expires) {
			c.removeLocked(id, e)
		}
	}
}

// Len returns the number of live entries: expired ones that Get or Sweep
// have not yet removed are not counted.
func (c *Cache) Len() int {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.entries {
		if now.Before(e.expires) {
			n++
		}
	}
	return n
}

// Hits returns how many Gets found a live entry, for metrics.
func (c *Cache) Hits() uint64 { return c.hits.Load() }

// Misses returns how many Gets found no live entry, for metrics.
func (c *Cache) Misses() uint64 { return c.misses.Load() }

// removeLocked zeroes e's key and the store keys derived from it, and
// deletes it; c.mu must be held.
func (c *Cache) removeLocked(id string, e *cacheEntry) {
	e.key.Destroy()
	for _, d := range e.derived {
		d.Destroy()
	}
	e.derived = nil
	delete(c.entries, id)
}
