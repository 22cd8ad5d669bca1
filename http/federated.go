package http

// Applications' federated identity credentials (Microsoft Graph's shape):
//
//	POST   /v1.0/applications/{id}/federatedIdentityCredentials         201 with the credential
//	GET    /v1.0/applications/{id}/federatedIdentityCredentials         200 {"value":[…]}
//	DELETE /v1.0/applications/{id}/federatedIdentityCredentials/{fid}   204
//
// {id} is the application's app (client) id or its object id (Keyhold's
// applications and service principals are one object); {fid} is the
// credential's id or name.

import (
	"context"
	nethttp "net/http"
	"net/url"
	"time"

	"github.com/keyhold/keyhold"
)

const (
	graphApps          = graphPrefix + "/applications"
	exampleFederated   = `{"name":"platform-policy","issuer":"https://platform.example/{tenant}/v2.0","subject":"/subscriptions/…/enterprisePolicies/…","audiences":["api://AzureADTokenExchange"]}`
	federatedPathParts = "/{id}/federatedIdentityCredentials"
)

// federatedJSON is Graph's federatedIdentityCredential.
type federatedJSON struct {
	ID          string    `json:"id,omitempty"`
	Name        string    `json:"name"`
	Issuer      string    `json:"issuer"`
	Subject     string    `json:"subject"`
	Audiences   []string  `json:"audiences,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"createdDateTime,omitzero"`
}

func toFederatedJSON(c *keyhold.FederatedCredential) federatedJSON {
	return federatedJSON{ID: c.ID, Name: c.Name, Issuer: c.Issuer, Subject: c.Subject, Audiences: c.Audiences, Description: c.Description, CreatedAt: c.CreatedAt}
}

func (j federatedJSON) credential() *keyhold.FederatedCredential {
	return &keyhold.FederatedCredential{ID: j.ID, Name: j.Name, Issuer: j.Issuer, Subject: j.Subject, Audiences: j.Audiences, Description: j.Description, CreatedAt: j.CreatedAt}
}

// federatedRoutes declares the routes when the directory takes federated
// credentials.
func (s *Server) federatedRoutes() []route {
	if _, ok := s.ARM.Directory.(keyhold.FederatedDirectory); !ok {
		return nil
	}
	mgmt := []keyhold.Audience{keyhold.AudienceManagement}
	return []route{
		armRoute("POST", graphApps+federatedPathParts, mgmt, s.addFederated),
		armRoute("GET", graphApps+federatedPathParts, mgmt, s.listFederated),
		armRoute("DELETE", graphApps+federatedPathParts+"/{fid}", mgmt, s.removeFederated),
	}
}

func (s *Server) addFederated(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in federatedJSON
	if err := decodeJSON(body, &in, exampleFederated); err != nil {
		return err
	}
	c, err := s.ARM.Directory.(keyhold.FederatedDirectory).AddFederatedCredential(r.Context(), r.PathValue("id"), in.credential())
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, toFederatedJSON(c))
	return nil
}

func (s *Server) listFederated(w nethttp.ResponseWriter, r *nethttp.Request) error {
	cs, err := s.ARM.Directory.(keyhold.FederatedDirectory).ListFederatedCredentials(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := listJSON[federatedJSON]{Value: make([]federatedJSON, 0, len(cs))}
	for _, c := range cs {
		out.Value = append(out.Value, toFederatedJSON(c))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

func (s *Server) removeFederated(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := s.ARM.Directory.(keyhold.FederatedDirectory).DeleteFederatedCredential(r.Context(), r.PathValue("id"), r.PathValue("fid")); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusNoContent)
	return nil
}

var _ keyhold.FederatedDirectory = (*Client)(nil)

func federatedPath(app string, id ...string) string {
	p := graphApps + "/" + url.PathEscape(app) + "/federatedIdentityCredentials"
	for _, s := range id {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// AddFederatedCredential adds a federated credential to an application.
func (c *Client) AddFederatedCredential(ctx context.Context, app string, in *keyhold.FederatedCredential) (*keyhold.FederatedCredential, error) {
	var out federatedJSON
	if _, err := c.mgmt(ctx, "POST", federatedPath(app), toFederatedJSON(in), &out); err != nil {
		return nil, err
	}
	return out.credential(), nil
}

// ListFederatedCredentials lists an application's federated credentials.
func (c *Client) ListFederatedCredentials(ctx context.Context, app string) ([]*keyhold.FederatedCredential, error) {
	var out listJSON[federatedJSON]
	if _, err := c.mgmt(ctx, "GET", federatedPath(app), nil, &out); err != nil {
		return nil, err
	}
	cs := make([]*keyhold.FederatedCredential, 0, len(out.Value))
	for _, j := range out.Value {
		cs = append(cs, j.credential())
	}
	return cs, nil
}

// DeleteFederatedCredential removes an application's federated credential
// named by id or name.
func (c *Client) DeleteFederatedCredential(ctx context.Context, app, id string) error {
	_, err := c.mgmt(ctx, "DELETE", federatedPath(app, id), nil, nil)
	return err
}
