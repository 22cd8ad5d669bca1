package crypt

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/keyhold/keyhold"
)

// Seals of a tenant's BYOK rows. Since migration 0053 each row carries
// the tenant's BYOK generation: a counter that every write of the
// tenant's BYOK state moves on, re-sealing every one of its rows (the
// head, its byok_tenants row, and each of its byok_keys rows) at the new
// generation. The head's seal also commits to the set of its key rows
// (each one's id, state, generation and seal). So a row put back from an
// earlier state (a replay) is of another generation than the others, or
// is not the row the head names, and fails; only every row of the tenant
// put back together, from one earlier write, is consistent (see
// "Record integrity" in docs/architecture.md). The v1 seals, without a
// generation, are checked only to upgrade them once (platform/byok_seal.go).

// Labels of the seals of a tenant's BYOK rows.
const (
	labelBYOKKey      = "keyhold record byok-key v1\x00"
	labelBYOKKeyV2    = "keyhold record byok-key v2\x00"
	labelBYOKTenant   = "keyhold record byok-tenant v1\x00"
	labelBYOKTenantV2 = "keyhold record byok-tenant v2\x00"
	labelBYOKMarker   = "keyhold record byok-sealing-done v1\x00"
)

func byokKeyEncoding(k *keyhold.BYOKKey) []byte {
	var e recordEncoder
	e.str(k.TenantID)
	e.str(k.ID)
	e.str(string(k.State))
	e.str(string(k.Source))
	e.int(int64(k.Size))
	e.str(k.Thumbprint)
	e.str(k.CreatedBy)
	e.time(k.CreatedAt)
	e.time(k.ActivatedAt)
	e.bytes(k.Sealed)
	return e.b
}

func byokKeyEncodingV2(k *keyhold.BYOKKey) []byte {
	e := recordEncoder{b: byokKeyEncoding(k)}
	e.int(k.Generation)
	return e.b
}

func byokKeyWhat(k *keyhold.BYOKKey) string {
	return fmt.Sprintf("BYOK key %s of tenant %s (%s, thumbprint %s)", k.ID, k.TenantID, k.State, k.Thumbprint)
}

// SealBYOKKey sets k.MAC: it covers the key's tenant, id, state, source,
// size, thumbprint, creator, creation and last activation, its sealed
// private key (or token reference), and its generation. The state is what
// decides which key new environment keys are wrapped under; the rest is
// the key's identity; the generation ties it to one write of the tenant's
// BYOK state (SealBYOKTenant).
func (r *RecordKey) SealBYOKKey(k *keyhold.BYOKKey) {
	k.MAC = r.mac(labelBYOKKeyV2, byokKeyEncodingV2(k))
}

// CheckBYOKKey returns keyhold.CodeRecordIntegrity unless k.MAC is
// SealBYOKKey's seal of k.
func (r *RecordKey) CheckBYOKKey(k *keyhold.BYOKKey) error {
	return r.check(labelBYOKKeyV2, byokKeyEncodingV2(k), k.MAC, byokKeyWhat(k))
}

// SealBYOKKeyV1 sets k.MAC to the seal Keyhold wrote before migration
// 0053 (no generation). Only tests use it, to build such rows.
func (r *RecordKey) SealBYOKKeyV1(k *keyhold.BYOKKey) {
	k.MAC = r.mac(labelBYOKKey, byokKeyEncoding(k))
}

// CheckBYOKKeyV1 returns keyhold.CodeRecordIntegrity unless k.MAC is the
// seal Keyhold wrote before migration 0053: what the one-time upgrade
// re-seals.
func (r *RecordKey) CheckBYOKKeyV1(k *keyhold.BYOKKey) error {
	return r.check(labelBYOKKey, byokKeyEncoding(k), k.MAC, byokKeyWhat(k))
}

func byokTenantEncoding(s *keyhold.BYOKTenant) []byte {
	var e recordEncoder
	e.str(s.TenantID)
	e.time(s.LockedAt)
	e.str(s.LockedBy)
	e.time(s.RemovalRequestedAt)
	e.time(s.ShredAfter)
	e.time(s.ShreddedAt)
	return e.b
}

// byokTenantEncodingV2 adds the generation and the tenant's key rows, in
// id order, each by id, state, generation and seal.
func byokTenantEncodingV2(s *keyhold.BYOKTenant, keys []*keyhold.BYOKKey) []byte {
	e := recordEncoder{b: byokTenantEncoding(s)}
	e.int(s.Generation)
	ks := slices.Clone(keys)
	slices.SortFunc(ks, func(a, b *keyhold.BYOKKey) int { return cmp.Compare(a.ID, b.ID) })
	e.int(int64(len(ks)))
	for _, k := range ks {
		e.str(k.ID)
		e.str(string(k.State))
		e.int(k.Generation)
		e.bytes(k.MAC)
	}
	return e.b
}

// SealBYOKTenant sets s.MAC: it covers the tenant and every field of its
// BYOK state (lock, removal, shredding), its generation, and its key rows
// keys (sealed first, at the same generation). The lock is only LockedAt,
// so a database writer able to clear it, or to put back the row from
// before the lock, would otherwise undo an administrator's lock.
func (r *RecordKey) SealBYOKTenant(s *keyhold.BYOKTenant, keys []*keyhold.BYOKKey) {
	s.MAC = r.mac(labelBYOKTenantV2, byokTenantEncodingV2(s, keys))
}

// CheckBYOKTenant returns keyhold.CodeRecordIntegrity unless s.MAC is
// SealBYOKTenant's seal of s with keys: a key row added, removed, or put
// back from another generation fails it too.
func (r *RecordKey) CheckBYOKTenant(s *keyhold.BYOKTenant, keys []*keyhold.BYOKKey) error {
	return r.check(labelBYOKTenantV2, byokTenantEncodingV2(s, keys), s.MAC,
		fmt.Sprintf("the BYOK state of tenant %s (generation %d, with %d keys)", s.TenantID, s.Generation, len(keys)))
}

// SealBYOKTenantV1 sets s.MAC to the seal Keyhold wrote before migration
// 0053. Only tests use it, to build such rows.
func (r *RecordKey) SealBYOKTenantV1(s *keyhold.BYOKTenant) {
	s.MAC = r.mac(labelBYOKTenant, byokTenantEncoding(s))
}

// CheckBYOKTenantV1 returns keyhold.CodeRecordIntegrity unless s.MAC is
// the seal Keyhold wrote before migration 0053.
func (r *RecordKey) CheckBYOKTenantV1(s *keyhold.BYOKTenant) error {
	return r.check(labelBYOKTenant, byokTenantEncoding(s), s.MAC,
		fmt.Sprintf("the BYOK state of tenant %s", s.TenantID))
}

func byokMarkerEncoding(m *keyhold.BYOKSealMarker) []byte {
	var e recordEncoder
	e.time(m.SealedAt)
	return e.b
}

// SealBYOKMarker sets m.MAC: the seal of the one-time "sealing done"
// marker, after which no unsealed BYOK row is ever sealed.
func (r *RecordKey) SealBYOKMarker(m *keyhold.BYOKSealMarker) {
	m.MAC = r.mac(labelBYOKMarker, byokMarkerEncoding(m))
}

// CheckBYOKMarker returns keyhold.CodeRecordIntegrity unless m.MAC is
// SealBYOKMarker's seal of m.
func (r *RecordKey) CheckBYOKMarker(m *keyhold.BYOKSealMarker) error {
	return r.check(labelBYOKMarker, byokMarkerEncoding(m), m.MAC, "the BYOK \"sealing done\" marker")
}
