package http

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"github.com/keyhold/keyhold"
)

var _ keyhold.RedirectURIs = (*Client)(nil)

// ListRedirectURIs lists an application's redirect URIs; it needs Global
// Administrator.
func (c *Client) ListRedirectURIs(ctx context.Context, appID string) ([]string, error) {
	var out listJSON[string]
	if _, err := c.mgmt(ctx, "GET", redirectPath(appID), nil, &out); err != nil {
		return nil, err
	}
	return out.Value, nil
}

// AddRedirectURI registers a redirect URI on an application, where the
// authorization code grant may send codes; it needs Global
// Administrator.
func (c *Client) AddRedirectURI(ctx context.Context, appID, uri string) error {
	_, err := c.mgmt(ctx, "POST", redirectPath(appID), redirectURIJSON{URI: uri}, nil)
	return err
}

// RemoveRedirectURI unregisters an application's redirect URI.
func (c *Client) RemoveRedirectURI(ctx context.Context, appID, uri string) error {
	_, err := c.mgmt(ctx, "DELETE", redirectPath(appID)+"?uri="+url.QueryEscape(uri), nil, nil)
	return err
}

func redirectPath(appID string) string {
	return graphPrefix + "/applications/" + url.PathEscape(appID) + "/redirectUris"
}

// userLogin is a person's sign-in: the refresh token that gets the
// Client its access tokens, and where each new one is kept.
type userLogin struct {
	mu      sync.Mutex // one refresh at a time: a token used twice revokes the sign-in
	refresh string
	save    func(refreshToken string) error
}

// NewUserClient returns a client of the server at baseURL signed in as a
// person: it gets its access tokens with the refresh_token grant for
// clientID (keyhold.CLIClientID for the command line), and, as each use
// rotates the refresh token, hands the new one to save before answering,
// so that the caller keeps the latest (a refresh token used twice revokes
// the sign-in). save may be nil.
func NewUserClient(baseURL string, caPEM []byte, tenantID, clientID, refreshToken string, save func(refreshToken string) error) (*Client, error) {
	if refreshToken == "" {
		return nil, errors.New("keyhold: the login holds no refresh token: run keyhold login --device-code again")
	}
	c, err := NewClient(baseURL, caPEM, tenantID, clientID, "")
	if err != nil {
		return nil, err
	}
	c.user = &userLogin{refresh: refreshToken, save: save}
	return c, nil
}

// refresh gets an access token for scope with the refresh token, and
// keeps its successor.
func (c *Client) refresh(ctx context.Context, scope string) (*keyhold.Token, error) {
	u := c.user
	u.mu.Lock()
	defer u.mu.Unlock()
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {c.clientID},
		"refresh_token": {u.refresh},
		"scope":         {scope},
	}
	tj, err := c.postToken(ctx, form)
	if err != nil {
		return nil, err
	}
	if tj.RefreshToken == "" {
		return nil, errors.New("keyhold: the token endpoint answered a refresh without a new refresh token: run keyhold login --device-code again")
	}
	u.refresh = tj.RefreshToken
	if u.save != nil {
		if err := u.save(tj.RefreshToken); err != nil {
			return nil, fmt.Errorf("keyhold: keeping the new refresh token: %w", err)
		}
	}
	return &keyhold.Token{AccessToken: tj.AccessToken, TokenType: tj.TokenType, ExpiresIn: tj.ExpiresIn, ExtExpires: tj.ExtExpiresIn,
		RefreshToken: tj.RefreshToken, Scope: tj.Scope}, nil
}
