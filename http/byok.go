package http

// The tenant's legacy BYOK keys (keyhold.BYOKService, issue 14), in the
// shape of the Power Platform admin API, under the tenant's admin scope:
//
//	GET  /providers/Microsoft.BusinessAppPlatform/scopes/admin/byokKeys                  200 {"value":[…]}
//	POST /providers/Microsoft.BusinessAppPlatform/scopes/admin/byokKeys                  201 the key
//	     {"jwk":{"kty":"RSA","n":…,"e":…,"d":…,"p":…,"q":…}}      upload an RSA private key
//	     {"pfx":"<base64>","password":"…"}                         upload a PKCS #12 file
//	     {"generate":true,"keySize":2048}                          have Keyhold generate one
//	     {"transferBlob":"<base64url>"}                            a key-transfer blob (byok_transfer.go)
//	POST /providers/Microsoft.BusinessAppPlatform/scopes/admin/byokKeys/{keyId}/activate 200 the key
//
// The tenant is the caller's. A key is shown by id, state (Installing,
// Active, Available), size, source and RFC 7638 thumbprint; its material
// is never sent back. The routes are served while s.BYOK is set.

import (
	"context"
	"encoding/base64"
	nethttp "net/http"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

const (
	byokPath     = bapPrefix + "/scopes/admin/byokKeys"
	maxBYOKBody  = 64 << 10
	exampleBYOK  = `{"jwk":{"kty":"RSA","n":"…","e":"AQAB","d":"…","p":"…","q":"…"}}, {"pfx":"<base64>","password":"…"}, {"transferBlob":"<base64url of the .byok file>"} or {"generate":true,"keySize":2048}`
	activateBYOK = "activate"
	// byokAction is the last segment of the route that moves an
	// environment under the tenant's BYOK key.
	byokAction     = "byok"
	byokTenantPath = bapPrefix + "/scopes/admin/byok"
	exampleUnlock  = `{"jwk":{…}}, {"pfx":"<base64>","password":"…"} or {"transferBlob":"<base64url>"}: the tenant's Active BYOK key`
)

// byokRoutes declares the BYOK key routes; none while s.BYOK is nil.
func (s *Server) byokRoutes() []route {
	if s.BYOK == nil {
		return nil
	}
	admin := []keyhold.Audience{keyhold.AudiencePowerApps, keyhold.AudienceManagement}
	return []route{
		{Method: "GET", Pattern: byokPath, Auth: admin, Timeout: apiTimeout, Handler: s.listBYOKKeys},
		{Method: "POST", Pattern: byokPath, Auth: admin, Body: bodyJSON, MaxBody: maxBYOKBody, Timeout: apiTimeout, Handler: s.addBYOKKey},
		{Method: "POST", Pattern: byokPath + "/{keyId}/" + activateBYOK, Auth: admin, Timeout: apiTimeout, Handler: s.activateBYOKKey},
		{Method: "POST", Pattern: adminEnvPrefix + "/{envId}/" + byokAction, Auth: admin, Timeout: apiTimeout, Handler: s.applyBYOK},
		{Method: "POST", Pattern: byokTenantPath + "/lock", Auth: admin, Timeout: apiTimeout, Handler: s.lockBYOK},
		{Method: "POST", Pattern: byokTenantPath + "/remove", Auth: admin, Timeout: apiTimeout, Handler: s.removeBYOK},
		{Method: "POST", Pattern: byokTenantPath + "/unlock", Auth: admin, Body: bodyJSON, MaxBody: maxBYOKBody, Timeout: apiTimeout, Handler: s.unlockBYOK},
	}
}

// byokKeyJSON is a BYOK key as the routes show it.
type byokKeyJSON struct {
	ID          string     `json:"id"`
	TenantID    string     `json:"tenantId"`
	State       string     `json:"state"`
	Source      string     `json:"source"`
	KeySize     int        `json:"keySize"`
	Thumbprint  string     `json:"thumbprint"`
	CreatedBy   string     `json:"createdBy"`
	CreatedTime time.Time  `json:"createdTime"`
	Activated   *time.Time `json:"activatedTime,omitempty"`
	// RewrapOperation is the operation an activation started (its id).
	RewrapOperation string `json:"rewrapOperationId,omitempty"`
}

func toBYOKKeyJSON(k *keyhold.BYOKKey) byokKeyJSON {
	j := byokKeyJSON{ID: k.ID, TenantID: k.TenantID, State: string(k.State), Source: string(k.Source), KeySize: k.Size,
		Thumbprint: k.Thumbprint, CreatedBy: k.CreatedBy, CreatedTime: k.CreatedAt.UTC(), RewrapOperation: k.RewrapOperationID}
	if !k.ActivatedAt.IsZero() {
		t := k.ActivatedAt.UTC()
		j.Activated = &t
	}
	return j
}

func (j byokKeyJSON) key() *keyhold.BYOKKey {
	k := &keyhold.BYOKKey{ID: j.ID, TenantID: j.TenantID, State: keyhold.BYOKKeyState(j.State), Source: keyhold.BYOKKeySource(j.Source),
		Size: j.KeySize, Thumbprint: j.Thumbprint, CreatedBy: j.CreatedBy, CreatedAt: j.CreatedTime, RewrapOperationID: j.RewrapOperation}
	if j.Activated != nil {
		k.ActivatedAt = *j.Activated
	}
	return k
}

// byokJWKJSON is an RSA private key as a JSON web key (base64url fields).
type byokJWKJSON struct {
	Kty string `json:"kty"`
	N   string `json:"n"`
	E   string `json:"e"`
	D   string `json:"d,omitempty"`
	P   string `json:"p,omitempty"`
	Q   string `json:"q,omitempty"`
	DP  string `json:"dp,omitempty"`
	DQ  string `json:"dq,omitempty"`
	QI  string `json:"qi,omitempty"`
}

// byokAddJSON is the body of POST …/byokKeys.
type byokAddJSON struct {
	JWK      *byokJWKJSON `json:"jwk,omitempty"`
	PFX      *string      `json:"pfx,omitempty"`
	Password *string      `json:"password,omitempty"`
	Generate *bool        `json:"generate,omitempty"`
	KeySize  *int         `json:"keySize,omitempty"`
	// Transfer is a key-transfer blob (the .byok file's bytes, base64url)
	// wrapped to the tenant's KEK: byok_transfer.go.
	Transfer *string `json:"transferBlob,omitempty"`
}

// listBYOKKeys: GET …/scopes/admin/byokKeys.
func (s *Server) listBYOKKeys(w nethttp.ResponseWriter, r *nethttp.Request) error {
	ks, err := s.BYOK.ListBYOKKeys(r.Context())
	if err != nil {
		return err
	}
	out := listJSON[byokKeyJSON]{Value: make([]byokKeyJSON, 0, len(ks))}
	for _, k := range ks {
		out.Value = append(out.Value, toBYOKKeyJSON(k))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// addBYOKKey: POST …/scopes/admin/byokKeys, 201.
func (s *Server) addBYOKKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in byokAddJSON
	if err := decodeKnown(body, &in, exampleBYOK, "jwk", "pfx", "password", "generate", "keySize", "transferBlob"); err != nil {
		return err
	}
	var k *keyhold.BYOKKey
	generate := in.Generate != nil && *in.Generate
	switch {
	case generate && (in.JWK != nil || in.PFX != nil || in.Password != nil || in.Transfer != nil):
		return keyhold.Errorf(keyhold.CodeBadRequest, "generate was asked with a key to upload: send either generate (and keySize) or a key, as in %s", exampleBYOK)
	case generate:
		size := 0
		if in.KeySize != nil {
			size = *in.KeySize
		}
		k, err = s.BYOK.GenerateBYOKKey(r.Context(), size)
	case in.KeySize != nil:
		return keyhold.Errorf(keyhold.CodeBadRequest, "keySize is only for a generated key: an uploaded key has its own size; leave keySize out, or send generate: true")
	default:
		up, err := in.upload()
		if err != nil {
			return err
		}
		k, err = s.BYOK.UploadBYOKKey(r.Context(), up)
		if err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", s.baseURL(r)+byokPath+"/"+k.ID)
	writeJSON(w, nethttp.StatusCreated, toBYOKKeyJSON(k))
	return nil
}

// upload decodes the key fields of in.
func (in *byokAddJSON) upload() (keyhold.BYOKUpload, error) {
	var up keyhold.BYOKUpload
	if in.Password != nil {
		up.Password = *in.Password
	}
	if in.PFX != nil {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(*in.PFX))
		if err != nil {
			return up, keyhold.Errorf(keyhold.CodeBadRequest, "pfx is not base64: encode the PKCS #12 file's bytes with standard base64 (RFC 4648, section 4)")
		}
		up.PFX = b
	}
	if in.Transfer != nil {
		b, err := fromB64URL("transferBlob", strings.TrimSpace(*in.Transfer))
		if err != nil {
			return up, keyhold.Errorf(keyhold.CodeBadRequest, "%s", keyhold.ErrorMessage(err))
		}
		up.Transfer = b
	}
	if j := in.JWK; j != nil {
		jwk := &keyhold.JSONWebKey{Kty: j.Kty}
		for _, f := range []struct {
			name, in string
			out      *[]byte
		}{
			{"jwk.n", j.N, &jwk.N}, {"jwk.e", j.E, &jwk.E}, {"jwk.d", j.D, &jwk.D}, {"jwk.p", j.P, &jwk.P},
			{"jwk.q", j.Q, &jwk.Q}, {"jwk.dp", j.DP, &jwk.DP}, {"jwk.dq", j.DQ, &jwk.DQ}, {"jwk.qi", j.QI, &jwk.QI},
		} {
			if f.in == "" {
				continue
			}
			b, err := fromB64URL(f.name, f.in)
			if err != nil {
				return up, err
			}
			*f.out = b
		}
		up.JWK = jwk
	}
	return up, nil
}

// activateBYOKKey: POST …/scopes/admin/byokKeys/{keyId}/activate.
func (s *Server) activateBYOKKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	k, err := s.BYOK.ActivateBYOKKey(r.Context(), r.PathValue("keyId"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toBYOKKeyJSON(k))
	return nil
}

// ListBYOKKeys lists the caller's tenant's BYOK keys, oldest first.
func (c *Client) ListBYOKKeys(ctx context.Context) ([]*keyhold.BYOKKey, error) {
	var out listJSON[byokKeyJSON]
	if _, err := c.mgmt(ctx, "GET", byokPath+"?api-version="+defaultBAPAPIVersion, nil, &out); err != nil {
		return nil, err
	}
	ks := make([]*keyhold.BYOKKey, len(out.Value))
	for i, j := range out.Value {
		ks[i] = j.key()
	}
	return ks, nil
}

// UploadBYOKKey uploads an RSA private key, as a JWK or a PFX with its
// password, as one of the caller's tenant's BYOK keys (Installing).
func (c *Client) UploadBYOKKey(ctx context.Context, up keyhold.BYOKUpload) (*keyhold.BYOKKey, error) {
	return c.addBYOK(ctx, byokUploadJSON(up))
}

// byokUploadJSON is up as the routes take it.
func byokUploadJSON(up keyhold.BYOKUpload) byokAddJSON {
	var in byokAddJSON
	if up.PFX != nil {
		s := base64.StdEncoding.EncodeToString(up.PFX)
		in.PFX = &s
	}
	if up.Password != "" {
		in.Password = &up.Password
	}
	if up.Transfer != nil {
		s := base64.RawURLEncoding.EncodeToString(up.Transfer)
		in.Transfer = &s
	}
	if j := up.JWK; j != nil {
		b64 := base64.RawURLEncoding.EncodeToString
		in.JWK = &byokJWKJSON{Kty: j.Kty, N: b64(j.N), E: b64(j.E), D: b64(j.D), P: b64(j.P), Q: b64(j.Q), DP: b64(j.DP), DQ: b64(j.DQ), QI: b64(j.QI)}
	}
	return in
}

// GenerateBYOKKey has the server generate an RSA key of size bits (0: the
// default) as one of the caller's tenant's BYOK keys (Installing).
func (c *Client) GenerateBYOKKey(ctx context.Context, size int) (*keyhold.BYOKKey, error) {
	t := true
	in := byokAddJSON{Generate: &t}
	if size != 0 {
		in.KeySize = &size
	}
	return c.addBYOK(ctx, in)
}

func (c *Client) addBYOK(ctx context.Context, in byokAddJSON) (*keyhold.BYOKKey, error) {
	var out byokKeyJSON
	if _, err := c.mgmt(ctx, "POST", byokPath+"?api-version="+defaultBAPAPIVersion, in, &out); err != nil {
		return nil, err
	}
	return out.key(), nil
}

// ActivateBYOKKey activates one of the caller's tenant's BYOK keys; the
// Active key becomes Available. At most one activation per 24 hours.
func (c *Client) ActivateBYOKKey(ctx context.Context, id string) (*keyhold.BYOKKey, error) {
	var out byokKeyJSON
	if _, err := c.mgmt(ctx, "POST", byokPath+escape(id, activateBYOK)+"?api-version="+defaultBAPAPIVersion, nil, &out); err != nil {
		return nil, err
	}
	return out.key(), nil
}

var _ keyhold.BYOKService = (*Client)(nil)

// byokEnvsJSON answers a lock or an unlock.
type byokEnvsJSON struct {
	Environments []string `json:"environments"`
}

// applyBYOK: POST …/scopes/admin/environments/{envId}/byok, 200 the
// environment.
func (s *Server) applyBYOK(w nethttp.ResponseWriter, r *nethttp.Request) error {
	e, err := s.BYOK.ApplyBYOK(r.Context(), r.PathValue("envId"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toEnvironmentJSON(e))
	return nil
}

// lockBYOK: POST …/scopes/admin/byok/lock, 200 the disabled environments.
func (s *Server) lockBYOK(w nethttp.ResponseWriter, r *nethttp.Request) error {
	ids, err := s.BYOK.LockBYOKTenant(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, byokEnvsJSON{Environments: ids})
	return nil
}

// unlockBYOK: POST …/scopes/admin/byok/unlock with the key, 200 the
// re-enabled environments.
func (s *Server) unlockBYOK(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in byokAddJSON
	if err := decodeKnown(body, &in, exampleUnlock, "jwk", "pfx", "password", "transferBlob"); err != nil {
		return err
	}
	up, err := in.upload()
	if err != nil {
		return err
	}
	ids, err := s.BYOK.UnlockBYOKTenant(r.Context(), up)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, byokEnvsJSON{Environments: ids})
	return nil
}

// ApplyBYOK moves an environment under the tenant's Active BYOK key.
func (c *Client) ApplyBYOK(ctx context.Context, envID string) (*keyhold.Environment, error) {
	var out environmentJSON
	if _, err := c.mgmt(ctx, "POST", adminEnvPrefix+escape(envID, byokAction)+"?api-version="+defaultBAPAPIVersion, nil, &out); err != nil {
		return nil, err
	}
	return fromEnvironmentJSON(&out), nil
}

// LockBYOKTenant locks the caller's tenant's BYOK key, disabling its BYOK
// environments, and returns their ids.
func (c *Client) LockBYOKTenant(ctx context.Context) ([]string, error) {
	var out byokEnvsJSON
	if _, err := c.mgmt(ctx, "POST", byokTenantPath+"/lock?api-version="+defaultBAPAPIVersion, nil, &out); err != nil {
		return nil, err
	}
	return out.Environments, nil
}

// UnlockBYOKTenant unlocks the caller's tenant with its Active BYOK key,
// and returns the ids of the environments re-enabled.
func (c *Client) UnlockBYOKTenant(ctx context.Context, up keyhold.BYOKUpload) ([]string, error) {
	var out byokEnvsJSON
	if _, err := c.mgmt(ctx, "POST", byokTenantPath+"/unlock?api-version="+defaultBAPAPIVersion, byokUploadJSON(up), &out); err != nil {
		return nil, err
	}
	return out.Environments, nil
}

// removeBYOK: POST …/scopes/admin/byok/remove, 200 the tenant's BYOK
// state.
func (s *Server) removeBYOK(w nethttp.ResponseWriter, r *nethttp.Request) error {
	st, err := s.BYOK.RemoveBYOK(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, st)
	return nil
}

// RemoveBYOK asks to remove BYOK from the caller's tenant after its last
// BYOK environment migrated; it returns when the keys are shredded.
func (c *Client) RemoveBYOK(ctx context.Context) (*keyhold.BYOKTenant, error) {
	var out keyhold.BYOKTenant
	if _, err := c.mgmt(ctx, "POST", byokTenantPath+"/remove?api-version="+defaultBAPAPIVersion, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
