package mhsm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"math/big"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// The security domain. Activation, as Azure's: an administrator downloads
// it with 3 to 10 of their own RSA public keys and a quorum m; the HSM
// draws a 256-bit secret, splits it with Shamir's scheme into one share
// per key (any m restore it), encrypts each share to its key with
// RSA-OAEP-256 and marks itself active, keeping only the secret's
// SHA-256. The download is the only copy of the shares.
//
// Recovery: an administrator uploads at least m shares, decrypted, to a
// new (inactive) HSM; it restores the secret and is activated into that
// domain if the secret is the one of an HSM of the same tenant, live or
// soft-deleted. Keyhold keeps the keys themselves in its PKCS#11 token,
// not under the domain's secret: the domain gates activation and proves
// custody of the quorum, it does not decrypt keys.

// SecurityDomainVersion versions the download's format.
const SecurityDomainVersion = "keyhold-sd/1"

// Bounds of a security domain download.
const (
	minDomainKeys = 3
	maxDomainKeys = 10
	minDomainBits = 2048
	domainSecret  = 32
)

// DownloadSecurityDomain activates an inactive HSM and returns its
// security domain. Refused: an HSM already activated (Conflict: the
// domain is given out once), fewer than 3 or more than 10 keys, a key
// below 2048 bits or given twice, a quorum outside 2..n, a caller without
// the Administrator role.
func (s *Access) DownloadSecurityDomain(ctx context.Context, hsm string, req keyhold.SecurityDomainRequest) (*keyhold.SecurityDomain, error) {
	var out *keyhold.SecurityDomain
	var tenant string
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		out = nil
		h, err := activeHSM(ctx, tx, hsm, true)
		if err != nil {
			return err
		}
		tenant = h.TenantID
		if err := authorize(ctx, tx, h, "/", actSDDownload); err != nil {
			return err
		}
		if h.Activated() {
			return keyhold.Errorf(keyhold.CodeConflict, "Managed HSM %q is already activated: its security domain was downloaded on %s and is given out once; keep that file", h.Name, h.ActivatedAt.Format("2006-01-02T15:04:05Z"))
		}
		pubs, err := checkDomainRequest(req)
		if err != nil {
			return err
		}
		secret := make([]byte, domainSecret)
		rand.Read(secret)
		defer clear(secret)
		shares, err := shamirSplit(secret, len(pubs), req.Quorum)
		if err != nil {
			return err
		}
		sd := &keyhold.SecurityDomain{Version: SecurityDomainVersion, HSM: h.Name, Quorum: req.Quorum}
		for i, sh := range shares {
			x := int(sh[0])
			ct, err := crypt.WrapOAEP(pubs[i], crypt.AlgRSAOAEP256, sh[1:])
			clear(sh)
			if err != nil {
				return err
			}
			sd.Shares = append(sd.Shares, keyhold.SecurityDomainShare{KID: req.Keys[i].KID, X: x, Value: ct})
		}
		sum := sha256.Sum256(secret)
		h.DomainHash, h.ActivatedAt, h.UpdatedAt = sum[:], s.now(), s.now()
		if err := tx.UpdateManagedHSM(ctx, h); err != nil {
			return err
		}
		out = sd
		return nil
	})
	if err := s.audit(ctx, tenant, "managedhsm.securitydomain.download", hsm, err); err != nil {
		return nil, err
	}
	return out, nil
}

