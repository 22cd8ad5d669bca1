package crypt

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/keyhold/keyhold"
)

// Record integrity. The store keeps the records that custody decisions
// rest on in plain columns: a key version's public key, a key's current
// version, a vault's purge protection, a policy's binding to its key.
// Someone who can write the database but doesn't hold the master key could
// otherwise point the platform at a key of their own (insert a version
// with their public key and make it current: the next rotation would wrap
// every environment key under it). So each such record carries a seal, an
// HMAC-SHA256 under a key derived from the master key, over a canonical
// encoding of the fields that matter, and every read that a custody
// decision uses checks it (Check*). A record that fails is refused with
// keyhold.CodeRecordIntegrity and never acted on.
//
// A seal is versioned: 0x01 | HMAC-SHA256(label | fields). Each kind of
// record has its own label, so a seal of one kind never verifies as
// another, and each field is length-prefixed, so no two records encode
// alike. A key's record carries two seals (its state, and its current
// version) so that a changed current-version pointer stops a rotation
// while unwraps under the versions it names go on.
//
// Seals authenticate, they don't bind to time: a database writer can put
// back an earlier state that Keyhold itself sealed (a replay). A tenant's
// BYOK rows also carry a generation that ties them together, so that one
// of them put back alone is refused (byok_seal.go). See the threat model
// in docs/architecture.md.

// recordSealV1 is the version byte of a record seal.
const recordSealV1 = 0x01

// recordSealSize is the length of a v1 seal.
const recordSealSize = 1 + sha256.Size

// recordKeyInfo is the HKDF info that derives the record key from the
// master key: no other key of Keyhold is derived with it.
const recordKeyInfo = "keyhold record integrity v1"

// Labels of the kinds of sealed records.
const (
	labelKeyVersion = "keyhold record key-version v1\x00"
	labelKeyState   = "keyhold record key-state v1\x00"
	labelKeyCurrent = "keyhold record key-current v1\x00"
	labelVault      = "keyhold record vault v1\x00"
	labelPolicy     = "keyhold record policy-binding v1\x00"
	// labelPolicyExternal seals a policy naming an external vault.
	labelPolicyExternal = "keyhold record policy-binding external v1\x00"
)

// RecordKey seals and checks records. Safe for concurrent use.
type RecordKey struct{ k []byte }

// NewRecordKey derives the record key from the master key with
// HKDF-SHA256.
func NewRecordKey(master *Key) (*RecordKey, error) {
	kb, err := master.bytes()
	if err != nil {
		return nil, err
	}
	k, err := hkdf.Key(sha256.New, kb, nil, recordKeyInfo, KeySize)
	if err != nil {
		return nil, fmt.Errorf("crypt: deriving the record key: %w", err)
	}
	return &RecordKey{k: k}, nil
}

// Destroy zeroes the record key.
func (r *RecordKey) Destroy() {
	if r != nil {
		clear(r.k)
	}
}

// recordEncoder builds the canonical encoding of a record.
type recordEncoder struct{ b []byte }

func (e *recordEncoder) bytes(b []byte) {
	e.b = binary.BigEndian.AppendUint32(e.b, uint32(len(b)))
	e.b = append(e.b, b...)
}

func (e *recordEncoder) str(s string) { e.bytes([]byte(s)) }

func (e *recordEncoder) int(n int64) { e.b = binary.BigEndian.AppendUint64(e.b, uint64(n)) }

