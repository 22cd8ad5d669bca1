package crypt

import (
	"fmt"

	"github.com/keyhold/keyhold"
)

// labelBYOKKey labels the seal of a tenant's BYOK key record.
const labelBYOKKey = "keyhold record byok-key v1\x00"

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

// SealBYOKKey sets k.MAC: it covers the key's tenant, id, state, source,
// size, thumbprint, creator, creation and last activation, and its sealed
// private key (or token reference). The state is what decides which key
// new environment keys are wrapped under; the rest is the key's identity.
func (r *RecordKey) SealBYOKKey(k *keyhold.BYOKKey) {
	k.MAC = r.mac(labelBYOKKey, byokKeyEncoding(k))
}

// CheckBYOKKey returns keyhold.CodeRecordIntegrity unless k.MAC is
// SealBYOKKey's seal of k.
func (r *RecordKey) CheckBYOKKey(k *keyhold.BYOKKey) error {
	return r.check(labelBYOKKey, byokKeyEncoding(k), k.MAC,
		fmt.Sprintf("BYOK key %s of tenant %s (%s, thumbprint %s)", k.ID, k.TenantID, k.State, k.Thumbprint))
}

// labelBYOKTenant labels the seal of a tenant's BYOK state record.
const labelBYOKTenant = "keyhold record byok-tenant v1\x00"

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

// SealBYOKTenant sets s.MAC: it covers the tenant and every field of its
// BYOK state (lock, removal, shredding). The lock is only LockedAt, so a
// database writer able to clear it would otherwise undo an
// administrator's lock.
func (r *RecordKey) SealBYOKTenant(s *keyhold.BYOKTenant) {
	s.MAC = r.mac(labelBYOKTenant, byokTenantEncoding(s))
}

// CheckBYOKTenant returns keyhold.CodeRecordIntegrity unless s.MAC is
// SealBYOKTenant's seal of s.
func (r *RecordKey) CheckBYOKTenant(s *keyhold.BYOKTenant) error {
	return r.check(labelBYOKTenant, byokTenantEncoding(s), s.MAC,
		fmt.Sprintf("the BYOK state of tenant %s", s.TenantID))
}