// checkDomainRequest checks the keys and quorum of a download.
func checkDomainRequest(req keyhold.SecurityDomainRequest) ([]*rsa.PublicKey, error) {
	bad := func(format string, args ...any) error {
		return keyhold.Errorf(keyhold.CodeBadParameter, format, args...)
	}
	n := len(req.Keys)
	if n < minDomainKeys || n > maxDomainKeys {
		return nil, bad("the security domain needs %d to %d RSA public keys (certificates), one per share holder; %d were given", minDomainKeys, maxDomainKeys, n)
	}
	if req.Quorum < 2 || req.Quorum > n {
		return nil, bad("the quorum %d is out of range: with %d keys give 2 to %d shares needed to restore the domain", req.Quorum, n, n)
	}
	pubs := make([]*rsa.PublicKey, n)
	seen := map[string]bool{}
	for i, k := range req.Keys {
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: k.E}
		if pub.N.BitLen() < minDomainBits || k.E < 3 || k.E%2 == 0 {
			return nil, bad("key %d (%q) is not an RSA public key of at least %d bits: give each share holder's RSA-%d or larger certificate", i, keyhold.Clip(k.KID), minDomainBits, minDomainBits)
		}
		id := strings.ToLower(k.KID) + "|" + pub.N.Text(16)
		if seen[strings.ToLower(k.KID)] || seen[pub.N.Text(16)] {
			return nil, bad("key %d (%q) is given twice: each share goes to a different key", i, keyhold.Clip(k.KID))
		}
		seen[strings.ToLower(k.KID)], seen[pub.N.Text(16)], seen[id] = true, true, true
		pubs[i] = pub
	}
	return pubs, nil
}

// UploadSecurityDomain restores a security domain into an inactive HSM
// from decrypted shares (X and Value each), and activates it. Refused: an
// HSM already activated, shares that repeat or differ in length, and
// shares that restore no domain of an HSM of the tenant (too few of them,
// or altered).
func (s *Access) UploadSecurityDomain(ctx context.Context, hsm string, shares []keyhold.SecurityDomainShare) error {
	var tenant string
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		h, err := activeHSM(ctx, tx, hsm, true)
		if err != nil {
			return err
		}
		tenant = h.TenantID
		if err := authorize(ctx, tx, h, "/", actSDUpload); err != nil {
			return err
		}
		if h.Activated() {
			return keyhold.Errorf(keyhold.CodeConflict, "Managed HSM %q is already activated: upload a security domain to a new HSM only", h.Name)
		}
		if len(shares) < 2 || len(shares) > maxDomainKeys {
			return keyhold.Errorf(keyhold.CodeBadParameter, "%d shares were given: upload the quorum's worth (2 to %d) of decrypted shares", len(shares), maxDomainKeys)
		}
		raw := make([][]byte, len(shares))
		for i, sh := range shares {
			if sh.X < 1 || sh.X > 255 || len(sh.Value) != domainSecret {
				return keyhold.Errorf(keyhold.CodeBadParameter, "share %d is malformed: give x (1 to 255, from the download) and the %d-byte decrypted value", i, domainSecret)
			}
			raw[i] = append([]byte{byte(sh.X)}, sh.Value...)
		}
		secret, err := shamirCombine(raw)
		for _, r := range raw {
			clear(r)
		}
		if err != nil {
			return keyhold.Errorf(keyhold.CodeBadParameter, "the shares do not combine: each x must appear once and every value be %d bytes", domainSecret)
		}
		sum := sha256.Sum256(secret)
		clear(secret)
		hs, err := tx.ListManagedHSMs(ctx, keyhold.VaultFilter{})
		if err != nil {
			return err
		}
		deleted, err := tx.ListManagedHSMs(ctx, keyhold.VaultFilter{Deleted: true})
		if err != nil {
			return err
		}
		found := false
		for _, o := range append(hs, deleted...) {
			if o.TenantID == h.TenantID && len(o.DomainHash) > 0 && subtle.ConstantTimeCompare(o.DomainHash, sum[:]) == 1 {
				found = true
			}
		}
		if !found {
			return keyhold.Errorf(keyhold.CodeBadParameter,
				"the shares restore no security domain of this tenant: upload at least the quorum of shares, decrypted with the share holders' private keys, unaltered")
		}
		h.DomainHash, h.ActivatedAt, h.UpdatedAt = bytes.Clone(sum[:]), s.now(), s.now()
		return tx.UpdateManagedHSM(ctx, h)
	})
	return s.audit(ctx, tenant, "managedhsm.securitydomain.upload", hsm, err)
}
