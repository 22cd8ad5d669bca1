package platform

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// An environment's own audit entries (keyhold.AuditSealed: the data
// plane's) are sealed under the audit store key of the environment's
// current epoch, in the transaction of the change they record. Nothing of
// their target and detail is ever written in clear.
//
// Two seal formats, told apart by the sealed column's first byte:
//
//   - v1 (the store key's item alone, whose first byte is crypt's format
//     byte, 0x01): the item id bound is "audit/{row id}". Written where the
//     entry's row id is known: sealing an entry kept in clear, and
//     re-keying (which moves every entry, of either format, to v1).
//   - v2 (auditSealV2 | seal id, 16 random bytes | the store key's item):
//     the item id bound is the seal id with the entry's time, tenant,
//     actor, action and result (auditItemIDv2). A new data-plane entry is
//     sealed so, before the store gives it its row id, and written whole in
//     one INSERT: no second statement to seal it. Its seal can't be moved
//     to another environment or epoch (the store key) or to an entry with
//     another time, actor, action or result, and those clear columns can't
//     be changed without failing the check (v1 doesn't bind them). The
//     times of a replica's v2 entries are strictly increasing
//     (auditTime), so no two of its entries bind the same columns; what v2
//     does not bind, and v1 does, is the row id: a database writer could
//     copy a whole entry to a new row, or exchange the seals of two
//     replicas' entries written in the same nanosecond by the same actor
//     with the same action, until the next re-key binds each to its row.

// auditSealV2 is the first byte of a v2 seal. A v1 seal starts with the
// store key's item format byte (crypt's 0x01), never this.
const auditSealV2 = 0xA2

// auditSealIDSize is the size of a v2 seal's random id.
const auditSealIDSize = 16

// auditItemID is the item id bound into a v1 entry's seal.
func auditItemID(id int64) string { return "audit/" + strconv.FormatInt(id, 10) }

// auditItemIDv2 is the item id bound into a v2 entry's seal: its seal id
// and the clear columns that say who did what when, JSON-encoded so that
// no field can run into the next.
func auditItemIDv2(sealID []byte, e *keyhold.AuditEntry) string {
	b, _ := json.Marshal([]any{"audit/v2", hex.EncodeToString(sealID), e.At.UnixNano(), e.TenantID, e.ActorID, e.Action, e.Result})
	return string(b)
}

// auditSecret is what an entry's seal holds.
type auditSecret struct {
	Target string `json:"target"`
	Detail string `json:"detail,omitempty"`
}

// sealEntry seals e's target and detail under sk at version, into e, in
// the v1 format: bound to e's row id, which must be the one it is stored
// under.
func sealEntry(sk *crypt.StoreKey, e *keyhold.AuditEntry, version uint64) error {
	b, err := json.Marshal(auditSecret{Target: e.Target, Detail: e.Detail})
	if err != nil {
		return err
	}
	defer clear(b)
	ct, err := sk.Seal(auditItemID(e.ID), version, b)
	if err != nil {
		return err
	}
	e.Epoch, e.Version, e.Sealed = sk.Epoch(), version, ct
	return nil
}

// sealNewEntry seals e's target and detail under sk, into e, in the v2
// format, before e is appended: e's time, tenant, actor, action and result
// must be those it is stored with.
func sealNewEntry(sk *crypt.StoreKey, e *keyhold.AuditEntry) error {
	b, err := json.Marshal(auditSecret{Target: e.Target, Detail: e.Detail})
	if err != nil {
		return err
	}
	defer clear(b)
	sealID := make([]byte, auditSealIDSize)
	if _, err := rand.Read(sealID); err != nil {
		return err
	}
	ct, err := sk.Seal(auditItemIDv2(sealID, e), 1, b)
	if err != nil {
		return err
	}
	sealed := make([]byte, 0, 1+auditSealIDSize+len(ct))
	sealed = append(append(append(sealed, auditSealV2), sealID...), ct...)
	e.Epoch, e.Version, e.Sealed = sk.Epoch(), 1, sealed
	return nil
}

// auditTime returns the time of a new v2 entry: now, or one nanosecond
// after the last one this replica sealed if now isn't later (a coarse or
// injected clock), so that no two of its entries bind the same time.
func auditTime(last *atomic.Int64, now time.Time) time.Time {
	for {
		prev := last.Load()
		n := now.UnixNano()
		if n <= prev {
			n = prev + 1
		}
		if last.CompareAndSwap(prev, n) {
			return time.Unix(0, n).UTC()
		}
	}
}

