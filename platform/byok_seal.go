package platform

import (
	"context"
	"fmt"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// Sealed BYOK state (issue 14). Which of a tenant's BYOK keys is Active
// decides what every new environment key of the tenant is wrapped under,
// and its lock is only byok_tenants.locked_at (with its environments
// Disabled), so every BYOK row carries a seal under the master key: each
// key row (crypt.RecordKey.SealBYOKKey, migration 0047) over its identity
// and state, and the tenant's state row, its head
// (crypt.RecordKey.SealBYOKTenant, migration 0051), over the lock and the
// removal.
//
// Seals alone authenticate rows one by one, so a database writer could
// put back a row Keyhold had sealed earlier (the lock row from before a
// lock, a key row from before an activation). Since migration 0053 every
// row also carries the tenant's BYOK generation: every write of the
// tenant's BYOK state goes through byokSet.commit, which moves the
// generation on and re-seals every one of the tenant's rows at it, and the
// head's seal commits to the generation and to the tenant's key rows (id,
// state, generation, seal). Every read goes through byokSetIn, which
// checks them together: a row put back from an earlier write is of
// another generation than the others, or not the row the head names, and
// is refused with CodeRecordIntegrity, audited (integrity.refused) and
// treated as locked: nothing is wrapped or unwrapped under the tenant's
// keys. Only all of the tenant's rows put back together from one earlier
// write are consistent; telling that (or a whole database restored from
// an older snapshot) apart needs state outside the database: see "Record
// integrity" in docs/architecture.md.

// byokSet is a tenant's BYOK rows, read and checked together: its state
// (the head) and its key rows, oldest first. A tenant that never held a
// BYOK key has a zero, unsealed state and no keys.
type byokSet struct {
	st   *keyhold.BYOKTenant
	keys []*keyhold.BYOKKey
}

// byokZero reports whether st is the state of a tenant that never held a
// BYOK key (no row).
func byokZero(st *keyhold.BYOKTenant) bool {
	return len(st.MAC) == 0 && st.Generation == 0 && st.LockedAt.IsZero() && st.LockedBy == "" &&
		st.RemovalRequestedAt.IsZero() && st.ShredAfter.IsZero() && st.ShreddedAt.IsZero()
}

// readBYOKSet reads tenantID's BYOK rows in tx, unchecked.
func readBYOKSet(ctx context.Context, tx keyhold.Tx, tenantID string) (*byokSet, error) {
	st, err := tx.BYOKTenant(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	ks, err := tx.BYOKKeys(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return &byokSet{st: st, keys: ks}, nil
}

// byokSetIn reads tenantID's BYOK rows in tx and checks them: each key
// row's seal, that every key row is of the head's generation, the head's
// seal over its state and the key rows, and that the keys' states agree.
// A failure is CodeRecordIntegrity, which every caller treats as refusing
// (never as unlocked) and audits (auditTamper).
func byokSetIn(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, tenantID string) (*byokSet, error) {
	s, err := readBYOKSet(ctx, tx, tenantID)
	if err != nil {
		return nil, err
	}
	if len(s.keys) == 0 && byokZero(s.st) {
		return s, nil // never held a BYOK key
	}
	if err := s.check(rec); err != nil {
		return nil, err
	}
	return s, nil
}

// adminBYOKSet is byokSetIn for the caller's tenant, once the caller is
// found to be an administrator: what every administrator's BYOK write
// starts with.
func adminBYOKSet(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, id *keyhold.Identity) (*byokSet, error) {
	if err := requireAdmin(ctx, tx, id); err != nil {
		return nil, err
	}
	return byokSetIn(ctx, tx, rec, id.TenantID)
}

// check checks s as byokSetIn does.
func (s *byokSet) check(rec *crypt.RecordKey) error {
	for _, k := range s.keys {
		if err := rec.CheckBYOKKey(k); err != nil {
			return err
		}
	}
	if len(s.st.MAC) > 0 { // an unsealed head fails below, with its own reason
		for _, k := range s.keys {
			if k.Generation != s.st.Generation {
				return byokSetError(s.st.TenantID, fmt.Sprintf("key %s is of generation %d and the tenant's state of generation %d: a row was put back from an earlier write",
					k.ID, k.Generation, s.st.Generation))
			}
		}
	}
	if err := rec.CheckBYOKTenant(s.st, s.keys); err != nil {
		return err
	}
	return checkBYOKStates(s.keys)
}

// checkBYOKStates checks that a tenant's keys are consistent: at most one
// Active, and none activated after it. (The generations make a replay
// that breaks this fail first; this names what no activation leaves.)
func checkBYOKStates(ks []*keyhold.BYOKKey) error {
	var active *keyhold.BYOKKey
	for _, k := range ks {
		if k.State == keyhold.BYOKActive {
			if active != nil {
				return byokSetError(k.TenantID, fmt.Sprintf("two keys, %s and %s, are Active, which no activation leaves", active.ID, k.ID))
			}
			active = k
		}
	}
	if active == nil {
		return nil
	}
	for _, k := range ks {
		if k.ActivatedAt.After(active.ActivatedAt) {
			return byokSetError(k.TenantID, fmt.Sprintf("key %s was activated at %s, after the Active key %s (%s), which no activation leaves",
				k.ID, k.ActivatedAt.UTC().Format(time.RFC3339), active.ID, active.ActivatedAt.UTC().Format(time.RFC3339)))
		}
	}
	return nil
}

// byokSetError refuses a tenant's BYOK rows that contradict each other.
func byokSetError(tenantID, why string) error {
	return keyhold.Errorf(keyhold.CodeRecordIntegrity,
		"the BYOK rows of tenant %s were changed outside Keyhold (%s), so Keyhold will not use its BYOK keys: nothing was changed. Restore the tenant's byok_keys and byok_tenants rows together from one backup of the database and look for who wrote to it; see \"Record integrity\" in docs/operations.md",
		tenantID, why)
}

// active returns the tenant's Active key, or nil.
func (s *byokSet) active() *keyhold.BYOKKey {
	for _, k := range s.keys {
		if k.State == keyhold.BYOKActive {
			return k
		}
	}
	return nil
}

// key returns the tenant's key id, or CodeNotFound.
func (s *byokSet) key(id string) (*keyhold.BYOKKey, error) {
	for _, k := range s.keys {
		if k.ID == id {
			return k, nil
		}
	}
	return nil, keyhold.Errorf(keyhold.CodeNotFound, "tenant %s holds no BYOK key %q: list the tenant's BYOK keys to find its id", s.st.TenantID, keyhold.Clip(id))
}

// commit writes s in tx as the tenant's next generation: every key row
// (added, if not nil, is a new one to insert), then the head, each sealed
// at it. Every write of a tenant's BYOK state goes through it, so that no
// row of an earlier write fits the others, and runs in BYOK.updateBYOK,
// whose committed it records the generation in, for the token
// (byok_anchor.go).
func (s *byokSet) commit(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, added *keyhold.BYOKKey, committed byokCommitted) error {
	gen := s.st.Generation + 1
	for _, k := range s.keys {
		k.Generation = gen
		rec.SealBYOKKey(k)
		var err error
		if k == added {
			err = tx.PutBYOKKey(ctx, k)
		} else {
			err = tx.UpdateBYOKKey(ctx, k)
		}
		if err != nil {
			return err
		}
	}
	s.st.Generation = gen
	rec.SealBYOKTenant(s.st, s.keys)
	if err := tx.PutBYOKTenant(ctx, s.st); err != nil {
		return err
	}
	committed[s.st.TenantID] = gen
	return nil
}

// byokTenantIn is byokSetIn's state, for the reads that need only the
// lock or the removal: the whole set is checked all the same.
func byokTenantIn(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, tenantID string) (*keyhold.BYOKTenant, error) {
	s, err := byokSetIn(ctx, tx, rec, tenantID)
	if err != nil {
		return nil, err
	}
	return s.st, nil
}

// One-time sealing at start-up. BYOK rows written before they were sealed
// (migrations 0047 and 0051) have no seal, and those written before
// migration 0053 have a seal without a generation (v1). The first start
// after the upgrade seals them at generation 1, each tenant audited
// (integrity.seal), then writes the sealed "sealing done" marker
// (crypt.RecordKey.SealBYOKMarker): from then on no start seals anything,
// so a row without a seal, or with a v1 seal, is one written outside
// Keyhold and stays refused, even if every seal was stripped. Before the
// marker, as before it existed, an unsealed key row (tenant state) is
// sealed only while no key row (tenant state) has a seal, and a v1 seal
// must verify; a tenant with any other row is left refused.

// sealBYOKAtStart runs the one-time sealing if the marker is not written
// yet, and logs the tenants whose rows are refused. It returns how many
// tenants it sealed.
func (b *BYOK) sealBYOKAtStart(ctx context.Context) (int, error) {
	var sealed, left int
	var marker error
	run := func(tx keyhold.Tx, committed byokCommitted) error {
		sealed, left, marker = 0, 0, nil
		m, err := tx.BYOKSealMarker(ctx)
		if err != nil {
			return err
		}
		sets, err := b.byokSets(ctx, tx)
		if err != nil {
			return err
		}
		if m != nil {
			marker = b.rec.CheckBYOKMarker(m) // a forged marker seals nothing either
			for _, s := range sets {
				if s.check(b.rec) != nil {
					left++
				}
			}
			return nil
		}
		anyKey, anyState := false, false
		for _, s := range sets {
			anyState = anyState || len(s.st.MAC) > 0
			for _, k := range s.keys {
				anyKey = anyKey || len(k.MAC) > 0
			}
		}
		for _, s := range sets {
			if s.check(b.rec) == nil {
				continue // sealed by this version already
			}
			what, ok := b.legacyBYOK(s, anyKey, anyState)
			if ok && b.anchor.recorded(ctx, s.st.TenantID) {
				// The token recorded a generation of this tenant: its
				// rows were sealed by this version before, so these
				// were stripped outside Keyhold (byok_anchor.go).
				ok = false
			}
			if !ok {
				left++
				continue
			}
			if err := s.commit(ctx, tx, b.rec, nil, committed); err != nil {
				return err
			}
			if _, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: b.clock.Now(), TenantID: s.st.TenantID, ActorID: systemActorID,
				Action: "integrity.seal", Target: byokTarget(s.st.TenantID, ""),
				Detail: "BYOK rows sealed once, at the first start after the upgrade to sealed BYOK generations: " + what}); err != nil {
				return err
			}
			sealed++
		}
		m = &keyhold.BYOKSealMarker{SealedAt: b.clock.Now().UTC()}
		b.rec.SealBYOKMarker(m)
		return tx.PutBYOKSealMarker(ctx, m)
	}
	err := b.updateBYOK(ctx, run)
	if keyhold.ErrorCode(err) == keyhold.CodeConflict { // another replica wrote the marker first
		err = b.updateBYOK(ctx, run)
	}
	if err != nil {
		return 0, fmt.Errorf("sealing the BYOK rows written before this version: %w", err)
	}
	if sealed > 0 {
		b.log.WarnContext(ctx, "platform: sealed the BYOK rows written before this version, once; check the audit entries integrity.seal if the database may have been written by others before the upgrade", "tenants", sealed)
	}
	if marker != nil {
		b.log.ErrorContext(ctx, "platform: the BYOK \"sealing done\" marker fails its seal: it was written outside Keyhold; no BYOK row is sealed at start-up", "err", keyhold.ErrorMessage(marker))
	}
	if left > 0 {
		b.log.ErrorContext(ctx, "platform: tenants' BYOK rows fail their seals (no seal, an old seal, another generation): they were written outside Keyhold and are refused, never sealed again", "tenants", left)
	}
	return sealed, nil
}

// byokSets reads, unchecked, the BYOK rows of every tenant that has any.
func (b *BYOK) byokSets(ctx context.Context, tx keyhold.Tx) ([]*byokSet, error) {
	tenants, err := tx.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	var sets []*byokSet
	for _, t := range tenants {
		s, err := readBYOKSet(ctx, tx, t.ID)
		if err != nil {
			return nil, err
		}
		if len(s.keys) > 0 || !byokZero(s.st) {
			sets = append(sets, s)
		}
	}
	return sets, nil
}

// legacyBYOK reports whether every row of s is one Keyhold wrote before
// migration 0053 (unsealed while no row of its kind has a seal, or with a
// v1 seal that verifies), and says what will be sealed.
func (b *BYOK) legacyBYOK(s *byokSet, anyKey, anyState bool) (string, bool) {
	unsealed, v1 := 0, 0
	for _, k := range s.keys {
		switch {
		case len(k.MAC) == 0 && !anyKey:
			unsealed++
		case len(k.MAC) > 0 && b.rec.CheckBYOKKeyV1(k) == nil:
			v1++
		default:
			return "", false
		}
	}
	state := "its state re-sealed"
	switch {
	case len(s.st.MAC) == 0 && !anyState:
		state = "its state sealed"
	case len(s.st.MAC) > 0 && b.rec.CheckBYOKTenantV1(s.st) == nil:
	default:
		return "", false
	}
	return fmt.Sprintf("%d keys sealed, %d re-sealed, %s", unsealed, v1, state), true
}
