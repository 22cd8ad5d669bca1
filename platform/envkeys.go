package platform

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// unwrapTimeout bounds a shared unwrap of an environment key, which no
// caller's deadline bounds.
const unwrapTimeout = 30 * time.Second

// cacheID names an environment key in the cache. Every id of an environment
// starts with envID + "/", so Drop(envID+"/") drops all its epochs.
func cacheID(envID string, epoch uint32) string {
	return envID + "/" + strconv.FormatUint(uint64(epoch), 10)
}

// newEnvKey creates a fresh EK for (envID, epoch) and wraps it under the
// MMK. The caller stores the wrapped copy and destroys the EK.
func (p *core) newEnvKey(ctx context.Context, envID string, epoch uint32) (*crypt.Key, *keyhold.WrappedKey, error) {
	ek, err := crypt.NewKey()
	if err != nil {
		return nil, nil, err
	}
	payload, err := crypt.EKPayload(envID, epoch, ek)
	if err != nil {
		ek.Destroy()
		return nil, nil, err
	}
	kid, wrapped, err := p.mmk.Wrap(ctx, mmkID, payload)
	clear(payload)
	p.m.wraps.WithLabelValues(string(keyhold.RootMMK), result(err)).Inc()
	if err != nil {
		ek.Destroy()
		return nil, nil, fmt.Errorf("wrapping the environment key under the MMK: %w", err)
	}
	return ek, &keyhold.WrappedKey{EnvID: envID, Epoch: epoch, Root: keyhold.RootMMK, KeyID: kid, Ciphertext: wrapped, CreatedAt: p.clock.Now().UTC()}, nil
}

// envKey returns the EK of (envID, epoch): from the cache, or else by
// unwrapping its stored copy with the root key that wrapped it. Concurrent
// misses for one key share one unwrap, so a burst of requests costs one
// root-key call per environment per cache TTL. The shared unwrap belongs
// to no one caller: it goes on (up to unwrapTimeout) when the caller that
// started it gives up, and each caller waits only as long as its own ctx
// lasts. The caller destroys the key.
func (p *core) envKey(ctx context.Context, envID string, epoch uint32) (*crypt.Key, error) {
	id := cacheID(envID, epoch)
	if k, ok := p.cache.Get(id); ok {
		return k, nil
	}
	// load runs one shared unwrap into the cache and returns the cached
	// key, or nil when a drop kept it out.
	load := func() (*crypt.Key, error) {
		ch := p.unwrapG.DoChan(id, func() (any, error) {
			if p.cache.Contains(id) { // another caller filled it meanwhile
				return nil, nil
			}
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unwrapTimeout)
			defer cancel()
			gen := p.cache.Gen()
			ek, err := p.unwrapEnvKey(uctx, envID, epoch)
			if err != nil {
				return nil, err
			}
			if p.unwrapped != nil {
				p.unwrapped(envID)
			}
			// A drop while we unwrapped (a lock, here or on another
			// replica) retired what we hold: don't bring it back.
			p.cache.PutIfGen(id, ek, gen)
			ek.Destroy()
			return nil, nil
		})
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case r := <-ch:
			if r.Err != nil {
				return nil, r.Err
			}
		}
		k, _ := p.cache.Get(id)
		return k, nil // nil: dropped or expired between the unwrap and now
	}
	// A drop that lands while the key is unwrapped (a lock or a re-enable,
	// here or on another replica) retires what that unwrap read, so the
	// key is not cached. Unwrapping again reads the store after the drop,
	// which is what the drop asks for: a few tries turn that race into a
	// success (or into the lock's own refusal) rather than a 503.
	for try := 1; ; try++ {
		k, err := load()
		if err != nil || k != nil {
			return k, err
		}
		if try == envKeyTries {
			return nil, keyhold.Errorf(keyhold.CodeServiceUnavailable, "the environment key was evicted while loading: retry the request")
		}
	}
}

// envKeyTries bounds envKey's unwraps when drops keep landing mid-load.
const envKeyTries = 3

// envWithKeys loads an environment and all its wrapped keys, as one
// snapshot.
func (p *core) envWithKeys(ctx context.Context, envID string) (env *keyhold.Environment, wks []*keyhold.WrappedKey, err error) {
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		if env, err = tx.Environment(ctx, envID); err != nil {
			return err
		}
		wks, err = tx.WrappedKeys(ctx, envID)
		return err
	})
	return env, wks, err
}

