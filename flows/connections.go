package flows

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// sealedConn is what a connection's seal holds. An OAuth connection holds
// the principal it acts as (the caller who made it: nobody makes a
// connection that acts as someone else) and the token parameters it was
// given; a non-OAuth one its parameters (an API key, basic credentials).
//
// An OAuth connection also holds its grant: a refresh token of the
// principal (keyhold.ConnectionGrants), which each action redeems for a
// short-lived access identity and replaces with its successor. A
// connection sealed before grants existed has none, and is shown as
// needing re-authentication (ConnectionUnauthenticated): it acts as
// nobody until its owner puts it again.
type sealedConn struct {
	TenantID     string            `json:"tenantId,omitempty"`
	PrincipalID  string            `json:"principalId,omitempty"`
	Parameters   map[string]string `json:"parameters,omitempty"`
	RefreshToken string            `json:"refreshToken,omitempty"`
}

// connKey names a connection to the grants: its token family.
func connKey(envID, api, name string) string { return envID + "/" + connItem(api, name) }

func validAPI(api string) error {
	if !strings.HasPrefix(api, "shared_") {
		return keyhold.Errorf(keyhold.CodeInvalidName, "api %q is not valid: Power Platform's api names start with shared_ (shared_commondataserviceforapps, shared_http, …)", keyhold.Clip(api))
	}
	return keyhold.ValidateItemName("api", api)
}

func toConn(r *keyhold.ConnectionRecord) *keyhold.Connection {
	root := "environment"
	if r.Kind == keyhold.ConnectionNonOAuth {
		root = "platform"
	}
	return &keyhold.Connection{EnvID: r.EnvID, API: r.API, Name: r.Name, DisplayName: r.DisplayName, Kind: r.Kind,
		PrincipalID: r.PrincipalID, CreatedBy: r.CreatedBy, CreatedTime: r.CreatedAt, Root: root}
}

// PutConnection creates a connection, or replaces its credentials.
// OAuth credentials are sealed under the environment's key; non-OAuth
// ones under the platform key's partition (spec 004: they stay there when
// the environment is linked to a customer key).
//
// An OAuth connection acts as its caller, through a new grant (a refresh
// token of the caller's, keyhold.ConnectionGrants) written with it in one
// transaction; putting it again is how its owner re-authenticates it (the
// earlier grant is revoked). Nobody puts over another principal's OAuth
// connection: CodeForbidden, and nothing changes.
func (s *Service) PutConnection(ctx context.Context, envID, api, name string, in *keyhold.ConnectionInput) (*keyhold.Connection, error) {
	id, env, err := s.caller(ctx, envID)
	if err != nil {
		return nil, err
	}
	if err := validAPI(api); err != nil {
		return nil, err
	}
	if err := keyhold.ValidateItemName("connection name", name); err != nil {
		return nil, err
	}
	if in == nil || (in.Kind != keyhold.ConnectionOAuth && in.Kind != keyhold.ConnectionNonOAuth) {
		kind := ""
		if in != nil {
			kind = in.Kind
		}
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "properties.kind %q is not valid: use %q (acts as you) or %q (an API key or basic credentials)", keyhold.Clip(kind), keyhold.ConnectionOAuth, keyhold.ConnectionNonOAuth)
	}
	if in.Kind == keyhold.ConnectionNonOAuth {
		if err := validNonOAuth(in.Parameters); err != nil {
			return nil, err
		}
	}
	var old *keyhold.ConnectionRecord
	if err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		old, err = tx.Connection(ctx, envID, api, name)
		if keyhold.ErrorCode(err) == keyhold.CodeConnectionNotFound {
			return nil
		}
		return err
	}); err != nil {
		return nil, err
	}
	rec := &keyhold.ConnectionRecord{EnvID: envID, API: api, Name: name, DisplayName: in.DisplayName, Kind: in.Kind,
		CreatedBy: id.PrincipalID, Version: 1, CreatedAt: s.clock.Now().UTC()}
	if rec.DisplayName == "" {
		rec.DisplayName = name
	}
	if old != nil {
		if old.Kind == keyhold.ConnectionOAuth && old.PrincipalID != id.PrincipalID {
			return nil, keyhold.Errorf(keyhold.CodeForbidden, "connection %q of api %s acts as principal %s: only that principal may re-authenticate or replace it; delete it and create your own, or use another name", keyhold.Clip(name), api, old.PrincipalID)
		}
		rec.Version, rec.CreatedAt = old.Version+1, old.CreatedAt
	}
	body := sealedConn{Parameters: in.Parameters}
	if in.Kind == keyhold.ConnectionOAuth {
		if s.cfg.Grants == nil {
			return nil, keyhold.Errorf(keyhold.CodeNotSupported, "this server keeps no grants for OAuth connections: create a %q connection, or run the flows service with the platform's grants", keyhold.ConnectionNonOAuth)
		}
		rec.PrincipalID = id.PrincipalID
		body.TenantID, body.PrincipalID = env.TenantID, id.PrincipalID
		body.RefreshToken = crypt.NewSignInSecret()
	}
	pt, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	if in.Kind == keyhold.ConnectionOAuth {
		rec.Sealed, rec.Epoch, err = s.seal.Seal(ctx, envID, keyhold.StoreConnections, connItem(api, name), rec.Version, pt)
	} else {
		rec.Epoch = keyhold.PlatformEpoch
		rec.Sealed, err = s.seal.SealPlatform(ctx, envID, keyhold.StoreConnections, connItem(api, name), rec.Version, pt)
	}
	clear(pt)
	if err != nil {
		return nil, err
	}
	if err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		switch {
		case in.Kind == keyhold.ConnectionOAuth:
			if err := s.cfg.Grants.GrantConnection(ctx, tx, id, connKey(envID, api, name), body.RefreshToken); err != nil {
				return err
			}
		case old != nil && old.Kind == keyhold.ConnectionOAuth && s.cfg.Grants != nil:
			if err := s.cfg.Grants.RevokeConnection(ctx, tx, connKey(envID, api, name)); err != nil {
				return err
			}
		}
		return tx.PutConnection(ctx, rec)
	}); err != nil {
		return nil, err
	}
	c := toConn(rec)
	c.Statuses = connected()
	return c, nil
}

