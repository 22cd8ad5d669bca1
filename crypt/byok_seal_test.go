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
	other.MAC = r.mac(labelKeyVersion, byokKeyEncoding(k))
	if err := r.CheckBYOKKey(&other); err == nil {
		t.Fatal("a seal of another kind verified")
	}
}

func testBYOKTenant() *keyhold.BYOKTenant {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &keyhold.BYOKTenant{TenantID: "t1", LockedAt: at, LockedBy: "admin",
		RemovalRequestedAt: at.Add(time.Hour), ShredAfter: at.Add(2 * time.Hour), ShreddedAt: at.Add(3 * time.Hour)}
}

// TestBYOKTenantSeal shows that each field of a tenant's BYOK state, and
// the seal itself, fails the check when changed: clearing LockedAt above
// all, which would undo the administrator's lock.
func TestBYOKTenantSeal(t *testing.T) {
	r := testRecordKey(t)
	s := testBYOKTenant()
	r.SealBYOKTenant(s)
	if s.MAC[0] != recordSealV1 || len(s.MAC) != recordSealSize {
		t.Fatalf("seal = %x, want version %d and %d bytes", s.MAC, recordSealV1, recordSealSize)
	}
	if err := r.CheckBYOKTenant(s); err != nil {
		t.Fatal(err)
	}
	changes := map[string]func(s *keyhold.BYOKTenant){
		"tenant":             func(s *keyhold.BYOKTenant) { s.TenantID = "t2" },
		"lockedAt":           func(s *keyhold.BYOKTenant) { s.LockedAt = time.Time{} },
		"lockedBy":           func(s *keyhold.BYOKTenant) { s.LockedBy = "mallory" },
		"removalRequestedAt": func(s *keyhold.BYOKTenant) { s.RemovalRequestedAt = time.Time{} },
		"shredAfter":         func(s *keyhold.BYOKTenant) { s.ShredAfter = s.ShredAfter.Add(time.Nanosecond) },
		"shreddedAt":         func(s *keyhold.BYOKTenant) { s.ShreddedAt = time.Time{} },
		"seal":               func(s *keyhold.BYOKTenant) { s.MAC[7] ^= 1 },
		"no seal":            func(s *keyhold.BYOKTenant) { s.MAC = nil },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			s := testBYOKTenant()
			r.SealBYOKTenant(s)
			change(s)
			if err := r.CheckBYOKTenant(s); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
				t.Fatalf("check after changing %s: %v, want %s", name, err, keyhold.CodeRecordIntegrity)
			}
		})
	}
	// A BYOK key's seal over the same bytes is not a tenant state's.
	other := *s
	other.MAC = r.mac(labelBYOKKey, byokTenantEncoding(s))
	if err := r.CheckBYOKTenant(&other); err == nil {
		t.Fatal("a seal of another kind verified")
	}
}
