package platform

import (
	"context"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
)

// roleCacheTTL bounds how long the data plane trusts a cached answer to
// "is this principal a platform administrator of its tenant?". A change
// made through this process is seen at once (keyhold.RoleGenerations); one
// made by another replica, within roleCacheTTL.
const roleCacheTTL = 5 * time.Second

// roleCacheMax bounds the cache's entries; it empties when full.
const roleCacheMax = 10000

// roleCache keeps, for the data plane only, whether a caller holds a
// platform administrator's directory role (the only reason a non-member
// may use an environment's data), so that an administrator's data
// requests don't read and check the sealed roles every time. Environment
// administration and every custody path still read the roles in their
// transaction (requireAdmin). The zero value is ready to use; it is safe
// for concurrent use.
type roleCache struct {
	mu sync.Mutex
	m  map[roleKey]roleEntry
}

type roleKey struct{ tenantID, principalID string }

type roleEntry struct {
	admin bool
	at    time.Time
	gen   uint64
}

// isAdmin answers whether id holds a platform administrator's role in its
// tenant: from the cache, if the entry was filled at the generation of
// roles tx sees and less than roleCacheTTL before now, else from tx. It
// also returns when the answer was read from the database, so that a
// cache built on it (accesscache.go) holds it no longer than this one.
func (c *roleCache) isAdmin(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, now time.Time) (bool, time.Time, error) {
	rg, ok := tx.(keyhold.RoleGenerations)
	if !ok {
		admin, err := holdsAdminRole(ctx, tx, id)
		return admin, now, err
	}
	gen := rg.RoleGeneration()
	k := roleKey{id.TenantID, id.PrincipalID}
	c.mu.Lock()
	e, hit := c.m[k]
	c.mu.Unlock()
	if hit && e.gen == gen && !now.Before(e.at) && now.Sub(e.at) < roleCacheTTL {
		return e.admin, e.at, nil
	}
	admin, err := holdsAdminRole(ctx, tx, id)
	if err != nil {
		return false, now, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= roleCacheMax {
		c.m = make(map[roleKey]roleEntry)
	}
	// A fill from an older snapshot never replaces a newer one's.
	if old, ok := c.m[k]; !ok || old.gen <= gen {
		c.m[k] = roleEntry{admin: admin, at: now, gen: gen}
	}
	c.mu.Unlock()
	return admin, now, nil
}

// holdsAdminRole reads id's directory roles in tx (requireAdmin's test).
func holdsAdminRole(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity) (bool, error) {
	err := requireAdmin(ctx, tx, id)
	if keyhold.ErrorCode(err) == keyhold.CodeForbidden {
		return false, nil
	}
	return err == nil, err
}