func connected() []keyhold.ConnectionStatus {
	return []keyhold.ConnectionStatus{{Status: keyhold.ConnectionConnected}}
}

func (s *Service) connRecord(ctx context.Context, envID, api, name string) (rec *keyhold.ConnectionRecord, err error) {
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		rec, err = tx.Connection(ctx, envID, api, name)
		return err
	})
	return rec, err
}

// openConn opens a connection's credentials.
func (s *Service) openConn(ctx context.Context, rec *keyhold.ConnectionRecord) (*sealedConn, error) {
	var pt []byte
	var err error
	if rec.Epoch == keyhold.PlatformEpoch {
		pt, err = s.seal.OpenPlatform(ctx, rec.EnvID, keyhold.StoreConnections, connItem(rec.API, rec.Name), rec.Version, rec.Sealed)
	} else {
		pt, err = s.seal.Open(ctx, rec.EnvID, keyhold.StoreConnections, connItem(rec.API, rec.Name), rec.Version, rec.Epoch, rec.Sealed)
	}
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	c := &sealedConn{}
	if err := json.Unmarshal(pt, c); err != nil {
		return nil, keyhold.Errorf(keyhold.CodeInternal, "connection %s: its stored credentials are not valid", rec.Name).WithCause(err)
	}
	return c, nil
}

// GetConnection returns a connection, never its credentials.
func (s *Service) GetConnection(ctx context.Context, envID, api, name string) (*keyhold.Connection, error) {
	if _, _, err := s.caller(ctx, envID); err != nil {
		return nil, err
	}
	rec, err := s.connRecord(ctx, envID, api, name)
	if err != nil {
		return nil, err
	}
	return s.withStatus(ctx, rec)
}

// ListConnections lists an environment's connections.
func (s *Service) ListConnections(ctx context.Context, envID string) ([]*keyhold.Connection, error) {
	if _, _, err := s.caller(ctx, envID); err != nil {
		return nil, err
	}
	var recs []*keyhold.ConnectionRecord
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		recs, err = tx.ListConnections(ctx, envID)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]*keyhold.Connection, 0, len(recs))
	for _, r := range recs {
		c, err := s.withStatus(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// DeleteConnection deletes a connection.
func (s *Service) DeleteConnection(ctx context.Context, envID, api, name string) error {
	if _, _, err := s.caller(ctx, envID); err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx keyhold.Tx) error {
		old, err := tx.Connection(ctx, envID, api, name)
		if err != nil {
			return err
		}
		// The grant goes with its connection: no copy of the token (a
		// backup's, say) redeems after.
		if old.Kind == keyhold.ConnectionOAuth && s.cfg.Grants != nil {
			if err := s.cfg.Grants.RevokeConnection(ctx, tx, connKey(envID, api, name)); err != nil {
				return err
			}
		}
		return tx.DeleteConnection(ctx, envID, api, name)
	})
}
