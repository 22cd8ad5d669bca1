package http

import (
	nethttp "net/http"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold"
)

// The admin center's audit timeline: the tenant's audit entries, newest
// first, filtered by environment and by the start of the action, a page
// at a time, from the service the audit log API reads.

const adminAuditPage = 50

type auditData struct {
	Env, Action string
	Entries     []*keyhold.AuditEntry
	Older       string // the next page's query, "" at the end
}

// adminAudit: GET /admin/audit?env=…&action=…&before=….
func (s *Server) adminAudit(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	q := r.URL.Query()
	d := &auditData{Env: keyhold.Clip(q.Get("env")), Action: keyhold.Clip(q.Get("action"))}
	v.Title, v.Nav, v.Data = "Audit", "audit", d
	if s.Audit == nil {
		return adminFail(w, v, "audit", keyhold.Errorf(keyhold.CodeNotSupported, "this server keeps no audit log"))
	}
	id := keyhold.IdentityFrom(r.Context())
	f := keyhold.AuditFilter{TenantID: id.TenantID, EnvID: strings.TrimSpace(q.Get("env")), Limit: adminAuditPage}
	if a := strings.TrimSpace(q.Get("action")); a != "" {
		for c := range strings.SplitSeq(a, ",") {
			if c = strings.TrimSpace(c); c == "" {
				continue
			}
			if strings.IndexFunc(c, func(r rune) bool {
				return !(r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
			}) >= 0 {
				return adminFail(w, v, "audit", keyhold.Errorf(keyhold.CodeBadRequest, "action filter %q is not valid: use the start of an action, letters, digits and dots only, such as signin or environment.", keyhold.Clip(c)))
			}
			f.ActionPrefixes = append(f.ActionPrefixes, c)
		}
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			return adminFail(w, v, "audit", keyhold.Errorf(keyhold.CodeBadRequest, "before=%q is not an audit entry's id: use the Older link", keyhold.Clip(b)))
		}
		f.BeforeID = n
	}
	entries, err := s.Audit.ListAudit(r.Context(), f)
	if err != nil {
		return adminFail(w, v, "audit", err)
	}
	d.Entries = entries
	if len(entries) == f.Limit {
		next := q
		next.Set("before", strconv.FormatInt(entries[len(entries)-1].ID, 10))
		d.Older = next.Encode()
	}
	return renderAdmin(w, nethttp.StatusOK, "audit", v)
}