func (p *core) unwrapEnvKey(ctx context.Context, envID string, epoch uint32) (*crypt.Key, error) {
	env, wks, err := p.envWithKeys(ctx, envID)
	if err != nil {
		return nil, err
	}
	// One copy per epoch exists except for an instant that no transaction
	// shows (a custody change replaces one with the other atomically);
	// should both ever exist, the customer's key is the one that counts.
	var wk *keyhold.WrappedKey
	for _, k := range wks {
		if k.Epoch == epoch && (wk == nil || k.Root == keyhold.RootCMK) {
			wk = k
		}
	}
	if wk == nil {
		return nil, fmt.Errorf("environment %s has no wrapped key for epoch %d", envID, epoch)
	}
	ek, err := p.unwrapWrapped(ctx, wk, env.TenantID)
	if err != nil && wk.Root == keyhold.RootCMK {
		p.kickHealth(env.PolicyID) // perhaps the first sign of a revocation (feed.go)
	}
	return ek, err
}

// unwrapWrapped unwraps one wrapped copy of an EK with the root key that
// wrapped it (a CMK as the identity that wrapped it, in tenantID) and
// checks that it belongs to its environment and epoch. The caller destroys
// the key.
func (p *core) unwrapWrapped(ctx context.Context, wk *keyhold.WrappedKey, tenantID string) (*crypt.Key, error) {
	var w keyhold.KeyWrapper
	kid := wk.KeyID
	switch wk.Root {
	case keyhold.RootMMK:
		w = p.mmk
	case keyhold.RootCMK:
		if p.cmk == nil {
			return nil, errCMKOff
		}
		w = p.cmk(policyIdentity(wk.PrincipalID, tenantID))
		kid = p.currentKID(kid)
	case keyhold.RootBYOK:
		w = p.byok(tenantID) // refuses while the tenant is locked (byok_env.go)
	default:
		return nil, fmt.Errorf("environment %s epoch %d is wrapped by an unsupported root %s", wk.EnvID, wk.Epoch, wk.Root)
	}
	payload, err := w.Unwrap(ctx, kid, wk.Ciphertext)
	p.m.unwraps.WithLabelValues(string(wk.Root), result(err)).Inc()
	if err == nil {
		p.unwrapCount.Add(1)
		if wk.Root == keyhold.RootCMK {
			p.lastUnwrap.note(ctx, p, wk.PrincipalID, kid)
		}
	}
	if err != nil {
		if wk.Root == keyhold.RootCMK {
			return nil, cmkError(err, "unwrap the key of environment "+wk.EnvID, kid, wk.PrincipalID)
		}
		if wk.Root == keyhold.RootBYOK && keyhold.ErrorCode(err) != "" {
			return nil, err // a lock or a tampered key record: its own message
		}
		return nil, fmt.Errorf("unwrapping environment %s epoch %d with %s: %w", wk.EnvID, wk.Epoch, wk.KeyID, err)
	}
	defer clear(payload)
	return crypt.OpenEKPayload(wk.EnvID, wk.Epoch, payload)
}

// storeKey derives the key of one store of an environment at an epoch:
// from the key cache's entry when it holds the EK (crypt.Cache.StoreKey,
// derived once per entry and zeroed with it), else from the EK loaded.
func (p *core) storeKey(ctx context.Context, envID string, epoch uint32, store string) (*crypt.StoreKey, error) {
	if sk, ok, err := p.cache.StoreKey(cacheID(envID, epoch), envID, epoch, store); ok {
		return sk, err
	}
	ek, err := p.envKey(ctx, envID, epoch)
	if err != nil {
		return nil, err
	}
	defer ek.Destroy()
	return crypt.DeriveStoreKey(ek, envID, epoch, store)
}

// DropKeys zeroes every cached key of an environment ("" drops all), so
// the next request must unwrap again, here and — through
// Config.Broadcaster — on every other replica (broadcast.go). Call it after
// the change that retires the keys has committed.
func (p *core) DropKeys(envID string) {
	p.dropLocal(envID)
	if envID == "" {
		p.publishDrop(msgPurge)
		return
	}
	p.publishDrop(msgDrop + " " + envID)
}

// Unwraps returns how many root-key unwraps have succeeded, for tests and
// benchmarks of the cache.
func (p *core) Unwraps() uint64 { return p.unwrapCount.Load() }

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