// openEntry opens e's seal, v1 or v2, with sk into its target and detail.
func openEntry(sk *crypt.StoreKey, e *keyhold.AuditEntry) error {
	itemID, ct := auditItemID(e.ID), e.Sealed
	if len(ct) > 0 && ct[0] == auditSealV2 {
		if len(ct) < 1+auditSealIDSize {
			return fmt.Errorf("audit entry %d: a v2 seal of %d bytes is too short", e.ID, len(ct))
		}
		itemID, ct = auditItemIDv2(ct[1:1+auditSealIDSize], e), ct[1+auditSealIDSize:]
	}
	pt, err := sk.Open(itemID, e.Version, ct)
	if err != nil {
		return err
	}
	defer clear(pt)
	var s auditSecret
	if err := json.Unmarshal(pt, &s); err != nil {
		return err
	}
	e.Target, e.Detail = s.Target, s.Detail
	return nil
}

// auditData appends a data-plane entry of env, sealed under its current
// epoch, in tx. It returns errNeedKey when the key cache doesn't hold the
// epoch's key: the caller loads it outside the transaction and runs the
// change again (an unwrap may reach the customer's vault).
func auditData(ctx context.Context, c *core, tx keyhold.Tx, id *keyhold.Identity, action, target string, env *keyhold.Environment, detail string) error {
	ek, ok := c.cache.Get(cacheID(env.ID, env.Epoch))
	if !ok {
		return errNeedKey
	}
	sk, err := crypt.DeriveStoreKey(ek, env.ID, env.Epoch, keyhold.StoreAudit)
	ek.Destroy()
	if err != nil {
		return err
	}
	defer sk.Destroy()
	// The entry is sealed before it is appended (v2: the seal binds what
	// the entry's clear columns say, not its row id), so that one INSERT
	// writes it whole; keyhold.Audit keeps At (UTC already) and Result.
	e := &keyhold.AuditEntry{
		At: auditTime(&c.auditAt, c.clock.Now()), TenantID: id.TenantID, ActorID: id.PrincipalID,
		Action: action, EnvID: env.ID, Result: keyhold.AuditSucceeded,
		Target: target, Detail: detail,
	}
	if err := sealNewEntry(sk, e); err != nil {
		return err
	}
	e.Target, e.Detail = "", ""
	_, err = keyhold.Audit(ctx, tx, *e)
	return err
}

// writeWithAudit runs fn, a data-plane change that seals its audit entry
// with auditData, loading the environment's key outside the transaction
// when fn finds it missing, a few times at most.
func (p *Environments) writeWithAudit(ctx context.Context, envID string, fn func(tx keyhold.Tx, need *uint32) error) error {
	for attempt := 0; ; attempt++ {
		var need uint32
		err := p.updateData(ctx, func(tx keyhold.Tx) error { return fn(tx, &need) })
		if !errors.Is(err, errNeedKey) {
			return err
		}
		if attempt >= maxCASRetries {
			return keyhold.Errorf(keyhold.CodeServiceUnavailable, "the key of environment %s could not be kept loaded for the write: retry the request", envID)
		}
		ek, err := p.envKey(ctx, envID, need)
		if err != nil {
			return err
		}
		ek.Destroy()
	}
}

// openAudit opens the sealed entries of es in place. An entry whose
// environment is locked (or gone), or whose key can't be reached, is
// marked Withheld with its target and detail empty, like its rows: the
// rest of the page, the platform's entries in clear, is still returned,
// since a locked environment's own refusal points its admins at them
// (the lock's recorded reason).
func (p *Environments) openAudit(ctx context.Context, es []*keyhold.AuditEntry) error {
	keys := map[string]*crypt.StoreKey{}
	closed := map[string]bool{} // by cacheID, or by environment
	defer func() {
		for _, k := range keys {
			k.Destroy()
		}
	}()
	for _, e := range es {
		if e.Sealed == nil {
			// An entry a reset shredded (ShredAudit) keeps only its time,
			// actor and action.
			e.Withheld = e.EnvID != "" && e.Target == "" && keyhold.AuditSealed(e.Action)
			continue
		}
		if _, seen := closed[e.EnvID]; !seen {
			err := p.store.View(ctx, func(tx keyhold.Tx) error {
				env, err := tx.Environment(ctx, e.EnvID)
				if err == nil && env.State == keyhold.StateLocked {
					err = keyhold.Errorf(keyhold.CodeEnvironmentLocked, "environment %s is locked", env.ID)
				}
				return err
			})
			closed[e.EnvID] = err != nil
		}
		kid := cacheID(e.EnvID, e.Epoch)
		if closed[e.EnvID] || closed[kid] {
			e.Withheld = true
			continue
		}
		sk, ok := keys[kid]
		if !ok {
			var err error
			if sk, err = p.storeKey(ctx, e.EnvID, e.Epoch, keyhold.StoreAudit); err != nil {
				p.log.WarnContext(ctx, "audit entries withheld: their key can't be loaded", "environment", e.EnvID, "epoch", e.Epoch, "err", keyhold.ErrorMessage(err))
				closed[kid] = true
				e.Withheld = true
				continue
			}
			keys[kid] = sk
		}
		if err := openEntry(sk, e); err != nil {
			p.log.ErrorContext(ctx, "audit entry failed to decrypt", "environment", e.EnvID, "entry", e.ID, "err", err)
			return keyhold.Errorf(keyhold.CodeInternal, "audit entry %d of environment %s failed its integrity check and was not returned: the stored entry was altered", e.ID, e.EnvID).WithCause(err)
		}
	}
	return nil
}

