package flows

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// An OAuth connection acts through its grant (issue 15): each connector
// action redeems the connection's refresh token, in process, with the
// token endpoint's own refresh checks (keyhold.ConnectionGrants), and
// runs as the access identity it gets, under the data plane's own access
// checks. Refresh tokens rotate, so the successor is sealed before the
// write transaction (a seal may unwrap a key) and written in the same
// transaction that redeems its predecessor. That write is a
// compare-and-set on the connection's version, made before the
// redemption: two actions redeeming one connection at once can't both
// use its token (which would look like a stolen copy and revoke the
// grant); the loser reads the connection again and redeems the successor.

// errGrantRefused rolls back a redemption the grants refused (see actAs).
var errGrantRefused = errors.New("flows: the connection's grant was refused")

// unauthenticated is the error of an OAuth connection whose grant no
// longer redeems: why says what the grants said.
func unauthenticated(rec *keyhold.ConnectionRecord, why string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeConnectionUnauthenticated,
		"connection %q of api %s can no longer act as principal %s (%s): its owner must re-authenticate it by creating it again (keyhold connection create %s %s %s --kind oauth), or delete it and create another",
		rec.Name, rec.API, rec.PrincipalID, why, rec.EnvID, rec.API, rec.Name)
}

// noGrant is why a connection sealed before grants existed acts as nobody.
const noGrant = "it was made before connections held a grant"

// sealConn seals a connection's credentials where rec's are sealed: the
// platform partition for PlatformEpoch, otherwise the environment's
// current epoch (which it returns).
func (s *Service) sealConn(ctx context.Context, rec *keyhold.ConnectionRecord, pt []byte) ([]byte, uint32, error) {
	if rec.Epoch == keyhold.PlatformEpoch {
		b, err := s.seal.SealPlatform(ctx, rec.EnvID, keyhold.StoreConnections, connItem(rec.API, rec.Name), rec.Version, pt)
		return b, keyhold.PlatformEpoch, err
	}
	return s.seal.Seal(ctx, rec.EnvID, keyhold.StoreConnections, connItem(rec.API, rec.Name), rec.Version, pt)
}

// actAs redeems an OAuth connection's grant for the identity its action
// runs as. A refusal is CodeConnectionUnauthenticated, and writes nothing
// but what the grants' refusal commits (a token used twice revokes the
// grant); a locked environment is its own error (the run pauses).
func (s *Service) actAs(ctx context.Context, rec *keyhold.ConnectionRecord) (*keyhold.Identity, error) {
	if s.cfg.Grants == nil {
		return nil, keyhold.Errorf(keyhold.CodeNotSupported, "this server keeps no grants for OAuth connections, so connection %q can't act", rec.Name)
	}
	for attempt := 0; ; attempt++ {
		sc, err := s.openConn(ctx, rec)
		if err != nil {
			return nil, err
		}
		if sc.RefreshToken == "" {
			return nil, unauthenticated(rec, noGrant)
		}
		next := *sc
		next.RefreshToken = crypt.NewSignInSecret()
		pt, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		nrec := *rec
		nrec.Version = rec.Version + 1
		nrec.Sealed, nrec.Epoch, err = s.sealConn(ctx, &nrec, pt)
		clear(pt)
		if err != nil {
			return nil, err
		}
		var (
			id      *keyhold.Identity
			refused error
		)
		err = s.store.Update(ctx, func(tx keyhold.Tx) error {
			id, refused = nil, nil
			epoch, err := s.seal.ServingIn(ctx, tx, rec.EnvID)
			if err != nil {
				return err
			}
			if nrec.Epoch != keyhold.PlatformEpoch && epoch != nrec.Epoch {
				return errEpochMoved
			}
			if err := tx.PutConnection(ctx, &nrec); err != nil {
				return err
			}
			id, err = s.cfg.Grants.RedeemConnection(ctx, tx, sc.TenantID, connKey(rec.EnvID, rec.API, rec.Name), sc.RefreshToken, next.RefreshToken)
			if keyhold.ErrorCode(err) == keyhold.CodeInvalidGrant {
				refused = err
				return errGrantRefused
			}
			return err
		})
		switch {
		case err == nil:
			return id, nil
		case errors.Is(err, errGrantRefused):
			return nil, s.commitRefusal(ctx, rec, sc, refused)
		case attempt < 32 && (errors.Is(err, errEpochMoved) || keyhold.ErrorCode(err) == keyhold.CodeConflict):
			// Another action rotated the token (or a rotation or re-key
			// moved the connection): redeem what it holds now.
			if rec, err = s.connRecord(ctx, rec.EnvID, rec.API, rec.Name); err != nil {
				return nil, err
			}
			if rec.Kind != keyhold.ConnectionOAuth {
				return nil, unauthenticated(rec, "its owner replaced it with a non-OAuth connection meanwhile")
			}
			continue
		}
		return nil, err
	}
}

