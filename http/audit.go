package http

import (
	nethttp "net/http"
	"net/url"
	"strconv"

	"github.com/keyhold/keyhold"
)

// Page sizes of the audit log.
const (
	defaultAuditTop = 100
	maxAuditTop     = 1000
)

// listAudit: GET /providers/Microsoft.BusinessAppPlatform/scopes/admin/auditlogs
// ?environmentId=…&top=N&before=ID. Entries come newest first; a full page
// carries a nextLink to the next one.
func (s *Server) listAudit(w nethttp.ResponseWriter, r *nethttp.Request) error {
	id := identity(r)
	if id == nil {
		return errNoIdentity
	}
	q := r.URL.Query()
	f := keyhold.AuditFilter{TenantID: id.TenantID, EnvID: q.Get("environmentId"), Limit: defaultAuditTop}
	if v := q.Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditTop {
			return keyhold.Errorf(keyhold.CodeBadRequest, "query parameter top=%q is not valid: use a whole number from 1 to %d", keyhold.Clip(v), maxAuditTop)
		}
		f.Limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return keyhold.Errorf(keyhold.CodeBadRequest, "query parameter before=%q is not valid: use the id of an audit entry, as in the nextLink of the previous page", keyhold.Clip(v))
		}
		f.BeforeID = n
	}
	entries, err := s.Audit.ListAudit(r.Context(), f)
	if err != nil {
		return err
	}
	out := listJSON[*keyhold.AuditEntry]{Value: entries}
	if out.Value == nil {
		out.Value = []*keyhold.AuditEntry{}
	}
	if len(entries) == f.Limit {
		next := url.Values{}
		for _, k := range []string{"api-version", "environmentId"} {
			if v := q.Get(k); v != "" {
				next.Set(k, v)
			}
		}
		next.Set("top", strconv.Itoa(f.Limit))
		next.Set("before", strconv.FormatInt(entries[len(entries)-1].ID, 10))
		out.NextLink = s.baseURL(r) + r.URL.Path + "?" + next.Encode()
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}