// sealPlainAuditBudget bounds the startup pass of SealPlainAudit.
const sealPlainAuditBudget = 30 * time.Second

// SealPlainAudit seals the environment entries written in clear before
// Keyhold sealed them, each under its environment's current epoch, in
// pages, oldest first. Entries of an environment whose key can't be
// loaded now (locked, or its vault unreachable) are left in clear and
// counted; the next pass seals them. Open runs a pass at startup.
func (p *Environments) SealPlainAudit(ctx context.Context) (sealed, left int, err error) {
	skip := map[string]bool{}
	after := int64(-1)
	for {
		var page []*keyhold.AuditEntry
		if err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
			page, err = tx.ListAudit(ctx, keyhold.AuditFilter{Plain: true, AfterID: after, Limit: 500})
			return err
		}); err != nil {
			return sealed, left, err
		}
		if len(page) == 0 {
			return sealed, left, nil
		}
		after = page[len(page)-1].ID
		byEnv := map[string][]*keyhold.AuditEntry{}
		var order []string
		for _, e := range page {
			if skip[e.EnvID] {
				left++
				continue
			}
			if _, ok := byEnv[e.EnvID]; !ok {
				order = append(order, e.EnvID)
			}
			byEnv[e.EnvID] = append(byEnv[e.EnvID], e)
		}
		for _, envID := range order {
			n, err := p.sealPlainEnv(ctx, envID, byEnv[envID])
			sealed += n
			if err != nil {
				p.log.WarnContext(ctx, "audit entries left in clear for now", "environment", envID, "err", keyhold.ErrorMessage(err))
				skip[envID] = true
				left += len(byEnv[envID]) - n
			}
		}
	}
}

// sealPlainEnv seals es, entries of envID in clear, under its current
// epoch in one transaction.
func (p *Environments) sealPlainEnv(ctx context.Context, envID string, es []*keyhold.AuditEntry) (int, error) {
	var env *keyhold.Environment
	if err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
		env, err = tx.Environment(ctx, envID)
		return err
	}); err != nil {
		return 0, err
	}
	if env.State == keyhold.StateLocked {
		return 0, keyhold.Errorf(keyhold.CodeEnvironmentLocked, "environment %s is locked", envID)
	}
	sk, err := p.storeKey(ctx, envID, env.Epoch, keyhold.StoreAudit)
	if err != nil {
		return 0, err
	}
	defer sk.Destroy()
	n := 0
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		n = 0
		cur, err := tx.Environment(ctx, envID)
		if err != nil {
			return err
		}
		if cur.Epoch != env.Epoch || cur.State == keyhold.StateLocked {
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s changed key epoch or state meanwhile", envID)
		}
		for _, e := range es {
			s := *e
			if err := sealEntry(sk, &s, 1); err != nil {
				return err
			}
			ok, err := tx.SealAudit(ctx, &s, 0)
			if err != nil {
				return err
			}
			if ok {
				n++
			}
		}
		return nil
	})
	return n, err
}

// rekeyAudit moves one page of envID's audit entries sealed under epoch
// from to epoch to. It returns how many it moved and whether a full page
// was read.
func (p *CMK) rekeyAudit(ctx context.Context, envID string, from, to uint32) (int64, bool, error) {
	var es []*keyhold.AuditEntry
	if err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
		es, err = tx.ListAudit(ctx, keyhold.AuditFilter{EnvID: envID, Epoch: from, AfterID: -1, Limit: rekeyBatch})
		return err
	}); err != nil || len(es) == 0 {
		return 0, false, err
	}
	oldSK, err := p.storeKey(ctx, envID, from, keyhold.StoreAudit)
	if err != nil {
		return 0, false, err
	}
	defer oldSK.Destroy()
	newSK, err := p.storeKey(ctx, envID, to, keyhold.StoreAudit)
	if err != nil {
		return 0, false, err
	}
	defer newSK.Destroy()
	for _, e := range es {
		if err := openEntry(oldSK, e); err != nil {
			return 0, false, keyhold.Errorf(keyhold.CodeInternal, "audit entry %d of environment %s failed its integrity check and can't be re-keyed", e.ID, envID).WithCause(err)
		}
		if err := sealEntry(newSK, e, e.Version+1); err != nil {
			return 0, false, err
		}
	}
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := pauseIfLocked(ctx, tx, envID); err != nil {
			return err
		}
		for _, e := range es {
			if _, err := tx.SealAudit(ctx, e, from); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	return int64(len(es)), len(es) == rekeyBatch, nil
}