// commitRefusal commits what the grants write when they refuse a token
// (the revocation of a token used twice, its audit entry), without the
// connection's write that was rolled back with it, and returns the
// connection's error. Should the token redeem this time after all, that
// is rolled back too: its successor was never stored.
func (s *Service) commitRefusal(ctx context.Context, rec *keyhold.ConnectionRecord, sc *sealedConn, refused error) error {
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		_, err := s.cfg.Grants.RedeemConnection(ctx, tx, sc.TenantID, connKey(rec.EnvID, rec.API, rec.Name), sc.RefreshToken, crypt.NewSignInSecret())
		switch {
		case err == nil:
			return errGrantRefused
		case keyhold.ErrorCode(err) == keyhold.CodeInvalidGrant:
			refused = err
			return nil
		}
		return err
	})
	if err != nil && !errors.Is(err, errGrantRefused) {
		s.log.ErrorContext(ctx, "committing the refusal of a connection's grant failed", "connection", rec.Name, "err", err)
	}
	return unauthenticated(rec, keyhold.ErrorMessage(refused))
}

// withStatus returns a connection as its API shows it, with its status:
// an OAuth connection's grant is checked (not redeemed).
func (s *Service) withStatus(ctx context.Context, rec *keyhold.ConnectionRecord) (*keyhold.Connection, error) {
	c := toConn(rec)
	c.Statuses = connected()
	if rec.Kind != keyhold.ConnectionOAuth {
		return c, nil
	}
	fail := func(err error) (*keyhold.Connection, error) {
		e := &keyhold.ConnectionStatusError{Code: keyhold.ErrorCode(err), Message: keyhold.ErrorMessage(err)}
		c.Statuses = []keyhold.ConnectionStatus{{Status: keyhold.ConnectionError, Target: "token", Error: e}}
		return c, nil
	}
	sc, err := s.openConn(ctx, rec)
	switch {
	case err != nil && keyhold.ErrorClass(err) != keyhold.ClassInternal:
		// A locked or disabled environment, a customer key that can't
		// be reached: the connection can't act now, and says why; the
		// listing still answers, as it did before statuses.
		return fail(err)
	case err != nil:
		return nil, err
	case sc.RefreshToken == "":
		return fail(unauthenticated(rec, noGrant))
	case s.cfg.Grants == nil:
		return c, nil
	}
	var refused error
	if err := s.store.View(ctx, func(tx keyhold.Tx) error {
		refused = s.cfg.Grants.CheckConnection(ctx, tx, sc.TenantID, connKey(rec.EnvID, rec.API, rec.Name), sc.RefreshToken)
		if keyhold.ErrorCode(refused) != keyhold.CodeInvalidGrant {
			return refused
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if refused != nil {
		return fail(unauthenticated(rec, keyhold.ErrorMessage(refused)))
	}
	return c, nil
}
