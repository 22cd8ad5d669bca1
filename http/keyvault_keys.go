package http

import (
	"encoding/base64"
	"math/big"
	nethttp "net/http"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// The Azure Key Vault data plane, under each vault's URI, in the shapes
// azkeys' models marshal and unmarshal: dates are Unix seconds, byte
// strings base64url without padding. Its errors are Key Vault's codes
// (BadParameter for a body that can't be used, as Key Vault answers).

// Examples quoted by the data plane's decoding errors.
const (
	exampleCreateKey      = `{"kty":"RSA","key_size":3072,"key_ops":["wrapKey","unwrapKey"]}`
	exampleImportBlob     = `{"key":{"kty":"RSA-HSM","key_hsm":"<base64url of the .byok file>"}}`
	exampleImportKey      = `{"key":{"kty":"RSA","n":"…","e":"AQAB","d":"…","p":"…","q":"…","dp":"…","dq":"…","qi":"…"}}`
	exampleUpdateKey      = `{"attributes":{"enabled":false}}`
	exampleKeyOperation   = `{"alg":"RSA-OAEP-256","value":"<base64url>"}`
	exampleRotationPolicy = `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P1Y"}}`
)

// Recovery levels, as Key Vault reports them in a key's attributes: keys
// of a vault with purge protection are only levelRecoverable; "Customized"
// when the vault keeps deleted items for less than 90 days.
const (
	levelRecoverable = "Recoverable"
	levelCustomized  = "CustomizedRecoverable"
	levelPurgeable   = "+Purgeable"
)

// recoveryLevel returns the recoveryLevel and recoverableDays of the keys
// of v.
func recoveryLevel(v *keyhold.Vault) (string, int) {
	if v == nil {
		return levelRecoverable + levelPurgeable, keyhold.DefaultSoftDeleteRetentionDays
	}
	level := levelRecoverable
	if v.SoftDeleteRetentionDays < keyhold.MaxSoftDeleteRetentionDays {
		level = levelCustomized
	}
	if !v.EnablePurgeProtection {
		level += levelPurgeable
	}
	return level, v.SoftDeleteRetentionDays
}

// jwkJSON is the public part of a key as a JSON web key (azkeys.JSONWebKey).
type jwkJSON struct {
	KID    string   `json:"kid"`
	Kty    string   `json:"kty"`
	KeyOps []string `json:"key_ops"`
	N      string   `json:"n"`
	E      string   `json:"e"`
}

// keyAttrsJSON are a key version's attributes (azkeys.KeyAttributes).
type keyAttrsJSON struct {
	Enabled         bool   `json:"enabled"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         *int64 `json:"created,omitempty"`
	Updated         *int64 `json:"updated,omitempty"`
	RecoveryLevel   string `json:"recoveryLevel"`
	RecoverableDays int    `json:"recoverableDays"`
	Exportable      bool   `json:"exportable"`
}

// keyBundleJSON is a key version (azkeys.KeyBundle), or, with the
// deletion fields, a deleted key (azkeys.DeletedKey).
type keyBundleJSON struct {
	Key                jwkJSON           `json:"key"`
	Attributes         keyAttrsJSON      `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
}

// keyItemJSON is a key in a listing (azkeys.KeyProperties, or
// azkeys.DeletedKeyProperties with the deletion fields).
type keyItemJSON struct {
	KID                string            `json:"kid"`
	Attributes         keyAttrsJSON      `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func keyAttrs(r *nethttp.Request, kv *keyhold.KeyVersion) keyAttrsJSON {
	level, days := recoveryLevel(requestVault(r))
	return keyAttrsJSON{
		Enabled: kv.Enabled, NotBefore: unixTime(kv.NotBefore), Expires: unixTime(kv.Expires),
		Created: unixTime(kv.CreatedAt), Updated: unixTime(kv.UpdatedAt),
		RecoveryLevel: level, RecoverableDays: days,
	}
}

func toKeyBundleJSON(r *nethttp.Request, b *keyhold.KeyBundle) keyBundleJSON {
	kv := b.Version
	out := keyBundleJSON{
		Key:        jwkJSON{KID: b.KID, Kty: kv.Type, KeyOps: kv.KeyOps, N: b64url(kv.N), E: b64url(big.NewInt(int64(kv.E)).Bytes())},
		Attributes: keyAttrs(r, kv),
		Tags:       b.Key.Tags,
	}
	if out.Key.KeyOps == nil {
		out.Key.KeyOps = []string{}
	}
	if b.Key.Deleted() {
		out.RecoveryID, out.DeletedDate, out.ScheduledPurgeDate = b.RecoveryID, unixTime(b.Key.DeletedAt), unixTime(b.Key.ScheduledPurgeAt)
	}
	return out
}

// toKeyItemJSON lists a key: with its versionless kid for keys and
// deleted keys, with the version's for versions.
func toKeyItemJSON(r *nethttp.Request, b *keyhold.KeyBundle, versioned bool) keyItemJSON {
	kid := b.KID
	if !versioned {
		kid = strings.TrimSuffix(kid, "/"+b.Version.Version)
	}
	out := keyItemJSON{KID: kid, Attributes: keyAttrs(r, b.Version), Tags: b.Key.Tags}
	if b.Key.Deleted() {
		out.RecoveryID, out.DeletedDate, out.ScheduledPurgeDate = b.RecoveryID, unixTime(b.Key.DeletedAt), unixTime(b.Key.ScheduledPurgeAt)
	}
	return out
}

// decodeKeyVault decodes a data-plane body; Key Vault answers a body it
// can't read with BadParameter.
func decodeKeyVault(r *nethttp.Request, v any, example string) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeKeyVaultBody(body, v, example)
}

// decodeKeyVaultBody is decodeKeyVault of a body already read.
func decodeKeyVaultBody(body []byte, v any, example string) error {
	if err := decodeJSON(body, v, example); err != nil {
		if e, ok := err.(*keyhold.Error); ok && e.Code == keyhold.CodeInvalidRequestContent {
			return &keyhold.Error{Code: keyhold.CodeBadParameter, Message: e.Message}
		}
		return err
	}
	return nil
}

// fromB64 decodes a base64url field, with or without padding (standard
// base64 is accepted too, as Key Vault does).
func fromB64URL(field, s string) ([]byte, error) {
	t := strings.TrimRight(s, "=")
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(t)
	}
	if err != nil {
		return nil, keyhold.Errorf(keyhold.CodeBadParameter, "%s is not base64url: %v; encode the bytes as base64url (RFC 4648, section 5)", field, err)
	}
	return b, nil
}

// keyAttrsInJSON are the settable attributes in a request.
type keyAttrsInJSON struct {
	Enabled    *bool  `json:"enabled"`
	NotBefore  *int64 `json:"nbf"`
	Expires    *int64 `json:"exp"`
	Exportable *bool  `json:"exportable"`
}

func (a *keyAttrsInJSON) attributes() (keyhold.KeyAttributes, error) {
	var out keyhold.KeyAttributes
	if a == nil {
		return out, nil
	}
	if a.Exportable != nil && *a.Exportable {
		return out, keyhold.Errorf(keyhold.CodeNotSupported, "attributes.exportable is not supported: key material never leaves Keyhold's vault; leave it out or false")
	}
	out.Enabled = a.Enabled
	if a.NotBefore != nil {
		t := time.Unix(*a.NotBefore, 0).UTC()
		out.NotBefore = &t
	}
	if a.Expires != nil {
		t := time.Unix(*a.Expires, 0).UTC()
		out.Expires = &t
	}
	return out, nil
}

// keyPath returns the vault, key name and version ("" if none) of a
// data-plane request.
func keyPath(r *nethttp.Request) (vaultName, name, version string) {
	return r.PathValue("vault"), r.PathValue("name"), r.PathValue("version")
}

// createKey: POST /vaults/{vault}/keys/{name}/create.
func (s *Server) createKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var in struct {
		Kty            string            `json:"kty"`
		KeySize        *int              `json:"key_size"`
		KeyOps         []string          `json:"key_ops"`
		Attributes     *keyAttrsInJSON   `json:"attributes"`
		Tags           map[string]string `json:"tags"`
		PublicExponent *int              `json:"public_exponent"`
		Curve          *string           `json:"crv"`
		ReleasePolicy  any               `json:"release_policy"`
	}
	if err := decodeKeyVault(r, &in, exampleCreateKey); err != nil {
		return err
	}
	if in.Kty == "" {
		return keyhold.Errorf(keyhold.CodeBadParameter, "kty is missing: use RSA or RSA-HSM, as in %s", exampleCreateKey)
	}
	if in.PublicExponent != nil && *in.PublicExponent != 65537 {
		return keyhold.Errorf(keyhold.CodeBadParameter, "public_exponent %d is not supported: use 65537, or leave it out", *in.PublicExponent)
	}
	if in.Curve != nil {
		return keyhold.Errorf(keyhold.CodeBadParameter, "crv is not valid for an RSA key: leave it out (elliptic-curve keys are not supported)")
	}
	if in.ReleasePolicy != nil {
		return keyhold.Errorf(keyhold.CodeNotSupported, "release_policy is not supported: Keyhold keys are never exportable; leave it out")
	}
	attrs, err := in.Attributes.attributes()
	if err != nil {
		return err
	}
	p := keyhold.CreateKeyParams{Type: in.Kty, KeyOps: in.KeyOps, Attributes: attrs, Tags: in.Tags}
	if in.KeySize != nil {
		if *in.KeySize == 0 {
			return keyhold.Errorf(keyhold.CodeBadParameter, "key_size 0 is not supported: use 2048, 3072 or 4096")
		}
		p.Size = *in.KeySize
	}
	vaultName, name, _ := keyPath(r)
	b, err := s.keysFor(r).CreateKey(r.Context(), vaultName, name, p)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toKeyBundleJSON(r, b))
	return nil
}

// importKey: PUT /vaults/{vault}/keys/{name}.
func (s *Server) importKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var in struct {
		Key *struct {
			Kty    string   `json:"kty"`
			KeyOps []string `json:"key_ops"`
			N      string   `json:"n"`
			E      string   `json:"e"`
			D      string   `json:"d"`
			P      string   `json:"p"`
			Q      string   `json:"q"`
			DP     string   `json:"dp"`
			DQ     string   `json:"dq"`
			QI     string   `json:"qi"`
			K      string   `json:"k"`
			Crv    string   `json:"crv"`
			// HSM is a BYOK key-transfer blob (the .byok file),
			// base64url: the key wrapped to a key exchange key.
			HSM string `json:"key_hsm"`
		} `json:"key"`
		HSM           *bool             `json:"Hsm"`
		Attributes    *keyAttrsInJSON   `json:"attributes"`
		Tags          map[string]string `json:"tags"`
		ReleasePolicy any               `json:"release_policy"`
	}
	if err := decodeKeyVault(r, &in, exampleImportKey); err != nil {
		return err
	}
	k := in.Key
	if k == nil {
		return keyhold.Errorf(keyhold.CodeBadParameter, "the request has no key: send the RSA private key as a JSON web key, as in %s", exampleImportKey)
	}
	if k.K != "" || k.Crv != "" {
		return keyhold.Errorf(keyhold.CodeBadParameter, "key %q is not an RSA key: import an RSA private key (kty RSA or RSA-HSM with n, e, d, p and q)", keyhold.Clip(k.Kty))
	}
	if in.ReleasePolicy != nil {
		return keyhold.Errorf(keyhold.CodeNotSupported, "release_policy is not supported: Keyhold keys are never exportable; leave it out")
	}
	jwk := keyhold.JSONWebKey{Kty: k.Kty, KeyOps: k.KeyOps}
	if k.HSM != "" {
		return s.importTransferBlob(w, r, jwk, k.HSM, k.N != "" || k.D != "" || k.P != "" || k.Q != "", in.Attributes, in.Tags)
	}
	for _, f := range []struct {
		name string
		in   string
		out  *[]byte
		req  bool
	}{
		{"key.n", k.N, &jwk.N, true}, {"key.e", k.E, &jwk.E, true}, {"key.d", k.D, &jwk.D, true},
		{"key.p", k.P, &jwk.P, true}, {"key.q", k.Q, &jwk.Q, true},
		{"key.dp", k.DP, &jwk.DP, false}, {"key.dq", k.DQ, &jwk.DQ, false}, {"key.qi", k.QI, &jwk.QI, false},
	} {
		if f.in == "" {
			if f.req {
				return keyhold.Errorf(keyhold.CodeBadParameter, "%s is missing: an imported RSA key needs n, e, d, p and q, each base64url", f.name)
			}
			continue
		}
		b, err := fromB64URL(f.name, f.in)
		if err != nil {
			return err
		}
		*f.out = b
	}
	attrs, err := in.Attributes.attributes()
	if err != nil {
		return err
	}
	vaultName, name, _ := keyPath(r)
	b, err := s.keysFor(r).ImportKey(r.Context(), vaultName, name, jwk, in.HSM != nil && *in.HSM, attrs, in.Tags)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toKeyBundleJSON(r, b))
	return nil
}

// importTransferBlob is importKey for a key-transfer blob (key_hsm):
// Azure Key Vault's import of an HSM-protected key, unwrapped in the
// server's token. The blob replaces the private fields, so a request
// with both is refused.
func (s *Server) importTransferBlob(w nethttp.ResponseWriter, r *nethttp.Request, jwk keyhold.JSONWebKey, blob string, plain bool, inAttrs *keyAttrsInJSON, tags map[string]string) error {
	if plain {
		return keyhold.Errorf(keyhold.CodeBadParameter, "the key has key_hsm and also n, d, p or q: a transfer blob carries the key wrapped, so send key_hsm alone, as in %s", exampleImportBlob)
	}
	b, err := fromB64URL("key.key_hsm", blob)
	if err != nil {
		return err
	}
	jwk.HSM = b
	attrs, err := inAttrs.attributes()
	if err != nil {
		return err
	}
	vaultName, name, _ := keyPath(r)
	kb, err := s.KeyVault.Vaults.ImportKey(r.Context(), vaultName, name, jwk, true, attrs, tags)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toKeyBundleJSON(r, kb))
	return nil
}

// getKey: GET /vaults/{vault}/keys/{name}[/{version}].
func (s *Server) getKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	vaultName, name, version := keyPath(r)
	b, err := s.keysFor(r).GetKey(r.Context(), vaultName, name, version)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toKeyBundleJSON(r, b))
	return nil
}

// listKeys: GET /vaults/{vault}/keys. Everything comes in one page.
func (s *Server) listKeys(w nethttp.ResponseWriter, r *nethttp.Request) error {
	bs, err := s.keysFor(r).ListKeys(r.Context(), r.PathValue("vault"))
	return s.writeKeyList(w, r, bs, err, false)
}

// listKeyVersions: GET /vaults/{vault}/keys/{name}/versions.
func (s *Server) listKeyVersions(w nethttp.ResponseWriter, r *nethttp.Request) error {
	vaultName, name, _ := keyPath(r)
	bs, err := s.keysFor(r).ListKeyVersions(r.Context(), vaultName, name)
	return s.writeKeyList(w, r, bs, err, true)
}

// listDeletedKeys: GET /vaults/{vault}/deletedkeys.
func (s *Server) listDeletedKeys(w nethttp.ResponseWriter, r *nethttp.Request) error {
	bs, err := s.keysFor(r).ListDeletedKeys(r.Context(), r.PathValue("vault"))
	return s.writeKeyList(w, r, bs, err, false)
}

func (s *Server) writeKeyList(w nethttp.ResponseWriter, r *nethttp.Request, bs []*keyhold.KeyBundle, err error, versioned bool) error {
	if err != nil {
		return err
	}
	out := struct {
		Value    []keyItemJSON `json:"value"`
		NextLink *string       `json:"nextLink"`
	}{Value: make([]keyItemJSON, 0, len(bs))}
	for _, b := range bs {
		out.Value = append(out.Value, toKeyItemJSON(r, b, versioned))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// updateKey: PATCH /vaults/{vault}/keys/{name}[/{version}].
func (s *Server) updateKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var in struct {
		KeyOps        []string          `json:"key_ops"`
		Attributes    *keyAttrsInJSON   `json:"attributes"`
		Tags          map[string]string `json:"tags"`
		ReleasePolicy any               `json:"release_policy"`
	}
	if err := decodeKeyVault(r, &in, exampleUpdateKey); err != nil {
		return err
	}
	if in.ReleasePolicy != nil {
		return keyhold.Errorf(keyhold.CodeNotSupported, "release_policy is not supported: Keyhold keys are never exportable; leave it out")
	}
	attrs, err := in.Attributes.attributes()
	if err != nil {
		return err
	}
	vaultName, name, version := keyPath(r)
	b, err := s.keysFor(r).UpdateKey(r.Context(), vaultName, name, version, attrs, in.KeyOps, in.Tags)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toKeyBundleJSON(r, b))
	return nil
}

// keyOperationJSON is the answer of wrapkey and unwrapkey
// (azkeys.KeyOperationResult).
type keyOperationJSON struct {
	KID   string `json:"kid"`
	Value string `json:"value"`
}

// keyOperation decodes the body of wrapkey and unwrapkey.
func keyOperation(r *nethttp.Request) (alg string, value []byte, err error) {
	var in struct {
		Alg   string  `json:"alg"`
		Value *string `json:"value"`
	}
	if err := decodeKeyVault(r, &in, exampleKeyOperation); err != nil {
		return "", nil, err
	}
	if in.Alg == "" {
		return "", nil, keyhold.Errorf(keyhold.CodeBadParameter, "alg is missing: use RSA-OAEP-256 (or RSA-OAEP), as in %s", exampleKeyOperation)
	}
	if in.Value == nil {
		return "", nil, keyhold.Errorf(keyhold.CodeBadParameter, "value is missing: send the bytes as base64url, as in %s", exampleKeyOperation)
	}
	value, err = fromB64URL("value", *in.Value)
	return in.Alg, value, err
}

// wrapKey: POST /vaults/{vault}/keys/{name}[/{version}]/wrapkey.
func (s *Server) wrapKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	alg, value, err := keyOperation(r)
	if err != nil {
		return err
	}
	vaultName, name, version := keyPath(r)
	kid, result, err := s.keysFor(r).WrapKey(r.Context(), vaultName, name, version, alg, value)
	clear(value)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, keyOperationJSON{KID: kid, Value: b64url(result)})
	return nil
}

// unwrapKey: POST /vaults/{vault}/keys/{name}[/{version}]/unwrapkey.
func (s *Server) unwrapKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	alg, value, err := keyOperation(r)
	if err != nil {
		return err
	}
	vaultName, name, version := keyPath(r)
	kid, result, err := s.keysFor(r).UnwrapKey(r.Context(), vaultName, name, version, alg, value)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, keyOperationJSON{KID: kid, Value: b64url(result)})
	clear(result)
	return nil
}

// rotateKey: POST /vaults/{vault}/keys/{name}/rotate.
func (s *Server) rotateKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	vaultName, name, _ := keyPath(r)
	b, err := s.keysFor(r).RotateKey(r.Context(), vaultName, name)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toKeyBundleJSON(r, b))
	return nil
}

// rotationPolicyJSON is a key's rotation policy (azkeys.KeyRotationPolicy).
type rotationPolicyJSON struct {
	ID              string               `json:"id,omitempty"`
	LifetimeActions []lifetimeActionJSON `json:"lifetimeActions"`
	Attributes      *rotationAttrsJSON   `json:"attributes,omitempty"`
}

type lifetimeActionJSON struct {
	Trigger *struct {
		TimeAfterCreate  string `json:"timeAfterCreate,omitempty"`
		TimeBeforeExpiry string `json:"timeBeforeExpiry,omitempty"`
	} `json:"trigger"`
	Action *struct {
		Type string `json:"type"`
	} `json:"action"`
}

type rotationAttrsJSON struct {
	ExpiryTime string `json:"expiryTime,omitempty"`
	Created    *int64 `json:"created,omitempty"`
	Updated    *int64 `json:"updated,omitempty"`
}

func toRotationPolicyJSON(id string, p *keyhold.RotationPolicy) rotationPolicyJSON {
	out := rotationPolicyJSON{ID: id, LifetimeActions: []lifetimeActionJSON{},
		Attributes: &rotationAttrsJSON{ExpiryTime: p.ExpiryTime, Created: unixTime(p.CreatedAt), Updated: unixTime(p.UpdatedAt)}}
	for _, a := range p.LifetimeActions {
		var la lifetimeActionJSON
		la.Trigger = &struct {
			TimeAfterCreate  string `json:"timeAfterCreate,omitempty"`
			TimeBeforeExpiry string `json:"timeBeforeExpiry,omitempty"`
		}{a.TimeAfterCreate, a.TimeBeforeExpiry}
		la.Action = &struct {
			Type string `json:"type"`
		}{a.Action}
		out.LifetimeActions = append(out.LifetimeActions, la)
	}
	return out
}

// rotationPolicyID is the id Key Vault gives a key's rotation policy.
func (s *Server) rotationPolicyID(r *nethttp.Request) string {
	vaultName, name, _ := keyPath(r)
	if v := requestVault(r); v != nil {
		vaultName = v.Name
	}
	return s.vaultAddress(r).VaultURI(vaultName) + "/keys/" + name + "/rotationpolicy"
}

// getRotationPolicy: GET /vaults/{vault}/keys/{name}/rotationpolicy.
func (s *Server) getRotationPolicy(w nethttp.ResponseWriter, r *nethttp.Request) error {
	vaultName, name, _ := keyPath(r)
	p, err := s.keysFor(r).GetRotationPolicy(r.Context(), vaultName, name)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toRotationPolicyJSON(s.rotationPolicyID(r), p))
	return nil
}

// rotationPolicyFields are the fields a rotation policy PUT may hold: those
// of azkeys.KeyRotationPolicy. id and the attributes' created and updated
// are the server's, taken and ignored so that a policy read can be put
// back as it is. Anything else is refused: a PUT replaces the whole
// policy, so a misspelt field would silently clear what it meant to set.
var rotationPolicyFields = jsonFields{
	"id":         nil,
	"attributes": {"expiryTime": nil, "created": nil, "updated": nil},
	"lifetimeActions": {
		"trigger": {"timeAfterCreate": nil, "timeBeforeExpiry": nil},
		"action":  {"type": nil},
	},
}

// setRotationPolicy: PUT /vaults/{vault}/keys/{name}/rotationpolicy. The
// body is read strictly: an unknown field, a value of the wrong type or a
// duration that is not ISO 8601 is BadParameter naming the field, and the
// stored policy stays as it was.
func (s *Server) setRotationPolicy(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in rotationPolicyJSON
	if err := decodeKeyVaultBody(body, &in, exampleRotationPolicy); err != nil {
		return err
	}
	if err := CheckRotationPolicyFields(body); err != nil {
		return err
	}
	p := &keyhold.RotationPolicy{LifetimeActions: []keyhold.LifetimeAction{}}
	if in.Attributes != nil {
		p.ExpiryTime = in.Attributes.ExpiryTime
	}
	for i, a := range in.LifetimeActions {
		if a.Action == nil || a.Action.Type == "" {
			return keyhold.Errorf(keyhold.CodeBadParameter, "lifetimeActions[%d].action.type is missing: use Rotate or Notify, as in %s", i, exampleRotationPolicy)
		}
		if a.Trigger == nil {
			return keyhold.Errorf(keyhold.CodeBadParameter, "lifetimeActions[%d].trigger is missing: give timeAfterCreate or timeBeforeExpiry, as in %s", i, exampleRotationPolicy)
		}
		p.LifetimeActions = append(p.LifetimeActions, keyhold.LifetimeAction{Action: a.Action.Type,
			TimeAfterCreate: a.Trigger.TimeAfterCreate, TimeBeforeExpiry: a.Trigger.TimeBeforeExpiry})
	}
	vaultName, name, _ := keyPath(r)
	out, err := s.keysFor(r).SetRotationPolicy(r.Context(), vaultName, name, p)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toRotationPolicyJSON(s.rotationPolicyID(r), out))
	return nil
}

// deleteKey: DELETE /vaults/{vault}/keys/{name} soft-deletes the key and
// answers it as a deleted key.
func (s *Server) deleteKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	vaultName, name, _ := keyPath(r)
	b, err := s.keysFor(r).DeleteKey(r.Context(), vaultName, name)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toKeyBundleJSON(r, b))
	return nil
}

// getDeletedKey: GET /vaults/{vault}/deletedkeys/{name}.
func (s *Server) getDeletedKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	vaultName, name, _ := keyPath(r)
	b, err := s.keysFor(r).GetDeletedKey(r.Context(), vaultName, name)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toKeyBundleJSON(r, b))
	return nil
}

// recoverDeletedKey: POST /vaults/{vault}/deletedkeys/{name}/recover.
func (s *Server) recoverDeletedKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	vaultName, name, _ := keyPath(r)
	b, err := s.keysFor(r).RecoverDeletedKey(r.Context(), vaultName, name)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toKeyBundleJSON(r, b))
	return nil
}

// purgeDeletedKey: DELETE /vaults/{vault}/deletedkeys/{name} answers 204.
func (s *Server) purgeDeletedKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	vaultName, name, _ := keyPath(r)
	if err := s.keysFor(r).PurgeDeletedKey(r.Context(), vaultName, name); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusNoContent)
	return nil
}
