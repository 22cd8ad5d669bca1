package crypt

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func testBYOKKey() *keyhold.BYOKKey {
	return &keyhold.BYOKKey{TenantID: "t1", ID: "k1", State: keyhold.BYOKActive, Source: keyhold.BYOKSourceJWK, Size: 2048,
		Thumbprint: "thumb", CreatedBy: "admin", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		ActivatedAt: time.Date(2026, 1, 3, 3, 4, 5, 0, time.UTC), Sealed: []byte("sealed")}
}

// TestBYOKKeySeal pins the v1 seal of a BYOK key record and shows that
// each field it covers, and the seal itself, fails the check when changed.
func TestBYOKKeySeal(t *testing.T) {
	r := testRecordKey(t)
	k := testBYOKKey()
	r.SealBYOKKey(k)
	const want = "01"
	if got := hex.EncodeToString(k.MAC); got[:2] != want || len(k.MAC) != recordSealSize {
		t.Fatalf("seal = %s, want version %s and %d bytes", got, want, recordSealSize)
	}
	if err := r.CheckBYOKKey(k); err != nil {
		t.Fatal(err)
	}
	changes := map[string]func(k *keyhold.BYOKKey){
		"tenant":      func(k *keyhold.BYOKKey) { k.TenantID = "t2" },
		"id":          func(k *keyhold.BYOKKey) { k.ID = "k2" },
		"state":       func(k *keyhold.BYOKKey) { k.State = keyhold.BYOKAvailable },
		"source":      func(k *keyhold.BYOKKey) { k.Source = keyhold.BYOKSourcePFX },
		"size":        func(k *keyhold.BYOKKey) { k.Size = 4096 },
		"thumbprint":  func(k *keyhold.BYOKKey) { k.Thumbprint = "other" },
		"createdBy":   func(k *keyhold.BYOKKey) { k.CreatedBy = "mallory" },
		"createdAt":   func(k *keyhold.BYOKKey) { k.CreatedAt = k.CreatedAt.Add(time.Nanosecond) },
		"activatedAt": func(k *keyhold.BYOKKey) { k.ActivatedAt = time.Time{} },
		"sealed":      func(k *keyhold.BYOKKey) { k.Sealed = []byte("sealeD") },
		"generation":  func(k *keyhold.BYOKKey) { k.Generation++ },
		"seal":        func(k *keyhold.BYOKKey) { k.MAC[7] ^= 1 },
		"no seal":     func(k *keyhold.BYOKKey) { k.MAC = nil },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			k := testBYOKKey()
			r.SealBYOKKey(k)
			change(k)
			if err := r.CheckBYOKKey(k); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
				t.Fatalf("check after changing %s: %v, want %s", name, err, keyhold.CodeRecordIntegrity)
			}
		})
	}
	// A key version's seal over the same bytes is not a BYOK key's.
	other := *k
	other.MAC = r.mac(labelKeyVersion, byokKeyEncodingV2(k))
	if err := r.CheckBYOKKey(&other); err == nil {
		t.Fatal("a seal of another kind verified")
	}
	// The v1 seal (before migration 0053) is not a v2 one, and the other
	// way round: a row from before the upgrade fails the check of every
	// read, and only the one-time upgrade accepts it.
	v1 := testBYOKKey()
	r.SealBYOKKeyV1(v1)
	if err := r.CheckBYOKKey(v1); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
		t.Fatalf("a v1 seal passed the v2 check: %v", err)
	}
	if err := r.CheckBYOKKeyV1(v1); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckBYOKKeyV1(k); err == nil {
		t.Fatal("a v2 seal passed the v1 check")
	}
}

func testBYOKTenant() *keyhold.BYOKTenant {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &keyhold.BYOKTenant{TenantID: "t1", LockedAt: at, LockedBy: "admin",
		RemovalRequestedAt: at.Add(time.Hour), ShredAfter: at.Add(2 * time.Hour), ShreddedAt: at.Add(3 * time.Hour)}
}

// testBYOKKeys is a tenant's two keys at generation 3, sealed.
func testBYOKKeys(r *RecordKey) []*keyhold.BYOKKey {
	a, b := testBYOKKey(), testBYOKKey()
	b.ID, b.State, b.Thumbprint = "k0", keyhold.BYOKAvailable, "thumb0"
	var ks []*keyhold.BYOKKey
	for _, k := range []*keyhold.BYOKKey{a, b} {
		k.Generation = 3
		r.SealBYOKKey(k)
		ks = append(ks, k)
	}
	return ks
}