func (e *recordEncoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// time encodes zero apart from every instant.
func (e *recordEncoder) time(t time.Time) {
	if t.IsZero() {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	e.int(t.UnixNano())
}

func (e *recordEncoder) strs(ss []string) {
	e.int(int64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

func (r *RecordKey) mac(label string, enc []byte) []byte {
	h := hmac.New(sha256.New, r.k)
	h.Write([]byte(label))
	h.Write(enc)
	return h.Sum([]byte{recordSealV1})
}

// check compares seal, in constant time, with the seal of enc; what names
// the record in the error.
func (r *RecordKey) check(label string, enc, seal []byte, what string) error {
	if len(seal) == 0 {
		return integrityError(what, "it has no integrity seal")
	}
	if seal[0] != recordSealV1 || len(seal) != recordSealSize {
		return integrityError(what, fmt.Sprintf("its integrity seal has an unknown format (version %d, %d bytes)", seal[0], len(seal)))
	}
	if !hmac.Equal(r.mac(label, enc), seal) {
		return integrityError(what, "its integrity seal does not match its contents")
	}
	return nil
}

// integrityError is the refusal of a record that fails its check.
func integrityError(what, why string) error {
	return keyhold.Errorf(keyhold.CodeRecordIntegrity,
		"%s was changed outside Keyhold (%s under the master key), so Keyhold will not use it: nothing was changed. Restore the record from a backup of the database, or remove the change made to it, and look for who wrote to the database; see \"Record integrity\" in docs/operations.md",
		what, why)
}

func keyVersionEncoding(kv *keyhold.KeyVersion) []byte {
	var e recordEncoder
	e.str(kv.VaultName)
	e.str(kv.Name)
	e.str(kv.Version)
	e.str(kv.Type)
	e.int(int64(kv.Size))
	e.bytes(kv.N)
	e.int(int64(kv.E))
	e.strs(kv.KeyOps)
	e.bool(kv.Enabled)
	e.time(kv.NotBefore)
	e.time(kv.Expires)
	e.bytes(kv.Material)
	return e.b
}

// SealKeyVersion sets kv.MAC: it covers the version's names, type, size,
// public key (n, e), operations, enabled flag, nbf, exp and material
// (sealed private key, or token reference).
func (r *RecordKey) SealKeyVersion(kv *keyhold.KeyVersion) {
	kv.MAC = r.mac(labelKeyVersion, keyVersionEncoding(kv))
}

// CheckKeyVersion returns keyhold.CodeRecordIntegrity unless kv.MAC is
// SealKeyVersion's seal of kv.
func (r *RecordKey) CheckKeyVersion(kv *keyhold.KeyVersion) error {
	return r.check(labelKeyVersion, keyVersionEncoding(kv), kv.MAC,
		fmt.Sprintf("version %s of key %s in vault %s", kv.Version, kv.Name, kv.VaultName))
}

func keyStateEncoding(k *keyhold.Key) []byte {
	var e recordEncoder
	e.str(k.VaultName)
	e.str(k.Name)
	e.str(k.Type)
	e.int(int64(k.Size))
	e.time(k.DeletedAt)
	e.time(k.ScheduledPurgeAt)
	return e.b
}

func keyCurrentEncoding(k *keyhold.Key) []byte {
	var e recordEncoder
	e.str(k.VaultName)
	e.str(k.Name)
	e.str(k.CurrentVersion)
	return e.b
}

// SealKey sets k.MAC: two seals, one over the key's state (names, type,
// size, deleted and scheduled-purge dates), one over its current version.
func (r *RecordKey) SealKey(k *keyhold.Key) {
	k.MAC = append(r.mac(labelKeyState, keyStateEncoding(k)), r.mac(labelKeyCurrent, keyCurrentEncoding(k))...)
}

// twoSeals splits a MAC that holds two seals, as keys' (state, current
// version) and vaults' (state, access) do. A MAC of one seal, as a vault
// sealed before its access was, gives that seal first and nil second;
// any other length fails both checks.
func twoSeals(mac []byte) (first, second []byte) {
	if len(mac) != 2*recordSealSize {
		return mac, nil
	}
	return mac[:recordSealSize], mac[recordSealSize:]
}

// CheckKeyState returns keyhold.CodeRecordIntegrity unless k's state
// (names, type, size, deletion) is as SealKey sealed it. It does not
// check the current version: an operation on a named version needs only
// this.
func (r *RecordKey) CheckKeyState(k *keyhold.Key) error {
	state, _ := twoSeals(k.MAC)
	return r.check(labelKeyState, keyStateEncoding(k), state, fmt.Sprintf("key %s in vault %s", k.Name, k.VaultName))
}

// CheckKey is CheckKeyState and also checks k.CurrentVersion: for every
// use of the key's current version.
func (r *RecordKey) CheckKey(k *keyhold.Key) error {
	if err := r.CheckKeyState(k); err != nil {
		return err
	}
	_, current := twoSeals(k.MAC)
	return r.check(labelKeyCurrent, keyCurrentEncoding(k), current,
		fmt.Sprintf("the current version (%q) of key %s in vault %s", k.CurrentVersion, k.Name, k.VaultName))
}

func vaultEncoding(v *keyhold.Vault) []byte {
	var e recordEncoder
	e.str(v.Name)
	e.str(v.SubscriptionID)
	e.str(v.TenantID)
	e.int(int64(v.SoftDeleteRetentionDays))
	e.bool(v.EnablePurgeProtection)
	e.time(v.DeletedAt)
	e.time(v.ScheduledPurgeAt)
	return e.b
}

// SealVault sets v.MAC: two seals, one over the vault's name,
// subscription, tenant, soft-delete retention, purge protection, and
// deleted and scheduled-purge dates (what customer-managed keys rely on),
// one over who may use its keys (see SealVaultAccess in access.go).
func (r *RecordKey) SealVault(v *keyhold.Vault) {
	v.MAC = append(r.mac(labelVault, vaultEncoding(v)), r.mac(labelVaultAccess, vaultAccessEncoding(v))...)
}

// CheckVault returns keyhold.CodeRecordIntegrity unless v's state is as
// SealVault sealed it. It does not check who may use its keys:
// CheckVaultAccess does.
func (r *RecordKey) CheckVault(v *keyhold.Vault) error {
	state, _ := twoSeals(v.MAC)
	return r.check(labelVault, vaultEncoding(v), state, "vault "+v.Name)
}

func policyEncoding(p *keyhold.EnterprisePolicy) []byte {
	var e recordEncoder
	e.str(p.SubscriptionID)
	e.str(p.ResourceGroup)
	e.str(p.Name)
	e.str(p.Kind)
	e.str(p.TenantID)
	e.str(p.SystemID)
	e.str(p.PrincipalID)
	e.str(p.KeyVaultID)
	e.str(p.KeyName)
	e.str(p.KeyVersion)
	if x := p.External; x != nil {
		e.str(x.URI)
		e.str(x.TenantID)
		e.str(x.ClientID)
		e.str(x.AuthorityHost)
	}
	return e.b
}

// policyLabel separates the seals of policies naming an external vault
// from the others: a built-in policy's seal never verifies one naming an
// external vault, and the seals made before issue 13 stay valid.
func policyLabel(p *keyhold.EnterprisePolicy) string {
	if p.External != nil {
		return labelPolicyExternal
	}
	return labelPolicy
}

// SealPolicy sets p.MAC: it covers the policy's binding to its key (its
// id, kind, tenant, systemId, managed identity, keyVaultId, key name and
// key version, and an external vault's URI, tenant, app and authority),
// not its health or tags.
func (r *RecordKey) SealPolicy(p *keyhold.EnterprisePolicy) {
	p.MAC = r.mac(policyLabel(p), policyEncoding(p))
}

// CheckPolicy returns keyhold.CodeRecordIntegrity unless p.MAC is
// SealPolicy's seal of p.
func (r *RecordKey) CheckPolicy(p *keyhold.EnterprisePolicy) error {
	return r.check(policyLabel(p), policyEncoding(p), p.MAC, "enterprise policy "+p.ID())
}
