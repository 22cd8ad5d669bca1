package platform

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold"
)

// accessCacheTTL bounds how long the data plane trusts a cached read
// access (accessCache) when nothing told it of a change: the bound for a
// change made by another replica that publishes no key drop (a member
// removed) or whose drop was lost. A
// change made through this process is seen by the next request
// (keyhold.AccessGenerations), and one announced by another replica's
// key drop (a lock, a disable, a BYOK tenant's lock: broadcast.go) as
// soon as the drop is received; so a lock still refuses within the lock
// latency of docs/benchmarks.md (feed interval, p99 ~500 ms).
const accessCacheTTL = 250 * time.Millisecond

// accessCacheMax bounds the cache's entries; it empties when full.
const accessCacheMax = 10000

// accessCache remembers, for the data plane's reads only (GET of a row, a
// file, a page of rows: readData), that a caller passed the access check
// of an environment, so that its next reads skip the query of the
// environment, its membership and its running operation (Tx.DataAccess)
// and the checks on them: at 16 clients over HTTPS that query was a third
// of a GET's server time (docs/benchmarks.md, issue 12). Only a granted
// access is kept, and only for reads: a refusal, every write and every
// administrative path check in their own transaction as before.
//
// An entry holds while all three hold: the store's access generation is
// the one it was filled at (nothing this process committed since changed
// environments, members, operations, roles or a BYOK tenant's state),
// no key drop was received or made since (another replica's lock), and it
// is younger than accessCacheTTL. The zero value is ready to use; it is
// safe for concurrent use.
type accessCache struct {
	mu sync.Mutex
	m  map[accessKey]accessEntry
	// drops counts the key drops made here and received from other
	// replicas (broadcast.go): an entry filled before one is stale.
	drops atomic.Uint64
}

type accessKey struct{ tenantID, principalID, envID string }

type accessEntry struct {
	env       keyhold.Environment
	gen       uint64
	drops     uint64
	at, until time.Time
}

// get returns a copy of the environment of a granted read access of k
// filled at generation gen, with no drop since, less than accessCacheTTL
// before now.
func (c *accessCache) get(k accessKey, gen uint64, now time.Time) (*keyhold.Environment, bool) {
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if !ok || e.gen != gen || e.drops != c.drops.Load() || now.Before(e.at) || !now.Before(e.until) {
		return nil, false
	}
	env := e.env
	return &env, true
}

// put remembers, until until, that k's read access was granted in a
// transaction of generation gen, checked after drops drops had been
// counted.
func (c *accessCache) put(k accessKey, env *keyhold.Environment, gen, drops uint64, now, until time.Time) {
	if gen == 0 {
		return // checked while a change to access was in flight
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= accessCacheMax {
		c.m = make(map[accessKey]accessEntry)
	}
	// A fill from an older snapshot never replaces a newer one's.
	if old, ok := c.m[k]; ok && old.gen > gen {
		return
	}
	c.m[k] = accessEntry{env: *env, gen: gen, drops: drops, at: now, until: until}
}

// invalidate ends every entry: a key drop was made or received.
func (c *accessCache) invalidate() { c.drops.Add(1) }

// read is access for readData through the cache, as of now: a hit costs
// no statement; a miss runs check (checkData in tx) and, if it grants,
// fills the cache: for accessCacheTTL, and no longer than the cached
// roles that granted a non-member hold (roleCacheTTL from rolesAt). A
// transaction that counts no access generations is never cached.
func (c *accessCache) read(tx keyhold.Tx, id *keyhold.Identity, envID string, now time.Time, check func() (*keyhold.Environment, time.Time, error)) (*keyhold.Environment, error) {
	g, ok := tx.(keyhold.AccessGenerations)
	if !ok {
		env, _, err := check()
		return env, err
	}
	k := accessKey{id.TenantID, id.PrincipalID, envID}
	gen := g.AccessGeneration()
	if env, ok := c.get(k, gen, now); ok {
		return env, nil
	}
	drops := c.drops.Load()
	env, rolesAt, err := check()
	if err == nil {
		until := now.Add(accessCacheTTL)
		if !rolesAt.IsZero() {
			until = minTime(until, rolesAt.Add(roleCacheTTL))
		}
		c.put(k, env, gen, drops, now, until)
	}
	return env, err
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// pointRow reads a row in one statement outside any transaction
// (keyhold.PointReader) when the caller's read access to envID is cached
// as of the store's access generation now (the generation a transaction
// begun now would show, so a hit here is the hit read would give). It
// returns ok false when it is not, or the store offers no such read: the
// caller then checks and reads in a transaction, which fills the cache.
func (c *accessCache) pointRow(ctx context.Context, store keyhold.Store, id *keyhold.Identity, envID, table, rowID string, now time.Time) (rec *keyhold.RowRecord, ok bool, err error) {
	pr, isPR := store.(keyhold.PointReader)
	g, isG := store.(keyhold.AccessGenerations)
	if !isPR || !isG {
		return nil, false, nil
	}
	if _, hit := c.get(accessKey{id.TenantID, id.PrincipalID, envID}, g.AccessGeneration(), now); !hit {
		return nil, false, nil
	}
	rec, err = pr.PointRow(ctx, envID, table, rowID)
	return rec, true, err
}
