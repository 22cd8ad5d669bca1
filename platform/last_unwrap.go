package platform

import (
	"context"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
)

// The last successful unwrap of a policy's key (issue 13, operator view),
// stored per managed identity and vault (keyhold.UnwrapTx) for `keyhold
// policy show` and the coverage report. It is noted wherever the platform
// unwraps with a customer key and succeeds, for built-in and external
// vaults alike: the data plane, a custody move's proof, a re-enable
// (unwrapWrapped), and the health probe, which wraps and unwraps
// (CheckPolicyHealth).

// lastUnwrapEvery is how stale a stored last unwrap may be: a hot data
// plane unwraps many times a minute (every key cache miss, every
// replica), and a write per unwrap would cost more than the answer is
// worth. Within it, unwraps are kept in memory only.
const lastUnwrapEvery = time.Minute

// lastUnwrapTimeout bounds the write, which runs on the unwrap's path.
const lastUnwrapTimeout = 5 * time.Second

// lastUnwraps throttles the writes of the last successful unwraps: at most
// one per identity and vault per lastUnwrapEvery on this replica, the
// time of each one written kept in memory in between. Replicas write
// independently; the store keeps the latest (RecordUnwrap never moves it
// back). Safe for concurrent use; the zero value is ready.
type lastUnwraps struct {
	mu      sync.Mutex
	written map[unwrapKey]time.Time
}

type unwrapKey struct{ principal, vault string }

// note records that principal unwrapped with kid now, unless this replica
// recorded it for the same vault less than lastUnwrapEvery ago. It runs
// outside any transaction (every unwrap does) and fails nothing: the
// unwrap succeeded; a write that fails is logged, and the next unwrap
// tries again.
func (l *lastUnwraps) note(ctx context.Context, p *core, principal, kid string) {
	if principal == "" {
		return
	}
	k := unwrapKey{principal, unwrapVaultOf(p.kv, p.hsm, kid)}
	now := p.clock.Now().UTC()
	l.mu.Lock()
	if last, ok := l.written[k]; ok && now.Sub(last) < lastUnwrapEvery {
		l.mu.Unlock()
		return
	}
	if l.written == nil {
		l.written = make(map[unwrapKey]time.Time)
	}
	l.written[k] = now
	l.mu.Unlock()

	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lastUnwrapTimeout)
	defer cancel()
	err := p.store.Update(wctx, func(tx keyhold.Tx) error { return tx.RecordUnwrap(wctx, k.principal, k.vault, now) })
	if err != nil {
		p.log.WarnContext(ctx, "could not record the last successful unwrap", "principal", k.principal, "vault", k.vault, "err", err)
		l.mu.Lock()
		if l.written[k].Equal(now) {
			delete(l.written, k)
		}
		l.mu.Unlock()
	}
}

// unwrapVaultOf names the vault of kid as the last unwrap stores it
// (keyhold.UnwrapVault): a key of this server's Managed HSMs or built-in
// vault by name, whatever address it was written with; any other by its
// vault's URL.
func unwrapVaultOf(kv, hsm KeyVault, kid string) string {
	if hsm != nil {
		if name, _, _, err := hsm.ParseKeyID(kid); err == nil {
			return keyhold.UnwrapVault(kid, false, true, name)
		}
	}
	if builtinKID(kv, kid) {
		if kv != nil {
			if name, _, _, err := kv.ParseKeyID(kid); err == nil {
				return keyhold.UnwrapVault(kid, true, false, name)
			}
		}
		if k, err := keyhold.ParseKeyID(kid); err == nil {
			return keyhold.UnwrapVault(kid, true, false, k.Vault)
		}
	}
	return keyhold.UnwrapVault(kid, false, false, "")
}
