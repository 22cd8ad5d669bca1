package platform

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
)

// verifiedTokens remembers the access tokens Authenticate has verified,
// so that a token presented again (every request of a client, for the
// token's lifetime) costs a hash and a map lookup instead of an ECDSA
// P-256 verification: that verification was 40 % of the server's CPU per
// data-plane GET over HTTPS (docs/benchmarks.md, issue 12).
//
// An entry is keyed by the SHA-256 of the whole token, so only the exact
// bytes that verified hit it; it holds the identity the claims gave and
// the token's expiry, and a hit after that expiry is refused as the
// verification would refuse it. Nothing a verification checks can change
// for a given token while it is unexpired (the signing key, the issuer
// and the claims are fixed), so the cache answers exactly as Authenticate
// would. It holds at most maxVerifiedTokens entries; when full, expired
// ones go, and if none has expired it starts again empty. The zero value
// is ready to use.
type verifiedTokens struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]verifiedToken
}

type verifiedToken struct {
	id  keyhold.Identity
	exp time.Time
}

// maxVerifiedTokens bounds the cache: about 100 bytes an entry.
const maxVerifiedTokens = 50_000

// get returns the identity of a token verified before and not expired at
// now, a copy the caller may keep.
func (v *verifiedTokens) get(bearer string, now time.Time) (*keyhold.Identity, bool) {
	k := sha256.Sum256([]byte(bearer))
	v.mu.Lock()
	e, ok := v.m[k]
	v.mu.Unlock()
	if !ok || !now.Before(e.exp) {
		return nil, false
	}
	id := e.id
	return &id, true
}

// put remembers that bearer verified as id until exp.
func (v *verifiedTokens) put(bearer string, id *keyhold.Identity, exp, now time.Time) {
	k := sha256.Sum256([]byte(bearer))
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[[sha256.Size]byte]verifiedToken)
	}
	if len(v.m) >= maxVerifiedTokens {
		for key, e := range v.m {
			if !now.Before(e.exp) {
				delete(v.m, key)
			}
		}
		if len(v.m) >= maxVerifiedTokens {
			clear(v.m)
		}
	}
	v.m[k] = verifiedToken{id: *id, exp: exp}
}