// TestBYOKTenantSeal shows that each field of a tenant's BYOK state, its
// generation, each key row it commits to, and the seal itself, fail the
// check when changed: clearing LockedAt above all, which would undo the
// administrator's lock, and a key row put back from another generation.
func TestBYOKTenantSeal(t *testing.T) {
	r := testRecordKey(t)
	s := testBYOKTenant()
	s.Generation = 3
	r.SealBYOKTenant(s, testBYOKKeys(r))
	if s.MAC[0] != recordSealV1 || len(s.MAC) != recordSealSize {
		t.Fatalf("seal = %x, want version %d and %d bytes", s.MAC, recordSealV1, recordSealSize)
	}
	if err := r.CheckBYOKTenant(s, testBYOKKeys(r)); err != nil {
		t.Fatal(err)
	}
	// The key rows' order, as the store lists them, doesn't matter.
	ks := testBYOKKeys(r)
	ks[0], ks[1] = ks[1], ks[0]
	if err := r.CheckBYOKTenant(s, ks); err != nil {
		t.Fatalf("keys in another order: %v", err)
	}
	keyChanges := map[string]func(ks []*keyhold.BYOKKey) []*keyhold.BYOKKey{
		"a key removed": func(ks []*keyhold.BYOKKey) []*keyhold.BYOKKey { return ks[:1] },
		"a key added": func(ks []*keyhold.BYOKKey) []*keyhold.BYOKKey {
			k := testBYOKKey()
			k.ID, k.Generation = "k9", 3
			r.SealBYOKKey(k)
			return append(ks, k)
		},
		"a key's state": func(ks []*keyhold.BYOKKey) []*keyhold.BYOKKey { ks[1].State = keyhold.BYOKActive; return ks },
		"a key of an earlier generation": func(ks []*keyhold.BYOKKey) []*keyhold.BYOKKey {
			ks[0].Generation = 2
			r.SealBYOKKey(ks[0])
			return ks
		},
		"a key's seal": func(ks []*keyhold.BYOKKey) []*keyhold.BYOKKey { ks[0].MAC[5] ^= 1; return ks },
	}
	for name, change := range keyChanges {
		t.Run(name, func(t *testing.T) {
			if err := r.CheckBYOKTenant(s, change(testBYOKKeys(r))); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
				t.Fatalf("check after %s: %v, want %s", name, err, keyhold.CodeRecordIntegrity)
			}
		})
	}
	changes := map[string]func(s *keyhold.BYOKTenant){
		"tenant":             func(s *keyhold.BYOKTenant) { s.TenantID = "t2" },
		"lockedAt":           func(s *keyhold.BYOKTenant) { s.LockedAt = time.Time{} },
		"lockedBy":           func(s *keyhold.BYOKTenant) { s.LockedBy = "mallory" },
		"removalRequestedAt": func(s *keyhold.BYOKTenant) { s.RemovalRequestedAt = time.Time{} },
		"shredAfter":         func(s *keyhold.BYOKTenant) { s.ShredAfter = s.ShredAfter.Add(time.Nanosecond) },
		"shreddedAt":         func(s *keyhold.BYOKTenant) { s.ShreddedAt = time.Time{} },
		"generation":         func(s *keyhold.BYOKTenant) { s.Generation-- },
		"seal":               func(s *keyhold.BYOKTenant) { s.MAC[7] ^= 1 },
		"no seal":            func(s *keyhold.BYOKTenant) { s.MAC = nil },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			s := testBYOKTenant()
			s.Generation = 3
			r.SealBYOKTenant(s, testBYOKKeys(r))
			change(s)
			if err := r.CheckBYOKTenant(s, testBYOKKeys(r)); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
				t.Fatalf("check after changing %s: %v, want %s", name, err, keyhold.CodeRecordIntegrity)
			}
		})
	}
	// A BYOK key's seal over the same bytes is not a tenant state's.
	other := *s
	other.MAC = r.mac(labelBYOKKeyV2, byokTenantEncodingV2(s, testBYOKKeys(r)))
	if err := r.CheckBYOKTenant(&other, testBYOKKeys(r)); err == nil {
		t.Fatal("a seal of another kind verified")
	}
	// The v1 seal (no generation, no keys) passes only the v1 check.
	v1 := testBYOKTenant()
	r.SealBYOKTenantV1(v1)
	if err := r.CheckBYOKTenant(v1, nil); err == nil {
		t.Fatal("a v1 seal passed the v2 check")
	}
	if err := r.CheckBYOKTenantV1(v1); err != nil {
		t.Fatal(err)
	}
}

// TestBYOKMarkerSeal: the "sealing done" marker's seal covers its time,
// and no other kind of seal passes for it.
func TestBYOKMarkerSeal(t *testing.T) {
	r := testRecordKey(t)
	m := &keyhold.BYOKSealMarker{SealedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	r.SealBYOKMarker(m)
	if err := r.CheckBYOKMarker(m); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(m *keyhold.BYOKSealMarker){
		"time":    func(m *keyhold.BYOKSealMarker) { m.SealedAt = m.SealedAt.Add(time.Second) },
		"seal":    func(m *keyhold.BYOKSealMarker) { m.MAC[3] ^= 1 },
		"no seal": func(m *keyhold.BYOKSealMarker) { m.MAC = nil },
		"another kind": func(m *keyhold.BYOKSealMarker) {
			m.MAC = r.mac(labelBYOKTenantV2, byokMarkerEncoding(m))
		},
	} {
		c := &keyhold.BYOKSealMarker{SealedAt: m.SealedAt}
		r.SealBYOKMarker(c)
		change(c)
		if err := r.CheckBYOKMarker(c); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
			t.Fatalf("marker after changing %s: %v", name, err)
		}
	}
}
