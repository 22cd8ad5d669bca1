package http

// The tenant's BYOK key-exchange key (keyhold.BYOKKEKService, issue 14),
// beside the other BYOK routes:
//
//	POST /providers/Microsoft.BusinessAppPlatform/scopes/admin/byok/kek  200 the KEK (created, or the tenant's)
//	     {} or {"keySize":3072|4096}
//	GET  /providers/Microsoft.BusinessAppPlatform/scopes/admin/byok/kek  200 the KEK, or 404
//
// The KEK is shown by kid, size, key_ops ["import"] and its public key in
// PEM; its private key stays in the PKCS#11 token. A key wrapped to it is
// uploaded with POST …/byokKeys {"transferBlob":…} (byok.go).

import (
	"context"
	nethttp "net/http"

	"github.com/keyhold/keyhold"
)

const (
	byokKEKPath    = byokTenantPath + "/kek"
	exampleBYOKKEK = `{} or {"keySize":3072}`
)

// byokKEKRoutes declares the KEK routes; none while s.BYOK is nil.
func (s *Server) byokKEKRoutes() []route {
	if s.BYOK == nil {
		return nil
	}
	admin := []keyhold.Audience{keyhold.AudiencePowerApps, keyhold.AudienceManagement}
	return []route{
		{Method: "GET", Pattern: byokKEKPath, Auth: admin, Timeout: apiTimeout, Handler: s.getBYOKKEK},
		{Method: "POST", Pattern: byokKEKPath, Auth: admin, Body: bodyJSON, MaxBody: maxBYOKBody, Timeout: apiTimeout, Handler: s.createBYOKKEK},
	}
}

// byokKEKInJSON is the body of POST …/byok/kek.
type byokKEKInJSON struct {
	KeySize *int `json:"keySize,omitempty"`
}

// createBYOKKEK: POST …/scopes/admin/byok/kek.
func (s *Server) createBYOKKEK(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in byokKEKInJSON
	if len(body) > 0 {
		if err := decodeKnown(body, &in, exampleBYOKKEK, "keySize"); err != nil {
			return err
		}
	}
	size := 0
	if in.KeySize != nil {
		size = *in.KeySize
	}
	k, err := s.BYOK.CreateBYOKKEK(r.Context(), size)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, k)
	return nil
}

// getBYOKKEK: GET …/scopes/admin/byok/kek.
func (s *Server) getBYOKKEK(w nethttp.ResponseWriter, r *nethttp.Request) error {
	k, err := s.BYOK.BYOKKEK(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, k)
	return nil
}

// CreateBYOKKEK creates the caller's tenant's KEK of size bits (0: the
// default), or returns the one it has.
func (c *Client) CreateBYOKKEK(ctx context.Context, size int) (*keyhold.BYOKKEK, error) {
	var in byokKEKInJSON
	if size != 0 {
		in.KeySize = &size
	}
	var out keyhold.BYOKKEK
	if _, err := c.mgmt(ctx, "POST", byokKEKPath+"?api-version="+defaultBAPAPIVersion, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// BYOKKEK returns the caller's tenant's KEK.
func (c *Client) BYOKKEK(ctx context.Context) (*keyhold.BYOKKEK, error) {
	var out keyhold.BYOKKEK
	if _, err := c.mgmt(ctx, "GET", byokKEKPath+"?api-version="+defaultBAPAPIVersion, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
