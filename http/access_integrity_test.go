package http

import (
	"encoding/json"
	"math"
	"net/url"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestInsertedSecretAnswersAsAWrongOne: over real HTTPS, a client secret
// hash inserted into the database for the bootstrap administrator (as
// someone who can write the database but holds no master key would) gets
// 401 invalid_client, with the same error and description as a wrong
// secret, so the answer tells nothing of the inserted record.
func TestInsertedSecretAnswersAsAWrongOne(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixtureOn(t, open(t))
		path := "/" + f.creds.TenantID + "/oauth2/v2.0/token"
		try := func(secret string) oauthErrorJSON {
			t.Helper()
			a := f.form(t, path, url.Values{"grant_type": {"client_credentials"}, "client_id": {f.creds.ClientID},
				"client_secret": {secret}, "scope": {"https://management.azure.com/.default"}})
			var e oauthErrorJSON
			if a.status != 401 || json.Unmarshal(a.body, &e) != nil {
				t.Fatalf("answer %d %s; want 401 invalid_client", a.status, a.body)
			}
			return e
		}
		wrong := try("not-the-secret")
		storetest.Exec(t, f.store, `INSERT INTO credentials (principal_id, secret_hash, created_at, expires_at)
			SELECT id, ?, 0, ? FROM principals WHERE app_id = ?`, crypt.HashClientSecret("attacker-secret"), int64(math.MinInt64), f.creds.ClientID)
		inserted := try("attacker-secret")
		if inserted.Error != "invalid_client" || inserted.Error != wrong.Error || inserted.ErrorDescription != wrong.ErrorDescription {
			t.Fatalf("inserted secret answered %+v, a wrong one %+v: want the same invalid_client", inserted, wrong)
		}
	})
}
