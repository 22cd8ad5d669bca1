package http

import (
	"context"
	nethttp "net/http"
	"net/url"
	"time"

	"github.com/keyhold/keyhold"
)

// Tenant licences, in Microsoft Graph's subscribedSkus shape (keyhold.
// LicenceService, served by the Directory):
//
//	GET    /v1.0/subscribedSkus         200 {"value":[…]}
//	POST   /v1.0/subscribedSkus         {"skuPartNumber":"Microsoft 365 E5"}  201 (Keyhold's own: Graph's licences are bought)
//	DELETE /v1.0/subscribedSkus/{id}    204; id is keyhold.LicenceID or the name
//
// skuPartNumber holds the licence's name as 002 spells it, not Graph's
// part-number codes.

const (
	graphSkus      = graphPrefix + "/subscribedSkus"
	exampleLicence = `{"skuPartNumber":"Microsoft 365 E5"}`
)

// licenceJSON is a tenant's licence as GET /v1.0/subscribedSkus shows it.
type licenceJSON struct {
	ID               string    `json:"id"`
	SkuPartNumber    string    `json:"skuPartNumber"`
	CapabilityStatus string    `json:"capabilityStatus"`
	AppliesTo        string    `json:"appliesTo"`
	AddedBy          string    `json:"addedBy"`
	AddedDateTime    time.Time `json:"addedDateTime"`
}

func toLicenceJSON(l *keyhold.Licence) licenceJSON {
	return licenceJSON{ID: keyhold.LicenceID(l.Name), SkuPartNumber: l.Name, CapabilityStatus: "Enabled", AppliesTo: "User",
		AddedBy: l.AddedBy, AddedDateTime: l.AddedAt.UTC()}
}

// listLicences: GET /v1.0/subscribedSkus.
func (s *Server) listLicences(w nethttp.ResponseWriter, r *nethttp.Request) error {
	ls, err := s.ARM.Directory.ListLicences(r.Context())
	if err != nil {
		return err
	}
	out := listJSON[licenceJSON]{Value: make([]licenceJSON, 0, len(ls))}
	for _, l := range ls {
		out.Value = append(out.Value, toLicenceJSON(l))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// addLicence: POST /v1.0/subscribedSkus, 201.
func (s *Server) addLicence(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		SkuPartNumber *string `json:"skuPartNumber"`
	}
	if err := decodeKnown(body, &in, exampleLicence, "skuPartNumber"); err != nil { // strict: a misspelt field adds nothing
		return err
	}
	if in.SkuPartNumber == nil {
		return keyhold.Errorf(keyhold.CodeBadRequest, "skuPartNumber is required: name the licence, as in %s", exampleLicence)
	}
	l, err := s.ARM.Directory.AddLicence(r.Context(), *in.SkuPartNumber)
	if err != nil {
		return err
	}
	w.Header().Set("Location", s.baseURL(r)+graphSkus+"/"+keyhold.LicenceID(l.Name))
	writeJSON(w, nethttp.StatusCreated, toLicenceJSON(l))
	return nil
}

// removeLicence: DELETE /v1.0/subscribedSkus/{id}, 204.
func (s *Server) removeLicence(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := s.ARM.Directory.RemoveLicence(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusNoContent)
	return nil
}

// ListLicences lists the caller's tenant's licences.
func (c *Client) ListLicences(ctx context.Context) ([]*keyhold.Licence, error) {
	var out listJSON[licenceJSON]
	if _, err := c.mgmt(ctx, "GET", graphSkus, nil, &out); err != nil {
		return nil, err
	}
	ls := make([]*keyhold.Licence, len(out.Value))
	for i, j := range out.Value {
		ls[i] = &keyhold.Licence{TenantID: c.tenantID, Name: j.SkuPartNumber, AddedBy: j.AddedBy, AddedAt: j.AddedDateTime}
	}
	return ls, nil
}

// AddLicence adds a licence (one of keyhold.Licences) to the caller's
// tenant; it needs Global Administrator.
func (c *Client) AddLicence(ctx context.Context, name string) (*keyhold.Licence, error) {
	var out licenceJSON
	in := struct {
		SkuPartNumber string `json:"skuPartNumber"`
	}{name}
	if _, err := c.mgmt(ctx, "POST", graphSkus, in, &out); err != nil {
		return nil, err
	}
	return &keyhold.Licence{TenantID: c.tenantID, Name: out.SkuPartNumber, AddedBy: out.AddedBy, AddedAt: out.AddedDateTime}, nil
}

// RemoveLicence removes a licence from the caller's tenant; it needs
// Global Administrator.
func (c *Client) RemoveLicence(ctx context.Context, name string) error {
	id := name
	if canon, err := keyhold.ParseLicence(name); err == nil {
		id = keyhold.LicenceID(canon)
	}
	_, err := c.mgmt(ctx, "DELETE", graphSkus+"/"+url.PathEscape(id), nil, nil)
	return err
}
