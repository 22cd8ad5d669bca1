package platform

import (
	"fmt"
	"io"

	"github.com/keyhold/keyhold"
)

// What a BYOK environment can't use until it migrates to a customer-managed
// key (spec 000's note: BYOK tenants' environments are locked out of the
// services that store data outside the SQL database). The legacy BYOK key
// covers only the database; each Keyhold service that keeps an
// environment's data elsewhere refuses a BYOK environment through
// refuseBYOK, with a message that points to the migration.
//
// Today that is one service: files above DefaultBYOKFileCap (the legacy
// feature's limit on file and image columns in the database, 128 MB). The
// others the spec names have no Keyhold counterpart yet, and must call
// refuseBYOK when they come: flows (byokFlows), audit kept outside the
// database (byokAuditExport), and search (byokSearch).

// DefaultBYOKFileCap is the largest file a BYOK environment stores: the
// legacy feature kept files and images of up to 128 MB in its SQL
// database, and larger ones in file storage that the BYOK key did not
// cover.
const DefaultBYOKFileCap = 128 << 20

// The services a BYOK environment can't use, as refuseBYOK names them.
const (
	byokFlows       = "flows"
	byokAuditExport = "environment audit outside the database"
	byokSearch      = "search"
)

// refuseBYOK refuses service for env if env is under its tenant's legacy
// BYOK key (CodeNotSupported, naming the migration), and is nil otherwise.
func refuseBYOK(env *keyhold.Environment, service string) error {
	if env.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft {
		return nil
	}
	return keyhold.Errorf(keyhold.CodeNotSupported,
		"environment %s is encrypted under the tenant's legacy BYOK key, which covers only its database, so it can't use %s: migrate it to a customer-managed key (make it a Managed Environment and link it to an enterprise policy: keyhold env link %s --policy …) to use them",
		env.ID, service, env.ID)
}

// byokFileCap returns the reader a BYOK environment's upload reads
// through: one that fails with refuseBYOK's error (as
// CodeRequestTooLarge) once more than limit (core.byokCap; 0:
// DefaultBYOKFileCap) has come, so that the upload stores nothing. Other
// environments read r as it is. (A function, not a method: core's
// methods are the custody core's, TestServiceSize.)
func byokFileCap(env *keyhold.Environment, r io.Reader, limit int64) io.Reader {
	if env.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft {
		return r
	}
	if limit <= 0 {
		limit = DefaultBYOKFileCap
	}
	return &cappedReader{r: r, left: limit, limit: limit, env: env}
}

// cappedReader reads at most left bytes, then fails with the BYOK refusal
// if more follow.
type cappedReader struct {
	r           io.Reader
	left, limit int64
	env         *keyhold.Environment
}

func (c *cappedReader) Read(b []byte) (int, error) {
	if c.left < 0 {
		return 0, c.refusal()
	}
	if int64(len(b)) > c.left+1 {
		b = b[:c.left+1] // one byte past the cap tells "exactly the cap" from "more"
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	if c.left < 0 {
		return 0, c.refusal()
	}
	return n, err
}

func (c *cappedReader) refusal() error {
	err := refuseBYOK(c.env, fmt.Sprintf("files larger than %d bytes (%d MiB)", c.limit, c.limit>>20))
	return keyhold.Errorf(keyhold.CodeRequestTooLarge, "%s", keyhold.ErrorMessage(err))
}
